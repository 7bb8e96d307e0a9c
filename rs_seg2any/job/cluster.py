# SPDX-License-Identifier: Apache-2.0
"""The Dask backend: a job's tiles as tasks on a ``distributed`` cluster, same bytes as local.

- Each pending tile is one task, submitted by the client once the tiles it reads
  (:mod:`rs_seg2any.job.waves`: its upper-left, upper, upper-right and left neighbours) are
  saved, earliest wave first. The tasks have no Dask dependencies on purpose: Dask places
  a task with dependencies only on a worker that holds one of them, so a chain of
  neighbours (and a renderer held by one worker) would keep every tile on the first worker
  (measured: all 8 tiles of a 2 x 4 grid on one of 2 workers). Free of dependencies, a
  tile goes to whichever worker is idle.
- Workers write tiles straight into the job folder (which they must see: any local cluster,
  or a shared disk) and return only the outcome (status, attempts, sha256); the client alone
  keeps the manifest and the folder lock. While a worker renders and writes it holds a shared
  ``writers`` lock, so a rerun after the client died waits for it instead of racing it.
- The renderer (layout, tile plan) travels once per worker as a Dask worker plugin
  (:class:`RendererPlugin`; a replaced or late worker gets it too), over Dask's own channel:
  nothing executable is written to the job folder or read from it. Its generator travels
  as a JSON recipe (:class:`WorkerGenerator`, :mod:`rs_seg2any.generators.recipe`): each
  worker process rebuilds it by backend name once per recipe, after checking the sha256 of
  every file the recipe names, and keeps it for every later tile and job.
- Worker processes get one thread each and fixed torch threads per tile, so tiles are
  byte-identical to the local run's. A worker that dies mid-tile is replaced and its tile
  rerun by the scheduler.
- One tile per task, on purpose. Batching ready tiles into one task would save Dask's fixed
  cost per task (about 25-45 ms of worker, client and scheduler CPU on the 2-core machine)
  only where more tiles are ready than workers: on 2 workers that is at most 2 tiles (mean
  0.7-1.3) on the bench's grids, and batches that wait for whole waves lower the bound of
  a 4 x 8 grid from 1.78x to 1.60x; at the default 256 px tiling (0.6-2.5 s a tile) the
  cost is 1-7% of a tile (``bench/bench_dask.py``).
- Many areas at once (:mod:`rs_seg2any.areas`): client threads share this executor, each
  running one area's job, so the independent areas' tiles interleave on the workers: one
  area's grid alone keeps 2 workers busy only as far as its waves allow (a 3 x 3 grid: 9
  tiles in 7 waves). :meth:`DaskExecutor.shared` marks that time: a tile of an area that
  started earlier goes first (Dask priority), so areas finish in order and free their slot
  for the next one, while later areas fill the gaps of the earlier ones' waves; an error in
  one area's run cancels only its own tiles; :meth:`DaskExecutor.stop` (Ctrl-C, SIGTERM)
  cancels every run's tiles and makes each run raise within :data:`POLL_S`.
- A GPU job's tiles each hold one unit of a Dask resource (``--gpu-resource``, see
  :mod:`rs_seg2any.job.resources`): one tile at a time per GPU worker, none on CPU workers;
  ``--workers N`` on a machine with GPUs gives the first workers one GPU each.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import importlib
import importlib.util
import logging
import os
import secrets
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..deps import require
from ..errors import ClusterError, InputError, RsSeg2AnyError
from ..generators.recipe import GeneratorRecipe
from ..interrupts import raise_if_stop_requested
from ..progress import Progress
from .execparams import ExecParams
from .jobdir import JobDir
from .manifest import DONE, FAILED, TileOutcome
from .resources import local_worker_specs, offered, require_resource, tile_resource, visible_gpus
from .tiletask import OnDone, Render, TileSettings, blocked, run_tile
from .tiling import Tile, TilePlan
from .waves import dependencies, waves

__all__ = ["DaskExecutor", "WorkerGenerator", "local_cluster"]

log = logging.getLogger(__name__)

THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}
"""Environment of local-cluster workers: one thread each, whatever the machine."""

QUIET_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1000ms",
    "distributed.worker.memory.monitor-interval": "1000ms",
    "distributed.admin.system-monitor.interval": "2000ms",
}
"""Dask housekeeping of a local cluster (its scheduler runs in this process): no statistical
profiler sampling the tile thread every 10 ms, event-loop and memory checks every second
instead of every 20 and 100 ms. Measured on the 2-core machine (load 8), 40 tasks of
100 ms CPU on one worker: the worker's CPU beyond its tasks fell from 19.4 to 5.8 ms per
task and the client + scheduler's from 26.6 to 7.5 ms ("Dask housekeeping" lines of
``bench/bench_dask.py --housekeeping``); idle, a 2-worker cluster used 16% of a core, now
2.4%. Costs: an empty profile page on the dashboard; a worker over its memory limit is
noticed within 1 s, not 0.1 s."""

_PRE_SPAWN = "distributed.nanny.pre-spawn-environ"
SPAWN_ENV = {"MALLOC_TRIM_THRESHOLD_": 134217728, "MALLOC_MMAP_THRESHOLD_": 33554432}
"""Set before each local worker process starts (malloc reads them once), in place of
Dask's default, which sets only a 64 kB trim threshold. That switches off glibc's dynamic
mmap threshold: every tensor over 128 kB is then mapped and unmapped again, and a 256-px
tiny tile took 5.5 s instead of 2.75 s (sys time 0.1 -> 5.4 s). A fixed 32 MiB mmap
threshold alone brought it back to 2.82 s; with the heap trimmed only past 128 MiB of free
memory at its top (not after every large free) a tile takes 2.48 s (minor page faults
297 k -> 9 k), as fast as a plain process with glibc's defaults (0.92x and 0.98x of it in
two quiet runs of bench/bench_malloc.py; Dask's setting alone: 2.06x).
A worker may keep up to 128 MiB of freed memory for reuse."""

_GENERATORS: dict[str, Any] = {}
"""Worker-process cache: recipe key (backend, options, file digests) -> loaded generator."""
_GENERATORS_LOCK = threading.Lock()


class WorkerGenerator:
    """A registry-built generator as it travels to workers: its JSON recipe (backend name,
    model, options, digests of the files they name), rebuilt through the backend registry
    once per worker process and recipe, after the digests are checked, then shared by every
    tile that process renders. No pickle of the generator travels or is written."""

    def __init__(self, generator: Any, recipe: GeneratorRecipe) -> None:
        self.name = generator.name
        self.bands = generator.bands
        self.supports_inpainting = generator.supports_inpainting
        self.tile_multiple = generator.tile_multiple
        self._describe = generator.describe()
        self.recipe = recipe.to_json()
        self._rs_recipe = getattr(generator, "_rs_recipe", None)  # GPU or not (resources)

    def describe(self) -> dict[str, Any]:
        return dict(self._describe)

    def loaded(self) -> Any:
        recipe = GeneratorRecipe.from_json(self.recipe)
        with _GENERATORS_LOCK:
            gen = _GENERATORS.get(recipe.key)
            if gen is None:
                gen = _GENERATORS[recipe.key] = recipe.load()
                one_interop_thread()
        return gen

    def generate(self, cond: Any, **kwargs: Any) -> np.ndarray:
        result: np.ndarray = self.loaded().generate(cond, **kwargs)
        return result


def one_interop_thread() -> None:
    """torch's inter-op pool down to one thread in a worker process (its default is one per
    core; the intra-op threads are fixed per tile by ``--threads``). Only possible before
    torch has run parallel work: otherwise left as it is."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_interop_threads() != 1:
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)


