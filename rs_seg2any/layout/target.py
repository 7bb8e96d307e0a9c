"""The target grid of a layout from the user's grid options (a GeoBox, a --like raster, or an
extent + resolution + CRS), and the check that the layer overlaps it.

The grid arithmetic itself (UTM zones, snapping, pixel budgets) lives in :mod:`rs_seg2any.grid`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from odc.geo import CRS, BoundingBox
from odc.geo.geobox import GeoBox

from ..errors import GridError, LayoutError
from ..grid import (
    check_budget,
    choose_crs,
    grid_from_bounds,
    grid_like,
    grid_like_utm,
    ground_pixel_size,
    parse_crs,
    utm_crs,
)


def _crs_of(grid: GeoBox) -> CRS:
    if grid.crs is None:
        raise GridError("the target grid has no CRS")
    return grid.crs


def _resolve_grid(
    layer_bounds: BoundingBox,
    layer_crs: CRS,
    *,
    grid: GeoBox | None,
    like: str | Path | None,
    resolution: float | str | Sequence[float] | None,
    crs: object | None,
    extent: Sequence[float] | BoundingBox | None,
    extent_crs: object | None,
    snap: bool,
    keep_geographic: bool,
    like_utm: bool,
    max_pixels: int | None,
    warnings: list[str],
) -> GeoBox:
    """The target grid from the grid options; caveats the user should see go to ``warnings``."""
    if grid is not None:
        _crs_of(grid)  # a grid without CRS cannot be matched with the layer: say so
        return check_budget(grid, max_pixels)
    if like_utm and like is None:
        raise GridError("--like-utm renders on the UTM zone of a --like raster; give --like")
    if like is not None:
        if extent is not None:
            raise GridError("--extent and --like both define the grid; give only one of them")
        if like_utm:
            return grid_like_utm(like, resolution, max_pixels=max_pixels)
        found = grid_like(like, max_pixels=max_pixels)
        if found.crs is not None and found.crs.geographic:
            warnings.append(_degree_pixels_warning(like, found))
        return found
    if resolution is None:
        raise LayoutError(
            "the target grid is undefined: give a resolution (--resolution) or --like RASTER"
        )
    ext = _extent_bounds(extent, extent_crs, crs, layer_crs) if extent is not None else None
    zone_bounds = layer_bounds
    if ext is not None and crs is None and layer_crs.geographic:
        zone_bounds = ext if ext.crs == layer_crs else _reproject(ext, layer_crs)
    target_crs = choose_crs(layer_crs, zone_bounds, crs, keep_geographic=keep_geographic)
    if ext is not None:
        bounds = ext if ext.crs == target_crs else _reproject(ext, target_crs)
    elif target_crs == layer_crs:
        bounds = layer_bounds
    else:
        bounds = _reproject(layer_bounds, target_crs)
    return grid_from_bounds(bounds, resolution, crs=target_crs, snap=snap, max_pixels=max_pixels)


def _degree_pixels_warning(like: str | Path, grid: GeoBox) -> str:
    """The one line that tells a user their --like raster gives non-square ground pixels."""
    gx, gy = ground_pixel_size(grid)
    zone = utm_crs(grid.boundingbox)
    return (
        f"raster '{like}' is in degrees ({_crs_text(grid.crs)}): its pixels are {gx:.3g} x "
        f"{gy:.3g} m on the ground, not square; pass --like-utm (like_utm=True) to render on "
        f"{_crs_text(zone)} at its ground resolution instead"
    )


def _extent_bounds(
    extent: Sequence[float] | BoundingBox,
    extent_crs: object | None,
    crs: object | None,
    layer_crs: CRS,
) -> BoundingBox:
    """The user's extent with its CRS: ``extent_crs``, else the BoundingBox's own CRS, else
    ``crs`` when the user named one, else the layer's."""
    own = extent.crs if isinstance(extent, BoundingBox) else None
    values = extent.bbox if isinstance(extent, BoundingBox) else tuple(extent)
    if len(values) != 4:
        raise GridError(f"extent {extent!r} must be xmin, ymin, xmax, ymax")
    try:
        xmin, ymin, xmax, ymax = (float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise GridError(f"extent {extent!r} must be four numbers") from exc
    if extent_crs is not None:
        ext_crs = parse_crs(extent_crs)
    elif own is not None:
        ext_crs = own
    elif crs is not None:
        ext_crs = parse_crs(crs)
    else:
        ext_crs = layer_crs
    if ext_crs.geographic and xmin > xmax:
        xmax += 360.0  # across the antimeridian, e.g. 179.5,-17,-179.5,-16
    if not (xmax > xmin and ymax > ymin):
        raise GridError(f"the extent {(xmin, ymin, xmax, ymax)} is empty; give xmin,ymin,xmax,ymax")
    if ext_crs.geographic and not (ymin >= -90.0 and ymax <= 90.0):
        raise GridError(
            f"the extent {(xmin, ymin, xmax, ymax)} has latitudes beyond +-90 in "
            f"{_crs_text(ext_crs)}; is it in another CRS? say which with --extent-crs"
        )
    return BoundingBox(xmin, ymin, xmax, ymax, crs=ext_crs)


def _reproject(bounds: BoundingBox, crs: CRS) -> BoundingBox:
    """``bounds`` in ``crs``, or a GridError naming both CRSs when PROJ cannot map them."""
    try:
        out = bounds.to_crs(crs)
    except Exception as exc:  # pyproj raises several types for points it cannot project
        raise GridError(
            f"the extent {tuple(round(v, 6) for v in bounds.bbox)} in {_crs_text(bounds.crs)} "
            f"cannot be expressed in {_crs_text(crs)}: {exc}"
        ) from exc
    if not all(np.isfinite(v) for v in out.bbox):
        raise GridError(
            f"the extent {tuple(round(v, 6) for v in bounds.bbox)} in {_crs_text(bounds.crs)} "
            f"lies outside the area of {_crs_text(crs)}; check --extent-crs"
        )
    return out


def _check_overlap(layer_bounds: BoundingBox, grid: GeoBox, where: str) -> None:
    grid_bounds = grid.boundingbox
    candidates = [layer_bounds]
    lcrs = layer_bounds.crs
    if grid.crs is not None and grid.crs.geographic and lcrs is not None and lcrs.geographic:
        west, south, east, north = layer_bounds.bbox  # the grid may be on the other side of 180
        candidates += [
            BoundingBox(west + dx, south, east + dx, north, crs=lcrs) for dx in (-360.0, 360.0)
        ]
    for cand in candidates:
        try:
            grid_crs = _crs_of(grid)
            lb = cand if cand.crs == grid_crs else cand.to_crs(grid_crs)
        except Exception:  # a transform failure means the two cannot overlap in practice
            continue
        if (
            lb.left < grid_bounds.right
            and lb.right > grid_bounds.left
            and lb.bottom < grid_bounds.top
            and lb.top > grid_bounds.bottom
        ):
            return
    raise LayoutError(
        f"{where} (extent {tuple(round(v, 3) for v in layer_bounds.bbox)} in "
        f"{_crs_text(layer_bounds.crs)}) lies outside the requested grid (extent "
        f"{tuple(round(v, 3) for v in grid_bounds.bbox)} in {_crs_text(grid.crs)}); check "
        "the CRS of both inputs (--extent is read in --extent-crs, by default the layer's CRS "
        "or --crs when given)"
    )


def _crs_text(crs: CRS | None) -> str:
    """'EPSG:32633' where the CRS has a code, else its WKT: short enough for a message."""
    if crs is None:
        return "no CRS"
    return f"EPSG:{crs.epsg}" if crs.epsg is not None else str(crs)
