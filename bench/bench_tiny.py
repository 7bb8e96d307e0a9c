"""The embedded tiny generator on this CPU: seconds per 256 x 256 tile at the CLI defaults,
what condition-token filtering saves on a sparse layout, and peak memory.

Goal: one tile <= 3 s. The filtering saving is a ratio against the same sampler keeping every
contour patch as a token, measured in the same run on the same layout.

Run: ``python bench/bench_tiny.py`` (``--weights W`` for another checkpoint; ``--json``).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from rs_seg2any.conditioning import condition_keep
from rs_seg2any.generators.base import DEFAULT_GUIDANCE, DEFAULT_STEPS
from rs_seg2any.generators.registry import shipped_weights
from rs_seg2any.generators.tiny.generator import TinyGenerator
from rs_seg2any.generators.tiny.sampler import sample

SIZE = 256
STEPS, GUIDANCE = DEFAULT_STEPS, DEFAULT_GUIDANCE  # the CLI defaults


def sparse_layout() -> tuple[np.ndarray, list[str]]:
    """Three large fields and a road: most 16-px contour patches are empty."""
    inst = np.zeros((SIZE, SIZE), dtype=np.int64)
    inst[:, :] = 1
    inst[:120, 140:] = 2
    inst[150:, :] = 3
    inst[120:150, :] = 4
    return inst, ["bare sandy land", "green vegetation", "bare land", "asphalt road"]


def dense_layout() -> tuple[np.ndarray, list[str]]:
    """A block of 8 x 8 buildings on bare land: contours in most patches."""
    inst = np.ones((SIZE, SIZE), dtype=np.int64)
    k = 2
    for y in range(8, SIZE - 24, 32):
        for x in range(8, SIZE - 24, 32):
            inst[y : y + 20, x : x + 20] = k
            k += 1
    return inst, ["bare sandy land"] + ["a building with a flat roof"] * (k - 2)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_tile(gen: TinyGenerator, inst: np.ndarray, texts: list[str], repeats: int) -> float:
    gen.generate(inst, texts, "aerial image", steps=STEPS, guidance=GUIDANCE, seed=0)  # warm-up
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        gen.generate(inst, texts, "aerial image", steps=STEPS, guidance=GUIDANCE, seed=i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_filtering(
    gen: TinyGenerator, inst: np.ndarray, texts: list[str], repeats: int
) -> dict[str, float]:
    cond = gen.condition(inst, texts, "aerial image")
    res: dict[str, float] = {}
    for name, flt in (("filtered", True), ("all_tokens", False)):
        times = []
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
                sample(gen.model, cond, steps=STEPS, guidance=GUIDANCE, seed=i, ae=gen.ae,
                       filter_empty=flt)  # fmt: skip
            times.append(time.perf_counter() - t0)
        res[f"s_{name}"] = statistics.median(times[1:])
    keep = condition_keep(cond.contours, gen.model.cfg.cond_patch)
    res["tokens_kept"] = int(keep.sum())
    res["tokens_total"] = int(keep.numel())
    res["time_ratio_filtered_vs_all"] = res["s_filtered"] / res["s_all_tokens"]
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    path = a.weights or shipped_weights()
    rss0 = peak_rss_mb()
    gen = TinyGenerator.from_file(path)
    rss_loaded = peak_rss_mb()
    out: dict[str, object] = {"weights": str(path), "steps": STEPS, "guidance": GUIDANCE}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name, (inst, texts) in (("sparse", sparse_layout()), ("dense", dense_layout())):
            out[f"s_per_tile_{name}_{threads}thread"] = time_tile(gen, inst, texts, a.repeats)
    torch.set_num_threads(2)
    out["filtering_sparse"] = time_filtering(gen, *sparse_layout(), a.repeats)
    out["filtering_dense"] = time_filtering(gen, *dense_layout(), a.repeats)
    out["peak_rss_mb"] = peak_rss_mb()
    out["rss_after_imports_mb"] = rss0
    out["rss_after_load_mb"] = rss_loaded
    worst = max(v for k, v in out.items() if k.startswith("s_per_tile"))  # type: ignore[type-var]
    out["goal_s_per_tile"] = 3.0
    out["worst_over_goal"] = float(worst) / 3.0  # type: ignore[arg-type]
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        for k, v in out.items():
            print(f"{k:34s} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