def for_workers(render: Render) -> Render:
    """The renderer with its generator replaced by its :class:`WorkerGenerator` recipe. A
    generator built outside the registry (an object of the caller's own code, e.g. a test
    double) has no recipe: it travels in the renderer over Dask's own channel, like any
    function a Dask user submits; nothing is written to or read from the job folder."""
    gen = getattr(render, "generator", None)
    if gen is None or isinstance(gen, WorkerGenerator):
        return render
    recipe = GeneratorRecipe.of(gen)
    if recipe is None:
        return render
    shipped = copy.copy(render)
    shipped.generator = WorkerGenerator(gen, recipe)  # type: ignore[attr-defined]
    return shipped


_RENDERERS: dict[str, Render] = {}
"""Worker-process table: job run token -> renderer (set by :class:`RendererPlugin`)."""


_PluginBase: Any = (
    importlib.import_module("distributed").WorkerPlugin
    if importlib.util.find_spec("distributed")
    else object
)  # without distributed, DaskExecutor says which extra to install


class RendererPlugin(_PluginBase):  # type: ignore[misc]
    """A job's renderer (layout, tile plan, generator recipe) on every worker: Dask sends a
    registered worker plugin to each worker, and to workers that join or replace a dead one
    later, so the renderer travels once per worker and no task depends on another."""

    idempotent = False

    def __init__(self, token: str, render: Render, folder: str) -> None:
        self.token, self.render = token, render
        # one name per job folder: a rerun after a killed client (which could not unregister
        # its plugin) replaces that run's renderer on the scheduler and the workers
        where = hashlib.sha256(folder.encode()).hexdigest()[:16]
        self.name = f"rs-seg2any-renderer-{where}"

    def setup(self, worker: Any) -> None:
        _RENDERERS[self.token] = self.render

    def teardown(self, worker: Any) -> None:
        _RENDERERS.pop(self.token, None)


