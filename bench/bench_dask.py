"""Tiles per second on the Dask backend: 1 vs 2 local workers (one thread each), against
the hardware's own ceiling (the same tiles in 1 vs 2 plain OS processes) and against the
same tiles in one process (the scheduling overhead per tile).

Three sections (``--sections``; ``default`` and ``stress`` by default):

- ``default`` -- the headline, the issue's figure: the tiling a user runs, pinned from
  ``TileParams()``'s defaults (256 px tiles, 64 px overlap today) and the samplers' default
  steps, with the backends as a user gets them (``tiny`` = its shipped weights, about 2.5 s
  a tile on one core; ``exemplar`` = the shipped bank, about 0.6 s). Grid ``--rows`` x
  ``--cols`` = 4 x 8 tiles: 14 waves, dependency bound 1.78x of 2 (3 x 8 would bound it at
  1.71x, too close to the goal to say anything; 4 x 10, 1.82x, adds ~2 min).
- ``stress`` -- the overhead stress line: small 64 px tiles (16 px overlap, 4 steps, the
  tiny model code with random weights of ``--width`` 64), 4 x 16 tiles, 22 waves, bound
  1.88x. A tile costs 70-120 ms here, so Dask's fixed cost per task (worker, client and
  scheduler CPU on the same 2 cores) is a large share: this is the run that shows it.

- ``areas`` -- many small areas in one job (``areas:``), as batch augmentation makes them:
  ``--areas`` areas of ``--area-rows`` x ``--area-cols`` tiles at the default tiling (6 of
  3 x 3, 256 px, overlap 64; the exemplar backend, about 0.6 s a tile), each area at its own
  place and seed. One 3 x 3 area alone is bounded at 1.29x on 2 workers (9 tiles, 7 waves);
  on a cluster the areas run at once on client threads, so their tiles fill each other's
  gaps. Runs: in process (the reference: areas one after another), 1 worker, 2 workers one
  area at a time (as before areas ran at once), 2 workers with 2 areas at once (the default:
  worker threads, at least ``MIN_AREAS_AT_ONCE``) and with 3; every output file must be
  byte-identical. About 7 min on the shared 2-core machine, one core busy elsewhere
  (``--area-backend exemplar``, the default for this section).

For the ``default`` and ``stress`` sections and each backend (``--backends``), a job over the
grid runs on identical inputs: in this process, on a LocalCluster of 1 worker and of 2
workers. Outputs must be byte-identical in all three. Then the finished tiles of the
in-process run are rendered again by 1 and by 2 plain processes (multiprocessing, spawn,
one thread each, no Dask; each tile reads its already saved neighbours, so there are no
waits between tiles): the hardware ceiling of 2 vs 1 for exactly this work. Dask's
2-worker speed-up is printed as a fraction of that ceiling and of the ceiling times the
grid's dependency bound ("ideal").

What is timed, and why:

- Placement (a bug, fixed in rs_seg2any.job.cluster): Dask puts a task with dependencies
  only on a worker holding one of them, and every tile depended on the renderer and its
  neighbours, so all tiles ran on the first worker. Tiles are now submitted by the client
  when their neighbours are saved, without Dask dependencies; "tiles per worker" shows it.
- Only the tile stage (the job manifest's ``seconds``). Starting the cluster, and each
  worker's first generator load, are a separate "setup" figure.
- Inpainting order bounds parallelism: tile (r, c) reads (r-1, c+1) and (r, c-1), so there
  are 2(R-1)+C waves; "ideal" is a list schedule of that graph on 2 workers (1.78x for the
  default section's 4 x 8 grid, 1.88x for the stress section's 4 x 16). A real job's grid
  is larger, and its bound closer to 2.
- Busy cores: "tile compute" (mean seconds inside a tile) per run, the CPU seconds of the
  client + scheduler process and of each worker during the tile stage, and the share of
  the machine's CPU that other processes used meanwhile (/proc/stat): on the shared 2-core
  development machine other engineers' jobs make every ratio noise.

    python bench/bench_dask.py        # about 10.5 min on an idle 2-core machine (8 + 2.5)
    python bench/bench_dask.py --sections stress    # the small-tile line only, about 3 min
    python bench/bench_dask.py --housekeeping       # + Dask's own CPU per task, 2 settings
    python bench/bench_dask.py --backends exemplar --rows 2 --cols 3 --stress-cols 4  # smoke
    python bench/bench_dask.py --sections areas   # many small areas at once, about 7 min
    python bench/bench_dask.py --sections areas --areas 3 --area-rows 2 --area-cols 2  # smoke
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy/torch load here and in spawned processes


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


def threads_here() -> str:
    """This process's thread settings: torch intra/inter-op, BLAS/OpenMP pools."""
    parts = []
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        parts.append(f"torch {torch.get_num_threads()}/{torch.get_num_interop_threads()}")
    try:
        from threadpoolctl import threadpool_info

        pools = sorted({f"{p['internal_api']} {p['num_threads']}" for p in threadpool_info()})
        parts.extend(pools)
    except ImportError:
        pass
    return ", ".join(parts)


