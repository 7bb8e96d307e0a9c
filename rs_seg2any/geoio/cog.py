"""Cloud-Optimised GeoTIFFs on one grid: every raster goes through :class:`GridRasterWriter`.

Windows are streamed into a tiled intermediate GeoTIFF (memory stays flat however large the
grid), which GDAL's ``COG`` driver copies to a temp file next to the destination; it is then
renamed into place. The in-memory helper :func:`write_cog` uses the same writer, so a streamed
mosaic and an in-memory array give byte-identical files, and reruns are byte-identical because
nothing time-dependent is written.

Category names. GDAL's GeoTIFF driver cannot keep category names (nor a RAT) inside the
TIFF: it puts them into a PAM sidecar ``<file>.aux.xml``. A COG cannot be reopened in update
mode without breaking its layout, so the names are written twice:

* inside the COG as band metadata (``CLASS_NAMES`` = JSON list indexed by value, plus
  ``CLASS_<id>=<name>``), which survive any copy and are readable with ``src.tags(1)``;
* as GDAL category names in a ``<dest>.aux.xml`` sidecar written by us (deterministic,
  atomically, just before the COG is renamed into place), which GDAL, QGIS and
  ``gdalinfo`` read as ``GetCategoryNames``.

GDAL's own PAM writing is disabled while we write (``GDAL_PAM_ENABLED=NO``), so no stray
``.aux.xml`` files appear. The colour table lives inside the TIFF and survives the COG copy.
"""

from __future__ import annotations

import contextlib
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from odc.geo.geobox import GeoBox
from rasterio.crs import CRS as RioCRS
from rasterio.windows import Window

from ..atomic import (
    WRITE_ERRORS,
    atomic_output,
    ensure_writable_dir,
    fsync_file,
    remove_quietly,
    remove_with_side_files,
    temp_path,
)
from ..diskspace import write_error
from ..errors import OutputError
from .gdalwatch import _GdalWatch

Colour = tuple[int, int, int] | tuple[int, int, int, int]
BLOCKSIZE = 512

# GDAL must not write PAM sidecars on its own: we control the only one we want.
_GDAL_ENV: dict[str, Any] = {"GDAL_PAM_ENABLED": "NO"}


def _rio_crs(geobox: GeoBox) -> RioCRS | None:
    """The GeoBox CRS as rasterio's, preferring the EPSG code so the file says 'EPSG:xxxx'."""
    crs = geobox.crs
    if crs is None:
        return None
    if crs.epsg is not None:
        return RioCRS.from_epsg(crs.epsg)
    return RioCRS.from_wkt(crs.to_wkt())


def _normalise_window(rows: slice, cols: slice, shape: tuple[int, int]) -> tuple[slice, slice]:
    """Resolve None bounds and reject steps or out-of-grid windows (a caller bug, loudly)."""
    out = []
    for sl, size, name in ((rows, shape[0], "rows"), (cols, shape[1], "cols")):
        if sl.step not in (None, 1):
            raise ValueError(f"{name} slice must have step 1, got {sl!r}")
        start = 0 if sl.start is None else sl.start
        stop = size if sl.stop is None else sl.stop
        if not 0 <= start <= stop <= size:
            raise ValueError(f"{name} {start}:{stop} is outside the grid (0:{size})")
        out.append(slice(start, stop))
    return out[0], out[1]


def _is_integer(dtype: str) -> bool:
    return bool(np.issubdtype(np.dtype(dtype), np.integer))


#: Categorical rasters get overviews until the long side is at most this many pixels.
SMALLEST_OVERVIEW = 64


