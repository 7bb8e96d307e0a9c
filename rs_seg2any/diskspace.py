"""Free space and failed writes: a full disk or a file-size limit becomes one actionable line.

Every writer of the package maps its I/O failures through :func:`write_error`, so a user
reads which disk is full, how much is free and what the job needs, not an ``OSError`` or a
GDAL message; :func:`require_free_space` refuses a job that cannot fit before any work.
"""

from __future__ import annotations

import contextvars
import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import OutputError, one_line

__all__ = ["disk_of", "job_space", "require_free_space", "write_error"]

_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
#: Words in an error text (GDAL's too) that mean the disk is full.
DISK_FULL_TEXT = ("no space left", "disk quota", "disk full")
_JOB_NEED: contextvars.ContextVar[int | None] = contextvars.ContextVar("job_need", default=None)


def disk_of(path: Path | str) -> Path:
    """The mount point holding ``path`` (the disk a user has to free)."""
    current = Path(os.path.abspath(path))
    while not current.exists() and current != current.parent:
        current = current.parent
    while not os.path.ismount(current) and current != current.parent:
        current = current.parent
    return current


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def _free(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(disk_of(folder)).free
    except OSError:
        return None


def require_free_space(folder: Path | str, need: int, what: str = "this job") -> None:
    """OutputError before any work when ``need`` bytes cannot fit on folder's disk."""
    folder = Path(folder)
    free = _free(folder)
    if free is not None and free < need:
        raise OutputError(
            f"not enough free space on {disk_of(folder)}: {what} needs at least {_size(need)}, "
            f"only {_size(free)} free; free some space or choose an --out folder on a larger disk"
        )


@contextmanager
def job_space(need: int) -> Iterator[None]:
    """Within this block, a disk-full error also says how much the whole job needs."""
    token = _JOB_NEED.set(int(need))
    try:
        yield
    finally:
        _JOB_NEED.reset(token)


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
        return True
    text = str(exc).lower()
    return any(t in text for t in DISK_FULL_TEXT)


def _is_too_large(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
        return True
    return "file too large" in str(exc).lower()


def write_error(dest: Path | str, exc: BaseException) -> OutputError:
    """One-line OutputError for a failed write; a full disk names the disk and the space."""
    dest = Path(dest)
    if isinstance(exc, OutputError):
        return exc
    if _is_disk_full(exc):
        free = _free(dest.parent)
        need = _JOB_NEED.get()
        needs = f"; this job needs at least {_size(need)} in all" if need else ""
        have = f" ({_size(free)} free)" if free is not None else ""
        return OutputError(
            f"disk full on {disk_of(dest.parent)}{have} while writing {dest.name}{needs}; "
            "free some space and rerun the same command (finished tiles are kept)"
        )
    if _is_too_large(exc):
        return OutputError(
            f"{dest.name} grew larger than a file may be on {disk_of(dest.parent)} (a file-size "
            "limit such as 'ulimit -f', or the filesystem's maximum); raise the limit or choose "
            "an --out folder on another disk, then rerun the same command"
        )
    return OutputError(f"cannot write {dest}: {one_line(exc)}; check the --out folder")
