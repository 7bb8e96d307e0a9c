"""The damage layer: polygons (buildings, areas) with a damage level and type, checked.

A user's layer and a recipe's draw go through the same :func:`damage_items`, which gives the
one frame every later step reads: each polygon in the grid's CRS, clipped to the grid, with
its level (name and raster code), type, kind (building or area) and description. Areas never
cover a building of the layer (buildings are cut out of them), so a building's pixels carry
the building's own level. Everything is checked before anything is written: an unknown level
or type, a feature outside the grid, a point or line layer are typed errors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio.features
import shapely
from odc.geo.geobox import GeoBox
from rasterio.windows import Window

from ..errors import InputError, ScenarioError
from ..inputs import read_vector
from .damage_presets import DamagePreset
from .masks import windows

ITEM_COLUMNS = ("damage_id", "level", "level_code", "type", "kind", "description")
"""The fields of a damage item (plus its geometry), as the outputs carry them."""

_POLYGONAL = {"Polygon", "MultiPolygon"}
_SHOWN = 8  # at most this many feature numbers in an error message


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or not str(value)


def _listed(rows: list[int]) -> str:
    more = f" and {len(rows) - _SHOWN} more" if len(rows) > _SHOWN else ""
    return ", ".join(str(r) for r in rows[:_SHOWN]) + more


def grid_crs(grid: GeoBox) -> str:
    if grid.crs is None:
        raise InputError("the target grid has no CRS")
    return str(grid.crs.to_wkt())


def read_damage_layer(
    source: str | Path | gpd.GeoDataFrame, layer: str | None = None
) -> gpd.GeoDataFrame:
    """The damage layer as given (a file or a GeoDataFrame), polygons with a CRS."""
    if isinstance(source, gpd.GeoDataFrame):
        frame = source.copy()
        if frame.crs is None:
            raise InputError("the damage layer has no CRS")
    else:
        frame = read_vector(source, "--damage-layer", layer=layer)
    if len(frame) == 0:
        raise ScenarioError("the damage layer has no features")
    kinds = frame.geometry.geom_type
    bad = [i for i, (g, k) in enumerate(zip(frame.geometry, kinds, strict=True))
           if g is None or g.is_empty or k not in _POLYGONAL]  # fmt: skip
    if bad:
        found = sorted({str(k) for k in kinds.iloc[bad]})
        raise InputError(
            f"the damage layer must hold polygons; features {_listed(bad)} are "
            f"{', '.join(found)} (or empty): draw buildings and areas as polygons"
        )
    return frame


def damage_items(
    frame: gpd.GeoDataFrame,
    preset: DamagePreset,
    grid: GeoBox,
    *,
    level_field: str = "level",
    type_field: str | None = "type",
    description_field: str | None = None,
    strict: bool = True,
) -> gpd.GeoDataFrame:
    """The checked damage items of a layer (see the module docstring).

    ``strict``: a feature outside the grid, or one that covers no pixel centre, is an error
    (a user's layer); otherwise it is dropped (a recipe's draw near the scene's edge).
    """
    for role, name in (("level", level_field), ("type", type_field),
                       ("description", description_field)):  # fmt: skip
        if name is not None and name not in frame.columns:
            fields = ", ".join(str(c) for c in frame.columns if c != "geometry")
            raise InputError(f"damage {role} field '{name}' not found; fields are: {fields}")
    codes = [preset.level_code(v) for v in frame[level_field]]
    unknown = sorted({str(v) for v, c in zip(frame[level_field], codes, strict=True) if c is None})
    if unknown:
        raise ScenarioError(
            f"damage levels {unknown} are not levels of {preset.where}; use one of "
            f"{', '.join(preset.level_names())} (or their codes)"
        )
    types, kinds = _types(frame, preset, type_field, [int(c or 0) for c in codes])
    items = gpd.GeoDataFrame(
        {
            "damage_id": np.arange(1, len(frame) + 1),
            "level": [preset.level_name(int(c or 0)) for c in codes],
            "level_code": np.asarray(codes, dtype=np.uint8),
            "type": types,
            "kind": kinds,
        },
        geometry=frame.geometry.values,
        crs=frame.crs,
    ).to_crs(grid_crs(grid))
    items["description"] = _descriptions(frame, items, preset, description_field)
    items = _clip(items, grid, strict)
    items = _cut_buildings_out_of_areas(items)
    return _drop_pixelless(items, grid, strict)


def _types(
    frame: gpd.GeoDataFrame, preset: DamagePreset, type_field: str | None, codes: list[int]
) -> tuple[list[str], list[str]]:
    given = frame[type_field].tolist() if type_field else [None] * len(frame)
    types, kinds, unknown = [], [], set()
    for value, code in zip(given, codes, strict=True):
        if _empty(value):
            name = "" if code == preset.no_damage else preset.default_types[code]
        else:
            found = preset.damage_type(value)
            if found is None:
                unknown.add(str(value))
                name = ""
            else:
                name = found.name
        types.append(name)
        found_type = preset.damage_type(name) if name else None
        kinds.append(found_type.kind if found_type else "building")
    if unknown:
        known = ", ".join(t.name for t in preset.types.values())
        raise ScenarioError(
            f"damage types {sorted(unknown)} are not types of {preset.where}; use one of "
            f"{known} (or extend the preset)"
        )
    return types, kinds


def _descriptions(
    frame: gpd.GeoDataFrame,
    items: gpd.GeoDataFrame,
    preset: DamagePreset,
    description_field: str | None,
) -> list[str]:
    own = frame[description_field].tolist() if description_field else [None] * len(frame)
    texts = []
    for text, kind, code in zip(own, items["type"], items["level_code"], strict=True):
        if not _empty(text):
            texts.append(str(text))
        elif kind:
            texts.append(preset.describe(kind, int(code)))
        else:
            texts.append(preset.levels.by_id(int(code)).description)
    return texts


def _clip(items: gpd.GeoDataFrame, grid: GeoBox, strict: bool) -> gpd.GeoDataFrame:
    frame = shapely.box(*grid.boundingbox.bbox)
    inside = items.geometry.intersects(frame)
    if strict and not inside.all():
        rows = [int(i) for i in items.loc[~inside, "damage_id"]]
        raise ScenarioError(
            f"damage polygons {_listed(rows)} (feature numbers, from 1) lie outside the grid; "
            "remove them or use a grid that covers them"
        )
    items = items[inside].copy()
    items["geometry"] = items.geometry.intersection(frame)
    return items


def _cut_buildings_out_of_areas(items: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    buildings = items[items["kind"] == "building"].geometry
    areas = items["kind"] == "area"
    if not areas.any() or buildings.empty:
        return items
    roofs = shapely.union_all(buildings.values)
    items.loc[areas, "geometry"] = items.loc[areas].geometry.difference(roofs)
    return items


def _drop_pixelless(items: gpd.GeoDataFrame, grid: GeoBox, strict: bool) -> gpd.GeoDataFrame:
    """Features that cover no pixel centre cannot be rendered nor labelled."""
    seen: set[int] = set()
    ids = ValueRaster(items.geometry, items["damage_id"].to_numpy(), grid, "int32")
    for _, values in ids.windows():
        seen.update(np.unique(values).tolist())
    missing = [int(i) for i in items["damage_id"] if int(i) not in seen]
    if strict and missing:
        raise ScenarioError(
            f"damage polygons {_listed(missing)} cover no pixel centre of the grid (too small "
            "for its resolution, or an area wholly under buildings); remove them"
        )
    return items[items["damage_id"].isin(seen)].reset_index(drop=True)


class ValueRaster:
    """Windows of polygons burnt with one value each, later polygons on top (rasterio's
    order); only the polygons that reach a window are burnt into it."""

    def __init__(self, geoms: Any, values: np.ndarray, grid: GeoBox, dtype: str) -> None:
        keep = [i for i, g in enumerate(geoms) if g is not None and not g.is_empty]
        self._geoms = np.asarray([geoms.iloc[i] if hasattr(geoms, "iloc") else geoms[i]
                                  for i in keep], dtype=object)  # fmt: skip
        self._values = np.asarray(values)[keep]
        self._tree = shapely.STRtree(self._geoms)
        self.grid = grid
        self.dtype = dtype

    def __call__(self, window: Window) -> np.ndarray:
        rows, cols = window.toslices()
        sub = self.grid[rows, cols]
        shape = tuple(sub.shape)
        picked = np.sort(self._tree.query(shapely.box(*sub.boundingbox.bbox)))
        if picked.size == 0:
            return np.zeros(shape, dtype=self.dtype)
        shapes = [(self._geoms[i], int(self._values[i])) for i in picked]
        out: np.ndarray = rasterio.features.rasterize(
            shapes, out_shape=shape, transform=sub.affine, fill=0, dtype=self.dtype
        )
        return out

    def windows(self) -> Iterator[tuple[Window, np.ndarray]]:
        for window in windows(self.grid):
            yield window, self(window)


def drawing_order(items: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Areas under buildings, lower levels under higher ones: the damage raster's order."""
    rank = pd.Series(np.where(items["kind"] == "building", 1, 0), index=items.index)
    order = np.lexsort((items["damage_id"].to_numpy(), items["level_code"].to_numpy(),
                        rank.to_numpy()))  # fmt: skip
    return items.iloc[order]
