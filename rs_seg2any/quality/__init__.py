"""Image-quality measures of generated imagery, shared by tests, benches and the evaluate verb.

- :mod:`.evaluate`: ``evaluate(candidates, real, labels, ...)`` -> ``EvaluationReport`` (every
  measure below, with controls, a report.json and a picture grid);
- :mod:`.c2st`: the real-vs-generated classifier test with its fixed protocol and validity rule;
- :mod:`.colour`, :mod:`.texture`: per-class colour (CIELAB Delta E, saturation) and texture;
- :mod:`.seams`: line scores at the tiling's lines and at the 16-px token period;
- :mod:`.baselines`: flat paint, class-patch fill, blurred real;
- :mod:`.scenes`: label rasters -> layouts, and rendering a generator with the generate job.
"""
