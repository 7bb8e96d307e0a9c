"""Disaster damage pairs: a post-event image on the pre-event grid, with per-building labels.

The damage layer (a user's polygons, or a recipe's draw from the layout: fire front,
earthquake, DEM flood) says which buildings and areas are damaged, how badly (a level on the
xBD scale: no damage, minor, major, destroyed) and how (a type: burnt, collapse, flooded...).
Damaged buildings keep their land-cover class and get the preset's damage description;
damaged areas become their type's class (burned ground, debris, flood water). The post-event
image is the pre-event image edited through the same edit region every scenario uses, so
every pixel outside the damaged polygons is the pre-event pixel, bit for bit. A damaged
building is re-rendered in patches covering its level's ``rendered_share`` of the roof
(preset; minor damage stays local, a destroyed building is re-rendered whole), while its
labels cover the whole footprint, as the benchmarks label buildings.

Outputs (one grid): ``before/`` (pre-event image when rendered, its label mask), ``after/``
(post-event image, label mask...), ``damage_level.tif`` (uint8 level codes with a colour table
and class names; areas under buildings, higher levels on top), ``damage_level.qml``,
``damage.gpkg`` (the checked damage polygons in the grid's CRS) and ``damage.geojson``
(the same in WGS 84).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from odc.geo.geobox import GeoBox

from ..atomic import atomic_output
from ..errors import ScenarioError
from ..generators.base import Generator
from ..geoio import GridRasterWriter, ensure_writable_dir
from ..geoio.styles import LABEL_DTYPE, LABEL_NODATA, label_mask_style, write_qml
from ..job.runner import JobResult, run_layout_job
from ..progress import Progress
from ..taxonomy import Taxonomy
from .common import (
    GenOptions,
    Polygons,
    edit_job,
    exclusive_folder,
    extend_taxonomy,
    scenario_base,
    scenario_grid,
)
from .damage_layer import ITEM_COLUMNS, ValueRaster, damage_items, drawing_order, read_damage_layer
from .damage_presets import DamagePreset, load_damage_preset
from .damage_recipes import RECIPES, apply_recipe, recipe_inputs
from .masks import PolygonMask, as_bool, write_windows
from .planning import _zones_on_top

FALLBACK_BUILDING = {"name": "building", "colour": "#3C1098", "description": "a building"}
"""The class of damaged buildings when the taxonomy (or a photo without layout) has none."""


@dataclass
class DamageResult:
    before: Path
    before_label: Path | None
    after: JobResult
    damage_level: Path
    damage_style: Path
    damage_polygons: Path
    damage_geojson: Path

    def outputs(self) -> dict[str, Path]:
        out = {"before": self.before}
        if self.before_label is not None:
            out["before_label"] = self.before_label
        return {
            **out,
            **self.after.outputs,
            "damage_level": self.damage_level,
            "damage_style": self.damage_style,
            "damage_polygons": self.damage_polygons,
            "damage_geojson": self.damage_geojson,
        }


@exclusive_folder
def damage(
    out: str | Path,
    generator: Generator,
    *,
    damage_layer: gpd.GeoDataFrame | str | Path | None = None,
    disaster: str = "fire",
    level_field: str = "level",
    type_field: str | None = "type",
    description_field: str | None = None,
    layer: str | None = None,
    recipe_params: dict[str, Any] | None = None,
    origin: tuple[float, float] | None = None,
    flood: Any = None,
    base_image: str | Path | None = None,
    polygons: Polygons | None = None,
    grid: GeoBox | None = None,
    opts: GenOptions | None = None,
    preset: str | Path | None = None,
    progress: Progress | None = None,
) -> DamageResult:
    """Render the post-event image of a damage layer (or of the ``disaster``'s recipe drawn
    from ``polygons``) over a base image, or over one generated from ``polygons`` on ``grid``.

    The recipe is the preset's ``disaster`` (a user preset extending ``earthquake`` draws
    earthquakes whatever ``disaster`` says); ``flood``: a
    :class:`~rs_seg2any.scenarios.flood.DemFlood` for the flood recipe;
    ``origin``: the earthquake's epicentre (x, y in the grid's CRS; else drawn by seed).
    Everything is checked before anything is written.
    """
    opts = opts or GenOptions()
    cfg = load_damage_preset(preset or disaster)
    grid = scenario_grid(base_image, grid)
    if damage_layer is not None:
        if recipe_params:
            raise ScenarioError("--param sets a recipe; a --damage-layer needs none")
        frame = read_damage_layer(damage_layer, layer)
        items = damage_items(frame, cfg, grid, level_field=level_field, type_field=type_field,
                             description_field=description_field)  # fmt: skip
    else:
        inputs = recipe_inputs(polygons, grid, cfg, opts.seed, origin, flood)
        recipe = cfg.disaster if cfg.disaster in RECIPES else disaster  # a preset's own
        drawn = apply_recipe(recipe, inputs, dict(recipe_params or {}))
        items = damage_items(drawn, cfg, grid, strict=False)
    damaged = items[items["level_code"] != cfg.no_damage]
    if damaged.empty:
        raise ScenarioError("no building or area is damaged: nothing of the image would change "
                            "(all no-damage, or a recipe that spared everything)")  # fmt: skip
    rendered = rendered_parts(damaged, cfg, opts.seed, abs(grid.resolution.x))
    after = _after_layer(polygons, grid, rendered, cfg)
    after.layout(grid)  # validated before anything is written
    out = ensure_writable_dir(out)
    base = scenario_base(base_image, polygons, grid, out, generator, opts, progress)
    before_label = _before_label(out, base_image, polygons, grid, progress)
    mask = as_bool(PolygonMask(rendered, grid))
    job = edit_job(after, grid, base, mask, out / "after", generator, opts, progress)
    level_path, style_path = write_damage_level(out, items, cfg, grid)
    gpkg, geojson = write_damage_polygons(out, items)
    return DamageResult(base, before_label, job, level_path, style_path, gpkg, geojson)


def rendered_parts(
    damaged: gpd.GeoDataFrame, cfg: DamagePreset, seed: int, pixel: float
) -> gpd.GeoDataFrame:
    """What is re-rendered of each damaged polygon: a building's roof in patches covering
    its level's ``rendered_share`` (drawn by seed and damage id), an area whole."""
    parts = damaged.copy()
    geoms = []
    for geom, kind, code, ident in zip(parts.geometry, parts["kind"], parts["level_code"],
                                       parts["damage_id"], strict=True):  # fmt: skip
        share = cfg.rendered_share.get(int(code), 1.0)
        if kind != "building" or share >= 1.0:
            geoms.append(geom)
            continue
        rng = np.random.default_rng([seed, 18, int(ident)])
        geoms.append(_patches(geom, share, rng, pixel))
    parts["geometry"] = geoms
    return parts


