"""Target grids: where outputs land, always as an ``odc.geo.GeoBox``.

A grid comes either from an existing raster (``like=``: same CRS, transform and shape, so the
outputs stack pixel-for-pixel on the user's imagery) or from an extent, a resolution and a CRS.
Grids built from an extent snap to whole multiples of the resolution, so two jobs over
neighbouring areas share pixel edges. A geographic CRS (degrees) is replaced by the local UTM
zone unless the user forces it, because square metre pixels are what image generators and
analysts expect.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import rasterio
from affine import Affine
from odc.geo import CRS, BoundingBox, Resolution, resxy_
from odc.geo.geobox import GeoBox
from rasterio.errors import RasterioIOError

from .errors import GridError, InputError

DEFAULT_MAX_PIXELS = 2_500_000_000
"""Default pixel budget (50,000 x 50,000): above it a grid is almost certainly a unit mistake."""

MAX_PIXELS_ENV = "RS_SEG2ANY_MAX_PIXELS"


def pixel_budget(max_pixels: int | None = None) -> int:
    """The pixel budget in force: the argument, else the environment variable, else the default."""
    if max_pixels is not None:
        return int(max_pixels)
    env = os.environ.get(MAX_PIXELS_ENV)
    if env:
        try:
            return int(float(env))
        except ValueError as exc:
            raise GridError(f"{MAX_PIXELS_ENV}={env!r} is not a number of pixels") from exc
    return DEFAULT_MAX_PIXELS


def parse_resolution(resolution: float | str | Sequence[float]) -> tuple[float, float]:
    """(x, y) pixel size in CRS units from '10', 10, '10,5' or (10, 5); both must be > 0."""
    if isinstance(resolution, str):
        parts = [p for p in resolution.replace(" ", ",").split(",") if p]
        try:
            values = [float(p) for p in parts]
        except ValueError as exc:
            raise GridError(
                f"resolution {resolution!r} is not a number (e.g. 10 or 10,10)"
            ) from exc
    elif isinstance(resolution, int | float):
        values = [float(resolution)]
    else:
        values = [float(v) for v in resolution]
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not all(math.isfinite(v) for v in values):
        raise GridError(f"resolution {resolution!r} must be one or two finite numbers")
    if min(values) <= 0:
        raise GridError(f"resolution must be > 0 (got {resolution!r}); it is the pixel size")
    return values[0], values[1]


def parse_crs(value: object) -> CRS:
    """Normalise a user CRS (EPSG code, 'EPSG:32633', WKT, PROJ string) or raise GridError."""
    try:
        return CRS(value if not isinstance(value, int) else f"EPSG:{value}")  # type: ignore[arg-type]
    except Exception as exc:  # pyproj raises several types for bad input
        raise GridError(f"CRS {value!r} is not understood; use e.g. 'EPSG:32633'") from exc


def check_budget(grid: GeoBox, max_pixels: int | None = None) -> GeoBox:
    """Refuse grids larger than the pixel budget, naming the size and how to override."""
    budget = pixel_budget(max_pixels)
    height, width = grid.shape
    if height <= 0 or width <= 0:
        raise GridError(f"the grid is empty ({width} x {height} pixels)")
    if height * width > budget:
        raise GridError(
            f"the grid would be {width} x {height} = {height * width:,} pixels, above the "
            f"budget of {budget:,}; use a coarser --resolution, a smaller extent, or raise the "
            f"budget with --max-pixels / {MAX_PIXELS_ENV}"
        )
    return grid


def same_grid(a: GeoBox, b: GeoBox) -> bool:
    """Same CRS, shape and transform up to float noise, so pixels line up one to one.

    Each transform coefficient may differ by at most 1e-5 and by at most 1e-9 of its size:
    what a GeoTIFF round trip can introduce, never a real shift or a different pixel size.
    """
    if a.crs != b.crs or tuple(a.shape) != tuple(b.shape):
        return False
    return all(
        abs(x - y) <= min(1e-5, 1e-9 * max(1.0, abs(x), abs(y)))
        for x, y in zip(tuple(a.affine)[:6], tuple(b.affine)[:6], strict=True)
    )


def grid_like(path: str | Path, *, max_pixels: int | None = None) -> GeoBox:
    """The grid of an existing raster: same CRS, transform and shape."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"raster '{p}' not found")
    try:
        with rasterio.open(p) as src:
            if src.crs is None:
                raise GridError(
                    f"raster '{p}' has no CRS; assign one (e.g. gdal_edit -a_srs) first"
                )
            grid = GeoBox((src.height, src.width), src.transform, CRS(src.crs.to_wkt()))
    except RasterioIOError as exc:
        raise InputError(f"'{p}' is not a raster GDAL can read: {exc}") from exc
    return check_budget(grid, max_pixels)


def wrap_lon(lon: float) -> float:
    """The same meridian in [-180, 180): UTM zones are numbered on that range only."""
    return ((float(lon) + 180.0) % 360.0) - 180.0


def utm_crs(bounds: BoundingBox) -> CRS:
    """The local UTM zone of lon/lat ``bounds``, also when they run past +-180.

    Bounds of a layer that crosses the antimeridian are unwrapped (e.g. 179.9 .. 180.1); the
    zone is then the one of their centre, wrapped back (zone 60 or 1), never a zone picked
    from a bounding box that wraps around the whole globe.
    """
    left, bottom, right, top = bounds.bbox
    if left >= -180.0 and right <= 180.0:
        return CRS.utm(bounds)
    lat = min(max((bottom + top) / 2, -79.9), 83.9)  # UTM's latitude range
    return CRS.utm(wrap_lon((left + right) / 2), lat)


