"""Layouts: a polygon layer + a class field + a taxonomy + a target grid, validated once.

``load_layout`` reads the layer in one streaming pass to validate everything a user can get
wrong (file, layer, fields, classes, CRS, geometry types, empty or invalid geometries, extent)
and to number entities. It keeps no geometries: ``Layout.features(bounds)`` re-reads only the
polygons of one window, so the memory of a tiled job does not grow with the area.
In-memory GeoDataFrames (notebooks) go through the same preparation.

Entities. Every polygon part (after repair) is one entity with a global instance id
(1, 2, ...) in feature order, then part order. Ids are identical whichever window is read.

Overlaps. Where polygons overlap, the one drawn last wins. Parts are drawn in ascending
(priority, -area, instance id): the class priority from the taxonomy (or the per-polygon
``priority_field``), then larger parts first so that smaller ones (a building inside a land
parcel, an island in a lake) stay visible, then feature order. The order of any two parts is a
property of the parts alone, so every tile of a job agrees with the whole.

Antimeridian. A lon/lat layer whose parts straddle +-180 (pieces on both sides, or
coordinates past 180) is unwrapped into one continuous longitude range (east may exceed 180):
the UTM zone is that of its centre, the grid covers exactly the data, and window reads query
both sides. A projected grid CRS cut inside that range (Web Mercator) is refused.

Entities without pixels. Every entity is listed in entities.csv; those that cannot have a
pixel on the grid (outside it, or smaller/thinner than a pixel under the centre rule) are
counted in the report (layout.json) and warned about. Parts hidden under parts drawn above
them are the overlap rule at work and are not counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from odc.geo import CRS, BoundingBox
from odc.geo.geobox import GeoBox
from pyogrio.errors import DataLayerError, DataSourceError

from ..errors import GridError, InputError, LayoutError
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
from ..limits import check, check_crs, check_resolution
from ..options import UNKNOWN_POLICIES
from ..progress import NullProgress, Progress
from ..taxonomy import BACKGROUND_ID, Taxonomy, load_taxonomy

UnknownClassPolicy = Literal["error", "skip", "background"]
BACKGROUND_DESCRIPTION = "unlabeled area"
PARQUET_SUFFIXES = (".parquet", ".geoparquet")
_POLYGONAL = {"Polygon", "MultiPolygon"}
_BATCH = 20_000


@dataclass(frozen=True)
class LayoutReport:
    """What validation found: counts a user should see before trusting the outputs."""

    features: int
    used_features: int
    entities: int
    null_geometries: int = 0
    empty_geometries: int = 0
    repaired_geometries: int = 0
    unknown_classes: dict[str, int] = field(default_factory=dict)
    unknown_policy: str = "error"
    outside_grid: int = 0
    below_pixel: int = 0
    crosses_antimeridian: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def entities_without_pixels(self) -> int:
        """Entities listed in entities.csv that cannot have a pixel in label.tif."""
        return self.outside_grid + self.below_pixel

    def lines(self) -> list[str]:
        """Human-readable summary, one fact per line (printed by the CLI)."""
        out = [
            f"{self.features} features read, {self.used_features} used, "
            f"{self.entities} entities (polygon parts)"
        ]
        if self.null_geometries:
            out.append(f"{self.null_geometries} features without geometry skipped")
        if self.empty_geometries:
            out.append(f"{self.empty_geometries} empty or zero-area geometries skipped")
        if self.repaired_geometries:
            out.append(f"{self.repaired_geometries} invalid geometries repaired with make_valid")
        if self.unknown_classes:
            total = sum(self.unknown_classes.values())
            what = "skipped" if self.unknown_policy == "skip" else "drawn as class 0 (unlabeled)"
            out.append(
                f"{total} features of unknown class {what}: " + _fmt_counts(self.unknown_classes)
            )
        if self.crosses_antimeridian:
            out.append("the layer crosses the antimeridian: longitudes unwrapped past +-180")
        return out + [f"warning: {w}" for w in self.warning_lines()]

    def warning_lines(self) -> list[str]:
        """What may surprise a user: entities without pixels and grid caveats."""
        out = []
        if self.outside_grid:
            out.append(
                f"{self.outside_grid} of {self.entities} entities lie outside the grid and have "
                "no pixels (they stay in entities.csv); widen --extent to include them"
            )
        if self.below_pixel:
            out.append(
                f"{self.below_pixel} of {self.entities} entities are smaller or thinner than a "
                "pixel (no pixel centre inside) and have no pixels (they stay in entities.csv); "
                "use a finer --resolution to see them"
            )
        return out + list(self.warnings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "used_features": self.used_features,
            "entities": self.entities,
            "null_geometries": self.null_geometries,
            "empty_geometries": self.empty_geometries,
            "repaired_geometries": self.repaired_geometries,
            "unknown_classes": dict(sorted(self.unknown_classes.items())),
            "unknown_policy": self.unknown_policy,
            "entities_without_pixels": {
                "total": self.entities_without_pixels,
                "outside_grid": self.outside_grid,
                "smaller_than_a_pixel": self.below_pixel,
            },
            "crosses_antimeridian": self.crosses_antimeridian,
            "warnings": self.warning_lines(),
        }


@dataclass(frozen=True)
class LayerSpec:
    """Which layer and which fields to read; ``path`` is None for an in-memory frame."""

    path: Path | None
    layer: str | None
    class_field: str
    description_field: str | None = None
    priority_field: str | None = None

    def columns(self) -> list[str]:
        cols = [self.class_field]
        for extra in (self.description_field, self.priority_field):
            if extra and extra not in cols:
                cols.append(extra)
        return cols

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path) if self.path else None,
            "layer": self.layer,
            "class_field": self.class_field,
            "description_field": self.description_field,
            "priority_field": self.priority_field,
        }


def _fmt_counts(counts: dict[str, int], limit: int = 12) -> str:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{k!r} ({v})" for k, v in items[:limit])
    return text + (f", ... {len(items) - limit} more" if len(items) > limit else "")


# --------------------------------------------------------------------------------------------
# Opening the layer


@dataclass(frozen=True)
class _LayerInfo:
    layer: str | None
    crs: CRS | None
    fields: tuple[str, ...]
    geometry_type: str | None
    count: int


def _open_file_layer(path: Path, layer: str | None) -> _LayerInfo:
    if not path.exists():
        raise InputError(f"vector file '{path}' not found")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        raise AssertionError("parquet is read in memory")  # pragma: no cover - routed earlier
    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(path)]
    except (DataSourceError, OSError) as exc:
        raise InputError(f"'{path}' is not a vector file GDAL can read: {exc}") from exc
    if not layers:
        raise InputError(f"'{path}' contains no vector layers")
    if layer is None:
        if len(layers) > 1:
            raise InputError(
                f"'{path}' has {len(layers)} layers ({', '.join(layers)}); choose one with --layer"
            )
        layer = layers[0]
    elif layer not in layers:
        raise InputError(f"layer '{layer}' not found in '{path}'; layers are: {', '.join(layers)}")
    try:
        info = pyogrio.read_info(path, layer=layer, force_feature_count=True)
    except (DataSourceError, DataLayerError) as exc:
        raise InputError(f"cannot read layer '{layer}' of '{path}': {exc}") from exc
    crs = CRS(info["crs"]) if info.get("crs") else None
    return _LayerInfo(
        layer=layer,
        crs=crs,
        fields=tuple(str(f) for f in info["fields"]),
        geometry_type=info.get("geometry_type"),
        count=int(info.get("features") or 0),
    )


def _check_fields(spec: LayerSpec, fields: Sequence[str], where: str) -> None:
    for role, name in (
        ("class field", spec.class_field),
        ("description field", spec.description_field),
        ("priority field", spec.priority_field),
    ):
        if name and name not in fields:
            hint = [f for f in fields if f.casefold() == name.casefold()]
            extra = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise LayoutError(
                f"{role} '{name}' not found in {where}{extra}; fields are: "
                f"{', '.join(fields) if fields else '(none)'}"
            )


# --------------------------------------------------------------------------------------------
# Preparing features: the one function both the validation pass and window reads use


@dataclass
class _Prepared:
    """Polygon parts of one batch, with everything rasterisation needs, in source order."""

    fid: np.ndarray  # int64, per part
    part: np.ndarray  # int32, index of the part within its feature
    class_id: np.ndarray  # uint8
    priority: np.ndarray  # float64
    description: list[str]
    geometry: np.ndarray  # shapely Polygons
    stats: Counter[str]
    unknown: Counter[str]
    non_polygon_fids: list[int]


class _Classifier:
    """Maps raw class values to ids under the unknown-class policy, caching per value."""

    def __init__(self, taxonomy: Taxonomy, policy: str) -> None:
        self.taxonomy = taxonomy
        self.policy = policy
        self._cache: dict[Any, int | None] = {}
        self.min_priority = min(c.priority for c in taxonomy.classes) - 1
        self._priority = {c.id: float(c.priority) for c in taxonomy.classes}

    def class_id(self, value: Any) -> int | None:
        """Id for a value; BACKGROUND_ID for unknowns drawn as background; None to skip."""
        key = value if not isinstance(value, float) or not np.isnan(value) else None
        if key not in self._cache:
            self._cache[key] = self.taxonomy.resolve(key)
        found = self._cache[key]
        if found is None and self.policy == "background":
            return BACKGROUND_ID
        return found

    def priority(self, class_id: int) -> float:
        return self._priority.get(class_id, float(self.min_priority))


def _polygon_parts(geom: Any) -> list[Any]:
    if geom.geom_type == "Polygon":  # the common case, without get_parts (2/3 of a pass)
        return [geom] if not geom.is_empty and geom.area > 0 else []
    parts = shapely.get_parts(geom)
    out: list[Any] = []
    for p in parts:
        kind = p.geom_type
        if kind == "Polygon":
            if not p.is_empty and p.area > 0:
                out.append(p)
        elif kind in ("MultiPolygon", "GeometryCollection"):
            out.extend(_polygon_parts(p))
    return out


def _prepare(
    fids: np.ndarray,
    classes: Sequence[Any],
    descriptions: Sequence[Any] | None,
    priorities: Sequence[Any] | None,
    geoms: np.ndarray,
    classifier: _Classifier,
) -> _Prepared:
    stats: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    non_polygon: list[int] = []
    out_fid: list[int] = []
    out_part: list[int] = []
    out_cls: list[int] = []
    out_pri: list[float] = []
    out_desc: list[str] = []
    out_geom: list[Any] = []
    valid = shapely.is_valid(geoms)
    taxonomy = classifier.taxonomy
    for i in range(len(fids)):
        geom = geoms[i]
        if geom is None:
            stats["null"] += 1
            continue
        if shapely.is_empty(geom):
            stats["empty"] += 1
            continue
        kind = geom.geom_type
        if kind not in _POLYGONAL and kind != "GeometryCollection":
            non_polygon.append(int(fids[i]))
            continue
        value = classes[i]
        cid = classifier.class_id(value)
        if cid is None or cid == BACKGROUND_ID:
            unknown[_value_text(value)] += 1
            if cid is None:
                continue
        if not valid[i]:
            geom = shapely.make_valid(geom)
            stats["repaired"] += 1
        parts = _polygon_parts(geom)
        if not parts:
            if kind == "GeometryCollection":
                non_polygon.append(int(fids[i]))
            else:
                stats["empty"] += 1
            continue
        stats["used"] += 1
        desc = _description(descriptions[i] if descriptions is not None else None)
        if not desc:
            desc = (
                taxonomy.by_id(cid).description if cid != BACKGROUND_ID else BACKGROUND_DESCRIPTION
            )
        pri = classifier.priority(cid)
        if priorities is not None:
            pri = _priority_value(priorities[i], pri)
        for j, part in enumerate(parts):
            out_fid.append(int(fids[i]))
            out_part.append(j)
            out_cls.append(cid)
            out_pri.append(pri)
            out_desc.append(desc)
            out_geom.append(part)
    return _Prepared(
        fid=np.asarray(out_fid, dtype=np.int64),
        part=np.asarray(out_part, dtype=np.int32),
        class_id=np.asarray(out_cls, dtype=np.uint8),
        priority=np.asarray(out_pri, dtype=np.float64),
        description=out_desc,
        geometry=np.asarray(out_geom, dtype=object),
        stats=stats,
        unknown=unknown,
        non_polygon_fids=non_polygon,
    )


def _value_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "<null>"
    return str(value)


def _description(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def _priority_value(value: Any, default: float) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return default if np.isnan(out) else out


# --------------------------------------------------------------------------------------------
# Longitudes: layers in degrees that cross the antimeridian


class _LonSpan:
    """Which longitudes a lon/lat layer covers, gathered batch by batch in 1-degree bins.

    A layer that crosses +-180 (parts on both sides, or coordinates past 180) has one
    continuous longitude range only once its western parts are shifted by 360 degrees. The
    range is the circle minus its largest empty gap, so it is found in O(360) memory.
    """

    def __init__(self) -> None:
        self._diff = np.zeros(721, dtype=np.int64)  # bins 0..719: a range may run past 360
        self._min_start = np.full(360, np.inf)
        self._max_end = np.full(360, -np.inf)
        self.raw = (np.inf, -np.inf)

    def add(self, bounds: np.ndarray) -> None:
        """Record the parts' (n, 4) bounds."""
        if not len(bounds):
            return
        minx, maxx = bounds[:, 0], bounds[:, 2]
        self.raw = (min(self.raw[0], float(minx.min())), max(self.raw[1], float(maxx.max())))
        start = np.mod(minx + 180.0, 360.0) - 180.0
        end = start + np.minimum(maxx - minx, 360.0)
        b0 = np.clip(np.floor(start + 180.0).astype(np.int64), 0, 359)
        b1 = np.clip(np.floor(end + 180.0).astype(np.int64), b0, b0 + 359)
        np.add.at(self._diff, b0, 1)
        np.add.at(self._diff, b1 + 1, -1)
        np.minimum.at(self._min_start, b0, start)
        np.maximum.at(self._max_end, b0, end)

    def span(self) -> tuple[float, float]:
        """(west, east) of the continuous range holding all parts; east may exceed 180."""
        counts = np.cumsum(self._diff)[:720]
        occupied = (counts[:360] + counts[360:]) > 0
        cut = 0
        if not occupied.all():
            cut = _after_largest_gap(occupied)
        shift = np.where(np.arange(360) < cut, 360.0, 0.0)
        used = np.isfinite(self._min_start)
        west = float((self._min_start + shift)[used].min())
        east = float((self._max_end + shift)[used].max())
        return west, east

    def needs_unwrap(self, west: float, east: float) -> bool:
        """True when the raw longitudes are not already one range inside [-180, 180]."""
        return east > 180.0 or self.raw[0] < -180.0 or self.raw[1] > 180.0