def _renderer(token: str) -> Render:
    render = _RENDERERS.get(token)
    if render is None:
        raise ClusterError(f"the job's renderer ({token}) did not reach this Dask worker; "
                           "rerun the job")  # fmt: skip
    return render


def tile_task(
    token: str, job: JobDir, tile: Tile, attempts: int, threads: int | None
) -> TileOutcome:
    """One tile on a worker (the client submits it once the tiles it reads are saved)."""
    with job.writing():
        done = run_tile(_renderer(token), job, tile, attempts, threads)
    return dataclasses.replace(done, worker=_worker_address())


def _worker_address() -> str | None:
    """The address of the worker running this task (recorded in the manifest)."""
    import distributed

    try:
        address: str = distributed.get_worker().address
    except ValueError:  # not on a worker
        return None
    return address


POLL_S = 0.1
"""How often a run waiting for its tiles checks whether :meth:`DaskExecutor.stop` was called
(``distributed.as_completed`` waits in steps of 0.1 s too)."""

AREA_PRIORITY_STRIDE = 1 << 20
"""Priority step between runs started while the executor is shared: every tile of an earlier
run outranks every tile of a later one (no grid has 2**20 waves)."""

WORKERS_START_S = 300.0
"""How long local workers may take to start (a busy machine imports torch slowly)."""


def local_cluster(
    n_workers: int, gpus: list[str] | None = None, dashboard: str | None = None
) -> tuple[Any, Any]:
    """A LocalCluster of ``n_workers`` processes (one thread each) and its client; with
    ``gpus`` (default: those this process sees), worker i < len(gpus) sees only GPU i and
    offers the ``GPU`` resource."""
    import dask
    import distributed
    from distributed.system import MEMORY_LIMIT

    LocalCluster: Any = distributed.LocalCluster
    Client: Any = distributed.Client

    gpus = visible_gpus() if gpus is None else gpus
    before = {k: os.environ.get(k) for k in SPAWN_ENV}
    # the scheduler here, and each Nanny's pre-spawn environment (read when scale() makes it)
    with dask.config.set(
        {**QUIET_CONFIG, **{f"{_PRE_SPAWN}.{k}": v for k, v in SPAWN_ENV.items()}}
    ):
        cluster = LocalCluster(
            n_workers=0,
            threads_per_worker=1,
            processes=True,
            dashboard_address=dashboard,
            env=THREAD_ENV,
            config=QUIET_CONFIG,
            memory_limit=max(1, int(MEMORY_LIMIT / n_workers)),
            silence_logs=logging.ERROR,
        )
        try:
            # a Nanny takes a variable from this process's environment over its config, and
            # an earlier plain Dask cluster in this process leaves Dask's own trim threshold
            # there: ours go in both places while the workers start (restored below)
            os.environ.update({k: str(v) for k, v in SPAWN_ENV.items()})
            cluster.worker_spec.update(local_worker_specs(cluster.new_spec, n_workers, gpus))
            cluster.scale(n_workers)
            client = Client(cluster)
            client.wait_for_workers(n_workers, timeout=WORKERS_START_S)
        except BaseException as exc:
            cluster.close()
            if isinstance(exc, TimeoutError | OSError):
                raise ClusterError(f"{n_workers} local Dask workers did not start in "
                                   f"{WORKERS_START_S:.0f} s ({exc}); try fewer --workers"
                                   ) from exc  # fmt: skip
            raise
        finally:  # Dask writes the pre-spawn variables into this process's environment
            for key, value in before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return cluster, client


