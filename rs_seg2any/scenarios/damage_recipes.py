"""Damage recipes: draw a damage layer from a layout's buildings, reproducibly by seed.

- ``fire``: a fire front that has swept across the scene toward a compass direction; the
  front line wavers (drawn by seed); buildings behind it burn, those near it partly, and the
  ground classes behind it become burned ground.
- ``earthquake``: shaking falls off exponentially with distance from an epicentre (given, or
  drawn by seed); destroyed and badly damaged buildings shed a ring of debris.
- ``flood``: a DEM flood computed exactly as the flood scenario computes it (same tiled
  connectivity, same seeds and water classes); each building is graded by the mean water
  depth over its footprint times its own vulnerability (drawn by seed); the flooded ground
  becomes flood water, graded by depth.

Each building's level comes from a score in [0, 1] plus its own noise, cut into as many equal
bins as the preset has levels. A recipe returns a layer (``level`` code, ``type``, polygons in
the grid's CRS) that :func:`~rs_seg2any.scenarios.damage_layer.damage_items` checks like a
user's.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from odc.geo.geobox import GeoBox
from shapely.geometry import Polygon

from ..errors import InputError, ScenarioError
from .common import Polygons
from .damage_layer import ValueRaster, grid_crs
from .damage_presets import DamagePreset
from .flood_extent import depth_class

RECIPES = ("fire", "earthquake", "flood")
"""One recipe per disaster; ``--disaster`` picks it when no damage layer is given."""

MIN_BUILDING_M2 = 2.0
"""Building parts smaller than this (m², e.g. slivers left by clipping) are not graded."""


@dataclass
class RecipeInputs:
    """What a recipe draws from: the layout's buildings and ground, the grid and the preset."""

    buildings: gpd.GeoDataFrame  # single polygons in the grid CRS, clipped to the grid
    ground: Any  # shapely geometry: the preset's ground classes, minus buildings
    roofs: Any  # shapely geometry: every building
    grid: GeoBox
    preset: DamagePreset
    rng: np.random.Generator
    origin: tuple[float, float] | None = None
    flood: Any = None  # rs_seg2any.scenarios.flood.DemFlood
    polygons: Polygons | None = None


def recipe_inputs(
    polys: Polygons | None,
    grid: GeoBox,
    preset: DamagePreset,
    seed: int,
    origin: tuple[float, float] | None = None,
    flood: Any = None,
) -> RecipeInputs:
    """The buildings and ground classes of the layout, as the preset names them."""
    if polys is None:
        raise InputError("a damage recipe draws from a layout's buildings: give --layout (or "
                         "a --damage-layer)")  # fmt: skip
    tax = polys.taxonomy
    name = preset.building_classes.get(tax.name)
    building_id = tax.resolve(name) if name else None
    if building_id is None:
        raise ScenarioError(
            f"{preset.where} names no building class for taxonomy '{tax.name}'; add "
            f"building_classes: {{{tax.name}: <class>}} to a preset file"
        )
    ground_ids = {tax.resolve(n) for n in preset.ground_classes.get(tax.name, [])} - {None}
    frame = polys.frame.to_crs(grid_crs(grid))
    ids = frame[polys.class_field].map(tax.resolve)
    scene = shapely.box(*grid.boundingbox.bbox)
    parts = frame[ids == building_id].geometry.intersection(scene).explode(index_parts=False)
    parts = parts[parts.geom_type == "Polygon"]
    parts = parts[parts.area >= MIN_BUILDING_M2]
    buildings = gpd.GeoDataFrame(geometry=parts.values, crs=grid_crs(grid))
    if buildings.empty:
        raise ScenarioError(f"the layout has no '{tax.by_id(building_id).name}' polygons in "
                            "the scene: nothing for a recipe to damage")  # fmt: skip
    roofs = shapely.union_all(buildings.geometry.values)
    ground_frame = frame[ids.isin(ground_ids)].geometry.intersection(scene)
    ground = shapely.union_all(ground_frame.values).difference(roofs)
    rng = np.random.default_rng([seed, 18])
    return RecipeInputs(buildings, ground, roofs, grid, preset, rng, origin, flood, polys)


def apply_recipe(name: str, inputs: RecipeInputs, params: dict[str, Any]) -> gpd.GeoDataFrame:
    """The damage layer the recipe ``name`` draws (``params`` override the preset's)."""
    if name not in _RECIPES:
        raise ScenarioError(f"unknown damage recipe '{name}'; recipes: {', '.join(RECIPES)}")
    settings = {**inputs.preset.recipe, **params}
    known = _KEYS[name]
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ScenarioError(
            f"damage recipe '{name}' has no parameters {unknown}; it takes "
            f"{', '.join(sorted(known))}"
        )
    return _RECIPES[name](inputs, settings)


def _number(settings: dict[str, Any], key: str, lo: float, hi: float) -> float:
    value = settings.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ScenarioError(f"damage recipe parameter {key}={value!r} must be a number in "
                            f"[{lo}, {hi}]")  # fmt: skip
    return float(value)


