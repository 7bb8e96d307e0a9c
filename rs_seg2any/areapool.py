# SPDX-License-Identifier: Apache-2.0
"""Several areas of one job at once, on client threads that share one tile backend.

Used by :func:`rs_seg2any.areas.run_areas` when the tiles run on a Dask cluster: within one
area, inpainting orders the tiles in waves (:mod:`rs_seg2any.job.waves`), so a small area
keeps few workers busy (a 2 x 2 grid is serial, a 3 x 3 one bounded at 1.29x on 2 workers);
areas are independent, so running ``slots`` of them at once lets their tiles fill each
other's gaps. The tiles' bytes do not depend on the order they run in.

- Each area runs in a daemon thread, in a copy of the caller's context variables (the tile
  backend is found through one, :func:`rs_seg2any.job.execute.current`), with its own view
  of the progress reporter (:mod:`rs_seg2any.areaprogress`).
- A partial area does not stop the others. Any other error stops starting areas; the ones
  running finish, then the first error is raised, naming its area.
- Ctrl-C / SIGTERM reach the main thread, which waits here: it calls ``stop`` (the
  executor cancels every area's tiles and makes each area's job end with Cancelled), waits
  up to :data:`DRAIN_S` for the threads (a second interrupt ends the wait), and raises
  Cancelled. Threads are daemons, not a ThreadPoolExecutor's: a thread still busy (e.g.
  writing a large mosaic) cannot keep the process from exiting.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .areaprogress import SharedProgress
from .errors import Cancelled, PartialJobError, RsSeg2AnyError
from .interrupts import raise_if_stop_requested
from .jobmodel import Job
from .progress import Progress

__all__ = ["AreasOutcome", "run_concurrently"]

DRAIN_S = 120.0
"""After Ctrl-C, how long the areas' threads may take to stop (a thread validating a layer
or writing GeoTIFFs stops when that step ends; tiles stop within a fraction of a second)."""

RunOne = Callable[[Job, "Progress | None"], Any]


@dataclass
class AreasOutcome:
    """What the areas gave: results and partial errors by area name."""

    results: dict[str, Any] = field(default_factory=dict)
    partial: dict[str, PartialJobError] = field(default_factory=dict)


def run_concurrently(
    areas: Sequence[tuple[str, Job]],
    run_one: RunOne,
    slots: int,
    stop: Callable[[], None],
    progress: Progress | None,
) -> AreasOutcome:
    """Run ``areas`` with ``run_one(job, progress)``, up to ``slots`` at once; ``stop``
    cancels the running areas' tiles (called on Ctrl-C / SIGTERM in this thread)."""
    shared = SharedProgress(progress, len(areas))
    done: queue.Queue[tuple[str, Any, BaseException | None]] = queue.Queue()
    running: dict[str, threading.Thread] = {}
    outcome = AreasOutcome()
    todo = list(enumerate(areas, 1))
    first: tuple[str, BaseException] | None = None

    def start(i: int, name: str, area: Job) -> None:
        context = contextvars.copy_context()  # one per thread: a context runs in one at a time
        mine = shared.area(name)

        def body() -> None:
            try:
                res = context.run(run_one, area, mine)
            except BaseException as exc:  # handed to the main thread
                done.put((name, None, exc))
            else:
                done.put((name, res, None))

        if progress is not None:
            progress.message(f"area {name} ({i} of {len(areas)}, {len(running) + 1} running)",
                             area=name)  # fmt: skip
        thread = threading.Thread(target=body, name=f"rs-seg2any area {name}", daemon=True)
        running[name] = thread
        thread.start()

    try:
        while todo or running:
            while todo and first is None and len(running) < slots:
                i, (name, area) = todo.pop(0)
                start(i, name, area)
            if not running:
                break
            try:
                name, res, exc = done.get(timeout=1.0)
            except queue.Empty:
                raise_if_stop_requested()
                continue
            running.pop(name).join()
            if exc is None:
                outcome.results[name] = res
            elif isinstance(exc, PartialJobError):
                outcome.partial[name] = exc
            elif first is None:
                first = (name, exc)
    except KeyboardInterrupt:
        stop()
        _drain(running, done, outcome)
        finished = len(outcome.results) + len(outcome.partial)
        raise Cancelled(f"interrupted after {finished} of {len(areas)} areas; run the same "
                        "command again to resume") from None  # fmt: skip
    finally:
        shared.close()
    if first is not None:
        name, exc = first
        if isinstance(exc, RsSeg2AnyError):
            raise type(exc)(f"area '{name}': {exc}") from exc
        exc.add_note(f"in area '{name}'")
        raise exc
    return outcome


def _drain(
    running: dict[str, threading.Thread],
    done: queue.Queue[tuple[str, Any, BaseException | None]],
    outcome: AreasOutcome,
) -> None:
    """Wait for the stopped areas' threads (at most DRAIN_S; a second interrupt ends it)."""
    limit = time.monotonic() + DRAIN_S
    try:
        while any(t.is_alive() for t in running.values()) or not done.empty():
            if time.monotonic() > limit:
                return
            try:
                name, res, exc = done.get(timeout=0.2)
            except queue.Empty:
                continue
            running.pop(name, None)
            if exc is None:
                outcome.results[name] = res  # it finished before the stop reached it
            elif isinstance(exc, PartialJobError):
                outcome.partial[name] = exc
    except KeyboardInterrupt:
        return
