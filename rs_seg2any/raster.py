"""Rasterisation of a layout onto its grid: label mask, instance ids and entity contour map.

All three maps come from ONE rasterisation pass that burns a per-window local index (the
drawing order) into the smallest integer type that holds it; labels and global instance ids
are then table look-ups, and contours a neighbour comparison. This keeps the cost close to a
bare label rasterisation while guaranteeing that the three maps agree pixel for pixel.

Pixels are assigned by the GDAL centre rule (``all_touched=False``): a pixel belongs to a
polygon when its centre does.

Contour map (Seg2Any's sparse shape condition): a pixel is 1 when it belongs to an entity and
one of its 4-neighbours inside the grid belongs to another entity or to no entity — the
1-pixel inner outline of every visible entity, all entities in one map. The grid border itself
is not an outline. Windows are rasterised with a 1-pixel halo so that a tiled job gives exactly
the maps of the whole grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import rasterio.features
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


def contours_from_instances(instance: np.ndarray) -> np.ndarray:
    """1-pixel inner outline of every entity (see module docstring); uint8 0/1."""
    a = instance
    edge = np.zeros(a.shape, dtype=bool)
    vertical = a[1:, :] != a[:-1, :]
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    horizontal = a[:, 1:] != a[:, :-1]
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    edge &= a != 0
    return edge.view(np.uint8)


def burn_local_index(features: gpd.GeoDataFrame, geobox: GeoBox) -> np.ndarray:
    """Burn 1..n (drawing order of ``features``) on ``geobox``; later features win."""
    height, width = geobox.shape
    n = len(features)
    dtype = _index_dtype(n)
    if n == 0:
        return np.zeros((height, width), dtype=dtype)
    shapes = zip(features.geometry.values, range(1, n + 1), strict=True)
    burnt: np.ndarray = rasterio.features.rasterize(
        shapes,
        out_shape=(height, width),
        transform=geobox.affine,
        fill=0,
        dtype=dtype,
        all_touched=False,
    )
    return burnt


def maps_from_index(
    index: np.ndarray, features: gpd.GeoDataFrame, inst_dtype: np.dtype[np.unsignedinteger]
) -> LayoutMaps:
    """Turn a burnt local index into the label, instance and contour maps."""
    labels = np.zeros(len(features) + 1, dtype=np.uint8)
    labels[1:] = features["class_id"].to_numpy(dtype=np.uint8)
    ids = np.zeros(len(features) + 1, dtype=inst_dtype)
    ids[1:] = features["instance_id"].to_numpy().astype(inst_dtype)
    return LayoutMaps(
        label=labels[index], instance=ids[index], contour=contours_from_instances(index)
    )


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
    index = burn_local_index(features, halo)
    maps = maps_from_index(index, features, instance_dtype(layout.entity_count))
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
