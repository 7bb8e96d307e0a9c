"""Scenario masks that stream by window, so a scenario's memory does not grow with its area.

A mask here is a :data:`~rs_seg2any.radiometry.MaskReader`: a function from a window of the
grid to that window's ``(h, w)`` values. Polygons are rasterised per window (GDAL's
pixel-centre rule, so the pixels are those of a whole-grid rasterisation), rasters are read
per window, and files are written window by window through
:class:`~rs_seg2any.geoio.GridRasterWriter`. Peak memory is one window of
:data:`MASK_BLOCK` x :data:`MASK_BLOCK` pixels, whatever the grid's size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
import shapely
from odc.geo.geobox import GeoBox
from rasterio.windows import Window

from ..errors import InputError
from ..geoio import BLOCKSIZE, GridRasterWriter, temp_path
from ..radiometry import MaskReader

#: Side of the windows masks are made and written in (a multiple of the GeoTIFF block size).
MASK_BLOCK = 2 * BLOCKSIZE


def windows(grid: GeoBox, block: int | None = None) -> Iterator[Window]:
    """The grid in row-major windows of at most ``block`` (default :data:`MASK_BLOCK`)
    pixels a side."""
    block = block or MASK_BLOCK
    height, width = grid.shape
    for r0 in range(0, height, block):
        for c0 in range(0, width, block):
            yield Window(c0, r0, min(block, width - c0), min(block, height - r0))


def _window_grid(grid: GeoBox, window: Window) -> GeoBox:
    rows, cols = window.toslices()
    return grid[rows, cols]


class PolygonMask:
    """Windows of the rasterised polygons of ``frame`` (uint8 ``value`` inside, 0 outside).

    The geometries are reprojected once and indexed, so each window burns only the polygons
    that reach it.
    """

    def __init__(self, frame: gpd.GeoDataFrame, grid: GeoBox, value: int = 1) -> None:
        if frame.crs is None:
            raise InputError("the polygon layer has no CRS")
        if grid.crs is None:
            raise InputError("the target grid has no CRS")
        geoms = frame.to_crs(str(grid.crs.to_wkt())).geometry
        kept = [g for g in geoms if g is not None and not g.is_empty]
        self.grid = grid
        self.value = int(value)
        self._geoms = np.asarray(kept, dtype=object)
        self._tree = shapely.STRtree(self._geoms)

    def __call__(self, window: Window) -> np.ndarray:
        sub = _window_grid(self.grid, window)
        shape = tuple(sub.shape)
        picked = np.sort(self._tree.query(shapely.box(*sub.boundingbox.bbox)))
        if picked.size == 0:
            return np.zeros(shape, dtype=np.uint8)
        out: np.ndarray = rasterio.features.rasterize(
            list(self._geoms[picked]), out_shape=shape, transform=sub.affine, fill=0,
            default_value=self.value, dtype="uint8",
        )  # fmt: skip
        return out


def raster_mask(path: Path, band: int = 1) -> MaskReader:
    """Windows of band ``band`` of a raster on the grid (its values, not a bool)."""

    def read(window: Window) -> np.ndarray:
        with rasterio.open(path) as src:
            out: np.ndarray = src.read(band, window=window)
        return out

    return read


def array_windows(array: np.ndarray) -> MaskReader:
    """Windows of an array on the grid, values as they are (a whole-grid array that a
    caller already holds, e.g. a DEM flood's classes)."""
    return lambda window: array[window.toslices()]


def as_bool(reader: MaskReader) -> MaskReader:
    """``reader`` with non-zero values as True."""
    return lambda window: np.asarray(reader(window)) != 0


def mask_any(reader: MaskReader, grid: GeoBox) -> bool:
    """Whether any window of ``reader`` has a non-zero pixel (stops at the first)."""
    return any(np.asarray(reader(w)).any() for w in windows(grid))


def write_windows(
    writer: GridRasterWriter,
    reader: MaskReader,
    grid: GeoBox,
    convert: Callable[[np.ndarray], np.ndarray] = np.asarray,
) -> None:
    """Every window of ``reader`` (through ``convert``) into ``writer``."""
    for window in windows(grid):
        rows, cols = window.toslices()
        writer.write(convert(reader(window)), rows, cols)


@contextlib.contextmanager
def scratch_path(folder: Path, name: str) -> Iterator[Path]:
    """A hidden temp path in ``folder`` for the block, deleted after it (a killed run's file
    is a ``.tmp-`` file that the next run on the folder clears)."""
    path = temp_path(folder / name)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def write_scratch(
    path: Path,
    grid: GeoBox,
    parts: Iterable[tuple[Window, np.ndarray]],
    dtype: str = "uint8",
    nodata: float | None = None,
) -> Path:
    """A plain tiled GeoTIFF on ``grid`` written from ``(window, values)`` parts."""
    height, width = grid.shape
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=1, dtype=dtype,
        crs=str(grid.crs.to_wkt()) if grid.crs is not None else None, nodata=nodata,
        transform=grid.affine, tiled=True, blockxsize=BLOCKSIZE, blockysize=BLOCKSIZE,
        compress="DEFLATE", zlevel=1, bigtiff="IF_SAFER",
    ) as dst:  # fmt: skip
        for window, values in parts:
            dst.write(np.asarray(values, dtype=dtype), 1, window=window)
    return path


@contextlib.contextmanager
def scratch_raster(
    folder: Path, name: str, reader: MaskReader, grid: GeoBox, dtype: str = "uint8"
) -> Iterator[Path]:
    """``reader`` written window by window into a scratch GeoTIFF for the block."""
    with scratch_path(folder, name) as path:
        yield write_scratch(path, grid, ((w, reader(w)) for w in windows(grid)), dtype)


def polygons_from_raster(
    path: Path, grid: GeoBox, values: list[int] | None = None
) -> tuple[gpd.GeoSeries, list[int]]:
    """Pixel-exact polygons of the non-zero cells of band 1 of ``path`` (one per 4-connected
    region and value), as :func:`~rs_seg2any.scenarios.common.polygons_from_mask` gives for
    the same array: GDAL reads the band line by line, so memory follows the polygons, not the
    grid."""
    from shapely.geometry import shape

    geoms, vals = [], []
    with rasterio.open(path) as src:
        band = rasterio.band(src, 1)
        for geom, value in rasterio.features.shapes(
            band, mask=band, transform=grid.affine, connectivity=4
        ):
            if values is not None and int(value) not in values:
                continue
            geoms.append(shape(geom))
            vals.append(int(value))
    if grid.crs is None:
        raise InputError("the target grid has no CRS")
    return gpd.GeoSeries(geoms, crs=str(grid.crs.to_wkt())), vals