def cpu_seconds() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _warm_tile(render: Any, tile: Any) -> str:
    """In a worker: render one tile (loads the generator and what it needs, once per
    process); returns the worker's thread settings."""
    from rs_seg2any.job.tiletask import tile_threads

    with tile_threads(1):
        render(tile)
        return threads_here()


def ideal_speedup(plan: Any, workers: int) -> float:
    """Tiles over the makespan of a greedy list schedule of the tile dependency graph on
    ``workers`` (equal tile times, earliest wave first): the best ``workers`` can do."""
    from rs_seg2any.job.waves import dependencies, waves

    deps = dependencies(plan)
    level = waves(plan, deps)
    finish: dict[tuple[int, int], int] = {}
    left = sorted(deps, key=lambda i: (level[i], i))
    step = 0
    while left:
        ready = [i for i in left if all(finish.get(d.index, step + 1) <= step for d in deps[i])]
        for i in ready[:workers]:
            finish[i] = step + 1
            left.remove(i)
        step += 1
    return len(deps) / step


@contextlib.contextmanager
def measured_stage(stage: dict[str, Any], client: Any) -> Iterator[None]:
    """CPU of this process (client + a local cluster's scheduler), of the workers and of the
    machine during the tile stage only (the job's run_tiles, not its assembly of outputs)."""
    from rs_seg2any.job import generate_job

    real = generate_job.run_tiles

    def timed(*args: Any, **kwargs: Any) -> Any:
        workers = client.run(cpu_seconds) if client is not None else {}
        stage["before"] = (cpu_seconds(), machine_cpu(), time.time())
        try:
            return real(*args, **kwargs)
        finally:
            stage["after"] = (cpu_seconds(), machine_cpu(), time.time())
            stage["workers_cpu"] = {
                w: c - workers[w] for w, c in (client.run(cpu_seconds) if workers else {}).items()
            }

    generate_job.run_tiles = timed  # type: ignore[assignment]
    try:
        yield
    finally:
        generate_job.run_tiles = real  # type: ignore[assignment]


@dataclass(frozen=True)
class Section:
    """One grid of tiles to time: its tiling, sampler steps and tiny weights."""

    name: str
    tile: int
    overlap: int
    rows: int
    cols: int
    steps: int
    width: int | None  # tiny: random weights of this width; None = the shipped weights

    @property
    def shape_px(self) -> tuple[int, int]:
        stride = self.tile - self.overlap
        return self.tile + (self.rows - 1) * stride, self.tile + (self.cols - 1) * stride