def _after_largest_gap(occupied: np.ndarray) -> int:
    """Index of the first occupied bin after the longest circular run of empty bins."""
    n = len(occupied)
    best_len, best_end = -1, 0
    run = 0
    for i in range(2 * n):  # twice round the circle: runs that wrap are measured whole
        if occupied[i % n]:
            run = 0
            continue
        run += 1
        if run > best_len and run <= n:
            best_len, best_end = run, i
    return (best_end + 1) % n


LON_EPS = 1e-9


def _unwrap_parts(geoms: np.ndarray, west: float) -> np.ndarray:
    """Parts shifted by whole turns so each starts in [west, west + 360): one continuous
    longitude range (x beyond 180 where needed), which any projection then maps correctly."""
    if not len(geoms):
        return geoms
    minx = shapely.bounds(geoms)[:, 0]
    turns = np.floor((minx - (west - LON_EPS)) / 360.0)
    out = geoms.copy()
    for turn in np.unique(turns[turns != 0]):  # one vectorised call per distinct shift
        pick = turns == turn
        offset = np.array([-360.0 * float(turn), 0.0])
        out[pick] = shapely.transform(geoms[pick], lambda xy, d=offset: xy + d)
    return out


def _lon_window(bbox: tuple[float, float, float, float], crs: CRS) -> list[BoundingBox]:
    """A lon/lat window and its copies one turn east and west: a layer file holds each part
    at its own longitudes (-179.9 or 180.1), so all three must be queried."""
    left, bottom, right, top = bbox
    return [BoundingBox(left + dx, bottom, right + dx, top, crs=crs) for dx in (-360.0, 0.0, 360.0)]


