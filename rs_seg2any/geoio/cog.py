"""Raster outputs: Cloud-Optimised GeoTIFFs, label masks, QGIS styles, PNG previews.

Every raster goes through one path, :class:`GridRasterWriter`: windows are streamed into a
tiled intermediate GeoTIFF (memory stays flat however large the grid), which is then copied
by GDAL's ``COG`` driver to a temp file next to the destination and renamed into place. The
in-memory helpers (:func:`write_cog`, :func:`write_label_mask`) use the same writer, so a
streamed mosaic and an in-memory array give byte-identical files, and reruns are
byte-identical because nothing time-dependent is written.

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
import logging
import os
import re
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
import rasterio.shutil
from odc.geo.geobox import GeoBox
from rasterio.crs import CRS as RioCRS
from rasterio.windows import Window

from ..atomic import (
    SIDE_SUFFIXES,
    TMP_PREFIX,
    WRITE_ERRORS,
    atomic_output,
    ensure_writable_dir,
    fsync_file,
    remove_output,
    remove_quietly,
    remove_temps,
    remove_with_side_files,
    temp_path,
)
from ..diskspace import DISK_FULL_TEXT, disk_of, job_space, require_free_space, write_error
from ..errors import OutputError
from ..taxonomy import BACKGROUND_ID, BACKGROUND_NAME, Taxonomy

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = [
    "LABEL_BAND_DESCRIPTION",
    "LABEL_DTYPE",
    "LABEL_NODATA",
    "SIDE_SUFFIXES",
    "TMP_PREFIX",
    "GridRasterWriter",
    "atomic_output",
    "category_names_from_sidecar",
    "disk_of",
    "ensure_writable_dir",
    "job_space",
    "label_mask_style",
    "provenance_tags",
    "remove_output",
    "remove_temps",
    "require_free_space",
    "temp_path",
    "write_cog",
    "write_error",
    "write_label_mask",
    "write_preview_png",
    "write_qml",
]

Colour = tuple[int, int, int] | tuple[int, int, int, int]

LABEL_DTYPE = "uint8"
LABEL_NODATA = 0
LABEL_BAND_DESCRIPTION = "label"
BLOCKSIZE = 512

# GDAL must not write PAM sidecars on its own: we control the only one we want.
_GDAL_ENV: dict[str, Any] = {"GDAL_PAM_ENABLED": "NO"}
_QGIS_VERSION = "3.22.0-Białowieża"


# --------------------------------------------------------------------------- GDAL failures


class GdalWriteError(RuntimeError):
    """GDAL failed a write without raising (it only logged it): the file must not be used."""


class _GdalWatch:
    """Catches write failures GDAL only *reports*: rasterio logs them (``rasterio._err``,
    level INFO) and libtiff prints ``_tiffWriteProc: No space left on device`` straight to
    the process's stderr. Without this a full disk gave truncated files that looked written,
    and stray lines on the CLI's stderr. Within the block, file descriptor 2 goes to a temp
    file (other threads' stderr is captured too, and replayed to the log at debug level)."""

    _LOGGER = "rasterio._err"

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._saved_fd: int | None = None
        self._capture: Any = None

    def __enter__(self) -> _GdalWatch:
        logger = logging.getLogger(self._LOGGER)
        self._level, self._propagate = logger.level, logger.propagate
        self._handler = _ListHandler(self.errors)
        logger.addHandler(self._handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        with contextlib.suppress(OSError, ValueError):
            self._capture = tempfile.TemporaryFile()
            sys.stderr.flush()
            self._saved_fd = os.dup(2)
            os.dup2(self._capture.fileno(), 2)
        return self

    def __exit__(self, *exc_info: object) -> None:
        logger = logging.getLogger(self._LOGGER)
        logger.removeHandler(self._handler)
        logger.setLevel(self._level)
        logger.propagate = self._propagate
        if self._saved_fd is not None:
            os.dup2(self._saved_fd, 2)
            os.close(self._saved_fd)
        if self._capture is not None:
            with contextlib.suppress(OSError):
                self._capture.seek(0)
                text = self._capture.read(65536).decode("utf-8", "replace")
                lines = [line.strip() for line in text.splitlines() if line.strip()]
                for line in lines:
                    log.debug("GDAL: %s", line)
                self.errors[:0] = [line for line in lines if _is_io_failure(line)]
            self._capture.close()

    def check(self, dest: Path) -> None:
        """Raise the first reported failure as a one-line OutputError."""
        if self.errors:
            raise write_error(dest, GdalWriteError(" ".join(self.errors[:2])))


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "signalled an error" in message or record.levelno >= logging.ERROR:
            self.sink.append(message)


def _is_io_failure(line: str) -> bool:
    low = line.lower()
    return any(t in low for t in (*DISK_FULL_TEXT, "file too large", "write error", "i/o error"))


log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- COG writer


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


# --------------------------------------------------------------------------- label masks


def _label_colormap(taxonomy: Taxonomy) -> dict[int, Colour]:
    cmap: dict[int, Colour] = {BACKGROUND_ID: (0, 0, 0, 0)}
    for c in taxonomy.classes:
        cmap[c.id] = (*c.colour, 255)
    return cmap


def _label_category_names(taxonomy: Taxonomy) -> list[str]:
    """Index = class id, '' for ids the taxonomy skips (GDAL category names are positional)."""
    names = [""] * (taxonomy.max_id + 1)
    names[BACKGROUND_ID] = BACKGROUND_NAME
    for c in taxonomy.classes:
        names[c.id] = c.name
    return names


def label_mask_style(taxonomy: Taxonomy) -> dict[str, Any]:
    """finalize() kwargs that make a streamed label mask identical to :func:`write_label_mask`.

    Create the writer with ``dtype=LABEL_DTYPE, nodata=LABEL_NODATA``, then call
    ``writer.finalize(**label_mask_style(taxonomy), tags=...)``."""
    return {
        "categorical": True,
        "colormap": _label_colormap(taxonomy),
        "category_names": _label_category_names(taxonomy),
        "band_descriptions": [LABEL_BAND_DESCRIPTION],
    }


def write_label_mask(
    dest: Path | str,
    labels: np.ndarray,
    geobox: GeoBox,
    taxonomy: Taxonomy,
    *,
    tags: Mapping[str, str] | None = None,
) -> Path:
    """uint8 COG with the taxonomy's colour table and class names, nodata 0, nearest overviews."""
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(f"a label mask is (height, width); got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"a label mask must be uint8, got {arr.dtype}")
    present = np.flatnonzero(np.bincount(arr.ravel(), minlength=256))
    unknown = sorted(set(present.tolist()) - {BACKGROUND_ID, *taxonomy.ids})
    if unknown:
        raise ValueError(f"label ids {unknown} are not in taxonomy '{taxonomy.name}'")
    return write_cog(
        dest, arr, geobox, nodata=LABEL_NODATA, tags=tags, **label_mask_style(taxonomy)
    )


def write_qml(dest: Path | str, taxonomy: Taxonomy) -> Path:
    """QGIS paletted raster style for the label mask, so the layer opens with class names."""
    root = ET.Element(
        "qgis",
        version=_QGIS_VERSION,
        styleCategories="AllStyleCategories",
        hasScaleBasedVisibilityFlag="0",
        minScale="1e+08",
        maxScale="0",
    )
    pipe = ET.SubElement(root, "pipe")
    renderer = ET.SubElement(
        pipe,
        "rasterrenderer",
        type="paletted",
        band="1",
        opacity="1",
        alphaBand="-1",
        nodataColor="",
    )
    ET.SubElement(renderer, "rasterTransparency")
    palette = ET.SubElement(renderer, "colorPalette")
    ET.SubElement(
        palette, "paletteEntry", value="0", color="#000000", alpha="0", label=BACKGROUND_NAME
    )
    for c in sorted(taxonomy.classes, key=lambda c: c.id):
        colour = "#{:02x}{:02x}{:02x}".format(*c.colour)
        ET.SubElement(
            palette, "paletteEntry", value=str(c.id), color=colour, alpha="255", label=c.name
        )
    ET.SubElement(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    ET.SubElement(
        pipe, "huesaturation", saturation="0", grayscaleMode="0", colorizeOn="0", invertColors="0"
    )
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")
    ET.SubElement(root, "blendMode").text = "0"
    ET.indent(root, space="  ")
    text = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
    text += ET.tostring(root, encoding="unicode") + "\n"
    dest = Path(dest)
    with atomic_output(dest) as tmp:
        tmp.write_bytes(text.encode("utf-8"))
    return dest


# --------------------------------------------------------------------------- previews


def _preview_size(height: int, width: int, max_size: int) -> tuple[int, int]:
    """(width, height) with the long side <= max_size, aspect kept (PIL order)."""
    scale = min(1.0, max_size / max(height, width))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _label_preview(labels: np.ndarray, taxonomy: Taxonomy, max_size: int) -> PILImage:
    from PIL import Image

    if labels.dtype != np.uint8:
        raise ValueError(f"a label mask must be uint8, got {labels.dtype}")
    lut = np.zeros((256, 3), dtype=np.uint8)
    for c in taxonomy.classes:
        lut[c.id] = c.colour
    small = Image.fromarray(labels).resize(
        _preview_size(labels.shape[0], labels.shape[1], max_size), Image.Resampling.NEAREST
    )
    return Image.fromarray(lut[np.asarray(small)])


def _stretch(band: np.ndarray) -> np.ndarray:
    """2-98 % percentile stretch to uint8; NaN (no data) becomes 0."""
    finite = band[np.isfinite(band)]
    if finite.size == 0:
        return np.zeros(band.shape, dtype=np.uint8)
    lo, hi = np.percentile(finite, [2, 98])
    span = hi - lo if hi > lo else 1.0
    scaled = np.clip((band - lo) / span * 255.0, 0, 255)
    out: np.ndarray = np.nan_to_num(scaled, nan=0.0).round().astype(np.uint8)
    return out


def _image_preview(image: np.ndarray, max_size: int) -> PILImage:
    from PIL import Image

    bands = image[:3] if image.shape[0] >= 3 else image[:1].repeat(3, axis=0)
    size = _preview_size(image.shape[1], image.shape[2], max_size)
    out = []
    for band in bands:
        if image.dtype == np.uint8:
            small = Image.fromarray(band).resize(size, Image.Resampling.BOX)
            out.append(np.asarray(small))
        else:
            small = Image.fromarray(band.astype(np.float32))
            out.append(_stretch(np.asarray(small.resize(size, Image.Resampling.BOX))))
    return Image.fromarray(np.ascontiguousarray(np.stack(out, axis=-1)))


def write_preview_png(
    dest: Path | str,
    image: np.ndarray,
    *,
    taxonomy: Taxonomy | None = None,
    max_size: int = 1024,
) -> Path:
    """A quick-look PNG (long side <= max_size): labels coloured by the taxonomy, or an image
    (bands, h, w) as 8-bit RGB with a 2-98 % stretch unless it is already uint8."""
    arr = np.asarray(image)
    if max_size < 1:
        raise ValueError(f"max_size must be >= 1, got {max_size}")
    if taxonomy is not None:
        if arr.ndim != 2:
            raise ValueError(f"a label mask preview needs (h, w); got shape {arr.shape}")
        picture = _label_preview(arr, taxonomy, max_size)
    else:
        if arr.ndim == 2:
            arr = arr[np.newaxis]
        if arr.ndim != 3 or 0 in arr.shape:
            raise ValueError(f"an image preview needs (bands, h, w); got shape {arr.shape}")
        picture = _image_preview(arr, max_size)
    dest = Path(dest)
    with atomic_output(dest) as tmp:
        picture.save(tmp, format="PNG")
    return dest


# --------------------------------------------------------------------------- provenance


def _package_version() -> str:
    import rs_seg2any

    version = getattr(rs_seg2any, "__version__", None)
    if isinstance(version, str):
        return version
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("rs-seg2any")
    except PackageNotFoundError:
        return "0+unknown"


def provenance_tags(
    *,
    inputs: Mapping[str, str],
    taxonomy: str | None = None,
    seed: int | None = None,
    extra: Mapping[str, object] | None = None,
) -> dict[str, str]:
    """GDAL metadata that says how a file was made; no timestamps, so reruns are identical."""
    tags = {
        "RS_SEG2ANY_VERSION": _package_version(),
        "RS_SEG2ANY_INPUTS": json.dumps(dict(inputs), sort_keys=True, ensure_ascii=False),
    }
    if taxonomy is not None:
        tags["RS_SEG2ANY_TAXONOMY"] = taxonomy
    if seed is not None:
        tags["RS_SEG2ANY_SEED"] = str(int(seed))
    if extra is not None:
        crs_defs: list[str] = []
        short = _short_crs_values(json.loads(json.dumps(dict(extra), default=str)), crs_defs)
        tags["RS_SEG2ANY_PARAMS"] = json.dumps(short, sort_keys=True, ensure_ascii=False)
        if crs_defs:
            tags["RS_SEG2ANY_CRS"] = json.dumps(
                [json.loads(d) for d in crs_defs], sort_keys=True, separators=(",", ":")
            )
    return tags


_WKT_KEYWORDS = "PROJCRS|GEOGCRS|BOUNDCRS|COMPOUNDCRS|GEODCRS|VERTCRS|ENGCRS|PROJCS|GEOGCS|COMPD_CS"
_WKT_START = re.compile(rf"^\s*(\+proj=|({_WKT_KEYWORDS}|GEOCCS|LOCAL_CS)\[)", re.IGNORECASE)


def short_crs(text: str, defs: list[str]) -> str:
    """'EPSG:<code>' for a CRS text that has one; else 'RS_SEG2ANY_CRS[i]', with its PROJJSON
    stored once in ``defs`` (the tag RS_SEG2ANY_CRS): tags stay small, nothing is lost."""
    from pyproj import CRS as ProjCRS
    from pyproj.exceptions import CRSError

    try:
        crs = ProjCRS.from_user_input(text)
    except CRSError:
        return text
    epsg = crs.to_epsg(min_confidence=100)
    if epsg is not None:
        return f"EPSG:{epsg}"
    definition = crs.to_json()
    if definition not in defs:
        defs.append(definition)
    return f"RS_SEG2ANY_CRS[{defs.index(definition)}]"


def _short_crs_values(value: Any, defs: list[str]) -> Any:
    """Every WKT string in a JSON-like value replaced by :func:`short_crs`."""
    if isinstance(value, dict):
        return {k: _short_crs_values(v, defs) for k, v in value.items()}
    if isinstance(value, list):
        return [_short_crs_values(v, defs) for v in value]
    if isinstance(value, str) and _WKT_START.match(value):
        return short_crs(value, defs)
    return value
