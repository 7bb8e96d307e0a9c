# SPDX-License-Identifier: Apache-2.0
"""One progress reporter shared by areas that run at once (:mod:`rs_seg2any.areapool`).

Each area's job reports stages, tile counts and messages as if it ran alone; its thread gets
its own view of the caller's reporter, so concurrent areas neither garble it nor reset each
other's counts:

- JSON lines: every event of an area carries ``"area": NAME`` and that area's own ``done``
  / ``total``; a program keys its counters by area (the CLI's final ``done`` / ``error``
  events come from the main thread, without an area).
- The bar: one bar, "tiles", for all areas in flight; its total grows by each area's
  tile count as the area plans its tiles (resumed tiles count at once); the areas' own
  stages (validating a layer, writing GeoTIFFs) get no bar of their own, and each message
  is printed above the bar as ``NAME: text``.
- Any other reporter (a library user's): its calls are serialised, and messages get an
  ``area`` field; its stages and counts arrive interleaved from the areas.
"""

from __future__ import annotations

import threading
from typing import Any

from .progress import BarProgress, JsonProgress, NullProgress, Progress, stderr_turn

__all__ = ["SharedProgress"]

TILES = "tiles"
"""The stage whose counts feed the shared bar (:func:`rs_seg2any.job.execute.execute_tiles`)."""


class SharedProgress:
    """Hands each concurrent area its view of ``parent`` (None: no reporting)."""

    def __init__(self, parent: Progress | None, areas: int) -> None:
        self.parent, self.areas = parent, areas
        self._lock = threading.Lock()
        self._bar: Any = None

    def area(self, name: str) -> Progress | None:
        parent = self.parent
        if parent is None or isinstance(parent, NullProgress):
            return parent
        if isinstance(parent, JsonProgress):
            return _JsonArea(parent, name)
        if isinstance(parent, BarProgress):
            return _BarArea(self, parent, name)
        return _LockedArea(parent, name, self._lock)

    def close(self) -> None:
        with self._lock:
            bar, self._bar = self._bar, None
        if bar is not None:
            with stderr_turn():
                bar.close()

    def _grow(self, parent: BarProgress, total: int) -> None:
        from tqdm import tqdm

        with self._lock, stderr_turn():
            if self._bar is None:
                parent.close()  # a bar the caller had open would be drawn over
                self._bar = tqdm(total=0, desc=f"{TILES} ({self.areas} areas)",
                                 file=parent._stream, leave=True)  # fmt: skip
            self._bar.total += total
            self._bar.refresh()

    def _advance(self, n: int) -> None:
        with self._lock, stderr_turn():
            if self._bar is not None:
                self._bar.update(n)

    def _write(self, parent: BarProgress, text: str) -> None:
        from tqdm import tqdm

        with self._lock, stderr_turn():
            tqdm.write(text, file=parent._stream)


class _JsonArea:
    """An area's JSON events: its own stage counts, ``area`` in every event."""

    def __init__(self, parent: JsonProgress, name: str) -> None:
        self._parent, self._area = parent, name
        self._stage, self._done = "", 0
        self._total: int | None = None
        self._count = threading.Lock()

    def stage(self, name: str, total: int | None = None) -> None:
        with self._count:
            self._stage, self._total, self._done = name, total, 0
        self._parent._emit({"event": "stage", "stage": name, "total": total, "area": self._area})

    def advance(self, n: int = 1) -> None:
        with self._count:
            self._done += n
            event = {"event": "progress", "stage": self._stage, "done": self._done,
                     "total": self._total, "area": self._area}  # fmt: skip
        self._parent._emit(event)

    def message(self, text: str, **fields: Any) -> None:
        self._parent._emit({"event": "message", "message": text, **fields, "area": self._area})

    def close(self) -> None:
        pass


class _BarArea:
    """An area's share of the one bar: its tile counts and its messages, named."""

    def __init__(self, shared: SharedProgress, parent: BarProgress, name: str) -> None:
        self._shared, self._parent, self._area = shared, parent, name
        self._stage = ""

    def stage(self, name: str, total: int | None = None) -> None:
        self._stage = name
        if name == TILES:
            self._shared._grow(self._parent, total or 0)

    def advance(self, n: int = 1) -> None:
        if self._stage == TILES:
            self._shared._advance(n)

    def message(self, text: str, **fields: Any) -> None:
        self._shared._write(self._parent, f"{self._area}: {text}")

    def close(self) -> None:
        pass


class _LockedArea:
    """A caller's own reporter, one call at a time, messages naming the area."""

    def __init__(self, parent: Progress, name: str, lock: threading.Lock) -> None:
        self._parent, self._area, self._lock = parent, name, lock

    def stage(self, name: str, total: int | None = None) -> None:
        with self._lock:
            self._parent.stage(name, total)

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self._parent.advance(n)

    def message(self, text: str, **fields: Any) -> None:
        with self._lock:
            self._parent.message(text, **{**fields, "area": self._area})

    def close(self) -> None:
        pass
