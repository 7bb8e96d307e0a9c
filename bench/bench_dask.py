"""Tiles per second on the Dask backend: 1 vs 2 local workers (one thread each), and the
scheduling overhead per tile against the same tiles in one process.

A generate job over a wide grid (rows x cols tiles of the real tiny model code with small
random weights) is run three times on identical inputs: locally, on a LocalCluster of 1
worker and of 2 workers. Each backend is warmed first (every worker, and the
local process, loads the generator and text encoder and renders a one-tile job) before the
timed run, so the figures are the tile stage only (the
``seconds`` of the job manifest's summary). Outputs must be byte-identical in all three.

Inpainting order bounds the parallelism: tile (r, c) waits for (r-1, c+1), so a grid of R x C
tiles runs in 2(R-1)+C waves; the default 3 x 12 grid (16 waves, 36 tiles) allows 2.25 tiles
at once on average, enough for 2 workers. On a shared, busy machine the ratios are noisy.

    python bench/bench_dask.py [--rows 3 --cols 12 --tile 64 --steps 4]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def weights(path: Path, width: int) -> Path:
    import torch

    from rs_seg2any.generators.tiny.model import TinyConfig, TinySeg2Any
    from rs_seg2any.generators.tiny.weights import save_weights

    torch.manual_seed(0)
    model = TinySeg2Any(TinyConfig(patch=8, width=width, depth=2, heads=2, ctx_depth=1,
                                   bottleneck=16))  # fmt: skip
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    save_weights(model, path)
    return path


def _warm(gen: object) -> None:
    import numpy as np

    from rs_seg2any.generators.base import TileCondition

    cond = TileCondition(instances=np.ones((32, 32), np.int64), descriptions=["warm"],
                         caption="warm")  # fmt: skip
    gen.generate(cond, steps=1, guidance=1.0, gamma=1.0, seed=0)  # type: ignore[attr-defined]


def run(layout: object, out: Path, gen: object, workers: int | None, args: argparse.Namespace,
        warm: object = None) -> dict[str, object]:  # fmt: skip
    from rs_seg2any.job.execparams import ExecParams
    from rs_seg2any.job.execute import execution
    from rs_seg2any.job.generate_job import run_generate_job

    with execution(ExecParams(workers=workers), threads=1) as executor:
        if workers:  # every worker loads the generator and the text encoder before timing
            from rs_seg2any.job.cluster import WorkerGenerator

            client = executor._start()  # type: ignore[attr-defined]
            client.run(_warm, WorkerGenerator(gen))
        run_generate_job(warm, out.with_name(out.name + "_warm"), gen, steps=args.steps,
                         seed=1, tile_size=args.tile, overlap=args.overlap)  # fmt: skip
        started = time.perf_counter()
        res = run_generate_job(layout, out, gen, steps=args.steps, seed=1,
                               tile_size=args.tile, overlap=args.overlap)  # fmt: skip
        wall = time.perf_counter() - started
    summary = json.loads((out / ".rs_seg2any" / "manifest.json").read_text())["summary"]
    image = hashlib.sha256(res.outputs["image"].read_bytes()).hexdigest()
    return {"tiles": res.tiles_total, "seconds": summary["seconds"], "wall": wall,
            "sha": image}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--cols", type=int, default=12)
    parser.add_argument("--tile", type=int, default=64)
    parser.add_argument("--overlap", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--width", type=int, default=64, help="model width (tile cost)")
    args = parser.parse_args()

    from rs_seg2any.demo import write_demo_layer
    from rs_seg2any.generators.registry import load_generator
    from rs_seg2any.layout import load_layout

    tmp = Path(tempfile.mkdtemp(prefix="bench_dask-"))
    layer = write_demo_layer(tmp / "town.gpkg")
    gen = load_generator("tiny", str(weights(tmp / "w.safetensors", args.width)))
    stride = args.tile - args.overlap
    h, w = args.tile + (args.rows - 1) * stride, args.tile + (args.cols - 1) * stride
    x0, y0 = 300000.0, 2780000.0
    layout = load_layout(layer, "landcover", description_field="description",
                         taxonomy="dubai_aerial", resolution=0.5,
                         extent=(x0, y0, x0 + w * 0.5, y0 + h * 0.5))  # fmt: skip
    warm = load_layout(layer, "landcover", description_field="description",
                       taxonomy="dubai_aerial", resolution=0.5,
                       extent=(x0, y0, x0 + args.tile * 0.5, y0 + args.tile * 0.5))  # fmt: skip
    print(f"grid {h} x {w} px, {args.rows} x {args.cols} tiles of {args.tile} px, "
          f"{2 * (args.rows - 1) + args.cols} waves, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    results = {}
    for name, workers in (("local", None), ("1 worker", 1), ("2 workers", 2)):
        results[name] = run(layout, tmp / name.replace(" ", "_"), gen, workers, args, warm)
        r = results[name]
        print(f"{name:>10}: {r['tiles']} tiles in {r['seconds']:.1f} s "
              f"({r['tiles'] / r['seconds']:.2f} tiles/s)", flush=True)  # fmt: skip
    same = len({r["sha"] for r in results.values()}) == 1
    local, one, two = (results[k]["seconds"] for k in ("local", "1 worker", "2 workers"))
    tiles = results["local"]["tiles"]
    assert isinstance(local, float) and isinstance(one, float) and isinstance(two, float)
    assert isinstance(tiles, int)
    print(f"speed-up 2 workers / 1 worker: {one / two:.2f}x (goal >= 1.7x)")
    print(f"2 workers / local process: {local / two:.2f}x")
    print(f"scheduling overhead per tile (1 worker vs one process): "
          f"{(one - local) / tiles * 1000:.0f} ms on {local / tiles * 1000:.0f} ms per tile "
          f"({one / local:.2f}x)")  # fmt: skip
    print(f"outputs byte-identical in all three runs: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