class Bench:
    """One backend's runs: in process, Dask 1 and 2 workers, plain processes 1 and 2."""

    def __init__(self, gen: Any, layout: Any, warm: Any, tmp: Path, sec: Section):
        self.gen, self.layout, self.warm, self.tmp, self.sec = gen, layout, warm, tmp, sec

    def job(self, layout: Any, out: Path, keep_tiles: bool = False) -> Any:
        from rs_seg2any.job.generate_job import run_generate_job

        a = self.sec
        return run_generate_job(layout, out, self.gen, steps=a.steps, seed=1, tile_size=a.tile,
                                overlap=a.overlap, keep_tiles=keep_tiles)  # fmt: skip

    def renderer(self, layout: Any, out: Path) -> Any:
        """The job's tile renderer over the finished job folder ``out`` (as workers get it)."""
        from rs_seg2any.job.cluster import for_workers
        from rs_seg2any.job.generate_job import _TileRenderer, generate_job_params
        from rs_seg2any.job.jobdir import JobDir
        from rs_seg2any.job.tiling import TilePlan

        a = self.sec
        plan = TilePlan.for_grid(layout.grid, a.tile, a.overlap)
        params = generate_job_params(layout, self.gen, tile_size=a.tile, overlap=a.overlap,
                                     steps=a.steps, guidance=self.guidance, gamma=1.0, seed=1,
                                     caption=None)  # fmt: skip
        job = JobDir(out, params)
        job.close()  # plain data from here (workers hold no lock)
        render = _TileRenderer(layout, self.gen, plan, job, steps=a.steps,
                               guidance=self.guidance, gamma=1.0, seed=1, caption=None)  # fmt: skip
        return for_workers(render), plan, job

    @property
    def guidance(self) -> float:
        from rs_seg2any.generators.base import DEFAULT_GUIDANCE

        return DEFAULT_GUIDANCE

    def run(self, name: str, workers: int | None) -> dict[str, Any]:
        from rs_seg2any.job.execparams import ExecParams
        from rs_seg2any.job.execute import execution

        out = self.tmp / name.replace(" ", "_")
        setup = time.perf_counter()
        threads = ""
        with execution(ExecParams(workers=workers), threads=1) as executor:
            client = None
            warm_out = out.with_name(out.name + "_warm")
            self.job(self.warm, warm_out)
            if workers:  # every worker loads the generator before timing
                client = executor._start()  # type: ignore[attr-defined]
                render, plan, _ = self.renderer(self.warm, warm_out)
                found = client.run(_warm_tile, render, plan.tiles[0])
                threads = "; ".join(sorted(set(found.values())))
            else:
                threads = threads_here()
            setup = time.perf_counter() - setup
            stage: dict[str, Any] = {}
            with measured_stage(stage, client):
                res = self.job(self.layout, out, keep_tiles=workers is None)
        before, after, workers_cpu = stage["before"], stage["after"], stage["workers_cpu"]
        manifest = json.loads((out / ".rs_seg2any" / "manifest.json").read_text())
        tiles = list(manifest["tiles"].values())
        per_worker: dict[str, int] = {}
        for t in tiles:
            w = t.get("worker", "here")
            per_worker[w] = per_worker.get(w, 0) + 1
        seconds = float(manifest["summary"]["seconds"])
        compute = sum(float(t["seconds"]) for t in tiles)
        ours = after[0] - before[0] + sum(workers_cpu.values())
        busy_all = (after[1][0] - before[1][0]) / (after[1][1] - before[1][1])
        wall = after[2] - before[2]
        others = max(0.0, busy_all - ours / (wall * (os.cpu_count() or 1)))
        return {
            "out": out,
            "tiles": res.tiles_total,
            "seconds": seconds,
            "setup": setup,
            "tile_compute": compute / len(tiles),
            "busy": compute / (seconds * (workers or 1)),
            "per_worker": sorted(per_worker.values(), reverse=True),
            "client_cpu": after[0] - before[0],
            "workers_cpu": sum(workers_cpu.values()) if workers else after[0] - before[0],
            "others": others,
            "threads": threads,
            "sha": hashlib.sha256(res.outputs["image"].read_bytes()).hexdigest(),
            "tile_sha": {k: t["sha256"] for k, t in manifest["tiles"].items()},
        }

    def ceiling(self, local: dict[str, Any], procs: int) -> dict[str, Any]:
        """The in-process run's tiles rendered again by ``procs`` plain processes, one
        thread each, no Dask (tile i goes to process i % procs); saved over the same files."""
        render, plan, job = self.renderer(self.layout, local["out"])
        ctx = mp.get_context("spawn")
        barrier = ctx.Barrier(procs + 1)
        results = ctx.Queue()
        parts = [plan.tiles[i::procs] for i in range(procs)]
        workers = [ctx.Process(target=_render_tiles, args=(render, job, part, barrier, results))
                   for part in parts]  # fmt: skip
        before = machine_cpu()
        for w in workers:
            w.start()
        barrier.wait(timeout=600)  # every process has rendered its warm-up tile
        got = [results.get(timeout=1800) for _ in workers]
        after = machine_cpu()
        for w in workers:
            w.join()
        start, end = min(g["start"] for g in got), max(g["end"] for g in got)
        shas = {k: v for g in got for k, v in g["sha"].items()}
        compute = sum(g["compute"] for g in got)
        busy_all = (after[0] - before[0]) / (after[1] - before[1])
        return {
            "tiles": len(plan.tiles),
            "seconds": end - start,
            "tile_compute": compute / len(plan.tiles),
            "same": shas == local["tile_sha"],
            "cpu": sum(g["cpu"] for g in got),
            "threads": "; ".join(sorted({g["threads"] for g in got})),
            "machine_busy": busy_all,
        }


