"""Refine-loop figures: per-entity fidelity before/after ``--refine``, share passing, extra time.

Scenes are central ``--size`` windows of Dubai images (default: held-out ``tile_7``, used for
the final figure only; nothing here is tuned). Each scene's class map becomes a layout, each
backend of ``--backends`` (default: the shipped tiny model and the exemplar quilter) renders
it, and the loop runs with the shipped segmenter (fidelity) and the shipped exemplar bank's
class colours (tiles 1-6). The backends see the same scenes in the same run. Single-threaded;
prints one JSON summary per backend.

    python bench/bench_refine.py --data ../shared/data/dubai_aerial --n 12
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from rs_seg2any.critics.loop import CountingGenerator, Settings
from rs_seg2any.critics.params import RefineParams
from rs_seg2any.critics.run import refine_outputs
from rs_seg2any.generators.base import Generator
from rs_seg2any.generators.registry import load_generator
from rs_seg2any.job.generate_job import run_generate_job
from rs_seg2any.quality.scenes import layout_from_labels
from rs_seg2any.quality.segmenter import load
from rs_seg2any.taxonomy import load_taxonomy
from rs_seg2any.train.dubai import load_pairs


def scenes_of(data: Path, tile: int, n: int, size: int) -> list[NDArray[np.uint8]]:
    """``n`` windows of ``size`` px over the tile's images: centre, then shifted by a quarter."""
    pairs = load_pairs(data, [tile])
    out = []
    for k in range(n):
        p = pairs[k % len(pairs)]
        h, w = p.classes.shape
        dy = (k // len(pairs)) * h // 4
        y0, x0 = (h - size) // 2 - dy, (w - size) // 2 + dy
        out.append(p.classes[y0 : y0 + size, x0 : x0 + size])
    return out


def run_backend(
    gen: Generator, scenes: list[NDArray[np.uint8]], seg: Any, a: argparse.Namespace
) -> dict[str, Any]:
    tax = load_taxonomy("dubai_aerial")
    before: list[float] = []
    after: list[float] = []
    comb_b: list[float] = []
    comb_a: list[float] = []
    t_plain = t_ref = t_loop = 0.0
    flagged = judged = 0
    calls_plain = calls_ref = 0
    params = RefineParams(True, a.min_score, a.max_rounds, 2.0)
    with tempfile.TemporaryDirectory() as work:
        for i, lab in enumerate(scenes):
            if not (lab > 0).any():
                continue
            layout = layout_from_labels(lab, tax)
            out = Path(work) / f"s{i}"
            counted = CountingGenerator(gen)
            t0 = time.perf_counter()
            run_generate_job(layout, out, counted, steps=8, guidance=4.0, seed=i,
                             tile_size=a.size, overlap=32)  # fmt: skip
            t1 = time.perf_counter()
            settings = Settings(8, 4.0, 1.0, i, counted.calls, t1 - t0)
            rg = CountingGenerator(gen)
            refine_outputs(out, layout, rg, params, settings=settings, tile_size=a.size,
                           overlap=32, segmenter=seg)  # fmt: skip
            t_ref += time.perf_counter() - t1
            t_plain += t1 - t0
            calls_plain += counted.calls
            calls_ref += rg.calls
            traj = json.loads((out / "refine_trajectory.json").read_text())
            fb = traj["initial_by_critic"].get("fidelity", {})
            fa = traj["final_by_critic"].get("fidelity", {})
            before += [fb[e] for e in fb]
            after += [fa.get(e, fb[e]) for e in fb]
            comb_b += list(traj["initial"].values())
            t_loop += traj["refine"]["seconds"]  # rounds only: no first scoring, no reports
            text = traj.get("text_check") or {}
            flagged += int(text.get("flagged") or 0)
            judged += len(text.get("entities") or [])
            comb_a += list(traj["final"].values())
    b, f = np.array(before), np.array(after)
    cb, ca = np.array(comb_b), np.array(comb_a)
    bins = np.linspace(0, 1, 11)
    return {
        "backend": gen.name, "entities": len(b),
        "fidelity_mean_before": float(b.mean()), "fidelity_mean_after": float(f.mean()),
        "fidelity_median_before": float(np.median(b)), "fidelity_median_after": float(np.median(f)),
        "fidelity_pass_before": float((b >= a.min_score).mean()),
        "fidelity_pass_after": float((f >= a.min_score).mean()),
        "combined_pass_before": float((cb >= a.min_score).mean()),
        "combined_pass_after": float((ca >= a.min_score).mean()),
        "hist_before": np.histogram(b, bins)[0].tolist(),
        "hist_after": np.histogram(f, bins)[0].tolist(),
        "plain_seconds": t_plain, "refine_seconds": t_ref,
        "extra_time_ratio": t_ref / t_plain, "plain_calls": calls_plain,
        "loop_seconds": t_loop, "loop_time_ratio": t_loop / t_plain,
        "text_flagged": flagged, "text_judged": judged,
        "refine_calls": calls_ref,
    }  # fmt: skip


def picture(summary: dict[str, Any], dest: Path) -> Path:
    """Per backend: histograms of per-entity fidelity before (grey) and after (green)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["results"]
    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 3.0), sharey=True)
    centres = np.arange(10) / 10 + 0.05
    for ax, r in zip(np.atleast_1d(axes), rows, strict=True):
        ax.bar(centres - 0.022, r["hist_before"], 0.044, color="0.6", label="before")
        ax.bar(centres + 0.022, r["hist_after"], 0.044, color="#2a9640", label="after")
        ax.axvline(0.5, color="#c00000", lw=1)
        ax.set_title(f"{r['backend']}: pass {r['fidelity_pass_before']:.0%} -> "
                     f"{r['fidelity_pass_after']:.0%}, +{r['extra_time_ratio']:.0%} time",
                     fontsize=9)  # fmt: skip
        ax.set_xlabel("per-entity fidelity (segmenter IoU)")
    np.atleast_1d(axes)[0].set_ylabel(f"entities (of {rows[0]['entities']})")
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.suptitle(f"--refine on held-out Dubai tile_{summary['tile']}, {summary['scenes']} "
                 f"layouts of {summary['size']} px", fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(dest, dpi=110)
    plt.close(fig)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--from-json", type=Path, default=None, help="redraw --picture from a run")
    ap.add_argument("--picture", type=Path, default=None)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--segmenter", type=Path, default=None)
    ap.add_argument("--backends", default="tiny,exemplar")
    ap.add_argument("--tile", type=int, default=7)
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--min-score", type=float, default=0.5)
    ap.add_argument("--max-rounds", type=int, default=2)
    a = ap.parse_args()
    if a.from_json is not None:
        text = a.from_json.read_text()
        picture(json.loads(text[text.index("{\n") :]), a.picture)
        return
    torch.set_num_threads(1)
    seg = load(a.segmenter)
    scenes = scenes_of(a.data, a.tile, a.n, a.size)
    rows = []
    for name in a.backends.split(","):
        gen = load_generator(name, threads=1)
        rows.append(run_backend(gen, scenes, seg, a))
        print(json.dumps(rows[-1]), flush=True)
    summary = {"scenes": len(scenes), "tile": a.tile, "size": a.size, "results": rows}
    print(json.dumps(summary, indent=1))
    if a.picture is not None:
        picture(summary, a.picture)


if __name__ == "__main__":
    main()
