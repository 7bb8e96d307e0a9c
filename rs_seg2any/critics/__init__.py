"""Critics: score generated imagery per entity and per tile, and repair what fails.

Each critic is a small function of (image, layout maps) or (source, edited, intended mask)
that returns a score per entity (1 = good, 0 = bad) or per image; a critic that cannot judge a
layout (the segmenter knows only the ``dubai_aerial`` classes) says so in a note instead of
guessing.

- :mod:`.entity` -- layout fidelity (segmenter IoU) and class colour against real statistics;
- :mod:`.edit` -- edit leakage, the recovered edit mask and its IoU with the intended one;
- :mod:`.text` -- text-level attribute check: the class a description reads as (a sentence
  embedder against the taxonomy's class texts) vs the class the segmenter sees;
- :mod:`.loop` -- the bounded refine loop behind ``generate --refine``;
- :mod:`.scenario` -- the same loop on every scenario render, inside the edit for edits;
- :mod:`.report` -- the trajectory and the per-job quality report (JSON + histogram PNG).
"""

from __future__ import annotations

from .params import RefineParams

__all__ = ["RefineParams"]
