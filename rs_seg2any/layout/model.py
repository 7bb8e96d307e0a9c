"""The Layout value: a validated layer on a target grid.

It keeps ids and counts, not geometries: :meth:`Layout.features` re-reads only the polygons of
one window, in the grid CRS and in drawing order, so the memory of a tiled job does not grow
with the area. Entities that cannot have a pixel on the grid are counted (the pixel census).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from odc.geo import CRS, BoundingBox
from odc.geo.geobox import GeoBox

from ..errors import LayoutError
from ..taxonomy import Taxonomy
from .antimeridian import (
    _concat_batches,
    _lon_window,
    _to_layer_bounds,
    _unwrap_parts,
    _unwrapped_layer_bbox,
)
from .prepare import _Classifier, _prepare, _Prepared
from .report import LayoutReport
from .sources import LayerSpec, _Batch, _Source
from .target import _crs_of


class Layout:
    """A validated layer on a target grid. Cheap to keep: holds ids and counts, not geometries."""

    def __init__(
        self,
        source: _Source,
        taxonomy: Taxonomy,
        grid: GeoBox,
        report: LayoutReport,
        classifier: _Classifier,
        fid_order: np.ndarray,
        first_ids: np.ndarray,
        layer_bounds: BoundingBox,
        lon_west: float | None = None,
    ) -> None:
        self._source = source
        self.taxonomy = taxonomy
        self.grid = grid
        self.report = report
        self._classifier = classifier
        self._fid_order = fid_order  # sorted fids
        self._first_ids = first_ids  # first instance id of each fid (same order)
        self.layer_bounds = layer_bounds
        # West edge of the unwrapped longitude range of a layer crossing +-180, else None
        self.lon_west = lon_west

    @property
    def spec(self) -> LayerSpec:
        return self._source.spec

    @property
    def layer_crs(self) -> CRS:
        return self._source.crs

    @property
    def entity_count(self) -> int:
        return self.report.entities

    def with_grid(self, grid: GeoBox) -> Layout:
        """The same layout on another grid (e.g. a sub-window or a scenario's base image).

        Entities without pixels are counted again: they depend on the grid.
        """
        out = Layout(
            self._source,
            self.taxonomy,
            grid,
            self.report,
            self._classifier,
            self._fid_order,
            self._first_ids,
            self.layer_bounds,
            self.lon_west,
        )
        outside, below = out.pixel_census()
        out.report = replace(self.report, outside_grid=outside, below_pixel=below)
        return out

    def describe(self) -> dict[str, Any]:
        """Plain description for provenance tags and job parameters."""
        return {
            "layer": self.spec.to_dict(),
            "taxonomy": self.taxonomy.name,
            "unknown_class": self._classifier.policy,
            "layer_crs": str(self.layer_crs),
            "entities": self.report.entities,
        }

    def features(self, bounds: BoundingBox | None = None) -> gpd.GeoDataFrame:
        """Prepared polygon parts in the grid CRS, in drawing order, for a window (or all).

        Columns: instance_id (uint32), class_id (uint8), priority, area, description,
        source_fid, part, geometry. ``bounds`` are in the grid CRS.
        """
        grid_crs = _crs_of(self.grid)
        if bounds is None:
            frames = list(self.iter_batches())
        else:
            prepared = _prepare(*self._read_window(bounds), self._classifier)
            frames = [self._frame_of(prepared)] if len(prepared.fid) else []
        if not frames:
            return _empty_features(grid_crs)
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        out = self._to_grid(frame)
        out["area"] = shapely.area(out.geometry.values)
        out = out.sort_values(["priority", "area", "instance_id"], ascending=[True, False, True])
        return out.reset_index(drop=True)

    def iter_batches(self) -> Iterator[pd.DataFrame]:
        """All prepared parts in instance-id order, batch by batch, in the LAYER's CRS.

        For streaming consumers (entity tables, exports) whose memory must not grow with the
        layer.
        """
        for batch in self._source.batches():
            prepared = _prepare(*batch, self._classifier)
            if len(prepared.fid):
                yield self._frame_of(prepared)

    def _read_window(self, bounds: BoundingBox) -> _Batch:
        """The source's features near ``bounds`` (grid CRS), whatever side of +-180 they are
        stored on."""
        grid_crs = _crs_of(self.grid)
        if not self.layer_crs.geographic or (self.lon_west is None and grid_crs == self.layer_crs):
            return self._source.window(_to_layer_bounds(bounds, grid_crs, self.layer_crs))
        bbox = _unwrapped_layer_bbox(bounds, grid_crs, self.layer_crs)
        if self.lon_west is None and bbox[0] >= -180.0 and bbox[2] <= 180.0:
            # a window that does not reach +-180: one plain read, as for any layer
            return self._source.window(_to_layer_bounds(bounds, grid_crs, self.layer_crs))
        # a window across +-180 (even over a layer that stays on one side of it): to_crs
        # would wrap it into a box round the world that misses the parts near 180
        windows = _lon_window(bbox, self.layer_crs)
        return _concat_batches([self._source.window(w) for w in windows])

    def _to_grid(self, frame: pd.DataFrame) -> gpd.GeoDataFrame:
        """Prepared parts (layer CRS) in the grid CRS; on a grid in degrees, parts are put on
        the grid's side of +-180."""
        grid_crs = _crs_of(self.grid)
        out = gpd.GeoDataFrame(frame, geometry="geometry", crs=self.layer_crs.to_wkt())
        if self.layer_crs != grid_crs:
            out = out.to_crs(grid_crs.to_wkt())
        if self.lon_west is not None and grid_crs.geographic:
            left, _, right, _ = self.grid.boundingbox.bbox
            geoms = np.asarray(out.geometry.values, dtype=object)
            out["geometry"] = _unwrap_parts(geoms, (left + right) / 2 - 180.0)
            out = out.set_geometry("geometry", crs=grid_crs.to_wkt())
        return out

    def pixel_census(self) -> tuple[int, int]:
        """(entities outside the grid, entities with no pixel centre inside) for this grid.

        One streaming pass over the layer. Entities hidden under others drawn above them are
        not counted: that is the documented overlap rule, not a loss.
        """
        outside = below = 0
        for frame in self.iter_batches():
            geoms = np.asarray(self._to_grid(frame).geometry.values, dtype=object)
            out_mask, below_mask = _pixel_misses(geoms, self.grid)
            outside += int(out_mask.sum())
            below += int(below_mask.sum())
        return outside, below

    def _frame_of(self, prepared: _Prepared) -> pd.DataFrame:
        pos = np.searchsorted(self._fid_order, prepared.fid)
        pos = np.clip(pos, 0, len(self._fid_order) - 1)
        if not np.array_equal(self._fid_order[pos], prepared.fid):
            raise LayoutError(
                "the layer changed since it was validated (unknown feature ids); run the job again"
            )
        ids = self._first_ids[pos] + prepared.part
        return pd.DataFrame(
            {
                "instance_id": ids.astype(np.uint32),
                "class_id": prepared.class_id,
                "priority": prepared.priority,
                "description": prepared.description,
                "source_fid": prepared.fid,
                "part": prepared.part,
                "geometry": (
                    prepared.geometry
                    if self.lon_west is None
                    else _unwrap_parts(prepared.geometry, self.lon_west)
                ),
            }
        )


def _empty_features(crs: CRS) -> gpd.GeoDataFrame:
    frame = pd.DataFrame(
        {
            "instance_id": np.zeros(0, np.uint32),
            "class_id": np.zeros(0, np.uint8),
            "priority": np.zeros(0),
            "description": np.zeros(0, dtype=object),
            "source_fid": np.zeros(0, np.int64),
            "part": np.zeros(0, np.int32),
            "geometry": np.zeros(0, dtype=object),
            "area": np.zeros(0),
        }
    )
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=crs.to_wkt())