def overview_count(shape: tuple[int, int], smallest: int = SMALLEST_OVERVIEW) -> int:
    """How many halvings bring the long side down to ``smallest`` px (0 for tiny rasters).

    GDAL's AUTO stops once a level fits one 512 px block, so masks under 512 px had none and
    large masks stopped at ~300 px; QGIS then reads full resolution to draw a thumbnail."""
    size, count = max(shape), 0
    while size > smallest:
        size = -(-size // 2)
        count += 1
    return count


def _cog_options(dtype: str, categorical: bool, shape: tuple[int, int]) -> dict[str, str]:
    """Named COG profile: DEFLATE, tiled 512, overviews nearest for classes (down to
    SMALLEST_OVERVIEW px), average for imagery (GDAL's AUTO levels)."""
    options = {
        "COMPRESS": "DEFLATE",
        "PREDICTOR": "2" if _is_integer(dtype) else "3",
        "BLOCKSIZE": str(BLOCKSIZE),
        "OVERVIEWS": "AUTO",
        "OVERVIEW_RESAMPLING": "NEAREST" if categorical else "AVERAGE",
        "BIGTIFF": "IF_SAFER",
    }
    if categorical:
        count = overview_count(shape)
        options["OVERVIEWS"] = "IGNORE_EXISTING" if count else "NONE"
        if count:
            options["OVERVIEW_COUNT"] = str(count)
    return options


class GridRasterWriter:
    """Streams windows of a raster on one GeoBox into an intermediate tiled GeoTIFF, then
    finalises it into a Cloud-Optimised GeoTIFF at dest (atomically). Memory must not grow
    with the raster size."""

    def __init__(
        self,
        dest: Path | str,
        geobox: GeoBox,
        *,
        dtype: str,
        count: int = 1,
        nodata: float | int | None = None,
        workdir: Path | str | None = None,
    ) -> None:
        self.dest = Path(dest)
        self.geobox = geobox
        self.dtype = str(np.dtype(dtype))
        self.count = int(count)
        self.nodata = nodata
        if self.count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        ensure_writable_dir(self.dest.parent)
        folder = ensure_writable_dir(workdir) if workdir is not None else self.dest.parent
        self._partial = temp_path(folder / self.dest.name, "partial")
        self._done = False
        height, width = geobox.shape
        self._shape = (int(height), int(width))
        try:
            with rasterio.Env(**_GDAL_ENV), _GdalWatch() as watch:
                self._ds: Any = rasterio.open(
                    self._partial,
                    "w",
                    driver="GTiff",
                    width=width,
                    height=height,
                    count=self.count,
                    dtype=self.dtype,
                    crs=_rio_crs(geobox),
                    transform=geobox.affine,
                    nodata=nodata,
                    tiled=True,
                    blockxsize=BLOCKSIZE,
                    blockysize=BLOCKSIZE,
                    compress="DEFLATE",
                    zlevel=1,
                    bigtiff="IF_SAFER",
                    interleave="band",
                )
            watch.check(self.dest)
        except (*WRITE_ERRORS, OutputError) as exc:
            remove_with_side_files(self._partial)
            raise write_error(self.dest, exc) from exc

    def __enter__(self) -> GridRasterWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.abort()

    def write(self, data: np.ndarray, rows: slice, cols: slice) -> None:
        """Write one window; data is (count, h, w), or (h, w) for single-band rasters."""
        if self._done:
            raise RuntimeError("writer is already finalised or aborted")
        rows, cols = _normalise_window(rows, cols, self._shape)
        arr = np.asarray(data)
        if arr.ndim == 2:
            arr = arr[np.newaxis]
        expected = (self.count, rows.stop - rows.start, cols.stop - cols.start)
        if arr.shape != expected:
            raise ValueError(f"data shape {arr.shape} does not match window {expected}")
        if not np.can_cast(arr.dtype, self.dtype, casting="same_kind"):
            raise ValueError(f"cannot write {arr.dtype} data into a {self.dtype} raster")
        if arr.size == 0:
            return
        window = Window(cols.start, rows.start, expected[2], expected[1])
        try:
            with _GdalWatch() as watch:
                self._ds.write(arr.astype(self.dtype, copy=False), window=window)
            watch.check(self.dest)
        except (*WRITE_ERRORS, OutputError) as exc:
            self.abort()
            raise write_error(self.dest, exc) from exc

    def finalize(
        self,
        *,
        categorical: bool,
        colormap: Mapping[int, Colour] | None = None,
        category_names: Sequence[str] | None = None,
        band_descriptions: Sequence[str] | None = None,
        tags: Mapping[str, str] | None = None,
        rgb: bool = False,
    ) -> Path:
        """Attach styling and metadata, convert to COG at dest, remove the intermediate.

        ``rgb`` marks a 3-band (or 4-band) image as red, green, blue (, alpha) so GIS software
        shows true colour without manual band mapping.
        """
        if self._done:
            raise RuntimeError("writer is already finalised or aborted")
        if band_descriptions is not None and len(band_descriptions) != self.count:
            raise ValueError(f"{len(band_descriptions)} band descriptions for {self.count} bands")
        if colormap is not None and (self.count != 1 or self.dtype not in ("uint8", "uint16")):
            raise ValueError("a colour table needs a single-band uint8 or uint16 raster")
        sidecar: Path | None = None
        try:
            with rasterio.Env(**_GDAL_ENV):
                with _GdalWatch() as watch:
                    self._attach_metadata(colormap, category_names, band_descriptions, tags)
                    if rgb:
                        self._set_rgb()
                    self._ds.close()
                watch.check(self.dest)
                options = _cog_options(self.dtype, categorical, self._shape)
                with atomic_output(self.dest) as tmp:
                    with _GdalWatch() as watch:
                        rasterio.shutil.copy(self._partial, tmp, driver="COG", **options)
                    watch.check(self.dest)
                    sidecar = _sidecar_temp(self.dest, category_names)
                _replace_sidecar(self.dest, sidecar)
                sidecar = None
        except WRITE_ERRORS as exc:
            raise write_error(self.dest, exc) from exc
        finally:
            if sidecar is not None:
                remove_quietly(sidecar)
            self.abort()
        return self.dest

    def _attach_metadata(
        self,
        colormap: Mapping[int, Colour] | None,
        category_names: Sequence[str] | None,
        band_descriptions: Sequence[str] | None,
        tags: Mapping[str, str] | None,
    ) -> None:
        ds = self._ds
        if tags:
            ds.update_tags(**{str(k): str(v) for k, v in tags.items()})
        if band_descriptions is not None:
            for band, text in enumerate(band_descriptions, start=1):
                ds.set_band_description(band, text)
        if colormap is not None:
            ds.write_colormap(1, {int(k): tuple(v) for k, v in colormap.items()})
        if category_names is not None:
            ds.update_tags(1, **_class_name_tags(category_names))

    def _set_rgb(self) -> None:
        from rasterio.enums import ColorInterp

        order = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]
        if self.count not in (3, 4):
            raise ValueError(f"rgb=True needs 3 or 4 bands, not {self.count}")
        self._ds.colorinterp = order[: self.count]

    def abort(self) -> None:
        """Drop the intermediate; dest is untouched. Safe to call more than once."""
        self._done = True
        with contextlib.suppress(Exception):
            if not self._ds.closed:
                self._ds.close()
        remove_with_side_files(self._partial)