def _render_tiles(render: Any, job: Any, tiles: list[Any], barrier: Any, results: Any) -> None:
    """A plain process: warm up on its first tile, wait for the others, then render and
    save its tiles exactly as a Dask worker would (run_tile), timing the whole."""
    from rs_seg2any.job.cluster import one_interop_thread
    from rs_seg2any.job.tiletask import run_tile

    run_tile(render, job, tiles[0], 1, 1)  # warm-up: generator load
    one_interop_thread()
    barrier.wait(timeout=600)
    start, cpu = time.time(), cpu_seconds()
    shas, compute = {}, 0.0
    for tile in tiles:
        done = run_tile(render, job, tile, 1, 1)
        shas[done.seed_key] = done.sha256
        compute += done.seconds or 0.0
    results.put({"start": start, "end": time.time(), "sha": shas, "compute": compute,
                 "cpu": cpu_seconds() - cpu, "threads": threads_here()})  # fmt: skip


def _spin(seconds: float) -> float:
    """A task of ``seconds`` CPU in pure Python; returns the CPU it used."""
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        sum(range(1000))
    return time.thread_time() - start


def housekeeping(quiet: bool, tasks: int = 40) -> tuple[float, float]:
    """CPU per task that Dask itself uses (worker beyond its tasks, client + scheduler) on a
    1-worker LocalCluster running ``tasks`` tasks of 100 ms CPU: Dask's default settings,
    or the local cluster's quieter ones (rs_seg2any.job.cluster.QUIET_CONFIG)."""
    import dask
    import distributed

    from rs_seg2any.job.cluster import QUIET_CONFIG

    config = QUIET_CONFIG if quiet else {}
    with (
        dask.config.set(config),
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None,
                                 silence_logs=40, config=config) as lc,
        distributed.Client(lc) as client,
    ):  # fmt: skip
        client.submit(_spin, 0.1).result()
        workers, mine = client.run(cpu_seconds), cpu_seconds()
        used = sum(client.gather([client.submit(_spin, 0.1, pure=False) for _ in range(tasks)]))
        mine = cpu_seconds() - mine
        extra = sum(client.run(cpu_seconds).values()) - sum(workers.values()) - used
    return extra / tasks, mine / tasks


