# SPDX-License-Identifier: Apache-2.0
"""Where tiles run: one interface, a local backend (default) and a Dask one.

Every job renders its tiles through :func:`execute_tiles`; the backend is chosen once per
command (:func:`execution`, from :class:`ExecParams`) and found by the job code through a
context variable, so layout, generate and every scenario's sub-jobs run on a cluster without
each passing an executor along. Both backends share :func:`run_tile` (fixed torch threads,
retries) and the manifest bookkeeping here, so a tile's bytes never depend on where it ran:

- ``local``: tiles one after another in row-major order, in this process (the default).
- ``--workers N``: a ``distributed.LocalCluster`` of N processes with one thread each.
- ``--scheduler ADDRESS``: an existing Dask cluster; workers must see the output folder.

Both honour the same dependencies (:mod:`rs_seg2any.job.waves`): a tile runs only after the
earlier tiles it reads have finished; a tile whose dependency failed is *blocked* (its pixels
would differ from a complete run's), not rendered. A tile that raises is tried ``attempts``
times, then recorded as failed with its error; the rest of the job completes, the manifest
says which failed, and :class:`~rs_seg2any.errors.PartialJobError` (exit 14) ends the job.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from ..errors import Cancelled, PartialJobError
from ..interrupts import raise_if_stop_requested
from ..progress import Progress
from .execparams import DEFAULT_ATTEMPTS, ExecParams
from .jobdir import JobDir
from .manifest import DONE, FAILED, TileOutcome
from .tiletask import OnDone, Render, TileSettings, blocked, run_tile
from .tiling import Tile, TilePlan
from .waves import dependencies

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_TILE_THREADS",
    "ExecParams",
    "Executor",
    "LocalExecutor",
    "TileSettings",
    "execute_tiles",
    "execution",
]

log = logging.getLogger(__name__)

DEFAULT_TILE_THREADS = 1
"""torch threads per tile when ``--threads`` is not given. Fixed, not "all cores": CPU
kernels may split reductions by thread count, so the default would make pixels depend on the
machine; more cores are used with ``--workers``."""


class Executor(Protocol):
    """A tile backend: runs ``pending`` tiles (dependencies first) and reports each."""

    name: str

    def run(
        self,
        plan: TilePlan,
        job: JobDir,
        render: Render,
        pending: Sequence[Tile],
        settings: TileSettings,
        on_done: OnDone,
    ) -> None: ...

    def close(self) -> None: ...


_CURRENT: contextvars.ContextVar[tuple[Executor, TileSettings] | None] = contextvars.ContextVar(
    "rs_seg2any_executor", default=None
)


class LocalExecutor:
    """Tiles one after another in row-major order, in this process: the reference run."""

    name = "local"

    def run(
        self,
        plan: TilePlan,
        job: JobDir,
        render: Render,
        pending: Sequence[Tile],
        settings: TileSettings,
        on_done: OnDone,
    ) -> None:
        deps = dependencies(plan)
        status: dict[tuple[int, int], str] = {}
        for tile in pending:
            raise_if_stop_requested()
            bad = [d for d in deps[tile.index] if status.get(d.index, DONE) != DONE]
            if bad:
                outcome = blocked(tile, bad[0].seed_key)
            else:
                outcome = run_tile(render, job, tile, settings.attempts, settings.threads)
            status[tile.index] = outcome.status
            on_done(tile, outcome)

    def close(self) -> None:
        pass


@contextlib.contextmanager
def execution(
    params: ExecParams | None = None,
    *,
    threads: int | None = DEFAULT_TILE_THREADS,
    progress: Progress | None = None,
) -> Iterator[Executor]:
    """The tile backend ``params`` ask for, used by every job run inside the block."""
    params = params or ExecParams()
    executor: Executor
    if params.distributed:
        from .cluster import DaskExecutor

        executor = DaskExecutor(params, progress=progress)
    else:
        executor = LocalExecutor()
    token = _CURRENT.set((executor, TileSettings(params.attempts, threads)))
    try:
        yield executor
    finally:
        _CURRENT.reset(token)
        executor.close()


def current() -> tuple[Executor, TileSettings]:
    """The backend of the enclosing :func:`execution` block (local outside any)."""
    found = _CURRENT.get()
    return found if found is not None else (LocalExecutor(), TileSettings())


def _seed_of(job: JobDir) -> int | None:
    seed = job.params.get("seed")
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


_WARNINGS_LOCK = threading.Lock()


def area_km2(plan: TilePlan) -> float:
    """The grid's area in km² (equal-area projection; 0 if it cannot be computed)."""
    import warnings

    try:  # catch_warnings swaps process-wide state: one area's thread at a time
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            extent = plan.grid.extent.to_crs("EPSG:6933")
        return float(extent.area) / 1e6
    except Exception:  # a summary figure must never fail a job
        return 0.0