def _patches(geom: Any, share: float, rng: np.random.Generator, pixel: float) -> Any:
    """Round patches inside ``geom`` until they cover ``share`` of it (the whole building
    when it is too small to hold a patch of a few pixels)."""
    target = share * geom.area
    radius = max(0.5 * math.sqrt(target / math.pi), 1.5 * pixel)
    if target < 4 * math.pi * radius**2 / 4 or geom.area < 16 * pixel**2:
        return geom
    x0, y0, x1, y1 = geom.bounds
    patch = shapely.Polygon()
    for _ in range(200):
        centre = shapely.Point(rng.uniform(x0, x1), rng.uniform(y0, y1))
        if not geom.contains(centre):
            continue
        patch = patch.union(centre.buffer(radius).intersection(geom))
        if patch.area >= target:
            break
    return patch if not patch.is_empty else geom


def _after_layer(
    polygons: Polygons | None, grid: GeoBox, damaged: gpd.GeoDataFrame, cfg: DamagePreset
) -> Polygons:
    """The base layout plus the damaged polygons on top (areas, then buildings by level)."""
    base = polygons or Polygons.empty(grid.crs)
    taxonomy = base.taxonomy
    name = cfg.building_classes.get(taxonomy.name)
    if name and taxonomy.resolve(name) is not None:
        building = taxonomy.by_id(int(taxonomy.resolve(name) or 0)).name
    else:
        taxonomy, cls = extend_taxonomy(taxonomy, FALLBACK_BUILDING)
        building = cls.name
    classes = []
    for kind, type_name in zip(damaged["kind"], damaged["type"], strict=True):
        found = cfg.damage_type(type_name)
        if kind == "area" and found is not None and found.area_class is not None:
            taxonomy, cls = extend_taxonomy(taxonomy, found.area_class)
            classes.append(cls.name)
        else:
            classes.append(building)
    ordered = drawing_order(damaged.assign(_class=classes))
    desc_field = base.description_field or "description"
    new = gpd.GeoDataFrame(
        {base.class_field: ordered["_class"].to_numpy(), desc_field: ordered["description"]},
        geometry=ordered.geometry.values,
        crs=ordered.crs,
    )
    frame = base.frame
    if frame.crs is not None and new.crs is not None and frame.crs != new.crs:
        new = new.to_crs(frame.crs)
    merged = gpd.GeoDataFrame(pd.concat([frame, new], ignore_index=True), crs=new.crs)
    after = replace(base, frame=merged, description_field=desc_field, taxonomy=taxonomy)
    after = _zones_on_top(after, len(frame))
    stacked = after.frame
    first = len(frame)
    stacked.loc[stacked.index >= first, "_rs_priority"] = 1_000_000 + np.arange(len(new))
    return replace(after, frame=stacked)


