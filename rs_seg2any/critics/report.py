"""What the refine loop leaves next to the outputs, every file through the atomic writer.

- ``refine_trajectory.json`` -- scores and actions per round per entity, and why it stopped;
- ``quality.json`` -- one row per entity (class, size, scores before/after, pass) and a summary
  (share passing, histogram counts), so bad tiles can be dropped from a training set;
- ``quality.png`` -- the histogram of per-entity scores before (grey) and after (green);
- ``image.tif`` / ``preview.png`` -- rewritten with the refined pixels (same grid, tags).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from ..atomic import atomic_output, write_json
from .entity import Entities

BINS = 10
FILES = ("refine_trajectory.json", "quality.json", "quality.png")


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def histogram(scores: list[float]) -> list[int]:
    """Counts of scores in ``BINS`` equal bins over [0, 1]."""
    counts, _ = np.histogram(np.clip(scores, 0, 1), bins=BINS, range=(0.0, 1.0))
    return [int(c) for c in counts]


def quality_table(
    traj: dict[str, Any], ents: Entities, class_names: dict[int, str], min_score: float
) -> dict[str, Any]:
    """The per-job quality report from a trajectory."""
    before = {int(k): v for k, v in traj["initial"].items()}
    after = {int(k): v for k, v in traj["final"].items()}
    rows = [
        {
            "entity": e,
            "class": class_names.get(ents.classes[e], str(ents.classes[e])),
            "pixels": ents.sizes[e],
            "score_before": before.get(e),
            "score_after": after.get(e),
            "passed": after.get(e, 1.0) >= min_score,
            "scored": e in after,
        }
        for e in sorted(ents.classes)
    ]
    scored = [r for r in rows if r["scored"]]
    n = len(scored)
    return {
        "min_score": min_score,
        "critics": traj["critics"],
        "notes": traj["notes"],
        "entities": rows,
        "tiles": traj.get("tiles", []),
        "seams": traj.get("seams"),
        "text_check": traj.get("text_check"),
        "summary": {
            "entities": len(rows),
            "scored": n,
            "passing_before": sum(v >= min_score for v in before.values()) / n if n else None,
            "passing_after": sum(r["passed"] for r in scored) / n if n else None,
            "mean_before": float(np.mean(list(before.values()))) if n else None,
            "mean_after": float(np.mean(list(after.values()))) if n else None,
            "histogram_bins": [i / BINS for i in range(BINS + 1)],
            "histogram_before": histogram(list(before.values())),
            "histogram_after": histogram(list(after.values())),
            "extra_time_ratio": traj["refine"]["seconds"] / traj["plain"]["seconds"]
            if traj["plain"]["seconds"] > 0
            else None,
            "extra_generator_calls": traj["refine"]["generator_calls"],
            "text_flagged": (traj.get("text_check") or {}).get("flagged"),
        },
    }


def histogram_png(report: dict[str, Any], dest: Path) -> Path:
    """Bars of the before (grey) and after (green) histograms, with the pass threshold."""
    s = report["summary"]
    w, h, pad = 440, 240, 30
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    top = max([1, *s["histogram_before"], *s["histogram_after"]])
    bw = (w - 2 * pad) / BINS
    for i in range(BINS):
        for j, (key, colour) in enumerate(
            (("histogram_before", (150, 150, 150)), ("histogram_after", (40, 150, 60)))
        ):
            x0 = pad + i * bw + j * bw / 2
            y0 = h - pad - (h - 2 * pad) * s[key][i] / top
            d.rectangle([x0 + 1, y0, x0 + bw / 2 - 1, h - pad], fill=colour)
    tx = pad + (w - 2 * pad) * report["min_score"]
    d.line([tx, pad, tx, h - pad], fill=(200, 0, 0), width=2)
    d.line([pad, h - pad, w - pad, h - pad], fill="black")
    d.text((pad, 6), f"per-entity score: before (grey) / after (green); max {top}", fill="black")
    d.text((pad, h - pad + 6), "0", fill="black")
    d.text((w - pad - 6, h - pad + 6), "1", fill="black")
    with atomic_output(dest) as tmp:
        img.save(tmp, format="PNG")
    return dest


def rewrite_image(path: Path, image: NDArray[np.uint8]) -> Path:
    """Replace ``path``'s pixels (same grid, profile, tags, band descriptions), atomically."""
    from rasterio.shutil import copy as rio_copy

    with rasterio.open(path) as src:
        profile = src.profile.copy()
        tags = src.tags()
        descriptions = src.descriptions
        interp = src.colorinterp
        cog = src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT", "").upper() == "COG"
    data = np.ascontiguousarray(image.transpose(2, 0, 1))
    with atomic_output(path) as tmp:
        if cog:
            from rasterio.io import MemoryFile

            mem_profile = {**profile, "driver": "GTiff"}
            with MemoryFile() as mem, mem.open(**mem_profile) as dst:
                _fill(dst, data, tags, descriptions, interp)
                rio_copy(dst, tmp, driver="COG", compress=profile.get("compress") or "deflate")
        else:
            with rasterio.open(tmp, "w", **profile) as dst:
                _fill(dst, data, tags, descriptions, interp)
    return path


def _fill(dst: Any, data: NDArray[np.uint8], tags: Any, descriptions: Any, interp: Any) -> None:
    dst.write(data)
    dst.update_tags(**tags)
    dst.colorinterp = interp
    for i, text in enumerate(descriptions, start=1):
        if text:
            dst.set_band_description(i, text)


def write_reports(
    out: Path,
    traj: dict[str, Any],
    ents: Entities,
    class_names: dict[int, str],
    min_score: float,
) -> dict[str, Path]:
    """Trajectory, quality table and histogram next to the outputs."""
    report = quality_table(traj, ents, class_names, min_score)
    return {
        "refine_trajectory": write_json(out / "refine_trajectory.json", _finite(traj)),
        "quality": write_json(out / "quality.json", _finite(report)),
        "quality_picture": histogram_png(report, out / "quality.png"),
    }
