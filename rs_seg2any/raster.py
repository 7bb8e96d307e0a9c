"""Rasterisation of a layout onto its grid: label mask, instance ids and entity contour map.

All three maps come from ONE rasterisation pass that burns entity ids (in drawing order);
labels are then a table look-up and contours a neighbour comparison, done strip by strip in
a helper thread while GDAL burns the next strip. This keeps the cost close to a bare label
rasterisation while guaranteeing that the three maps agree pixel for pixel.

Pixels are assigned by the GDAL centre rule (``all_touched=False``): a pixel belongs to a
polygon when its centre does.

Contour map (Seg2Any's sparse shape condition): a pixel is 1 when it belongs to an entity and
one of its 4-neighbours inside the grid belongs to another entity or to no entity — the
1-pixel inner outline of every visible entity, all entities in one map. The grid border itself
is not an outline. Windows are rasterised with a 1-pixel halo so that a tiled job gives exactly
the maps of the whole grid.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio.features
import shapely
from odc.geo.geobox import GeoBox

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

    from .layout import Layout


@dataclass(frozen=True)
class LayoutMaps:
    """The three maps of one window, aligned pixel for pixel."""

    label: np.ndarray  # uint8, class ids, 0 = no polygon
    instance: np.ndarray  # uint16 or uint32, entity ids, 0 = no entity
    contour: np.ndarray  # uint8, 1 on entity outlines


def instance_dtype(entity_count: int) -> np.dtype[np.unsignedinteger]:
    """uint16 while ids fit (smaller files, faster), else uint32."""
    return np.dtype(np.uint16) if entity_count <= np.iinfo(np.uint16).max else np.dtype(np.uint32)


def _index_dtype(count: int) -> np.dtype[np.unsignedinteger]:
    for dt in (np.uint8, np.uint16, np.uint32):
        if count <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise ValueError(f"{count} entities in one window do not fit in uint32")


def contours_from_instances(instance: np.ndarray, *, border: bool = False) -> np.ndarray:
    """1-pixel inner outline of every entity; uint8 0/1. The one contour definition.

    A pixel is on the outline when it belongs to an entity (id != 0) and a 4-neighbour holds
    another id (another entity or none). Touching entities are both outlined (one line on each
    side of their boundary); holes get the outline of the surrounding entity.

    ``border=False`` (the rasteriser and the embedded model, which was trained so): the array
    edge is no outline — the array is a window of a larger grid, and windows are rasterised
    with a 1-px halo, so interior tile edges never show up as outlines. ``border=True``
    (Seg2Any's published convention, OpenCV contours of each entity): entity pixels on the
    array edge are outlined too, because the array is the model's whole image. The FLUX
    backend passes each tile to the model as a whole image, so its tile edges are image
    borders for the model, interior or not.
    """
    a = np.asarray(instance)
    edge = np.zeros(a.shape, dtype=bool)
    _mark_edges(a, edge)
    if border and a.size:
        rim = np.zeros(a.shape, dtype=bool)
        rim[[0, -1], :] = True
        rim[:, [0, -1]] = True
        edge |= rim & (a != 0)
    return edge.view(np.uint8)


def _mark_edges(a: np.ndarray, edge: np.ndarray) -> None:
    """Set ``edge`` (bool, same shape) to the outline pixels of ``a``; see the module docstring.

    Written with explicit output buffers: this runs on every pixel of every job.
    """
    edge[...] = False
    if a.shape[0] > 1:
        vertical = np.not_equal(a[1:], a[:-1])
        edge[1:] = vertical
        edge[:-1] |= vertical
        del vertical
    if a.shape[1] > 1:
        horizontal = np.not_equal(a[:, 1:], a[:, :-1])
        edge[:, 1:] |= horizontal
        edge[:, :-1] |= horizontal
        del horizontal
    np.logical_and(edge, a != 0, out=edge)


def _burn(
    geoms: np.ndarray, values: np.ndarray, geobox: GeoBox, dtype: np.dtype[Any]
) -> np.ndarray:
    """Burn ``values`` (drawing order: later wins) with the GDAL centre rule."""
    height, width = geobox.shape
    if len(geoms) == 0:
        return np.zeros((height, width), dtype=dtype)
    burnt: np.ndarray = rasterio.features.rasterize(
        zip(geoms, values.tolist(), strict=True),
        out_shape=(height, width),
        transform=geobox.affine,
        fill=0,
        dtype=dtype,
        all_touched=False,
    )
    return burnt


class _Tables:
    """What to burn and how to turn burnt values into labels and instance ids.

    While global instance ids fit the instance dtype (uint16: <= 65,535 entities) they are
    burnt directly: the instance map is the burnt raster and labels are one table look-up.
    Beyond that a per-window index (1..n) is burnt and both maps are look-ups.
    """

    def __init__(self, features: gpd.GeoDataFrame, inst_dtype: np.dtype[np.unsignedinteger]):
        ids = features["instance_id"].to_numpy().astype(np.int64)
        classes = features["class_id"].to_numpy(dtype=np.uint8)
        self.inst_dtype = inst_dtype
        self.direct = inst_dtype == np.uint16
        self.instances: np.ndarray | None
        if self.direct:
            self.burn_values = ids.astype(np.uint16)
            self.burn_dtype: np.dtype[Any] = np.dtype(np.uint16)
            self.labels = np.zeros(int(ids.max(initial=0)) + 1, dtype=np.uint8)
            self.labels[ids] = classes
            self.instances = None
        else:
            n = len(ids)
            self.burn_values = np.arange(1, n + 1, dtype=np.int64)
            self.burn_dtype = _index_dtype(n)
            self.labels = np.concatenate([[0], classes]).astype(np.uint8)
            self.instances = np.concatenate([[0], ids]).astype(inst_dtype)

    def maps(self, burnt: np.ndarray, inner: slice) -> LayoutMaps:
        """Maps of rows ``inner`` of a burnt strip (the strip may carry 1 halo row each side)."""
        height, width = inner.stop - inner.start, burnt.shape[1]
        out = LayoutMaps(
            label=np.empty((height, width), dtype=np.uint8),
            instance=np.empty((height, width), dtype=self.inst_dtype),
            contour=np.empty((height, width), dtype=np.uint8),
        )
        self.fill(burnt, inner, out, slice(0, height))
        return out

    def fill(self, burnt: np.ndarray, inner: slice, out: LayoutMaps, rows: slice) -> None:
        """Write the maps of rows ``inner`` of ``burnt`` into rows ``rows`` of ``out``."""
        core = burnt[inner]
        np.take(self.labels, core, out=out.label[rows], mode="clip")
        if self.instances is None:
            out.instance[rows] = core
        else:
            np.take(self.instances, core, out=out.instance[rows], mode="clip")
        edge = np.empty(burnt.shape, dtype=bool)
        _mark_edges(burnt, edge)
        out.contour[rows] = edge[inner]


STRIP_ROWS = 1024
"""Rows burnt at once: strips keep look-ups cache-friendly and let one strip's look-ups run
in a helper thread (NumPy releases the GIL) while GDAL burns the next."""


def rasterize_features(
    features: gpd.GeoDataFrame, geobox: GeoBox, inst_dtype: np.dtype[np.unsignedinteger]
) -> LayoutMaps:
    """The three maps of ``geobox`` from prepared features (in drawing order)."""
    height, width = geobox.shape
    tables = _Tables(features, inst_dtype)
    geoms = np.asarray(features.geometry.values, dtype=object)
    if height <= STRIP_ROWS + STRIP_ROWS // 2 or len(geoms) == 0:
        burnt = _burn(geoms, tables.burn_values, geobox, tables.burn_dtype)
        return tables.maps(burnt, slice(0, height))

    out = LayoutMaps(
        label=np.empty((height, width), dtype=np.uint8),
        instance=np.empty((height, width), dtype=inst_dtype),
        contour=np.empty((height, width), dtype=np.uint8),
    )
    tree = shapely.STRtree(geoms)

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: list[Future[None]] = []
        for start in range(0, height, STRIP_ROWS):
            stop = min(start + STRIP_ROWS, height)
            r0, r1 = max(start - 1, 0), min(stop + 1, height)
            strip = geobox[r0:r1, :]
            picked = np.sort(tree.query(shapely.box(*strip.boundingbox.bbox)))
            burnt = _burn(geoms[picked], tables.burn_values[picked], strip, tables.burn_dtype)
            inner = slice(start - r0, stop - r0)
            pending.append(pool.submit(tables.fill, burnt, inner, out, slice(start, stop)))
            if len(pending) > 1:
                pending.pop(0).result()  # at most two strips in flight: bounded memory
        for job in pending:
            job.result()
    return out


def rasterize_window(
    layout: Layout, rows: slice, cols: slice, *, features: gpd.GeoDataFrame | None = None
) -> LayoutMaps:
    """The three maps of ``grid[rows, cols]``, identical to the same pixels of the whole grid."""
    grid = layout.grid
    height, width = grid.shape
    r0, r1 = max(rows.start - 1, 0), min(rows.stop + 1, height)
    c0, c1 = max(cols.start - 1, 0), min(cols.stop + 1, width)
    halo = grid[r0:r1, c0:c1]
    if features is None:
        features = layout.features(halo.boundingbox)
    maps = rasterize_features(features, halo, instance_dtype(layout.entity_count))
    inner = (slice(rows.start - r0, rows.stop - r0), slice(cols.start - c0, cols.stop - c0))
    return LayoutMaps(
        label=maps.label[inner], instance=maps.instance[inner], contour=maps.contour[inner]
    )


def rasterize_layout(layout: Layout) -> xr.Dataset:
    """All three maps of the whole grid in memory, as an xarray Dataset on the layout's grid.

    Meant for notebooks and small areas; large grids go through the tiled job, whose memory
    does not grow with the area.
    """
    import xarray as xr
    from odc.geo.xr import xr_coords

    height, width = layout.grid.shape
    maps = rasterize_window(layout, slice(0, height), slice(0, width))
    coords = xr_coords(layout.grid)
    dims = ("y", "x")
    names = layout.taxonomy.names_by_id()
    return xr.Dataset(
        {
            "label": xr.DataArray(maps.label, dims=dims, attrs={"class_names": names}),
            "instance": xr.DataArray(maps.instance, dims=dims),
            "contour": xr.DataArray(maps.contour, dims=dims),
        },
        coords=coords,
        attrs={"taxonomy": layout.taxonomy.name},
    )
