# SPDX-License-Identifier: Apache-2.0
"""A stop request that survives code which drops KeyboardInterrupt.

The CLI turns SIGTERM and SIGINT into KeyboardInterrupt in the main thread, wherever that
thread happens to be. Inside some compiled readers the exception is lost: pyogrio 0.13's
OGR reader (used to read each layout tile's polygons) discards it without a word, and the
job then runs to the end and exits 0 as if nobody had asked it to stop (seen on about one
signal in ten sent during a layout job's tiles). So the handlers also set a process-wide
flag, and the tile loops and stage boundaries check it: a stop lands at the next tile even
when the exception itself was eaten.

Only :func:`install_handlers` (the CLI process) sets the flag; library calls and tests that
call ``main([...])`` never see it set.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["install_handlers", "raise_if_stop_requested"]

_STOP = threading.Event()


def raise_if_stop_requested() -> None:
    """Raise KeyboardInterrupt if a stop was requested (its first delivery may have been
    dropped); callers turn it into Cancelled as they would a delivered one."""
    if _STOP.is_set():
        raise KeyboardInterrupt


def _interrupt(signum: int, frame: FrameType | None) -> None:
    _STOP.set()
    raise KeyboardInterrupt


def install_handlers() -> None:
    """SIGTERM and SIGINT (even if a parent ignored it) stop the job like Ctrl-C: cleanly,
    finished tiles kept. Main thread only (Python delivers signals there)."""
    if threading.current_thread() is not threading.main_thread():
        return
    _STOP.clear()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
