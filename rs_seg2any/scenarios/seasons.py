"""Seasons: one layout rendered once per season, same seed, season-specific descriptions.

Every season uses the same grid, tile plan and seed, so the outputs are co-registered and
differ only where the descriptions (or a season adapter) make them differ. A season may name a
LoRA adapter; the generator factory decides whether its backend can take one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from odc.geo.geobox import GeoBox

from ..critics.scenario import generate_or_refine
from ..errors import InputError
from ..generators.base import Generator
from ..geoio import ensure_writable_dir
from ..job.runner import JobResult
from ..progress import Progress
from .common import GenOptions, Polygons, exclusive_folder
from .presets import load_preset


@dataclass
class SeasonsResult:
    seasons: dict[str, JobResult] = field(default_factory=dict)

    def outputs(self) -> dict[str, Path]:
        return {f"{s}_{k}": v for s, r in self.seasons.items() for k, v in r.outputs.items()}


def season_descriptions(polys: Polygons, season: str, cfg: dict[str, Any]) -> list[str]:
    """Per feature: the preset's text for its class in this season, else its own description
    (or its class's) plus the season suffix."""
    spec = cfg["seasons"][season]
    by_class = {str(k).strip().lower(): str(v) for k, v in (spec.get("classes") or {}).items()}
    suffix = str(spec.get("suffix", f"in {season}"))
    tax = polys.taxonomy
    texts = []
    for _, row in polys.frame.iterrows():
        cid = tax.resolve(row[polys.class_field])
        name = tax.by_id(cid).name.lower() if cid is not None else str(row[polys.class_field])
        if name in by_class:
            texts.append(by_class[name])
            continue
        own = row[polys.description_field] if polys.description_field else None
        base = (
            str(own)
            if own is not None and own == own and str(own).strip()
            else (tax.by_id(cid).description if cid is not None else name)
        )
        texts.append(f"{base}, {suffix}")
    return texts


@exclusive_folder
def seasons(
    out: str | Path,
    generator_for: Callable[[str | None], Generator],
    polygons: Polygons,
    grid: GeoBox,
    names: Sequence[str],
    *,
    opts: GenOptions | None = None,
    preset: str | Path = "seasons",
    progress: Progress | None = None,
) -> SeasonsResult:
    """Render ``polygons`` on ``grid`` for each season in ``names`` into ``out/<season>/``.

    ``generator_for(lora)`` returns the generator to use for a season (``lora`` is the
    season's adapter from the preset, or None), so a backend with adapters can switch them.
    """
    opts = opts or GenOptions()
    cfg = load_preset(preset, needs=("seasons",))
    known = list(cfg.get("seasons", {}))
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise InputError(f"unknown season(s) {bad}; the preset has: {', '.join(known)}")
    out = ensure_writable_dir(out)
    result = SeasonsResult()
    desc_field = "_rs_season_description"
    for name in names:
        frame = polygons.frame.copy()
        frame[desc_field] = season_descriptions(polygons, name, cfg)
        polys = replace(polygons, frame=frame, description_field=desc_field)
        generator = generator_for(cfg["seasons"][name].get("lora"))
        caption = f"{opts.caption or 'top-down aerial photograph'}, {name}"
        result.seasons[name] = generate_or_refine(
            polys.layout(grid), out / name, generator, opts, progress, caption=caption
        )
    return result
