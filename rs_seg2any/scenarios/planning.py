"""Urban-planning scenario: zones (polygons with free-text descriptions) inpainted into an image.

Only pixels inside the zones are generated; each zone is one entity with its own description,
so "central park with a lake" and "high-rise residential" next to each other do not leak into
each other (attribute isolation). The label mask is updated with each zone's class.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import geopandas as gpd
import pandas as pd
from odc.geo.geobox import GeoBox

from ..errors import InputError, ScenarioError
from ..generators.base import Generator
from ..geoio import ensure_writable_dir
from ..inputs import read_vector
from ..job.runner import JobResult
from ..progress import Progress
from .common import (
    GenOptions,
    Polygons,
    edit_job,
    exclusive_folder,
    extend_taxonomy,
    scenario_base,
    scenario_grid,
)
from .masks import PolygonMask, mask_any
from .presets import load_preset


@dataclass
class PlanResult:
    before: Path
    after: JobResult

    def outputs(self) -> dict[str, Path]:
        return {"before": self.before, **self.after.outputs}


@exclusive_folder
def plan(
    out: str | Path,
    generator: Generator,
    zones: gpd.GeoDataFrame | str | Path,
    *,
    description_field: str,
    zone_class_field: str | None = None,
    base_image: str | Path | None = None,
    polygons: Polygons | None = None,
    grid: GeoBox | None = None,
    opts: GenOptions | None = None,
    preset: str | Path = "planning",
    progress: Progress | None = None,
) -> PlanResult:
    """Inpaint ``zones`` into a base image (or one generated from ``polygons`` on ``grid``).

    A zone's label is its ``zone_class_field`` value when given (a class of the taxonomy),
    else the preset's planned-development class.
    """
    opts = opts or GenOptions()
    cfg = load_preset(preset, needs=("class",))
    if not isinstance(zones, gpd.GeoDataFrame):
        zones = read_vector(zones, "--zones")
    if description_field not in zones.columns:
        raise InputError(f"zones have no field '{description_field}'")
    if zone_class_field is not None and zone_class_field not in zones.columns:
        raise InputError(f"zones have no field '{zone_class_field}'")
    if zones.crs is None:
        raise InputError("the zone layer has no CRS")
    out = ensure_writable_dir(out)
    grid = scenario_grid(base_image, grid)
    mask = PolygonMask(zones, grid)  # windows: memory does not grow with the area
    if not mask_any(mask, grid):
        raise ScenarioError("the planning zones lie outside the image (or cover no pixel centre)")
    base_polys = polygons or Polygons.empty(zones.crs)
    taxonomy, default_class = extend_taxonomy(base_polys.taxonomy, cfg["class"])
    classes = (
        zones[zone_class_field].astype(object)
        if zone_class_field is not None
        else pd.Series([default_class.name] * len(zones), index=zones.index)
    )
    unknown = sorted({str(c) for c in classes if taxonomy.resolve(c) is None})
    if unknown:
        raise ScenarioError(f"zone classes not in taxonomy '{taxonomy.name}': {unknown}")
    new = gpd.GeoDataFrame(
        {base_polys.class_field: classes.values}, geometry=zones.geometry.values, crs=zones.crs
    )
    desc_field = base_polys.description_field or "description"
    new[desc_field] = zones[description_field].astype(str).values
    frame = base_polys.frame
    if frame.crs is not None and frame.crs != zones.crs:
        new = new.to_crs(frame.crs)
    # zones are drawn on top: the highest priority among the after layout's classes
    merged = gpd.GeoDataFrame(pd.concat([frame, new], ignore_index=True), crs=new.crs)
    after = replace(base_polys, frame=merged, description_field=desc_field, taxonomy=taxonomy)
    after = _zones_on_top(after, len(frame))
    base = scenario_base(base_image, polygons, grid, out, generator, opts, progress)
    job = edit_job(after, grid, base, mask, out / "after", generator, opts, progress)
    return PlanResult(base, job)


def _zones_on_top(polys: Polygons, first_zone: int) -> Polygons:
    """Zones must win every overlap with the existing layer, whatever their class priority:
    they are what is being planned. A priority field does that explicitly."""
    frame = polys.frame.copy()
    tax = polys.taxonomy
    ids = frame[polys.class_field].map(tax.resolve)
    prio: list[float] = [tax.by_id(int(i)).priority if i is not None and i == i else 0 for i in ids]
    if polys.priority_field:  # the user's own drawing order for the existing layer
        own = pd.to_numeric(frame[polys.priority_field], errors="coerce")
        prio = [p if o != o else float(o) for p, o in zip(prio, own, strict=True)]
    frame["_rs_priority"] = prio  # the existing layer keeps its own drawing order
    frame.loc[frame.index >= first_zone, "_rs_priority"] = 1_000_000
    return replace(polys, frame=frame, priority_field="_rs_priority")