def report(backend: str, b: Bench, ideal: float) -> tuple[bool, str]:
    """Time one backend on one grid, print its lines; (outputs identical, summary line)."""
    results: dict[str, dict[str, Any]] = {}
    for name, workers in (("local", None), ("1 worker", 1), ("2 workers", 2)):
        results[name] = r = b.run(f"{backend}_{name}", workers)
        n = r["tiles"]
        extra = (f"; CPU per tile: workers {r['workers_cpu'] / n * 1000:.0f} ms, client+"
                 f"scheduler {r['client_cpu'] / n * 1000:.0f} ms" if workers else
                 f"; CPU per tile {r['workers_cpu'] / n * 1000:.0f} ms")  # fmt: skip
        print(f"{backend} {name:>9}: {r['tiles']} tiles in {r['seconds']:.1f} s "
              f"({r['tiles'] / r['seconds']:.2f} tiles/s); setup {r['setup']:.1f} s (not "
              f"timed); tile compute {r['tile_compute'] * 1000:.0f} ms, busy "
              f"{r['busy']:.0%}, tiles per worker {r['per_worker']}{extra}; other "
              f"processes used {r['others']:.0%} of the machine; threads [{r['threads']}]",
              flush=True)  # fmt: skip
    local, one, two = (results[k] for k in ("local", "1 worker", "2 workers"))
    ceil = {}
    for procs in (1, 2):
        ceil[procs] = c = b.ceiling(local, procs)
        print(f"{backend} {procs} plain process{'es' if procs > 1 else ''}: {c['tiles']} tiles "
              f"in {c['seconds']:.1f} s ({c['tiles'] / c['seconds']:.2f} tiles/s); tile compute "
              f"{c['tile_compute'] * 1000:.0f} ms, CPU per tile {c['cpu'] / c['tiles'] * 1000:.0f} "
              f"ms; machine busy {c['machine_busy']:.0%}; tiles "
              f"identical to the in-process run: {c['same']}; threads [{c['threads']}]",
              flush=True)  # fmt: skip
    same = len({r["sha"] for r in results.values()}) == 1 and all(c["same"] for c in ceil.values())
    tiles = local["tiles"]
    dask_up = one["seconds"] / two["seconds"]
    hw_up = ceil[1]["seconds"] / ceil[2]["seconds"]
    bound = hw_up * ideal / 2
    print(f"{backend}: speed-up 2 workers / 1 worker: {dask_up:.2f}x (goal >= 1.7x); "
          f"hardware ceiling (2 / 1 plain processes, no waits): {hw_up:.2f}x -> Dask reaches "
          f"{dask_up / hw_up:.0%} of it; with this grid's dependency bound ({ideal:.2f}x of "
          f"2.00x) the best is {bound:.2f}x -> Dask reaches {dask_up / bound:.0%}")  # fmt: skip
    per_tile = local["seconds"] / tiles
    over_local = (one["seconds"] - local["seconds"]) / tiles
    over_one = (one["seconds"] - ceil[1]["seconds"]) / tiles
    over_two = (two["seconds"] - ceil[2]["seconds"]) / tiles
    print(f"{backend}: tile compute 2 / 1: Dask workers "
          f"{two['tile_compute'] / one['tile_compute']:.2f}x, plain processes "
          f"{ceil[2]['tile_compute'] / ceil[1]['tile_compute']:.2f}x (> 1: the two cores "
          f"slow each other down or are shared with other work)")  # fmt: skip
    print(f"{backend}: scheduling overhead per tile: 1 worker vs in process "
          f"{over_local * 1000:.0f} ms on {per_tile * 1000:.0f} ms per tile "
          f"({one['seconds'] / local['seconds']:.2f}x); 1 worker vs 1 plain process "
          f"{over_one * 1000:.0f} ms; 2 workers vs 2 plain processes {over_two * 1000:.0f} ms "
          f"(includes waits for neighbours)")  # fmt: skip
    for k, name in ((1, "1 worker"), (2, "2 workers")):
        r = results[name]
        beyond = (r["workers_cpu"] - ceil[k]["cpu"]) / tiles
        print(f"{backend}: Dask CPU per tile, {name}: workers {beyond * 1000:+.0f} ms beyond "
              f"the plain processes' for the same tiles, client+scheduler "
              f"{r['client_cpu'] / tiles * 1000:.0f} ms")  # fmt: skip
    print(f"{backend}: outputs byte-identical in all runs: {same}", flush=True)
    line = (f"{dask_up:.2f}x ({tiles / one['seconds']:.2f} -> {tiles / two['seconds']:.2f} "
            f"tiles/s, tile compute {local['tile_compute']:.2f} s); ceiling {hw_up:.2f}x, Dask "
            f"reaches {dask_up / hw_up:.0%} of it, {dask_up / bound:.0%} of ceiling x bound "
            f"{bound:.2f}x; overhead per tile 1 worker vs in process {over_local * 1000:.0f} ms "
            f"({one['seconds'] / local['seconds']:.2f}x); other processes used up to "
            f"{max(r['others'] for r in results.values()):.0%} of the machine")  # fmt: skip
    return same, line


def ideal_areas(plans: list[Any], workers: int) -> float:
    """Tiles over the makespan of a greedy list schedule of several independent grids on
    ``workers`` (equal tile times; an earlier area's tiles first, as the executor does)."""
    from rs_seg2any.job.waves import dependencies

    deps = [dependencies(p) for p in plans]
    finish: dict[tuple[int, tuple[int, int]], int] = {}
    left = [(a, i) for a, d in enumerate(deps) for i in sorted(d)]
    step = 0
    while left:
        ready = [key for key in left if all(finish.get((key[0], d.index), step + 1) <= step
                                            for d in deps[key[0]][key[1]])]  # fmt: skip
        for key in ready[:workers]:
            finish[key] = step + 1
            left.remove(key)
        step += 1
    return len(finish) / step