def _before_label(
    out: Path,
    base_image: str | Path | None,
    polygons: Polygons | None,
    grid: GeoBox,
    progress: Progress | None,
) -> Path | None:
    """The pre-event label mask: the rendered base's, or the layout's under a given image."""
    if polygons is None:
        return None
    if base_image is None:
        return out / "before" / "label.tif"
    res = run_layout_job(polygons.layout(grid), out / "before", progress=progress)
    return Path(res.outputs["label"])


def level_taxonomy(cfg: DamagePreset) -> Taxonomy:
    """The damage levels as the damage raster's classes (codes, colours, names)."""
    return cfg.levels


def write_damage_level(
    out: Path, items: gpd.GeoDataFrame, cfg: DamagePreset, grid: GeoBox
) -> tuple[Path, Path]:
    """damage_level.tif (uint8 codes, colour table, class names) and its QGIS style."""
    ordered = drawing_order(items)
    codes = ValueRaster(ordered.geometry, ordered["level_code"].to_numpy(), grid, LABEL_DTYPE)
    style = label_mask_style(level_taxonomy(cfg))
    style["band_descriptions"] = ["damage level"]
    path = out / "damage_level.tif"
    tags = {"RS_SEG2ANY_SCENARIO": "damage", "RS_SEG2ANY_DISASTER": cfg.disaster}
    with GridRasterWriter(path, grid, dtype=LABEL_DTYPE, nodata=LABEL_NODATA) as writer:
        write_windows(writer, codes, grid)
        writer.finalize(**style, tags=tags)
    return path, write_qml(out / "damage_level.qml", level_taxonomy(cfg))


def write_damage_polygons(out: Path, items: gpd.GeoDataFrame) -> tuple[Path, Path]:
    """damage.gpkg (grid CRS) and damage.geojson (WGS 84): one feature per damage polygon."""
    frame = gpd.GeoDataFrame(items[list(ITEM_COLUMNS)], geometry=items.geometry, crs=items.crs)
    frame["level_code"] = frame["level_code"].astype(int)
    gpkg, geojson = out / "damage.gpkg", out / "damage.geojson"
    with atomic_output(gpkg) as tmp:
        frame.to_file(tmp, driver="GPKG", layer="damage")
    with atomic_output(geojson) as tmp:
        frame.to_crs("EPSG:4326").to_file(tmp, driver="GeoJSON")
    return gpkg, geojson
