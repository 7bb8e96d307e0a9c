"""Layers in degrees that cross the antimeridian.

A lon/lat layer whose parts straddle +-180 (pieces on both sides, or coordinates past 180) is
unwrapped into one continuous longitude range (east may exceed 180): the UTM zone is that of
its centre, the grid covers exactly the data, and window reads query both sides. A projected
grid CRS cut inside that range (Web Mercator) is refused.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from odc.geo import CRS, BoundingBox
from odc.geo.geobox import GeoBox

from ..errors import GridError
from .sources import _Batch
from .target import _crs_of, _crs_text


class _LonSpan:
    """Which longitudes a lon/lat layer covers, gathered batch by batch in 1-degree bins.

    A layer that crosses +-180 (parts on both sides, or coordinates past 180) has one
    continuous longitude range only once its western parts are shifted by 360 degrees. The
    range is the circle minus its largest empty gap, so it is found in O(360) memory.
    """

    def __init__(self) -> None:
        self._diff = np.zeros(721, dtype=np.int64)  # bins 0..719: a range may run past 360
        self._min_start = np.full(360, np.inf)
        self._max_end = np.full(360, -np.inf)
        self.raw = (np.inf, -np.inf)

    def add(self, bounds: np.ndarray) -> None:
        """Record the parts' (n, 4) bounds."""
        if not len(bounds):
            return
        minx, maxx = bounds[:, 0], bounds[:, 2]
        self.raw = (min(self.raw[0], float(minx.min())), max(self.raw[1], float(maxx.max())))
        start = np.mod(minx + 180.0, 360.0) - 180.0
        end = start + np.minimum(maxx - minx, 360.0)
        b0 = np.clip(np.floor(start + 180.0).astype(np.int64), 0, 359)
        b1 = np.clip(np.floor(end + 180.0).astype(np.int64), b0, b0 + 359)
        np.add.at(self._diff, b0, 1)
        np.add.at(self._diff, b1 + 1, -1)
        np.minimum.at(self._min_start, b0, start)
        np.maximum.at(self._max_end, b0, end)

    def span(self) -> tuple[float, float]:
        """(west, east) of the continuous range holding all parts; east may exceed 180."""
        counts = np.cumsum(self._diff)[:720]
        occupied = (counts[:360] + counts[360:]) > 0
        cut = 0
        if not occupied.all():
            cut = _after_largest_gap(occupied)
        shift = np.where(np.arange(360) < cut, 360.0, 0.0)
        used = np.isfinite(self._min_start)
        west = float((self._min_start + shift)[used].min())
        east = float((self._max_end + shift)[used].max())
        return west, east

    def needs_unwrap(self, west: float, east: float) -> bool:
        """True when the raw longitudes are not already one range inside [-180, 180]."""
        return east > 180.0 or self.raw[0] < -180.0 or self.raw[1] > 180.0


def _after_largest_gap(occupied: np.ndarray) -> int:
    """Index of the first occupied bin after the longest circular run of empty bins."""
    n = len(occupied)
    best_len, best_end = -1, 0
    run = 0
    for i in range(2 * n):  # twice round the circle: runs that wrap are measured whole
        if occupied[i % n]:
            run = 0
            continue
        run += 1
        if run > best_len and run <= n:
            best_len, best_end = run, i
    return (best_end + 1) % n


LON_EPS = 1e-9


def _unwrap_parts(geoms: np.ndarray, west: float) -> np.ndarray:
    """Parts shifted by whole turns so each starts in [west, west + 360): one continuous
    longitude range (x beyond 180 where needed), which any projection then maps correctly."""
    if not len(geoms):
        return geoms
    minx = shapely.bounds(geoms)[:, 0]
    turns = np.floor((minx - (west - LON_EPS)) / 360.0)
    out = geoms.copy()
    for turn in np.unique(turns[turns != 0]):  # one vectorised call per distinct shift
        pick = turns == turn
        offset = np.array([-360.0 * float(turn), 0.0])
        out[pick] = shapely.transform(geoms[pick], lambda xy, d=offset: xy + d)
    return out


def _lon_window(bbox: tuple[float, float, float, float], crs: CRS) -> list[BoundingBox]:
    """A lon/lat window and its copies up to two turns east and west: a layer file holds each
    part at its own longitudes (-179.9, 180.1, even 540.1 for a part written one turn past
    180.1), so every copy must be queried."""
    left, bottom, right, top = bbox
    turns = (-720.0, -360.0, 0.0, 360.0, 720.0)
    return [BoundingBox(left + dx, bottom, right + dx, top, crs=crs) for dx in turns]


