"""Progress reporting: a bar for people, JSON lines for programs (the QGIS plugin, batch jobs).

Library code reports through the small ``Progress`` protocol and never prints; the CLI picks
the implementation. JSON events are one object per line on stderr, e.g.
``{"event": "progress", "stage": "tiles", "done": 3, "total": 12}``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any, Protocol, TextIO

STDERR_LOCK = threading.RLock()
"""Held while a line goes to stderr from a progress reporter, and while a GeoTIFF write sends
stderr to a temp file (:mod:`rs_seg2any.geoio.gdalwatch`): with concurrent areas, a thread's
event then waits for another thread's write to end instead of being captured with GDAL's
messages."""

STDERR_WAIT_S = 10.0
"""The longest a line waits for :data:`STDERR_LOCK`; then it is written anyway (a GDAL thread
that logs inside a write must not deadlock the writer)."""


@contextlib.contextmanager
def stderr_turn() -> Iterator[None]:
    """Hold :data:`STDERR_LOCK` while writing a line to stderr (at most :data:`STDERR_WAIT_S`)."""
    got = STDERR_LOCK.acquire(timeout=STDERR_WAIT_S)
    try:
        yield
    finally:
        if got:
            STDERR_LOCK.release()


class Progress(Protocol):
    """What long-running library calls need from a progress reporter."""

    def stage(self, name: str, total: int | None = None) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def message(self, text: str, **fields: Any) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    """Reports nothing: the default for library calls."""

    def stage(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def message(self, text: str, **fields: Any) -> None:
        pass

    def close(self) -> None:
        pass


class JsonProgress:
    """JSON-lines events on a stream (stderr by default), flushed at once for live readers."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._name = ""
        self._total: int | None = None
        self._done = 0

    def _emit(self, payload: dict[str, Any]) -> None:
        line = json.dumps(payload, sort_keys=True) + "\n"
        with stderr_turn():  # one line at a time: areas' threads, Dask's log records
            self._stream.write(line)
            self._stream.flush()

    def stage(self, name: str, total: int | None = None) -> None:
        self._name, self._total, self._done = name, total, 0
        self._emit({"event": "stage", "stage": name, "total": total})

    def advance(self, n: int = 1) -> None:
        self._done += n
        self._emit(
            {"event": "progress", "stage": self._name, "done": self._done, "total": self._total}
        )

    def message(self, text: str, **fields: Any) -> None:
        self._emit({"event": "message", "message": text, **fields})

    def close(self) -> None:
        pass


class BarProgress:
    """tqdm bars on stderr, one per stage; messages printed above the bar."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._bar: Any = None

    def stage(self, name: str, total: int | None = None) -> None:
        from tqdm import tqdm

        self.close()
        self._bar = tqdm(total=total, desc=name, file=self._stream, leave=True)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def message(self, text: str, **fields: Any) -> None:
        from tqdm import tqdm

        with stderr_turn():
            tqdm.write(text, file=self._stream)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def make_progress(kind: str) -> Progress:
    """'bar' (default for terminals), 'json' (for programs) or 'none'.

    For 'json' and 'none' the process's other stderr writers are tamed too (see
    :func:`route_library_output`), because callers parse that stream.
    """
    if kind == "json":
        progress = JsonProgress()
        route_library_output(progress)
        return progress
    if kind == "none":
        route_library_output(None)
        return NullProgress()
    return BarProgress()


def route_library_output(json_progress: JsonProgress | None) -> None:
    """Third-party chatter on stderr becomes JSON events (``json``) or nothing (``none``).

    Python warnings (e.g. torch's dtype notices) and log records of level WARNING and above
    turn into ``{"event": "warning", ...}`` lines; Hugging Face/tqdm loading bars are
    switched off. Only the CLI calls this: library users keep their own settings.
    """
    import os
    import warnings

    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TQDM_DISABLE"] = "1"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if json_progress is not None:
            json_progress._emit(
                {"event": "warning", "type": category.__name__, "message": str(message)}
            )

    warnings.showwarning = show
    handler: logging.Handler = (
        _JsonLogHandler(json_progress) if json_progress else (logging.NullHandler())
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)


class _JsonLogHandler(logging.Handler):
    """Log records as JSON warning events on the progress stream."""

    def __init__(self, progress: JsonProgress) -> None:
        super().__init__(logging.WARNING)
        self._progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self._progress._emit(
            {"event": "warning", "type": record.name, "message": record.getMessage()}
        )