def _concat_batches(batches: list[_Batch]) -> _Batch:
    """One batch from several window reads, each feature once, in feature-id order."""
    fids = np.concatenate([b[0] for b in batches])
    _, first = np.unique(fids, return_index=True)
    keep = np.sort(first)
    keep = keep[np.argsort(fids[keep], kind="stable")]

    def pick(values: list[list[Any] | None]) -> list[Any] | None:
        if values[0] is None:
            return None
        flat = [v for vs in values for v in (vs or [])]
        return [flat[i] for i in keep]

    classes = pick([b[1] for b in batches])
    geoms = np.concatenate([b[4] for b in batches])[keep]
    descriptions = pick([b[2] for b in batches])
    priorities = pick([b[3] for b in batches])
    return fids[keep], classes or [], descriptions, priorities, geoms


# --------------------------------------------------------------------------------------------
# Sources: a file read in batches / by window, or an in-memory frame


_Batch = tuple[np.ndarray, list[Any], list[Any] | None, list[Any] | None, np.ndarray]
"""fids, class values, descriptions, priorities, shapely geometries."""


class _Source:
    spec: LayerSpec
    crs: CRS

    def batches(
        self,
    ) -> Iterator[_Batch]:
        raise NotImplementedError

    def window(self, bounds: BoundingBox) -> _Batch:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError


