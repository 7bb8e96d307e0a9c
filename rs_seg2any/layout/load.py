""":func:`load_layout`: validate a polygon layer in one streaming pass and fix its target grid.

Entities are numbered 1, 2, ... in feature order, then part order, so ids are identical
whichever window is read later.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from odc.geo import BoundingBox
from odc.geo.geobox import GeoBox

from ..errors import LayoutError
from ..limits import check, check_crs, check_resolution
from ..options import UNKNOWN_POLICIES
from ..progress import NullProgress, Progress
from ..taxonomy import Taxonomy, load_taxonomy
from .antimeridian import _check_continuous, _LonSpan, _past_180
from .model import Layout
from .prepare import UnknownClassPolicy, _Classifier, _prepare
from .report import LayoutReport, _fmt_counts
from .sources import _make_source, _where
from .target import _check_overlap, _resolve_grid


def load_layout(
    source: str | Path | gpd.GeoDataFrame,
    class_field: str,
    *,
    layer: str | None = None,
    description_field: str | None = None,
    priority_field: str | None = None,
    taxonomy: str | Path | Taxonomy = "worldcover",
    unknown_class: UnknownClassPolicy | str = "error",
    grid: GeoBox | None = None,
    like: str | Path | None = None,
    resolution: float | str | Sequence[float] | None = None,
    crs: object | None = None,
    extent: Sequence[float] | BoundingBox | None = None,
    extent_crs: object | None = None,
    snap: bool = True,
    keep_geographic: bool = False,
    like_utm: bool = False,
    layer_crs: object | None = None,
    max_pixels: int | None = None,
    progress: Progress | None = None,
) -> Layout:
    """Validate a polygon layer (a path or a GeoDataFrame) and fix its target grid.

    The grid is ``grid`` if given, else the grid of the raster ``like`` (with ``like_utm``: a
    raster in degrees is replaced by its footprint on the local UTM zone at its ground
    resolution, or at ``resolution``), else ``extent`` (default the layer's bounds) at
    ``resolution`` in ``crs`` (default: the layer's CRS, or the local UTM zone when the layer
    is in degrees and ``keep_geographic`` is false), snapped unless ``snap`` is false.

    ``extent`` is read in ``extent_crs``; by default in ``crs`` when that is given (the CRS
    the user named), else in the layer's CRS (the auto-picked UTM zone is never the user's
    frame of reference). A BoundingBox with a CRS carries its own. In degrees, xmin > xmax
    means an extent across the antimeridian (as GeoJSON bboxes do).

    A lon/lat layer crossing +-180 (parts on both sides, or coordinates past 180) is unwrapped
    into one continuous longitude range, so the grid covers exactly the data.
    """
    progress = progress or NullProgress()
    max_pixels = check("max_pixels", max_pixels)
    check_resolution(resolution)
    check_crs(layer_crs, "--layer-crs")
    if unknown_class not in UNKNOWN_POLICIES:
        raise LayoutError(
            f"unknown-class policy {unknown_class!r} is not one of {', '.join(UNKNOWN_POLICIES)}"
        )
    tax = taxonomy if isinstance(taxonomy, Taxonomy) else load_taxonomy(taxonomy)
    src = _make_source(source, class_field, layer, description_field, priority_field, layer_crs)
    classifier = _Classifier(tax, str(unknown_class))

    progress.stage("validate layer", src.count() or None)
    stats: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    non_polygon: list[int] = []
    fid_chunks: list[np.ndarray] = []
    count_chunks: list[np.ndarray] = []
    bounds = np.array([np.inf, np.inf, -np.inf, -np.inf])
    lon_span = _LonSpan() if src.crs.geographic else None
    total = 0
    for fids, classes, desc, pri, geoms in src.batches():
        total += len(fids)
        prepared = _prepare(fids, classes, desc, pri, geoms, classifier)
        stats.update(prepared.stats)
        unknown.update(prepared.unknown)
        non_polygon.extend(prepared.non_polygon_fids)
        fid_chunks.append(np.asarray(fids, dtype=np.int64))
        parts = np.zeros(len(fids), dtype=np.int64)
        if len(prepared.fid):
            np.add.at(parts, _positions(fids, prepared.fid), 1)
            b = shapely.total_bounds(prepared.geometry)
            if lon_span is not None:
                lon_span.add(shapely.bounds(prepared.geometry))
            bounds = np.concatenate([np.minimum(bounds[:2], b[:2]), np.maximum(bounds[2:], b[2:])])
        count_chunks.append(parts)
        progress.advance(len(fids))

    where_text = _where(src.spec)
    if total == 0:
        raise LayoutError(f"{where_text} is empty: it has no features")
    if non_polygon:
        sample = ", ".join(str(f) for f in non_polygon[:5])
        raise LayoutError(
            f"{where_text} has {len(non_polygon)} point or line geometries (feature ids {sample}"
            f"{', ...' if len(non_polygon) > 5 else ''}); polygons are expected. Buffer points "
            "and lines into polygons first, or filter them out"
        )
    if unknown and unknown_class == "error":
        raise LayoutError(
            f"{sum(unknown.values())} features of {where_text} have classes not in taxonomy "
            f"'{tax.name}': {_fmt_counts(dict(unknown))}. Known classes: "
            f"{', '.join(c.name for c in tax.classes)}. Add them (as aliases) to a taxonomy YAML, "
            "or use --unknown-class skip|background"
        )
    fids_all = np.concatenate(fid_chunks)
    parts_all = np.concatenate(count_chunks)
    entities = int(parts_all.sum())
    if entities == 0:
        raise LayoutError(
            f"{where_text} has no usable polygons ({total} features: {stats['null']} without "
            f"geometry, {stats['empty']} empty, {sum(unknown.values())} of unknown class)"
        )
    if entities >= 2**32 - 1:
        raise LayoutError(f"{where_text} has {entities} polygon parts; at most 4,294,967,294 fit")
    order = np.argsort(fids_all, kind="stable")
    first_ids = np.empty(len(fids_all), dtype=np.int64)
    first_ids[:] = np.cumsum(parts_all) - parts_all + 1  # feature order defines the numbering
    fid_sorted = fids_all[order]
    if len(fid_sorted) > 1 and np.any(fid_sorted[1:] == fid_sorted[:-1]):
        raise LayoutError(
            f"{where_text} has duplicate feature ids; re-save it (e.g. as GeoPackage)"
        )

    xmin, ymin, xmax, ymax = (float(v) for v in bounds)
    lon_west: float | None = None
    if lon_span is not None:
        west, east = lon_span.span()
        if lon_span.needs_unwrap(west, east):
            lon_west, xmin, xmax = west, west, east
    layer_bounds = BoundingBox(xmin, ymin, xmax, ymax, crs=src.crs)
    warnings: list[str] = []
    target = _resolve_grid(
        layer_bounds,
        src.crs,
        grid=grid,
        like=like,
        resolution=resolution,
        crs=crs,
        extent=extent,
        extent_crs=extent_crs,
        snap=snap,
        keep_geographic=keep_geographic,
        like_utm=like_utm,
        max_pixels=max_pixels,
        warnings=warnings,
    )
    if lon_west is not None:
        _check_continuous(layer_bounds, target)
    if lon_span is not None and lon_west is None and _past_180(target):
        lon_west = xmin  # a grid in degrees past +-180: parts must be put on its side
    _check_overlap(layer_bounds, target, where_text)
    report = LayoutReport(
        features=total,
        used_features=int(stats["used"]),
        entities=entities,
        null_geometries=int(stats["null"]),
        empty_geometries=int(stats["empty"]),
        repaired_geometries=int(stats["repaired"]),
        unknown_classes=dict(unknown),
        unknown_policy=str(unknown_class),
        crosses_antimeridian=lon_west is not None and xmax > 180.0,
        warnings=tuple(warnings),
    )
    layout = Layout(
        src, tax, target, report, classifier, fid_sorted, first_ids[order], layer_bounds, lon_west
    )
    outside, below = layout.pixel_census()
    layout.report = replace(report, outside_grid=outside, below_pixel=below)
    for line in layout.report.lines():
        if line.startswith("warning: "):
            progress.message(line, level="warning")
        else:
            progress.message(line)
    return layout


def _positions(fids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    order = np.argsort(fids, kind="stable")
    return order[np.searchsorted(fids[order], wanted)]
