"""Preparing features: class values to ids, descriptions, priorities, repaired polygon parts.

The one function both the validation pass and every window read use, so a tile sees exactly
what validation counted. Every polygon part (after ``make_valid``) becomes one entity.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import shapely

from ..taxonomy import BACKGROUND_ID, Taxonomy

UnknownClassPolicy = Literal["error", "skip", "background"]
BACKGROUND_DESCRIPTION = "unlabeled area"
_POLYGONAL = {"Polygon", "MultiPolygon"}


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
