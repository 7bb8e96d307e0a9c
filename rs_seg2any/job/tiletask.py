# SPDX-License-Identifier: Apache-2.0
"""One tile's run, the same on every backend: fixed torch threads, retries, an outcome.

Shared by the local backend and the Dask workers (:mod:`rs_seg2any.job.execute`,
:mod:`rs_seg2any.job.cluster`), so a tile's bytes and its failure handling never depend on
where it ran.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import RsSeg2AnyError, one_line
from .execparams import DEFAULT_ATTEMPTS
from .jobdir import JobDir
from .manifest import BLOCKED, DONE, FAILED, TileOutcome
from .tiling import Tile

__all__ = ["OnDone", "Render", "TileSettings", "blocked", "run_tile", "tile_threads"]

log = logging.getLogger(__name__)

Render = Callable[[Tile], Mapping[str, np.ndarray]]
OnDone = Callable[[Tile, TileOutcome], None]


@dataclass(frozen=True)
class TileSettings:
    """How each tile runs, wherever it runs."""

    attempts: int = DEFAULT_ATTEMPTS
    threads: int | None = None  # None: leave torch's thread count alone (library calls)


@contextlib.contextmanager
def tile_threads(threads: int | None) -> Iterator[None]:
    """Run a tile with exactly ``threads`` torch threads (None: as they are). Only touches
    torch when it is loaded, so rasterising never imports it."""
    torch = sys.modules.get("torch")
    if threads is None or torch is None:
        yield
        return
    before = torch.get_num_threads()
    if before != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if before != threads:
            torch.set_num_threads(before)


def _retryable(exc: BaseException) -> bool:
    """Errors worth another try: anything unexpected, non-finite pixels, a GPU out of memory.
    The user's own mistakes (a missing file, a full disk) fail every tile alike: they stop
    the job at once instead."""
    if not isinstance(exc, Exception):
        return False
    return not isinstance(exc, RsSeg2AnyError) or exc.exit_code in (10, 11)


def run_tile(
    render: Render, job: JobDir, tile: Tile, attempts: int, threads: int | None
) -> TileOutcome:
    """Render and save one tile, up to ``attempts`` times; its outcome for the manifest."""
    started = time.perf_counter()
    last: BaseException | None = None
    for attempt in range(1, attempts + 1):
        try:
            with tile_threads(threads):
                arrays = render(tile)
            sha = job.save_tile(tile, arrays)
            return TileOutcome(tile.seed_key, DONE, attempt, sha,
                               seconds=time.perf_counter() - started)  # fmt: skip
        except Exception as exc:
            if not _retryable(exc):
                raise
            last = exc
            log.warning("tile %s failed (attempt %d of %d): %s", tile.seed_key, attempt,
                        attempts, one_line(exc, 300))  # fmt: skip
    assert last is not None
    return TileOutcome(tile.seed_key, FAILED, attempts, error=_error_text(last),
                       seconds=time.perf_counter() - started)  # fmt: skip


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {one_line(exc, 500)}"


def blocked(tile: Tile, by: str) -> TileOutcome:
    return TileOutcome(tile.seed_key, BLOCKED, 0,
                       error=f"not run: it reads tile {by}, which did not finish")  # fmt: skip
