"""One reader for vector inputs and one opener for raster inputs, with typed errors.

Every option that names a file (``--zones``, ``--clouds``, ``--after``, ``--layout``,
``--dem``, ``--flood-polygons``, ``--image``, ``--after-like``) goes through these, so a
missing, empty, corrupt or wrong-kind file gives the same one-line error ``layout`` gives,
prefixed with the option, never a GDAL or pyogrio traceback. Vector checks are those of
:mod:`rs_seg2any.layout` (layers, CRS), reused, not repeated.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import geopandas as gpd
import pyogrio
from odc.geo.geobox import GeoBox
from rasterio.errors import RasterioError

from .errors import InputError, LayoutError, RsSeg2AnyError

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".jp2")
"""File kinds taken as rasters where an option accepts a raster or polygons (``--clouds``)."""


def _prefixed(what: str, exc: RsSeg2AnyError) -> RsSeg2AnyError:
    """The same typed error, on one line, naming the option it came from."""
    text = " ".join(str(exc).split())
    return type(exc)(text if text.startswith(what) else f"{what}: {text}")


def read_vector(
    path: str | Path,
    what: str,
    *,
    layer: str | None = None,
    layer_crs: object | None = None,
    need_crs: bool = True,
) -> gpd.GeoDataFrame:
    """The whole layer of a vector file (``what``: the option, e.g. ``--zones``).

    A layer without CRS gets ``layer_crs``; without either it is an error when ``need_crs``.
    """
    from .layout.sources import PARQUET_SUFFIXES, _layer_crs, _open_file_layer, _read_parquet

    p = Path(path)
    try:
        if not p.exists():
            raise InputError(f"vector file '{p}' not found")
        if p.is_file() and p.stat().st_size == 0:
            raise InputError(f"'{p}' is empty (0 bytes)")
        if p.suffix.lower() in PARQUET_SUFFIXES:
            frame = _read_parquet(p)
        else:
            info = _open_file_layer(p, layer)
            _check_polygonal(info.geometry_type, p)
            frame = _read_layer(p, info.layer)
        if frame.crs is None and layer_crs is None and not need_crs:
            return frame
        crs = _layer_crs(frame.crs, layer_crs, f"'{p}'")
        if frame.crs is None or layer_crs is not None:
            frame = frame.set_crs(crs.to_wkt(), allow_override=True)
    except InputError as exc:
        if _opens_as_raster(p):
            raise InputError(f"{what}: '{p}' is a raster, not a polygon layer") from exc
        raise _prefixed(what, exc) from exc
    except RsSeg2AnyError as exc:
        raise _prefixed(what, exc) from exc
    return frame


def _opens_as_raster(p: Path) -> bool:
    """Whether GDAL reads ``p`` as a raster: to name the mix-up instead of a driver error."""
    import rasterio

    if not p.is_file() or p.stat().st_size == 0:
        return False
    try:
        with rasterio.open(p):
            return True
    except Exception:  # any failure means: not a raster
        return False


def _opens_as_vector(p: Path) -> bool:
    """Whether GDAL lists vector layers in ``p`` (a vector file given as a raster)."""
    if not p.is_file() or p.stat().st_size == 0:
        return False
    try:
        return bool(pyogrio.list_layers(p).size)
    except Exception:  # any failure means: not a vector file
        return False


def _read_layer(path: Path, layer: str | None) -> gpd.GeoDataFrame:
    try:
        frame: gpd.GeoDataFrame = pyogrio.read_dataframe(path, layer=layer, on_invalid="ignore")
    except Exception as exc:  # pyogrio/GDAL raise many types for truncated or odd files
        raise InputError(f"cannot read '{path}': {exc}") from exc
    return frame


def _check_polygonal(geometry_type: str | None, path: Path) -> None:
    kind = (geometry_type or "").replace("3D ", "").replace(" Z", "").replace("Multi", "")
    if kind in ("Point", "LineString"):
        raise LayoutError(
            f"'{path}' holds {geometry_type} geometries; polygons are expected. Buffer points "
            "and lines into polygons first"
        )


def raster_grid(path: str | Path, what: str, *, max_pixels: int | None = None) -> GeoBox:
    """The grid (CRS, transform, shape) of a raster file, which must have a CRS."""
    from .grid import grid_like

    try:
        _check_file(Path(path), "raster")
        return grid_like(path, max_pixels=max_pixels)
    except (InputError, RasterioError) as exc:
        raise _not_a_raster(Path(path), what, exc) from exc
    except RsSeg2AnyError as exc:
        raise _prefixed(what, exc) from exc


def _not_a_raster(p: Path, what: str, exc: Exception) -> RsSeg2AnyError:
    if _opens_as_vector(p):
        return InputError(f"{what}: '{p}' is a vector layer, not a raster")
    if isinstance(exc, RsSeg2AnyError):
        return _prefixed(what, exc)
    return InputError(f"{what}: '{p}' is not a raster GDAL can read: {exc}")


@contextmanager
def open_raster(path: str | Path, what: str) -> Iterator[Any]:
    """An open rasterio dataset; GDAL errors while it is read become typed errors too."""
    import rasterio

    p = Path(path)
    try:
        _check_file(p, "raster")
    except RsSeg2AnyError as exc:
        raise _prefixed(what, exc) from exc
    try:
        src = rasterio.open(p)
    except RasterioError as exc:
        raise _not_a_raster(p, what, exc) from exc
    try:
        with src:
            yield src
    except RasterioError as exc:
        raise InputError(f"{what}: cannot read raster '{p}': {exc}") from exc


def _check_file(p: Path, kind: str) -> None:
    if not p.exists():
        raise InputError(f"{kind} '{p}' not found")
    if not p.is_file():
        raise InputError(f"'{p}' is a folder, not a {kind} file")
    if p.stat().st_size == 0:
        raise InputError(f"'{p}' is empty (0 bytes)")