def _columns_of(
    frame: pd.DataFrame, spec: LayerSpec
) -> tuple[list[Any], list[Any] | None, list[Any] | None]:
    classes = frame[spec.class_field].tolist()
    desc = frame[spec.description_field].tolist() if spec.description_field else None
    pri = frame[spec.priority_field].tolist() if spec.priority_field else None
    return classes, desc, pri


class _FileSource(_Source):
    def __init__(self, spec: LayerSpec, crs: CRS, count: int) -> None:
        self.spec, self.crs, self._count = spec, crs, count

    def count(self) -> int:
        return self._count

    def batches(
        self,
    ) -> Iterator[_Batch]:
        spec = self.spec
        with pyogrio.open_arrow(
            spec.path,  # type: ignore[arg-type]
            layer=spec.layer,
            columns=spec.columns(),
            return_fids=True,
            batch_size=_BATCH,
            use_pyarrow=True,
        ) as (meta, reader):
            geom_name = meta.get("geometry_name") or "wkb_geometry"
            for batch in reader:
                table = batch.to_pandas()
                gcol = geom_name if geom_name in table.columns else table.columns[-1]
                fid_col = "OGC_FID" if "OGC_FID" in table.columns else "fid"
                fids = np.asarray(table[fid_col], dtype=np.int64)
                geoms = shapely.from_wkb(table[gcol].to_numpy(), on_invalid="ignore")
                classes, desc, pri = _columns_of(table, spec)
                yield fids, classes, desc, pri, geoms

    def window(self, bounds: BoundingBox) -> _Batch:
        spec = self.spec
        frame = pyogrio.read_dataframe(
            spec.path,  # type: ignore[arg-type]
            layer=spec.layer,
            columns=spec.columns(),
            bbox=tuple(bounds.bbox),
            fid_as_index=True,
            on_invalid="ignore",
        )
        classes, desc, pri = _columns_of(frame, spec)
        fids = np.asarray(frame.index, dtype=np.int64)
        return fids, classes, desc, pri, np.asarray(frame.geometry.values, dtype=object)


