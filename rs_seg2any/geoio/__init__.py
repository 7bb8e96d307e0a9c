"""Raster outputs: Cloud-Optimised GeoTIFFs, label masks, QGIS styles, PNG previews, provenance.

Modules: ``cog`` (the one GeoTIFF writer, :class:`GridRasterWriter`, and category-name
sidecars), ``styles`` (label masks with colour tables, QML), ``previews`` (quick-look PNGs),
``provenance`` (GDAL metadata tags), ``gdalwatch`` (write failures GDAL only logs). Output
files are written through :mod:`rs_seg2any.atomic`; failed writes are worded by
:mod:`rs_seg2any.diskspace` (both re-exported here for callers that import them from geoio).
"""

from ..atomic import (
    SIDE_SUFFIXES,
    TMP_PREFIX,
    atomic_output,
    ensure_writable_dir,
    remove_output,
    remove_temps,
    temp_path,
)
from ..diskspace import disk_of, job_space, require_free_space, write_error
from .cog import (
    BLOCKSIZE,
    SMALLEST_OVERVIEW,
    Colour,
    GridRasterWriter,
    category_names_from_sidecar,
    overview_count,
    write_cog,
)
from .gdalwatch import GdalWriteError
from .previews import write_preview_png
from .provenance import provenance_tags, short_crs
from .styles import (
    LABEL_BAND_DESCRIPTION,
    LABEL_DTYPE,
    LABEL_NODATA,
    label_mask_style,
    write_label_mask,
    write_qml,
)

__all__ = [
    "BLOCKSIZE",
    "LABEL_BAND_DESCRIPTION",
    "LABEL_DTYPE",
    "LABEL_NODATA",
    "SIDE_SUFFIXES",
    "SMALLEST_OVERVIEW",
    "TMP_PREFIX",
    "Colour",
    "GdalWriteError",
    "GridRasterWriter",
    "atomic_output",
    "category_names_from_sidecar",
    "disk_of",
    "ensure_writable_dir",
    "job_space",
    "label_mask_style",
    "overview_count",
    "provenance_tags",
    "remove_output",
    "remove_temps",
    "require_free_space",
    "short_crs",
    "temp_path",
    "write_cog",
    "write_error",
    "write_label_mask",
    "write_preview_png",
    "write_qml",
]
