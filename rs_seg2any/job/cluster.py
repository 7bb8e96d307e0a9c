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
- The renderer travels once per job as a file in the job's state folder, which workers
  must see anyway (:class:`ShippedRenderer`): each worker process reads it on its first tile
  (a replaced or late worker too) and keeps it; its generator travels as a recipe
  (:class:`WorkerGenerator`): each worker process loads a generator once per (backend,
  weights digest) and keeps it for every later tile and job.
- Worker processes get one thread each and fixed torch threads per tile, so tiles are
  byte-identical to the local run's. A worker that dies mid-tile is replaced and its tile
  rerun by the scheduler.
- A GPU job's tiles each hold one unit of a Dask resource (``--gpu-resource``, see
  :mod:`rs_seg2any.job.resources`): one tile at a time per GPU worker, none on CPU workers;
  ``--workers N`` on a machine with GPUs gives the first workers one GPU each.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib.util
import json
import logging
import pickle
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write, remove_quietly
from ..deps import require
from ..errors import ClusterError, InputError, RsSeg2AnyError
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

_GENERATORS: dict[tuple[str, str], Any] = {}
"""Worker-process cache: (backend, weights digest) -> loaded generator."""


def generator_key(generator: Any) -> tuple[str, str]:
    """(backend, weights digest): the weights' sha256 when the backend reports it, joined
    with a digest of its whole description (LoRA, options), so two generators that share
    weights but not settings never share a cache entry."""
    info = generator.describe()
    weights = info.get("weights_sha256", "") if isinstance(info, dict) else ""
    text = json.dumps(info, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return (str(getattr(generator, "name", "?")), f"{weights}:{digest}")


class WorkerGenerator:
    """A generator as it travels to workers: its recipe (backend, model, options) or, for a
    generator built outside the registry, the pickled object; loaded on first use and then
    shared by everything that worker process renders."""

    def __init__(self, generator: Any) -> None:
        self.name = generator.name
        self.bands = generator.bands
        self.supports_inpainting = generator.supports_inpainting
        self.tile_multiple = generator.tile_multiple
        self.key = generator_key(generator)
        self._describe = generator.describe()
        self._recipe = getattr(generator, "_rs_recipe", None)
        self._blob = None if self._recipe is not None else _dumps(generator)

    def describe(self) -> dict[str, Any]:
        return dict(self._describe)

    def loaded(self) -> Any:
        gen = _GENERATORS.get(self.key)
        if gen is None:
            if self._recipe is not None:
                from ..generators.registry import load_generator

                backend, model, threads, options = self._recipe
                gen = load_generator(backend, model, threads=threads, **options)
            else:
                assert self._blob is not None
                gen = pickle.loads(self._blob)
            _GENERATORS[self.key] = gen
        return gen

    def generate(self, cond: Any, **kwargs: Any) -> np.ndarray:
        result: np.ndarray = self.loaded().generate(cond, **kwargs)
        return result


def _dumps(obj: Any) -> bytes:
    import cloudpickle

    data: bytes = cloudpickle.dumps(obj)
    return data


def for_workers(render: Render) -> Render:
    """The renderer with its generator replaced by a :class:`WorkerGenerator`."""
    gen = getattr(render, "generator", None)
    if gen is None or isinstance(gen, WorkerGenerator):
        return render
    shipped = copy.copy(render)
    shipped.generator = WorkerGenerator(gen)  # type: ignore[attr-defined]
    return shipped


_RENDERERS: OrderedDict[str, Render] = OrderedDict()
"""Worker-process cache: renderer digest -> renderer (the latest few jobs')."""
_RENDERERS_KEPT = 4
_RENDERERS_LOCK = threading.Lock()


@dataclass(frozen=True)
class ShippedRenderer:
    """A job's renderer as tile tasks carry it: the path of its pickle and its digest."""

    path: str
    digest: str

    @classmethod
    def write(cls, job: JobDir, render: Render) -> ShippedRenderer:
        blob = _dumps(for_workers(render))
        digest = hashlib.sha256(blob).hexdigest()[:20]
        path = job.path / f"renderer-{digest}.pkl"
        atomic_write(path, lambda fh: fh.write(blob))
        return cls(str(path), digest)

    def load(self) -> Render:
        """The renderer, read once per worker process."""
        with _RENDERERS_LOCK:
            render = _RENDERERS.get(self.digest)
            if render is None:
                with open(self.path, "rb") as fh:
                    render = pickle.load(fh)
                _RENDERERS[self.digest] = render
                while len(_RENDERERS) > _RENDERERS_KEPT:
                    _RENDERERS.popitem(last=False)
            _RENDERERS.move_to_end(self.digest)
            return render


def tile_task(
    shipped: ShippedRenderer, job: JobDir, tile: Tile, attempts: int, threads: int | None
) -> TileOutcome:
    """One tile on a worker (the client submits it once the tiles it reads are saved)."""
    with job.writing():
        done = run_tile(shipped.load(), job, tile, attempts, threads)
    return dataclasses.replace(done, worker=_worker_address())


def _worker_address() -> str | None:
    """The address of the worker running this task (recorded in the manifest)."""
    import distributed

    try:
        address: str = distributed.get_worker().address
    except ValueError:  # not on a worker
        return None
    return address


WORKERS_START_S = 300.0
"""How long local workers may take to start (a busy machine imports torch slowly)."""


def local_cluster(
    n_workers: int, gpus: list[str] | None = None, dashboard: str | None = None
) -> tuple[Any, Any]:
    """A LocalCluster of ``n_workers`` processes (one thread each) and its client; with
    ``gpus`` (default: those this process sees), worker i < len(gpus) sees only GPU i and
    offers the ``GPU`` resource."""
    import distributed
    from distributed.system import MEMORY_LIMIT

    LocalCluster: Any = distributed.LocalCluster
    Client: Any = distributed.Client

    gpus = visible_gpus() if gpus is None else gpus
    cluster = LocalCluster(
        n_workers=0,
        threads_per_worker=1,
        processes=True,
        dashboard_address=dashboard,
        env=THREAD_ENV,
        memory_limit=max(1, int(MEMORY_LIMIT / n_workers)),
        silence_logs=logging.ERROR,
    )
    try:
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
        self.name = (f"dask ({params.workers} local workers)" if params.workers
                     else f"dask ({params.scheduler})")  # fmt: skip

    def _start(self) -> Any:
        """The client, started on first use (bad input fails before any cluster starts)."""
        if self.client is not None:
            return self.client
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
        for stale in job.path.glob("renderer-*.pkl"):  # of a client that was killed
            remove_quietly(stale)
        shipped = ShippedRenderer.write(job, render)
        tag = secrets.token_hex(4)
        todo = {t.index for t in pending}
        waiting = {t.index: {d.index for d in deps[t.index] if d.index in todo} for t in pending}
        readers: dict[tuple[int, int], list[Tile]] = {}
        for tile in pending:
            for index in waiting[tile.index]:
                readers.setdefault(index, []).append(tile)
        status: dict[tuple[int, int], str] = {}  # tiles not pending are done
        live: dict[str, tuple[Tile, Any]] = {}
        running = as_completed()

        def submit(tiles: list[Tile]) -> None:
            for tile in sorted(tiles, key=lambda t: (level[t.index], t.index)):
                key = f"tile-{tag}-{tile.seed_key}"
                future = client.submit(
                    tile_task, shipped, job, tile, settings.attempts, settings.threads,
                    key=key, priority=-level[tile.index], pure=False, resources=restrict,
                )  # fmt: skip
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
            for future in running:
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
            client.cancel([f for _, f in live.values()])
            self.close()  # a local cluster's workers stop before the folder lock is released
            raise
        finally:
            remove_quietly(Path(shipped.path))

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