class _FrameSource(_Source):
    def __init__(self, frame: gpd.GeoDataFrame, spec: LayerSpec, crs: CRS) -> None:
        self.spec, self.crs = spec, crs
        self._frame = frame.reset_index(drop=True)
        self._fids = np.arange(len(self._frame), dtype=np.int64)

    def count(self) -> int:
        return len(self._frame)

    def batches(
        self,
    ) -> Iterator[_Batch]:
        for start in range(0, len(self._frame), _BATCH):
            part = self._frame.iloc[start : start + _BATCH]
            classes, desc, pri = _columns_of(part, self.spec)
            geoms = np.asarray(part.geometry.values, dtype=object)
            yield self._fids[start : start + _BATCH], classes, desc, pri, geoms

    def window(self, bounds: BoundingBox) -> _Batch:
        idx = np.sort(self._frame.sindex.query(shapely.box(*bounds.bbox)))
        part = self._frame.iloc[idx]
        classes, desc, pri = _columns_of(part, self.spec)
        return self._fids[idx], classes, desc, pri, np.asarray(part.geometry.values, dtype=object)


# --------------------------------------------------------------------------------------------
# The layout


class Layout:
    """A validated layer on a target grid. Cheap to keep: holds ids and counts, not geometries."""

    def __init__(
        self,
        source: _Source,
        taxonomy: Taxonomy,
        grid: GeoBox,
        report: LayoutReport,
        classifier: _Classifier,
        fid_order: np.ndarray,
        first_ids: np.ndarray,
        layer_bounds: BoundingBox,
        lon_west: float | None = None,
    ) -> None:
        self._source = source
        self.taxonomy = taxonomy
        self.grid = grid
        self.report = report
        self._classifier = classifier
        self._fid_order = fid_order  # sorted fids
        self._first_ids = first_ids  # first instance id of each fid (same order)
        self.layer_bounds = layer_bounds
        # West edge of the unwrapped longitude range of a layer crossing +-180, else None
        self.lon_west = lon_west

    @property
    def spec(self) -> LayerSpec:
        return self._source.spec

    @property
    def layer_crs(self) -> CRS:
        return self._source.crs

    @property
    def entity_count(self) -> int:
        return self.report.entities

    def with_grid(self, grid: GeoBox) -> Layout:
        """The same layout on another grid (e.g. a sub-window or a scenario's base image).

        Entities without pixels are counted again: they depend on the grid.
        """
        out = Layout(
            self._source,
            self.taxonomy,
            grid,
            self.report,
            self._classifier,
            self._fid_order,
            self._first_ids,
            self.layer_bounds,
            self.lon_west,
        )
        outside, below = out.pixel_census()
        out.report = replace(self.report, outside_grid=outside, below_pixel=below)
        return out

    def describe(self) -> dict[str, Any]:
        """Plain description for provenance tags and job parameters."""
        return {
            "layer": self.spec.to_dict(),
            "taxonomy": self.taxonomy.name,
            "unknown_class": self._classifier.policy,
            "layer_crs": str(self.layer_crs),
            "entities": self.report.entities,
        }

    def features(self, bounds: BoundingBox | None = None) -> gpd.GeoDataFrame:
        """Prepared polygon parts in the grid CRS, in drawing order, for a window (or all).

        Columns: instance_id (uint32), class_id (uint8), priority, area, description,
        source_fid, part, geometry. ``bounds`` are in the grid CRS.
        """
        grid_crs = _crs_of(self.grid)
        if bounds is None:
            frames = list(self.iter_batches())
        else:
            prepared = _prepare(*self._read_window(bounds), self._classifier)
            frames = [self._frame_of(prepared)] if len(prepared.fid) else []
        if not frames:
            return _empty_features(grid_crs)
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        out = self._to_grid(frame)
        out["area"] = shapely.area(out.geometry.values)
        out = out.sort_values(["priority", "area", "instance_id"], ascending=[True, False, True])
        return out.reset_index(drop=True)

    def iter_batches(self) -> Iterator[pd.DataFrame]:
        """All prepared parts in instance-id order, batch by batch, in the LAYER's CRS.

        For streaming consumers (entity tables, exports) whose memory must not grow with the
        layer.
        """
        for batch in self._source.batches():
            prepared = _prepare(*batch, self._classifier)
            if len(prepared.fid):
                yield self._frame_of(prepared)

    def _read_window(self, bounds: BoundingBox) -> _Batch:
        """The source's features near ``bounds`` (grid CRS), whatever side of +-180 they are
        stored on."""
        grid_crs = _crs_of(self.grid)
        if not self.layer_crs.geographic or (self.lon_west is None and grid_crs == self.layer_crs):
            return self._source.window(_to_layer_bounds(bounds, grid_crs, self.layer_crs))
        bbox = _unwrapped_layer_bbox(bounds, grid_crs, self.layer_crs)
        if self.lon_west is None and bbox[0] >= -180.0 and bbox[2] <= 180.0:
            # a window that does not reach +-180: one plain read, as for any layer
            return self._source.window(_to_layer_bounds(bounds, grid_crs, self.layer_crs))
        # a window across +-180 (even over a layer that stays on one side of it): to_crs
        # would wrap it into a box round the world that misses the parts near 180
        windows = _lon_window(bbox, self.layer_crs)
        return _concat_batches([self._source.window(w) for w in windows])

    def _to_grid(self, frame: pd.DataFrame) -> gpd.GeoDataFrame:
        """Prepared parts (layer CRS) in the grid CRS; on a grid in degrees, parts are put on
        the grid's side of +-180."""
        grid_crs = _crs_of(self.grid)
        out = gpd.GeoDataFrame(frame, geometry="geometry", crs=self.layer_crs.to_wkt())
        if self.layer_crs != grid_crs:
            out = out.to_crs(grid_crs.to_wkt())
        if self.lon_west is not None and grid_crs.geographic:
            left, _, right, _ = self.grid.boundingbox.bbox
            geoms = np.asarray(out.geometry.values, dtype=object)
            out["geometry"] = _unwrap_parts(geoms, (left + right) / 2 - 180.0)
            out = out.set_geometry("geometry", crs=grid_crs.to_wkt())
        return out

    def pixel_census(self) -> tuple[int, int]:
        """(entities outside the grid, entities with no pixel centre inside) for this grid.

        One streaming pass over the layer. Entities hidden under others drawn above them are
        not counted: that is the documented overlap rule, not a loss.
        """
        outside = below = 0
        for frame in self.iter_batches():
            geoms = np.asarray(self._to_grid(frame).geometry.values, dtype=object)
            out_mask, below_mask = _pixel_misses(geoms, self.grid)
            outside += int(out_mask.sum())
            below += int(below_mask.sum())
        return outside, below

    def _frame_of(self, prepared: _Prepared) -> pd.DataFrame:
        pos = np.searchsorted(self._fid_order, prepared.fid)
        pos = np.clip(pos, 0, len(self._fid_order) - 1)
        if not np.array_equal(self._fid_order[pos], prepared.fid):
            raise LayoutError(
                "the layer changed since it was validated (unknown feature ids); run the job again"
            )
        ids = self._first_ids[pos] + prepared.part
        return pd.DataFrame(
            {
                "instance_id": ids.astype(np.uint32),
                "class_id": prepared.class_id,
                "priority": prepared.priority,
                "description": prepared.description,
                "source_fid": prepared.fid,
                "part": prepared.part,
                "geometry": (
                    prepared.geometry
                    if self.lon_west is None
                    else _unwrap_parts(prepared.geometry, self.lon_west)
                ),
            }
        )


