"""Write failures GDAL only reports: caught from rasterio's log and from libtiff's stderr.

Without this a full disk gave truncated GeoTIFFs that looked written, and stray lines on the
CLI's stderr; with it, every such failure becomes a one-line OutputError.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..diskspace import DISK_FULL_TEXT, write_error
from ..progress import STDERR_LOCK


class GdalWriteError(RuntimeError):
    """GDAL failed a write without raising (it only logged it): the file must not be used."""


class _GdalWatch:
    """Catches write failures GDAL only *reports*: rasterio logs them (``rasterio._err``,
    level INFO) and libtiff prints ``_tiffWriteProc: No space left on device`` straight to
    the process's stderr. Without this a full disk gave truncated files that looked written,
    and stray lines on the CLI's stderr. Within the block, file descriptor 2 goes to a temp
    file (other threads' stderr is captured too, and replayed to the log at debug level).

    Watches hold :data:`~rs_seg2any.progress.STDERR_LOCK` (re-entrant) from start to end: fd 2
    and the logger are process-wide, so two threads (concurrent areas writing GeoTIFFs) that
    saved and restored them in turn could leave fd 2 pointing at a temp file for good; and
    progress events of other threads, which take the same lock, wait for the block to end
    instead of vanishing into the temp file."""

    _LOGGER = "rasterio._err"

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._saved_fd: int | None = None
        self._capture: Any = None

    def __enter__(self) -> _GdalWatch:
        STDERR_LOCK.acquire()
        try:
            return self._enter()
        except BaseException:
            STDERR_LOCK.release()
            raise

    def _enter(self) -> _GdalWatch:
        logger = logging.getLogger(self._LOGGER)
        self._level, self._propagate = logger.level, logger.propagate
        self._handler = _ListHandler(self.errors)
        logger.addHandler(self._handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        with contextlib.suppress(OSError, ValueError):
            self._capture = tempfile.TemporaryFile()  # noqa: SIM115 - closed in _exit
            sys.stderr.flush()
            self._saved_fd = os.dup(2)
            os.dup2(self._capture.fileno(), 2)
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._exit()
        finally:
            STDERR_LOCK.release()

    def _exit(self) -> None:
        logger = logging.getLogger(self._LOGGER)
        logger.removeHandler(self._handler)
        logger.setLevel(self._level)
        logger.propagate = self._propagate
        if self._saved_fd is not None:
            os.dup2(self._saved_fd, 2)
            os.close(self._saved_fd)
        if self._capture is not None:
            with contextlib.suppress(OSError):
                self._capture.seek(0)
                text = self._capture.read(65536).decode("utf-8", "replace")
                lines = [line.strip() for line in text.splitlines() if line.strip()]
                for line in lines:
                    log.debug("GDAL: %s", line)
                self.errors[:0] = [line for line in lines if _is_io_failure(line)]
            self._capture.close()

    def check(self, dest: Path) -> None:
        """Raise the first reported failure as a one-line OutputError."""
        if self.errors:
            raise write_error(dest, GdalWriteError(" ".join(self.errors[:2])))


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "signalled an error" in message or record.levelno >= logging.ERROR:
            self.sink.append(message)


def _is_io_failure(line: str) -> bool:
    low = line.lower()
    return any(t in low for t in (*DISK_FULL_TEXT, "file too large", "write error", "i/o error"))


log = logging.getLogger(__name__)