def execute_tiles(plan: TilePlan, job: JobDir, render: Render, progress: Progress) -> int:
    """Render every pending tile of ``plan`` into ``job`` on the current backend, keeping
    the manifest; returns how many tiles were already done. Raises PartialJobError (after
    the others finished) when some tiles failed, Cancelled on Ctrl-C / SIGTERM."""
    executor, settings = current()
    manifest = job.manifest
    seed = _seed_of(job)
    manifest.plan_tiles({
        t.seed_key: {"index": list(t.index),
                     "seed": plan.tile_seed(seed, t) if seed is not None else None}
        for t in plan.tiles
    })  # fmt: skip
    pending = job.pending(plan)
    total = len(plan.tiles)
    done_before = total - len(pending)
    progress.stage("tiles", total)
    if done_before:
        progress.advance(done_before)
        progress.message(f"resuming: {done_before} of {total} tiles already done")
    started = time.monotonic()
    outcomes: list[TileOutcome] = []

    def on_done(tile: Tile, outcome: TileOutcome) -> None:
        outcomes.append(outcome)
        manifest.record(outcome)
        manifest.save()
        progress.advance(1)
        if outcome.status == FAILED:
            progress.message(f"tile {tile.seed_key} failed after {outcome.attempts} attempts: "
                             f"{outcome.error}", level="warning", tile=tile.seed_key)  # fmt: skip

    try:
        executor.run(plan, job, render, pending, settings, on_done)
        raise_if_stop_requested()  # a stop during the last tile, its exception dropped
    except KeyboardInterrupt as exc:
        finished = done_before + sum(o.status == DONE for o in outcomes)
        raise Cancelled(
            f"interrupted after {finished} of {total} tiles; run the same command again to resume"
        ) from exc
    finally:
        manifest.save(force=True)
    failed = [o for o in outcomes if o.status == FAILED]
    unfinished = [o for o in outcomes if o.status != DONE]
    summary = {
        "tiles": total,
        "done": total - len(unfinished),
        "resumed": done_before,
        "failed": len(failed),
        "blocked": len(unfinished) - len(failed),
        "km2": round(area_km2(plan), 4),
        "seconds": round(time.monotonic() - started, 3),
        "backend": executor.name,
    }
    manifest.set_summary(summary)
    manifest.save(force=True)
    progress.message(
        f"{summary['done']} of {total} tiles done ({done_before} resumed), "
        f"{summary['km2']:g} km², {summary['seconds']:.1f} s, {len(failed)} failed, "
        f"{summary['blocked']} blocked ({executor.name})",
        level="info",
        summary=summary,
    )
    if unfinished:
        first = failed[0] if failed else unfinished[0]
        raise PartialJobError(
            f"{len(failed)} of {total} tiles failed after {settings.attempts} attempts and "
            f"{len(unfinished) - len(failed)} that read them were not run (first: "
            f"{first.seed_key}: {first.error}); the other tiles are kept and "
            f"{manifest.path} lists every tile; rerun the same command to retry"
        )
    return done_before


def summary_of(job: JobDir) -> dict[str, Any]:
    """The last tile summary recorded in ``job``'s manifest (empty if none)."""
    data = job.manifest._data.get("summary")
    return dict(data) if isinstance(data, dict) else {}