def _level_codes(preset: DamagePreset, score: np.ndarray) -> np.ndarray:
    """Scores in [0, 1] cut into equal bins, one per level (the lowest: no damage)."""
    codes = np.array([c.id for c in preset.levels.classes])
    edges = np.arange(1, len(codes)) / len(codes)
    return np.asarray(codes[np.digitize(score, edges)])


def _layer(
    inputs: RecipeInputs, codes: np.ndarray, geoms: list[Any], types: list[str]
) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"level": [int(c) for c in codes], "type": types},
        geometry=geoms,
        crs=grid_crs(inputs.grid),
    )


def _stack(areas: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Areas first, then buildings (the order the damage raster draws them in)."""
    return gpd.GeoDataFrame(pd.concat([areas, buildings], ignore_index=True), crs=buildings.crs)


def _building_types(preset: DamagePreset, codes: np.ndarray) -> list[str]:
    return [preset.default_types.get(int(c), "") for c in codes]


def _ground_type(preset: DamagePreset, settings: dict[str, Any], key: str) -> str:
    name = str(settings.get(key) or "")
    found = preset.damage_type(name)
    if found is None or found.kind != "area":
        raise ScenarioError(f"damage recipe parameter {key}={name!r} must name an area type "
                            f"of {preset.where}")  # fmt: skip
    return found.name


def _fire(inputs: RecipeInputs, settings: dict[str, Any]) -> gpd.GeoDataFrame:
    """Buildings behind a wavering fire front burn (module docstring)."""
    direction = math.radians(_number(settings, "direction_deg", -360, 360))
    front = _number(settings, "front", 0, 1)
    width = _number(settings, "width", 0.01, 1)
    noise = _number(settings, "noise", 0, 1)
    rng, preset = inputs.rng, inputs.preset
    u = np.array([math.sin(direction), math.cos(direction)])  # compass: 0 north, 90 east
    v = np.array([u[1], -u[0]])
    x0, y0, x1, y1 = inputs.grid.boundingbox.bbox
    corners = np.array([[x0, y0], [x0, y1], [x1, y0], [x1, y1]])
    t_lo, t_hi = (corners @ u).min(), (corners @ u).max()
    s_lo, s_hi = (corners @ v).min(), (corners @ v).max()
    knots = front + rng.normal(0, 0.03) + rng.normal(0, 0.05, 7)  # the front wavers

    def front_at(s: np.ndarray) -> np.ndarray:
        return np.asarray(np.interp(s, np.linspace(0, 1, len(knots)), knots))

    centres = np.array([[c.x, c.y] for c in inputs.buildings.geometry.centroid])
    t = (centres @ u - t_lo) / (t_hi - t_lo)
    s = (centres @ v - s_lo) / (s_hi - s_lo)
    heat = 1 / (1 + np.exp(-(front_at(s) - t) / (width / 4)))  # 1 behind the front
    score = np.clip(heat + rng.normal(0, noise, len(t)), 0, 1 - 1e-9)
    codes = _level_codes(preset, score)
    geoms = list(inputs.buildings.geometry)
    types = _building_types(preset, codes)
    layer = _layer(inputs, codes, geoms, types)
    if settings.get("burn_ground") and not inputs.ground.is_empty:
        ss = np.linspace(-0.05, 1.05, 67)
        edge = front_at(ss) - width / 2  # fully burnt behind the front's band
        ts = [*edge, -0.05, -0.05]
        sv = [*ss, 1.05, -0.05]
        zone = Polygon([tuple((t_lo + ti * (t_hi - t_lo)) * u + (s_lo + si * (s_hi - s_lo)) * v)
                        for ti, si in zip(ts, sv, strict=True)])  # fmt: skip
        burned = inputs.ground.intersection(zone.buffer(0))
        level = preset.level_code(settings.get("ground_level"))
        if level is None:
            raise ScenarioError(f"damage recipe parameter ground_level="
                                f"{settings.get('ground_level')!r} is not a level")  # fmt: skip
        ground_type = _ground_type(preset, settings, "ground_type")
        parts = [g for g in getattr(burned, "geoms", [burned]) if not g.is_empty]
        if parts:
            extra = _layer(inputs, np.full(len(parts), level), parts, [ground_type] * len(parts))
            layer = _stack(extra, layer)
    return layer


def _earthquake(inputs: RecipeInputs, settings: dict[str, Any]) -> gpd.GeoDataFrame:
    """Shaking falls off from the epicentre; broken buildings shed debris (module docstring)."""
    decay = _number(settings, "decay", 0.01, 10)
    noise = _number(settings, "noise", 0, 1)
    debris_m = _number(settings, "debris_m", 0, 100)
    rng, preset = inputs.rng, inputs.preset
    x0, y0, x1, y1 = inputs.grid.boundingbox.bbox
    if inputs.origin is not None:
        ex, ey = inputs.origin
    else:
        ex, ey = rng.uniform(x0, x1), rng.uniform(y0, y1)
    centres = np.array([[c.x, c.y] for c in inputs.buildings.geometry.centroid])
    distance = np.hypot(centres[:, 0] - ex, centres[:, 1] - ey)
    shaking = np.exp(-distance / (decay * math.hypot(x1 - x0, y1 - y0)))
    score = np.clip(shaking + rng.normal(0, noise, len(distance)), 0, 1 - 1e-9)
    codes = _level_codes(preset, score)
    geoms = list(inputs.buildings.geometry)
    layer = _layer(inputs, codes, geoms, _building_types(preset, codes))
    heavy = [c.id for c in preset.levels.classes[-2:]]
    if debris_m > 0 and not inputs.ground.is_empty:
        debris_type = _ground_type(preset, settings, "debris_type")
        rings, levels = [], []
        for geom, code in zip(geoms, codes, strict=True):
            if int(code) in heavy:
                ring = geom.buffer(debris_m).difference(inputs.roofs).intersection(inputs.ground)
                if not ring.is_empty:
                    rings.append(ring)
                    levels.append(int(code))
        if rings:
            extra = _layer(inputs, np.array(levels), rings, [debris_type] * len(rings))
            layer = _stack(extra, layer)
    return layer


def _flood(inputs: RecipeInputs, settings: dict[str, Any]) -> gpd.GeoDataFrame:
    """Buildings graded by the flood scenario's DEM flood (module docstring)."""
    from .flood import _dem_extent
    from .masks import polygons_from_raster, write_scratch
    from .presets import load_preset

    if inputs.flood is None:
        raise InputError("the flood damage recipe needs --dem and --level (the flood "
                         "scenario's DEM flood), or give a --damage-layer")  # fmt: skip
    thresholds = _depths(settings, len(inputs.preset.levels.classes))
    ground_edges = thresholds[1:] or [1e9]  # depth classes of the flooded ground
    spread = _number(settings, "vulnerability", 0, 3)
    preset, grid = inputs.preset, inputs.grid
    tiled = _dem_extent(inputs.flood, grid, inputs.polygons, load_preset("flood"))
    n = len(inputs.buildings)
    ids = ValueRaster(inputs.buildings.geometry, np.arange(1, n + 1), grid, "int32")
    depth_sum = np.zeros(n + 1)
    pixels = np.zeros(n + 1)
    flooded = [False]
    with tempfile.TemporaryDirectory(prefix="rs-seg2any-damage-") as scratch:
        classes_path = Path(scratch) / "flood_classes.tif"

        def classes() -> Any:
            for window in tiled.windows():
                mask, depth = tiled.window(window)
                flooded[0] = flooded[0] or bool(mask.any())
                where = ids(window)
                wet = np.where(mask, np.nan_to_num(depth), 0.0)
                depth_sum[:] += np.bincount(where.ravel(), wet.ravel(), minlength=n + 1)
                pixels[:] += np.bincount(where.ravel(), minlength=n + 1)
                yield window, depth_class(depth, mask, ground_edges)

        write_scratch(classes_path, grid, classes())
        if not flooded[0]:
            raise tiled.empty_error()
        ground_geoms: list[Any] = []
        ground_levels: list[int] = []
        if settings.get("flood_ground"):
            geoms, values = polygons_from_raster(classes_path, grid)
            damaged = [c.id for c in preset.levels.classes[1:]]
            for geom, value in zip(geoms, values, strict=True):
                part = geom.difference(inputs.roofs)
                if not part.is_empty:
                    ground_geoms.append(part)
                    ground_levels.append(damaged[min(int(value), len(damaged)) - 1])
    depth = depth_sum[1:] / np.maximum(pixels[1:], 1)
    felt = depth * np.exp(inputs.rng.normal(0, spread, n))
    codes = np.array([c.id for c in preset.levels.classes])[np.digitize(felt, thresholds)]
    layer = _layer(inputs, codes, list(inputs.buildings.geometry), _building_types(preset, codes))
    if ground_geoms:
        ground_type = _ground_type(preset, settings, "ground_type")
        extra = _layer(inputs, np.array(ground_levels), ground_geoms,
                       [ground_type] * len(ground_geoms))  # fmt: skip
        layer = _stack(extra, layer)
    return layer


def _depths(settings: dict[str, Any], n_levels: int) -> list[float]:
    """``depth_levels_m``: one increasing positive depth per level above no damage."""
    values = settings.get("depth_levels_m")
    ok = (
        isinstance(values, list)
        and len(values) == n_levels - 1
        and all(isinstance(t, int | float) and not isinstance(t, bool) and t > 0 for t in values)
        and values == sorted(set(values))
    )
    if not ok:
        raise ScenarioError(
            f"damage recipe parameter depth_levels_m must be {n_levels - 1} increasing depths "
            f"in metres (got {values!r})"
        )
    return [float(t) for t in values]  # type: ignore[union-attr]


_RECIPES: dict[str, Callable[[RecipeInputs, dict[str, Any]], gpd.GeoDataFrame]] = {
    "fire": _fire,
    "earthquake": _earthquake,
    "flood": _flood,
}
_KEYS = {
    "fire": {"direction_deg", "front", "width", "noise", "burn_ground", "ground_type",
             "ground_level"},
    "earthquake": {"decay", "noise", "debris_m", "debris_type"},
    "flood": {"depth_levels_m", "vulnerability", "flood_ground", "ground_type"},
}  # fmt: skip
