"""Speed and memory of the generators on this CPU, in one run: the shipped tiny v1 model
against the exemplar backend, each in its own process (so peak memory is its own).

Per backend: the median seconds of one 256 x 256 tile at default settings (after a warm-up
call: weights, text encoder and exemplar candidates load once a job), then one 1024 x 1024
scene end to end through the generate job at the default tiling (256 px tiles, 64 px
overlap: 36 tiles), and the process's peak resident memory. The scene's layout is the
central 1024 px of a Dubai tile 5 label mask (``--data``; timing only, no image is compared).
Run it on a quiet machine: nothing else running; it prints the ratios to v1.

    python bench/bench_speed.py [--data ../shared/data/dubai_aerial] [--backends tiny exemplar]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "dubai_aerial"


def measure(backend: str, data: Path, threads: int) -> dict[str, float]:
    """One backend's figures (runs in a child process)."""
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO / "bench"))
    from bench_realism import tile_seconds

    from rs_seg2any.generators.registry import load_generator
    from rs_seg2any.job.generate_job import run_generate_job
    from rs_seg2any.quality.scenes import layout_from_labels
    from rs_seg2any.taxonomy import load_taxonomy
    from rs_seg2any.train.dubai import load_pairs

    torch.set_num_threads(threads)
    pair = max(load_pairs(data, [5]), key=lambda p: p.classes.size)  # ~1126 x 1058 px
    h, w = pair.classes.shape
    size = min(1024, h, w)
    y, x = (h - size) // 2, (w - size) // 2
    labels = np.ascontiguousarray(pair.classes[y : y + size, x : x + size])
    gen = load_generator(backend, threads=threads)
    tile = tile_seconds(gen, labels)
    layout = layout_from_labels(labels, load_taxonomy("dubai_aerial"))
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        run_generate_job(layout, Path(tmp) / "scene", gen)
        scene = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"tile_s": tile, "scene_s": scene, "scene_px": float(size), "peak_mb": peak}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--backends", nargs="+", default=["tiny", "exemplar"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(measure(a.child, a.data, a.threads)))
        return 0
    rows: dict[str, dict[str, float]] = {}
    for b in a.backends:
        out = subprocess.run(
            [sys.executable, __file__, "--child", b, "--data", str(a.data),
             "--threads", str(a.threads)],
            capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )  # fmt: skip
        rows[b] = json.loads(out.stdout.strip().splitlines()[-1])
        r = rows[b]
        print(f"{b:10s} 256-px tile {r['tile_s']:.2f} s   {r['scene_px']:.0f}-px scene "
              f"{r['scene_s']:.1f} s   peak {r['peak_mb']:.0f} MB", flush=True)  # fmt: skip
    base = rows.get("tiny")
    if base:
        for b, r in rows.items():
            print(f"{b:10s} vs tiny v1: tile {r['tile_s'] / base['tile_s']:.2f}x, "
                  f"scene {r['scene_s'] / base['scene_s']:.2f}x, "
                  f"memory {r['peak_mb'] / base['peak_mb']:.2f}x")  # fmt: skip
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