def choose_crs(
    layer_crs: CRS,
    bounds: BoundingBox,
    requested: object | None = None,
    *,
    keep_geographic: bool = False,
) -> CRS:
    """The output CRS: the user's choice, else the layer's, with degrees turned into UTM.

    ``bounds`` are lon/lat in ``layer_crs`` (when it is geographic); they may be unwrapped
    past +-180 for layers that cross the antimeridian.
    """
    if requested is not None:
        return parse_crs(requested)
    if layer_crs.geographic and not keep_geographic:
        return utm_crs(bounds)
    return layer_crs


def ground_pixel_size(grid: GeoBox) -> tuple[float, float]:
    """(x, y) size in metres of the centre pixel of a grid (for grids in degrees)."""
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    a = grid.affine
    height, width = grid.shape
    x, y = a * (width / 2, height / 2)
    _, _, gx = geod.inv(x, y, x + a.a, y + a.d)
    _, _, gy = geod.inv(x, y, x + a.b, y + a.e)
    return abs(float(gx)), abs(float(gy))


def _round_resolution(value: float) -> float:
    """Three significant digits: 2.54 m, not 2.5371...; a tidy, snappable pixel size."""
    digits = 2 - math.floor(math.log10(value))
    return round(value, max(digits, 0))


def grid_like_utm(
    path: str | Path,
    resolution: float | str | Sequence[float] | None = None,
    *,
    max_pixels: int | None = None,
) -> GeoBox:
    """The footprint of a raster on its local UTM zone, with square metre pixels.

    For a raster in degrees (whose pixels are not square on the ground): the resolution is
    the raster's ground resolution at its centre (the geometric mean of the x and y pixel
    sizes) unless given. A raster already in a projected CRS keeps its own grid.
    """
    like = grid_like(path, max_pixels=max_pixels)
    crs = like.crs
    if crs is None or not crs.geographic:
        return like
    if resolution is None:
        gx, gy = ground_pixel_size(like)
        resolution = _round_resolution(math.sqrt(gx * gy))
    footprint = like.boundingbox
    target = utm_crs(footprint)
    return grid_from_bounds(footprint.to_crs(target), resolution, crs=target, max_pixels=max_pixels)


def grid_from_bounds(
    bounds: BoundingBox,
    resolution: float | str | Sequence[float],
    *,
    crs: CRS | None = None,
    snap: bool = True,
    max_pixels: int | None = None,
) -> GeoBox:
    """A north-up grid covering ``bounds`` (already in ``crs``).

    With ``snap`` (the default) pixel edges fall on whole multiples of the resolution, so
    neighbouring jobs line up; without it the grid starts exactly at the top-left corner of
    ``bounds`` (useful to reproduce a raster defined by its bounding box).
    """
    res_x, res_y = parse_resolution(resolution)
    target = crs if crs is not None else bounds.crs
    if target is None:
        raise GridError("the extent has no CRS; pass crs=")
    if target.geographic and max(res_x, res_y) > 10:
        raise GridError(
            f"resolution {res_x} is in degrees for the geographic CRS {target}; that is over "
            "1000 km per pixel. Give the resolution in metres with a projected --crs"
        )
    left, bottom, right, top = bounds.bbox
    if not (right > left and top > bottom):
        raise GridError(f"the extent {bounds.bbox} is empty")
    # Predict the size before building it, so absurd grids fail fast without allocating.
    # This is a lower bound (snapping may add one row/column): it must never refuse a grid
    # that fits the budget; check_budget below applies the exact size.
    width = math.ceil((right - left) / res_x)
    height = math.ceil((top - bottom) / res_y)
    budget = pixel_budget(max_pixels)
    if width * height > budget:
        raise GridError(
            f"the grid would be about {width} x {height} = {width * height:,} pixels at resolution "
            f"{res_x:g}, above the budget of {budget:,}; use a coarser --resolution, a smaller "
            f"extent, or raise the budget with --max-pixels / {MAX_PIXELS_ENV}"
        )
    grid = GeoBox.from_bbox(
        (left, bottom, right, top), target, resolution=_odc_res(res_x, res_y), tight=not snap
    )
    return check_budget(grid, max_pixels)


def _odc_res(res_x: float, res_y: float) -> Resolution:
    return resxy_(res_x, -res_y)


METRES_PER_DEGREE = 111_320.0


def grid_gsd(transform: Affine, crs: object, height: int) -> float:
    """Ground sampling distance in metres of a north-up grid (approximate for degrees: the
    east-west pixel size at the grid's middle latitude, the smaller of the two sides)."""
    rx, ry = abs(float(transform.a)), abs(float(transform.e))
    geographic = getattr(crs, "is_geographic", None)  # rasterio CRS; odc CRS: .geographic
    if geographic is None:
        geographic = getattr(crs, "geographic", False)
    if crs is not None and geographic:
        lat = float(transform.f + transform.e * height / 2)
        ew = rx * METRES_PER_DEGREE * max(math.cos(math.radians(lat)), 1e-6)
        return float(min(ew, ry * METRES_PER_DEGREE))
    return min(rx, ry)