CENSUS_POINTS = 4096
"""Parts whose bounding box holds more pixel centres than this are taken to have pixels:
testing every centre of large parts would cost a second rasterisation."""


def _pixel_misses(geoms: np.ndarray, grid: GeoBox) -> tuple[np.ndarray, np.ndarray]:
    """Per part: (lies outside the grid, covers no pixel centre of it), by the GDAL centre
    rule the rasteriser uses."""
    n = len(geoms)
    if n == 0:
        return np.zeros(0, bool), np.zeros(0, bool)
    b = shapely.bounds(geoms)
    gl, gb, gr, gt = grid.boundingbox.bbox
    outside = (b[:, 2] <= gl) | (b[:, 0] >= gr) | (b[:, 3] <= gb) | (b[:, 1] >= gt)
    below = np.zeros(n, dtype=bool)
    a = grid.affine
    if a.b != 0 or a.d != 0:  # a rotated grid: only the outside test applies
        return outside, below
    height, width = grid.shape
    c0 = np.clip(np.ceil((b[:, 0] - a.c) / a.a - 0.5), 0, width)
    c1 = np.clip(np.floor((b[:, 2] - a.c) / a.a - 0.5), -1, width - 1)
    r0 = np.clip(np.ceil((b[:, 3] - a.f) / a.e - 0.5), 0, height)
    r1 = np.clip(np.floor((b[:, 1] - a.f) / a.e - 0.5), -1, height - 1)
    ncol = np.maximum(c1 - c0 + 1, 0).astype(np.int64)
    nrow = np.maximum(r1 - r0 + 1, 0).astype(np.int64)
    count = ncol * nrow
    below = ~outside & (count == 0)
    maybe = np.flatnonzero(~outside & (count > 0) & (count <= CENSUS_POINTS))
    if len(maybe):  # most parts hold the pixel centre nearest a point on their surface
        surface = shapely.get_coordinates(shapely.point_on_surface(geoms[maybe]))
        col = np.clip(np.floor((surface[:, 0] - a.c) / a.a), c0[maybe], c1[maybe])
        row = np.clip(np.floor((surface[:, 1] - a.f) / a.e), r0[maybe], r1[maybe])
        hit = shapely.intersects_xy(geoms[maybe], a.c + (col + 0.5) * a.a, a.f + (row + 0.5) * a.e)
        maybe = maybe[~hit]
    for i in maybe:
        cols = c0[i] + np.arange(ncol[i])
        rows = r0[i] + np.arange(nrow[i])
        xs = a.c + (cols + 0.5) * a.a
        ys = a.f + (rows + 0.5) * a.e
        gx, gy = np.meshgrid(xs, ys)
        if not shapely.intersects_xy(geoms[i], gx.ravel(), gy.ravel()).any():
            below[i] = True
    return outside, below