def _crs_of(grid: GeoBox) -> CRS:
    if grid.crs is None:
        raise GridError("the target grid has no CRS")
    return grid.crs


def _empty_features(crs: CRS) -> gpd.GeoDataFrame:
    frame = pd.DataFrame(
        {
            "instance_id": np.zeros(0, np.uint32),
            "class_id": np.zeros(0, np.uint8),
            "priority": np.zeros(0),
            "description": np.zeros(0, dtype=object),
            "source_fid": np.zeros(0, np.int64),
            "part": np.zeros(0, np.int32),
            "geometry": np.zeros(0, dtype=object),
            "area": np.zeros(0),
        }
    )
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=crs.to_wkt())


CENSUS_POINTS = 4096
"""Parts whose bounding box holds more pixel centres than this are taken to have pixels:
testing every centre of large parts would cost a second rasterisation."""


def _pixel_misses(geoms: np.ndarray, grid: GeoBox) -> tuple[np.ndarray, np.ndarray]:
    """Per part: (lies outside the grid, covers no pixel centre of it), by the GDAL centre
    rule the rasteriser uses."""
    n = len(geoms)
    if n == 0:
        return np.zeros(0, bool), np.zeros(0, bool)
    b = shapely.bounds(geoms)
    gl, gb, gr, gt = grid.boundingbox.bbox
    outside = (b[:, 2] <= gl) | (b[:, 0] >= gr) | (b[:, 3] <= gb) | (b[:, 1] >= gt)
    below = np.zeros(n, dtype=bool)
    a = grid.affine
    if a.b != 0 or a.d != 0:  # a rotated grid: only the outside test applies
        return outside, below
    height, width = grid.shape
    c0 = np.clip(np.ceil((b[:, 0] - a.c) / a.a - 0.5), 0, width)
    c1 = np.clip(np.floor((b[:, 2] - a.c) / a.a - 0.5), -1, width - 1)
    r0 = np.clip(np.ceil((b[:, 3] - a.f) / a.e - 0.5), 0, height)
    r1 = np.clip(np.floor((b[:, 1] - a.f) / a.e - 0.5), -1, height - 1)
    ncol = np.maximum(c1 - c0 + 1, 0).astype(np.int64)
    nrow = np.maximum(r1 - r0 + 1, 0).astype(np.int64)
    count = ncol * nrow
    below = ~outside & (count == 0)
    maybe = np.flatnonzero(~outside & (count > 0) & (count <= CENSUS_POINTS))
    if len(maybe):  # most parts hold the pixel centre nearest a point on their surface
        surface = shapely.get_coordinates(shapely.point_on_surface(geoms[maybe]))
        col = np.clip(np.floor((surface[:, 0] - a.c) / a.a), c0[maybe], c1[maybe])
        row = np.clip(np.floor((surface[:, 1] - a.f) / a.e), r0[maybe], r1[maybe])
        hit = shapely.intersects_xy(geoms[maybe], a.c + (col + 0.5) * a.a, a.f + (row + 0.5) * a.e)
        maybe = maybe[~hit]
    for i in maybe:
        cols = c0[i] + np.arange(ncol[i])
        rows = r0[i] + np.arange(nrow[i])
        xs = a.c + (cols + 0.5) * a.a
        ys = a.f + (rows + 0.5) * a.e
        gx, gy = np.meshgrid(xs, ys)
        if not shapely.intersects_xy(geoms[i], gx.ravel(), gy.ravel()).any():
            below[i] = True
    return outside, below