class DaskExecutor:
    """Tiles as tasks on a ``distributed`` cluster: a LocalCluster (``workers``) or an
    existing scheduler (``scheduler``)."""

    name = "dask"

    def __init__(self, params: ExecParams, progress: Progress | None = None) -> None:
        require("distributed", "dask", user="--workers / --scheduler")
        self.params, self._progress = params, progress
        self._cluster: Any = None
        self.client: Any = None
        self.dashboard: str | None = None
        self.resource_wait: float | None = None  # None: resources.RESOURCE_WAIT_S
        # client threads of concurrent areas share this executor (see shared())
        self._start_lock = threading.Lock()
        self._lock = threading.Lock()  # guards the tables below
        self._stopping = threading.Event()
        self._sharers = 0
        self._runs = 0
        self._live: dict[str, dict[str, tuple[Tile, Any]]] = {}  # run tag -> key -> tile, future
        self.name = (f"dask ({params.workers} local workers)" if params.workers
                     else f"dask ({params.scheduler})")  # fmt: skip

    def _start(self) -> Any:
        """The client, started on first use (bad input fails before any cluster starts);
        one client even when several areas' threads start at once."""
        with self._start_lock:
            if self._stopping.is_set():
                raise KeyboardInterrupt
            return self.client if self.client is not None else self._connect()

    def slots(self) -> int:
        """How many tiles the cluster runs at once: its worker threads (at least 1)."""
        if self.params.workers:
            return self.params.workers  # one thread each, known before the cluster starts
        try:
            nthreads: dict[str, int] = self._start().nthreads()
        except (OSError, TimeoutError):  # the first run reports a lost scheduler
            return 1
        return max(1, sum(nthreads.values()))

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        """Several threads run jobs on this executor at once (the areas of one job): a run
        that fails cancels its own tiles but leaves the cluster open for the others (its
        owner closes it), and earlier runs' tiles outrank later ones'."""
        with self._lock:
            self._sharers += 1
        try:
            yield
        finally:
            with self._lock:
                self._sharers -= 1

    def stop(self) -> None:
        """From another thread (Ctrl-C, SIGTERM in the main one): cancel the tiles of every
        run in flight; each run raises KeyboardInterrupt within :data:`POLL_S` (its job ends
        with Cancelled, its manifest saved), and so does any run started afterwards."""
        self._stopping.set()
        with self._lock:
            futures = [f for live in self._live.values() for _, f in live.values()]
        client = self.client
        if client is not None and futures:
            with contextlib.suppress(Exception):  # a lost scheduler has nothing to cancel
                client.cancel(futures)

    def _connect(self) -> Any:
        import distributed

        Client: Any = distributed.Client

        params = self.params
        if params.scheduler:
            try:
                self.client = Client(params.scheduler, timeout="30s")
            except (OSError, TimeoutError) as exc:
                raise InputError(
                    f"cannot reach the Dask scheduler at {params.scheduler} ({exc}); check "
                    "--scheduler (tcp://HOST:8786) and that the scheduler is running"
                ) from exc
        else:
            assert params.workers is not None
            dashboard = ":0" if importlib.util.find_spec("bokeh") else None
            self._cluster, self.client = local_cluster(params.workers, dashboard=dashboard)
        self.dashboard = self._dashboard_link()
        if self._progress is not None:
            if self.dashboard:
                self._progress.message(f"Dask dashboard: {self.dashboard}",
                                       dashboard=self.dashboard)  # fmt: skip
            else:
                self._progress.message(f"tiles run on {self.name} (no dashboard: bokeh is "
                                       "not installed)")  # fmt: skip
        return self.client

    def _dashboard_link(self) -> str | None:
        try:
            info = self.client.scheduler_info()
            if "dashboard" not in info.get("services", {}):
                return None
            link: str = self.client.dashboard_link
            return link
        except Exception:  # the link is a courtesy
            return None

    def run(
        self,
        plan: TilePlan,
        job: JobDir,
        render: Render,
        pending: Sequence[Tile],
        settings: TileSettings,
        on_done: OnDone,
    ) -> None:
        import distributed

        as_completed: Any = distributed.as_completed

        if not pending:
            return
        if self._stopping.is_set():
            raise KeyboardInterrupt
        client = self._start()
        resource = tile_resource(self.params.gpu_resource, render)
        restrict = None
        if resource:  # checked first: tiles no worker can take would wait forever
            where = ("the local cluster" if self.params.workers
                     else f"the Dask cluster at {self.params.scheduler}")  # fmt: skip
            require_resource(client, resource, where, wait=self.resource_wait)
            restrict = {resource: 1}
            if self._progress is not None:
                having, total = offered(client, resource)
                self._progress.message(f"each tile holds the Dask resource {resource}: "
                                       f"{having} of {total} workers offer it")  # fmt: skip
        deps = dependencies(plan)
        level = waves(plan, deps)
        tag = secrets.token_hex(8)
        with self._lock:  # shared: a later area's tiles yield to an earlier one's
            first = -AREA_PRIORITY_STRIDE * self._runs if self._sharers else 0
            self._runs += 1
            live: dict[str, tuple[Tile, Any]] = self._live.setdefault(tag, {})
        plugin = RendererPlugin(tag, for_workers(render), os.path.realpath(job.path))
        client.register_plugin(plugin, name=plugin.name)
        todo = {t.index for t in pending}
        waiting = {t.index: {d.index for d in deps[t.index] if d.index in todo} for t in pending}
        readers: dict[tuple[int, int], list[Tile]] = {}
        for tile in pending:
            for index in waiting[tile.index]:
                readers.setdefault(index, []).append(tile)
        status: dict[tuple[int, int], str] = {}  # tiles not pending are done
        running = as_completed()

        def submit(tiles: list[Tile]) -> None:
            for tile in sorted(tiles, key=lambda t: (level[t.index], t.index)):
                key = f"tile-{tag}-{tile.seed_key}"
                future = client.submit(
                    tile_task, tag, job, tile, settings.attempts, settings.threads, key=key,
                    priority=first - level[tile.index], pure=False, resources=restrict,
                )  # fmt: skip
                with self._lock:
                    live[key] = (tile, future)
                running.add(future)

        def finish(tile: Tile, outcome: TileOutcome) -> None:
            """Record ``outcome``; submit the readers it was the last wait of, or mark them
            blocked (their pixels would differ from a complete run's) if a tile failed."""
            ready: list[Tile] = []
            stack = [(tile, outcome)]
            while stack:
                tile, outcome = stack.pop()
                status[tile.index] = outcome.status
                on_done(tile, outcome)
                for reader in readers.get(tile.index, ()):
                    waits = waiting[reader.index]
                    waits.discard(tile.index)
                    if waits:
                        continue
                    bad = [d for d in deps[reader.index] if status.get(d.index, DONE) != DONE]
                    if bad:
                        stack.append((reader, blocked(reader, bad[0].seed_key)))
                    else:
                        ready.append(reader)
            submit(ready)

        try:
            submit([t for t in pending if not waiting[t.index]])
            while (future := self._next_done(running)) is not None:
                with self._lock:
                    tile, _ = live.pop(future.key)
                if future.status == "finished":
                    outcome: TileOutcome = future.result()
                else:
                    exc = future.exception()
                    if isinstance(exc, RsSeg2AnyError):
                        raise exc
                    outcome = TileOutcome(tile.seed_key, FAILED, settings.attempts,
                                          error=f"{type(exc).__name__}: {exc}")  # fmt: skip
                finish(tile, outcome)
        except BaseException:
            with self._lock:
                futures, shared = [f for _, f in live.values()], self._sharers > 0
            with contextlib.suppress(Exception):  # a lost scheduler: nothing to cancel
                client.cancel(futures)
            if not shared:  # shared: the owner closes it once the other runs have stopped
                self.close()  # a local cluster's workers stop before the folder lock goes
            raise
        finally:
            with self._lock:
                self._live.pop(tag, None)
            if self.client is not None:
                with contextlib.suppress(Exception):  # a lost scheduler: nothing to undo
                    client.unregister_worker_plugin(plugin.name)

    def _next_done(self, running: Any) -> Any:
        """The next finished (or cancelled) tile future of ``running``, None when all are
        out; KeyboardInterrupt once :meth:`stop` was called, so a stopped run ends as an
        interruption (Cancelled, manifest saved) rather than with a cancelled future's
        CancelledError, while the client stays open for the other runs to stop (it closes
        once all have, before the folder lock goes). Closing the client under a plain
        ``for f in as_completed(...)`` would also end it, with the futures cancelled
        (distributed 2026.8, checked), but the runs' outcomes would then be errors."""
        while not running.has_ready():
            if self._stopping.is_set():
                raise KeyboardInterrupt
            raise_if_stop_requested()
            if running.is_empty():
                return None
            with running.thread_condition:
                running.thread_condition.wait(timeout=POLL_S)
        if self._stopping.is_set():
            raise KeyboardInterrupt
        return next(running)

    def close(self) -> None:
        client, self.client = self.client, None
        cluster, self._cluster = self._cluster, None
        if client is not None:
            try:
                client.close()
            except Exception as exc:  # closing must never hide the job's own outcome
                log.debug("closing the Dask client: %s", exc)
        if cluster is not None:
            try:
                cluster.close()
            except Exception as exc:
                log.debug("closing the local cluster: %s", exc)