def _class_name_tags(category_names: Sequence[str]) -> dict[str, str]:
    """Band metadata that keeps class names inside the TIFF (PAM-independent)."""
    out = {"CLASS_NAMES": json.dumps(list(category_names), ensure_ascii=False)}
    out.update({f"CLASS_{i}": name for i, name in enumerate(category_names) if name})
    return out


def _sidecar_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".aux.xml")


def _sidecar_temp(dest: Path, category_names: Sequence[str] | None) -> Path | None:
    """The new sidecar written to a temp file (None: dest gets no sidecar)."""
    if category_names is None:
        return None
    root = ET.Element("PAMDataset")
    band = ET.SubElement(root, "PAMRasterBand", band="1")
    names = ET.SubElement(band, "CategoryNames")
    for name in category_names:
        ET.SubElement(names, "Category").text = name
    ET.indent(root, space="  ")
    tmp = temp_path(_sidecar_path(dest))
    try:
        tmp.write_bytes(ET.tostring(root, encoding="unicode").encode("utf-8") + b"\n")
        fsync_file(tmp)
    except BaseException:
        remove_quietly(tmp)
        raise
    return tmp


def _replace_sidecar(dest: Path, tmp: Path | None) -> None:
    """Put the sidecar in place right after its raster (or drop a stale one), so a raster
    never keeps the category names of an earlier run; a sidecar never outlives its raster."""
    sidecar = _sidecar_path(dest)
    if tmp is None:
        remove_quietly(sidecar)
    else:
        os.replace(tmp, sidecar)


def category_names_from_sidecar(path: Path | str) -> list[str] | None:
    """Category names of band 1 as GDAL reads them from ``<path>.aux.xml`` (None if absent)."""
    sidecar = _sidecar_path(Path(path))
    if not sidecar.exists():
        return None
    root = ET.parse(sidecar).getroot()
    node = root.find("./PAMRasterBand[@band='1']/CategoryNames")
    if node is None:
        return None
    return [c.text or "" for c in node.findall("Category")]


def write_cog(
    dest: Path | str,
    data: np.ndarray,
    geobox: GeoBox,
    *,
    categorical: bool,
    nodata: float | int | None = None,
    colormap: Mapping[int, Colour] | None = None,
    category_names: Sequence[str] | None = None,
    band_descriptions: Sequence[str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> Path:
    """In-memory convenience built on GridRasterWriter (so both paths give the same bytes)."""
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3 or arr.shape[1:] != tuple(geobox.shape):
        raise ValueError(f"data shape {np.shape(data)} does not match grid {tuple(geobox.shape)}")
    with GridRasterWriter(
        dest, geobox, dtype=str(arr.dtype), count=arr.shape[0], nodata=nodata
    ) as writer:
        writer.write(arr, slice(None), slice(None))
        return writer.finalize(
            categorical=categorical,
            colormap=colormap,
            category_names=category_names,
            band_descriptions=band_descriptions,
            tags=tags,
        )