def _concat_batches(batches: list[_Batch]) -> _Batch:
    """One batch from several window reads, each feature once, in feature-id order."""
    fids = np.concatenate([b[0] for b in batches])
    _, first = np.unique(fids, return_index=True)
    keep = np.sort(first)
    keep = keep[np.argsort(fids[keep], kind="stable")]

    def pick(values: list[list[Any] | None]) -> list[Any] | None:
        if values[0] is None:
            return None
        flat = [v for vs in values for v in (vs or [])]
        return [flat[i] for i in keep]

    classes = pick([b[1] for b in batches])
    geoms = np.concatenate([b[4] for b in batches])[keep]
    descriptions = pick([b[2] for b in batches])
    priorities = pick([b[3] for b in batches])
    return fids[keep], classes or [], descriptions, priorities, geoms


def _unwrapped_layer_bbox(
    bounds: BoundingBox, grid_crs: CRS, layer_crs: CRS
) -> tuple[float, float, float, float]:
    """A grid window as lon/lat bounds of ONE piece (east may exceed 180), padded.

    ``BoundingBox.to_crs`` would wrap a window on the antimeridian into a box round the world
    (or its complement); here the window's outline is transformed and its longitudes are
    unwrapped around its centre.
    """
    left, bottom, right, top = bounds.bbox
    pad = 0.01 * max(right - left, top - bottom) + 1e-9
    left, bottom, right, top = left - pad, bottom - pad, right + pad, top + pad
    t = np.linspace(0.0, 1.0, 33)
    w, h = right - left, top - bottom
    xs = np.concatenate(
        [left + w * t, np.full(33, right), right - w * t, np.full(33, left), [left + w / 2]]
    )
    ys = np.concatenate(
        [np.full(33, bottom), bottom + h * t, np.full(33, top), top - h * t, [bottom + h / 2]]
    )
    if grid_crs != layer_crs:
        xs, ys = _transformer(grid_crs.to_wkt(), layer_crs.to_wkt()).transform(xs, ys)
        xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        centre = xs[-1]
        xs = centre + np.mod(xs - centre + 180.0, 360.0) - 180.0
    ok = np.isfinite(xs) & np.isfinite(ys)
    if not ok.any():
        raise GridError("the grid window cannot be expressed in the layer's CRS")
    return (float(xs[ok].min()), float(ys[ok].min()), float(xs[ok].max()), float(ys[ok].max()))


@lru_cache(maxsize=8)
def _transformer(src_wkt: str, dst_wkt: str) -> Any:
    """A cached lon/lat-order transformer: building one costs more than using it per tile."""
    from pyproj import Transformer

    return Transformer.from_crs(src_wkt, dst_wkt, always_xy=True)


def _to_layer_bounds(bounds: BoundingBox, grid_crs: CRS, layer_crs: CRS) -> BoundingBox:
    """Window bounds in the layer CRS, generously padded so no touching polygon is missed."""
    left, bottom, right, top = bounds.bbox
    pad = 0.01 * max(right - left, top - bottom) + 1e-9
    padded = BoundingBox(left - pad, bottom - pad, right + pad, top + pad, crs=grid_crs)
    if layer_crs == grid_crs:
        return padded
    return padded.to_crs(layer_crs)


def _check_continuous(layer_bounds: BoundingBox, grid: GeoBox) -> None:
    """Refuse a projected grid CRS that is cut inside the layer's (unwrapped) longitudes,
    e.g. Web Mercator for a layer across the antimeridian: its two halves would land at
    opposite ends of the world, and the grid would cover neither."""
    crs = _crs_of(grid)
    if crs.geographic:
        return
    west, south, east, north = layer_bounds.bbox
    tr = _transformer(_crs_of_bounds(layer_bounds).to_wkt(), crs.to_wkt())
    lons = np.linspace(west, east, 65)
    for lat in (south, (south + north) / 2, north):
        xs, _ = tr.transform(lons, np.full(65, lat))
        steps = np.diff(np.asarray(xs, dtype=float))
        if not (np.all(steps > 0) or np.all(steps < 0)):
            raise GridError(
                f"the layer crosses the antimeridian (longitudes {west:.4f} to {east:.4f}) "
                f"where {_crs_text(crs)} is cut in two; use a CRS centred near it: leave out "
                "--crs for the local UTM zone, or e.g. --crs EPSG:3832"
            )


def _crs_of_bounds(bounds: BoundingBox) -> CRS:
    if bounds.crs is None:
        raise GridError("the layer's extent has no CRS")
    return bounds.crs


def _past_180(grid: GeoBox) -> bool:
    """A grid in degrees whose longitudes run past +-180 (a raster across the antimeridian)."""
    if grid.crs is None or not grid.crs.geographic:
        return False
    left, _, right, _ = grid.boundingbox.bbox
    return left < -180.0 or right > 180.0
