"""The filter report: per object and per sample, the scores that say whether to trust it.

Scores (``None`` where they do not apply):

* ``visible_fraction`` / ``truncated`` / ``occluded``: how much of the object the chip shows
  (see :mod:`.chips`); below ``min_visible`` the object is dropped from the chip's labels.
* ``leakage`` (inserted objects): the share of pixels in a ring of :data:`LEAK_RING` pixels
  around the object (outside every inserted object) whose value differs from the background.
  The edit path copies those pixels, so anything above 0 means the edit spilled over.
* ``fidelity`` (with segmenter weights): the share of the object's pixels that the project's
  segmenter (:mod:`rs_seg2any.train.segmenter`) assigns to the object's class; only for
  classes the segmenter knows (its classes are the Dubai ones: building, land, road,
  vegetation, water).

An object over ``max_leakage`` or under ``min_fidelity`` rejects the whole sample (its pixels
show the doubtful object, so dropping only the label would teach a detector to ignore it);
with ``filter`` off every sample is kept and the report still says what would be rejected.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_open
from .export import ChipRecord
from .instances import Scene
from .spool import Spool

LEAK_RING = 4
"""Pixels around an inserted object in which leakage is measured."""


@dataclass(frozen=True)
class Thresholds:
    min_visible: float = 0.5
    max_leakage: float = 0.0
    min_fidelity: float | None = None
    filter: bool = True


@dataclass
class ObjectScores:
    """Scene-level scores of objects, by object id."""

    leakage: dict[int, float] = field(default_factory=dict)
    fidelity: dict[int, float] = field(default_factory=dict)

    def reasons(self, oid: int, t: Thresholds) -> list[str]:
        out = []
        leak = self.leakage.get(oid)
        if leak is not None and leak > t.max_leakage:
            out.append(f"leakage {leak:.4f} > {t.max_leakage:g}")
        fid = self.fidelity.get(oid)
        if fid is not None and t.min_fidelity is not None and fid < t.min_fidelity:
            out.append(f"fidelity {fid:.3f} < {t.min_fidelity:g}")
        return out


def leakage(
    scene: Scene, before: np.ndarray, after: np.ndarray, ids: Sequence[int]
) -> dict[int, float]:
    """Leakage of each inserted object (``(bands, h, w)`` images on the scene grid)."""
    inserted = np.isin(scene.instances, np.asarray(ids, dtype=np.uint32))
    changed = (before != after).any(axis=0)
    h, w = scene.instances.shape
    out = {}
    for oid in ids:
        x0, y0, x1, y1 = scene.objects[oid - 1].full_box
        r0, c0 = max(y0 - LEAK_RING, 0), max(x0 - LEAK_RING, 0)
        r1, c1 = min(y1 + LEAK_RING, h), min(x1 + LEAK_RING, w)
        ring = ~inserted[r0:r1, c0:c1]
        out[oid] = float(changed[r0:r1, c0:c1][ring].mean()) if ring.any() else 0.0
    return out


def fidelity(scene: Scene, image: np.ndarray, weights: Path) -> dict[int, float]:
    """Share of each object's pixels that the segmenter puts in the object's class (objects
    of classes it does not know are left out)."""
    from ..taxonomy import load_taxonomy
    from ..train.segmenter import CLASS_NAMES, load_segmenter, predict

    tax = load_taxonomy("dubai_aerial")
    known = {}
    for obj in scene.objects:
        cid = tax.resolve(obj.category)
        if cid is not None and int(cid) in CLASS_NAMES:
            known[obj.id] = int(cid)
    if not known:
        return {}
    pred = predict(load_segmenter(weights), np.ascontiguousarray(image[:3].transpose(1, 2, 0)))
    out = {}
    for oid, cid in known.items():
        mask = scene.instances == oid
        if mask.any():
            out[oid] = float((pred[mask] == cid).mean())
    return out


def object_row(record: ChipRecord, ann: Any, kept: bool, reasons: list[str],
               scores: ObjectScores) -> dict[str, Any]:  # fmt: skip
    return {
        "chip": record.chip.id,
        "split": record.chip.split,
        "object_id": ann.object_id,
        "category": ann.category,
        "source": ann.source,
        "description": ann.description,
        "area_px": ann.area,
        "visible_fraction": round(ann.visible_fraction, 6),
        "truncated": ann.truncated,
        "occluded": ann.occluded,
        "leakage": scores.leakage.get(ann.object_id),
        "fidelity": scores.fidelity.get(ann.object_id),
        "kept": kept,
        "reasons": ";".join(reasons),
    }


class ReportWriter:
    """Streams the report: each chip's rows are spooled as it is judged (:mod:`.spool`), so
    the report's memory is one chip's, whatever the number of objects."""

    def __init__(self, out: Path, scores: ObjectScores, thresholds: Thresholds) -> None:
        self.out, self.scores, self.thresholds = out, scores, thresholds
        self._samples = Spool(out, "report-samples.json")
        self._objects = Spool(out, "report-objects.json")
        self._counts = {"samples": 0, "samples_kept": 0, "objects_kept": 0, "objects_rejected": 0}
        self._fields: list[str] = []
        self.labelled: set[int] = set()  # objects with a label row in some chip

    def add(self, rec: ChipRecord) -> None:
        t, scores = self.thresholds, self.scores
        rows = []
        for a in rec.kept:
            doubts = rec.flags.get(a.object_id, [])
            rows.append(object_row(rec, a, not (doubts and t.filter), doubts, scores))
        for a, r in rec.rejected:
            rows.append(object_row(rec, a, False, r + rec.flags.get(a.object_id, []), scores))
        for row in rows:
            self.labelled.add(int(row["object_id"]))
            self._objects.add(row)
            self._counts["objects_kept" if row["kept"] else "objects_rejected"] += 1
            self._fields = self._fields or list(row)
        fids = [r["fidelity"] for r in rows if r["fidelity"] is not None]
        leaks = [r["leakage"] for r in rows if r["leakage"] is not None]
        self._samples.add({
            "chip": rec.chip.id, "split": rec.chip.split, "row": rec.chip.row,
            "col": rec.chip.col, "objects_kept": len(rec.kept),
            "objects_rejected": len(rec.rejected),
            "inserted": sum(1 for r in rows if r["source"] == "inserted"),
            "max_leakage": max(leaks) if leaks else None,
            "min_fidelity": min(fids) if fids else None,
            "kept": rec.exported, "reasons": list(rec.sample_rejected),
        })  # fmt: skip
        self._counts["samples"] += 1
        self._counts["samples_kept"] += int(rec.exported)

    def close(self, summary: dict[str, Any]) -> dict[str, Path]:
        """``report.json`` (summary, thresholds, per sample and per object) and
        ``report.csv`` (one row per object per chip)."""
        try:
            head = {"summary": {**summary, **self._counts}, "thresholds": self.thresholds.__dict__}
            path = self.out / "report.json"
            with atomic_open(path) as fh:
                fh.write(json.dumps(head, indent=2)[:-2] + ',\n"samples": [\n')
                self._samples.copy_into(fh)
                fh.write('],\n"objects": [\n')
                self._objects.copy_into(fh)
                fh.write("]}\n")
            written = {"report": path}
            path = self.out / "report.csv"
            with atomic_open(path) as fh:
                writer = csv.DictWriter(fh, fieldnames=self._fields or ["chip", "object_id"])
                writer.writeheader()
                if self._objects.count:
                    with open(self._objects.path, encoding="utf-8") as src:
                        for line in src:
                            writer.writerow(json.loads(line.lstrip(",")))
            written["report_csv"] = path
            return written
        finally:
            self.abort()

    def abort(self) -> None:
        self._samples.discard()
        self._objects.discard()


def write_report(
    out: Path,
    records: list[ChipRecord],
    scores: ObjectScores,
    thresholds: Thresholds,
    summary: dict[str, Any],
) -> dict[str, Path]:
    """The report of chip records already judged (see :class:`ReportWriter`)."""
    writer = ReportWriter(out, scores, thresholds)
    for rec in records:
        writer.add(rec)
    return writer.close(summary)