def _unwrapped_layer_bbox(
    bounds: BoundingBox, grid_crs: CRS, layer_crs: CRS
) -> tuple[float, float, float, float]:
    """A grid window as lon/lat bounds of ONE piece (east may exceed 180), padded.

    ``BoundingBox.to_crs`` would wrap a window on the antimeridian into a box round the world
    (or its complement); here the window's outline is transformed and its longitudes are
    unwrapped around its centre.
    """
    left, bottom, right, top = bounds.bbox
    pad = 0.01 * max(right - left, top - bottom) + 1e-9
    left, bottom, right, top = left - pad, bottom - pad, right + pad, top + pad
    t = np.linspace(0.0, 1.0, 33)
    w, h = right - left, top - bottom
    xs = np.concatenate(
        [left + w * t, np.full(33, right), right - w * t, np.full(33, left), [left + w / 2]]
    )
    ys = np.concatenate(
        [np.full(33, bottom), bottom + h * t, np.full(33, top), top - h * t, [bottom + h / 2]]
    )
    if grid_crs != layer_crs:
        xs, ys = _transformer(grid_crs.to_wkt(), layer_crs.to_wkt()).transform(xs, ys)
        xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        centre = xs[-1]
        xs = centre + np.mod(xs - centre + 180.0, 360.0) - 180.0
    ok = np.isfinite(xs) & np.isfinite(ys)
    if not ok.any():
        raise GridError("the grid window cannot be expressed in the layer's CRS")
    return (float(xs[ok].min()), float(ys[ok].min()), float(xs[ok].max()), float(ys[ok].max()))


@lru_cache(maxsize=8)
def _transformer(src_wkt: str, dst_wkt: str) -> Any:
    """A cached lon/lat-order transformer: building one costs more than using it per tile."""
    from pyproj import Transformer

    return Transformer.from_crs(src_wkt, dst_wkt, always_xy=True)