def area_corners(n: int, side_m: float) -> list[tuple[float, float]]:
    """Lower-left corners of ``n`` areas of ``side_m`` inside the demo town (they may
    overlap: each area is its own job, at its own seed)."""
    from rs_seg2any.demo import DEMO_SIZE

    w, h = DEMO_SIZE
    nx = 3
    ny = max(1, -(-n // nx))
    xs = [(w - side_m) * i / max(1, nx - 1) for i in range(nx)]
    ys = [(h - side_m) * j / max(1, ny - 1) for j in range(ny)]
    return [(xs[k % nx], ys[k // nx]) for k in range(n)]


def areas_bench(args: argparse.Namespace, tmp: Path) -> tuple[bool, list[str]]:
    """The ``areas`` section: one areas job run locally, on 1 and 2 workers, with areas
    one at a time and at once; returns (outputs identical, headline lines)."""
    from rs_seg2any import areas as areas_mod
    from rs_seg2any.api import _run_job
    from rs_seg2any.areas import load_areas
    from rs_seg2any.demo import DEMO_ORIGIN, write_demo_layer
    from rs_seg2any.generators.base import DEFAULT_STEPS
    from rs_seg2any.generators.registry import generator_from
    from rs_seg2any.job.execparams import ExecParams
    from rs_seg2any.job.execute import execution
    from rs_seg2any.job.tiling import TilePlan
    from rs_seg2any.layout import load_layout
    from rs_seg2any.params import TileParams

    work = tmp / "areas"
    work.mkdir()
    layer = write_demo_layer(work / "town.gpkg")
    user = TileParams()
    tile, overlap, res = user.tile_size, user.overlap, 0.5
    stride = tile - overlap
    side = ((tile + (args.area_cols - 1) * stride) * res,
            (tile + (args.area_rows - 1) * stride) * res)  # fmt: skip
    corners = area_corners(args.areas, max(side))
    x0, y0 = DEMO_ORIGIN
    opts: dict[str, Any] = {"class_field": "landcover", "description_field": "description",
                            "taxonomy": "dubai_aerial", "resolution": res}  # fmt: skip
    layout_opts = {k: v for k, v in opts.items() if k != "class_field"}
    extents = [(x0 + cx, y0 + cy, x0 + cx + side[0], y0 + cy + side[1]) for cx, cy in corners]
    backend = args.area_backend
    plans = []
    for ext in extents:
        lay = load_layout(layer, "landcover", extent=ext, **layout_opts)
        plans.append(TilePlan.for_grid(lay.grid, tile, overlap))
    one = ideal_speedup(plans[0], 2)
    union = ideal_areas(plans, 2)
    n_tiles = sum(len(p.tiles) for p in plans)
    warm_ext = (x0, y0, x0 + tile * res, y0 + tile * res)

    def job_file(out: Path, extents_: list[tuple[float, ...]]) -> Any:
        areas = [{"name": f"area{i + 1}", "extent": ",".join(f"{v:.1f}" for v in e),
                  "seed": 11 + i} for i, e in enumerate(extents_)]  # fmt: skip
        values = {"command": "generate", "layout": str(layer), **opts, "backend": backend,
                  "steps": DEFAULT_STEPS, "tile_size": tile, "overlap": overlap,
                  "progress": "none", "out": str(out), "areas": areas}  # fmt: skip
        path = work / f"{out.name}.yaml"
        path.write_text(json.dumps(values))
        return load_areas(path)

    print(f"== areas: {len(extents)} areas of {args.area_rows} x {args.area_cols} tiles of "
          f"{tile} px (overlap {overlap}), {n_tiles} tiles, backend {backend}; dependency "
          f"bound on 2 workers: one area {one:.2f}x, all areas at once {union:.2f}x; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} (a shared machine: "
          "indicative figures)", flush=True)  # fmt: skip

    def run(name: str, workers: int | None, at_once: int | None) -> dict[str, Any]:
        out = work / name
        real_slots = areas_mod.area_slots
        if at_once is not None:
            areas_mod.area_slots = lambda ex, n: min(n, at_once)  # type: ignore[assignment]
        try:
            with execution(ExecParams(workers=workers), threads=1) as executor:
                client = None
                warm_job = job_file(work / f"{name}_warm", [warm_ext])
                _run_job(warm_job, None, None)
                if workers:  # every worker loads the generator (same recipe) before timing
                    client = executor._start()  # type: ignore[attr-defined]
                    warm = load_layout(layer, "landcover", extent=warm_ext, **layout_opts)
                    gen = generator_from(warm_job.areas[0][1].sampler)
                    shape = Section("warm", tile, overlap, 1, 1, DEFAULT_STEPS, None)
                    b = Bench(gen, warm, warm, work, shape)
                    render, plan, _ = b.renderer(warm, work / f"{name}_warm_render")
                    client.run(_warm_tile, render, plan.tiles[0])
                job = job_file(out, extents)
                workers_cpu = client.run(cpu_seconds) if client is not None else {}
                before = (cpu_seconds(), machine_cpu(), time.perf_counter())
                res = _run_job(job, None, None)
                after = (cpu_seconds(), machine_cpu(), time.perf_counter())
                if client is not None:
                    used = client.run(cpu_seconds)
                    workers_cpu = {w: c - workers_cpu.get(w, c) for w, c in used.items()}
        finally:
            areas_mod.area_slots = real_slots  # type: ignore[assignment]
        seconds = after[2] - before[2]
        ours = after[0] - before[0] + sum(workers_cpu.values())
        busy_all = (after[1][0] - before[1][0]) / max(1.0, after[1][1] - before[1][1])
        others = max(0.0, busy_all - ours / (seconds * (os.cpu_count() or 1)))
        files = {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
                 for p in sorted(out.rglob("*"))
                 if p.is_file() and ".rs_seg2any" not in p.parts}  # fmt: skip
        print(f"areas {backend} {name:>26}: {res.tiles_total} tiles in {seconds:.1f} s "
              f"({res.tiles_total / seconds:.2f} tiles/s); other processes used {others:.0%} "
              f"of the machine; load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        return {"seconds": seconds, "files": files, "others": others}

    k1 = k2 = areas_mod.MIN_AREAS_AT_ONCE  # what a user gets on 1 and on 2 workers
    runs = {
        "in process": run("in_process", None, None),
        "1 worker": run(f"1_worker_{k1}_at_once", 1, None),
        "2 workers, 1 at a time": run("2_workers_1_at_once", 2, 1),
        "2 workers": run(f"2_workers_{k2}_at_once", 2, None),
        "2 workers, 3 at once": run("2_workers_3_at_once", 2, 3),
    }
    same = len({json.dumps(r["files"], sort_keys=True) for r in runs.values()}) == 1
    t = {k: r["seconds"] for k, r in runs.items()}
    conc = t["2 workers, 1 at a time"] / t["2 workers"]
    two_one = t["1 worker"] / t["2 workers"]
    extra = t["2 workers"] / t["2 workers, 3 at once"]
    print(f"areas {backend}: 2 workers, {k2} areas at once / one at a time: {conc:.2f}x "
          f"(dependency bounds {union:.2f}x / {one:.2f}x = {union / one:.2f}x); 2 workers / "
          f"1 worker: {two_one:.2f}x (bound {union:.2f}x); 3 / {k2} areas at once on 2 "
          f"workers: {extra:.2f}x; outputs byte-identical in all runs: {same}",
          flush=True)  # fmt: skip
    line = (f"areas, {backend}: at once / one at a time {conc:.2f}x (bound {union / one:.2f}x), "
            f"2 / 1 workers {two_one:.2f}x (bound {union:.2f}x), 3 / {k2} at once {extra:.2f}x; "
            f"other processes used up to {max(r['others'] for r in runs.values()):.0%} of the "
            "machine")  # fmt: skip
    return same, [line]


def sections(args: argparse.Namespace) -> list[Section]:
    """The default section pins the tiling and steps from the library's own defaults."""
    from rs_seg2any.generators.base import DEFAULT_STEPS
    from rs_seg2any.params import TileParams

    user = TileParams()  # what `generate` / `run` use when no --tile-size / --overlap given
    known = {
        "default": Section("default tiling", user.tile_size, user.overlap, args.rows, args.cols,
                           DEFAULT_STEPS, None),
        "stress": Section("overhead stress", 64, 16, args.stress_rows, args.stress_cols, 4,
                          args.width),
    }  # fmt: skip
    names = [n for n in args.sections.split(",") if n != "areas"]
    unknown = sorted(set(names) - set(known))
    if unknown:
        sys.exit(f"--sections: unknown {unknown}; choose from {[*sorted(known), 'areas']}")
    return [known[n] for n in names]


def run_section(sec: Section, args: argparse.Namespace, tmp: Path) -> tuple[bool, list[str]]:
    """Every backend on one grid; returns (outputs identical, headline lines)."""
    from rs_seg2any.demo import write_demo_layer
    from rs_seg2any.generators.registry import load_generator
    from rs_seg2any.job.tiling import TilePlan
    from rs_seg2any.layout import load_layout

    layer = tmp / "town.gpkg"
    if not layer.exists():
        write_demo_layer(layer)
    h, w = sec.shape_px
    x0, y0 = 300000.0, 2780000.0
    opts: dict[str, Any] = {"description_field": "description", "taxonomy": "dubai_aerial",
                            "resolution": 0.5}  # fmt: skip
    layout = load_layout(layer, "landcover", extent=(x0, y0, x0 + w * 0.5, y0 + h * 0.5), **opts)
    warm = load_layout(layer, "landcover", **opts,
                       extent=(x0, y0, x0 + sec.tile * 0.5, y0 + sec.tile * 0.5))  # fmt: skip
    plan = TilePlan.for_grid(layout.grid, sec.tile, sec.overlap)
    ideal = ideal_speedup(plan, 2)
    weights_name = "shipped weights" if sec.width is None else f"random weights, width {sec.width}"
    tiny = f", tiny = {weights_name}" if "tiny" in args.backends.split(",") else ""
    print(f"== {sec.name}: grid {h} x {w} px, {sec.rows} x {sec.cols} tiles of {sec.tile} px "
          f"(overlap {sec.overlap}), {sec.steps} steps{tiny}; "
          f"{2 * (sec.rows - 1) + sec.cols} waves, ideal 2 workers / 1: {ideal:.2f}x; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    ok, lines = True, []
    work = tmp / sec.name.replace(" ", "_")
    work.mkdir()
    for backend in args.backends.split(","):
        model = None
        if backend == "tiny" and sec.width is not None:
            model = str(weights(work / "w.safetensors", sec.width))
        gen = load_generator(backend, model, threads=1)
        same, line = report(backend, Bench(gen, layout, warm, work, sec), ideal)
        ok &= same
        lines.append(f"{sec.name}, {backend}: {line}")
    return ok, lines


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--backends", default="tiny,exemplar", help="comma-separated")
    parser.add_argument("--sections", default="default,stress",
                        help="comma-separated: default, stress, areas")  # fmt: skip
    parser.add_argument("--rows", type=int, default=4, help="default section: tile rows")
    parser.add_argument("--cols", type=int, default=8, help="default section: tile columns")
    parser.add_argument("--stress-rows", type=int, default=4)
    parser.add_argument("--stress-cols", type=int, default=16)
    parser.add_argument("--width", type=int, default=64, help="stress: tiny model width")
    parser.add_argument("--areas", type=int, default=6, help="areas section: how many areas")
    parser.add_argument("--area-rows", type=int, default=3, help="areas section: tile rows")
    parser.add_argument("--area-cols", type=int, default=3, help="areas section: tile columns")
    parser.add_argument("--area-backend", default="exemplar", help="areas section: backend")
    parser.add_argument("--max-minutes", type=float, default=15.0, help="stop after this")
    parser.add_argument("--housekeeping", action="store_true",
                        help="also time Dask's own CPU per 100 ms task, defaults vs the local "
                        "cluster's settings (about 30 s more)")  # fmt: skip
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, lambda *_: sys.exit(f"stopped after {args.max_minutes} min"))
    signal.alarm(int(args.max_minutes * 60))
    todo = sections(args)

    tmp = Path(tempfile.mkdtemp(prefix="bench_dask-"))
    started = time.perf_counter()
    if args.housekeeping:
        for quiet in (False, True):
            extra, mine = housekeeping(quiet)
            print(f"Dask housekeeping, {'local-cluster settings' if quiet else 'Dask defaults':>22}"
                  f": CPU per 100 ms task: worker beyond the task {extra * 1000:.1f} ms, client + "
                  f"scheduler {mine * 1000:.1f} ms", flush=True)  # fmt: skip
    ok, lines = True, []
    for sec in todo:
        same, got = run_section(sec, args, tmp)
        ok &= same
        lines.extend(got)
    if "areas" in args.sections.split(","):
        same, got = areas_bench(args, tmp)
        ok &= same
        lines.extend(got)
    print("== summary (speed-up 2 workers / 1 worker, goal >= 1.7x)")
    for line in lines:
        print(line)
    print(f"outputs byte-identical in all runs: {ok}; bench took "
          f"{(time.perf_counter() - started) / 60:.1f} min; load average at the end: "
          f"{os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min)")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