def _to_layer_bounds(bounds: BoundingBox, grid_crs: CRS, layer_crs: CRS) -> BoundingBox:
    """Window bounds in the layer CRS, generously padded so no touching polygon is missed."""
    left, bottom, right, top = bounds.bbox
    pad = 0.01 * max(right - left, top - bottom) + 1e-9
    padded = BoundingBox(left - pad, bottom - pad, right + pad, top + pad, crs=grid_crs)
    if layer_crs == grid_crs:
        return padded
    return padded.to_crs(layer_crs)


# --------------------------------------------------------------------------------------------
# Entry points


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


def _check_continuous(layer_bounds: BoundingBox, grid: GeoBox) -> None:
    """Refuse a projected grid CRS that is cut inside the layer's (unwrapped) longitudes,
    e.g. Web Mercator for a layer across the antimeridian: its two halves would land at
    opposite ends of the world, and the grid would cover neither."""
    crs = _crs_of(grid)
    if crs.geographic:
        return
    west, south, east, north = layer_bounds.bbox
    tr = _transformer(_crs_of_bounds(layer_bounds).to_wkt(), crs.to_wkt())
    lons = np.linspace(west, east, 65)
    for lat in (south, (south + north) / 2, north):
        xs, _ = tr.transform(lons, np.full(65, lat))
        steps = np.diff(np.asarray(xs, dtype=float))
        if not (np.all(steps > 0) or np.all(steps < 0)):
            raise GridError(
                f"the layer crosses the antimeridian (longitudes {west:.4f} to {east:.4f}) "
                f"where {_crs_text(crs)} is cut in two; use a CRS centred near it: leave out "
                "--crs for the local UTM zone, or e.g. --crs EPSG:3832"
            )


def _crs_of_bounds(bounds: BoundingBox) -> CRS:
    if bounds.crs is None:
        raise GridError("the layer's extent has no CRS")
    return bounds.crs


def _past_180(grid: GeoBox) -> bool:
    """A grid in degrees whose longitudes run past +-180 (a raster across the antimeridian)."""
    if grid.crs is None or not grid.crs.geographic:
        return False
    left, _, right, _ = grid.boundingbox.bbox
    return left < -180.0 or right > 180.0


def _positions(fids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    order = np.argsort(fids, kind="stable")
    return order[np.searchsorted(fids[order], wanted)]


def _where(spec: LayerSpec) -> str:
    if spec.path is None:
        return "the GeoDataFrame"
    return f"layer '{spec.layer}' of '{spec.path}'" if spec.layer else f"'{spec.path}'"


def _make_source(
    source: str | Path | gpd.GeoDataFrame,
    class_field: str,
    layer: str | None,
    description_field: str | None,
    priority_field: str | None,
    layer_crs: object | None,
) -> _Source:
    if isinstance(source, gpd.GeoDataFrame):
        spec = LayerSpec(None, None, class_field, description_field, priority_field)
        _check_fields(
            spec, [str(c) for c in source.columns if c != source.geometry.name], "the GeoDataFrame"
        )
        crs = _layer_crs(source.crs, layer_crs, "the GeoDataFrame")
        return _FrameSource(source, spec, crs)
    path = Path(source)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        frame = _read_parquet(path)
        spec = LayerSpec(path, None, class_field, description_field, priority_field)
        _check_fields(
            spec, [str(c) for c in frame.columns if c != frame.geometry.name], f"'{path}'"
        )
        return _FrameSource(frame, spec, _layer_crs(frame.crs, layer_crs, f"'{path}'"))
    info = _open_file_layer(path, layer)
    spec = LayerSpec(path, info.layer, class_field, description_field, priority_field)
    _check_fields(spec, info.fields, _where(spec))
    if info.geometry_type and info.geometry_type.lstrip("3D ").replace("Multi", "") in (
        "Point",
        "LineString",
    ):
        raise LayoutError(
            f"{_where(spec)} holds {info.geometry_type} geometries; polygons are expected. "
            "Buffer points and lines into polygons first"
        )
    return _FileSource(spec, _layer_crs(info.crs, layer_crs, _where(spec)), info.count)


def _read_parquet(path: Path) -> gpd.GeoDataFrame:
    if not path.exists():
        raise InputError(f"vector file '{path}' not found")
    try:
        return gpd.read_parquet(path)
    except Exception as exc:  # pyarrow and geopandas raise many types for bad files
        raise InputError(f"'{path}' is not a GeoParquet file: {exc}") from exc


def _layer_crs(found: Any, override: object | None, where: str) -> CRS:
    if override is not None:
        return CRS(override)  # type: ignore[arg-type]
    if found is None:
        raise LayoutError(
            f"{where} has no CRS; assign one (QGIS: Layer > Set CRS; ogr2ogr -a_srs EPSG:...) "
            "or pass --layer-crs"
        )
    return CRS(found.to_wkt() if hasattr(found, "to_wkt") else found)


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
