"""The one atomic writer: every output file appears whole or not at all.

Each writer gets a temp path beside the destination (hidden ``.tmp-`` name, same filesystem),
writes it, and on success the file is fsynced and renamed into place (then the folder is
fsynced, so the rename survives a power cut). On any exception the temp file and what GDAL
left beside it are deleted and the previous file at the destination is untouched; an I/O
failure becomes a one-line :class:`~rs_seg2any.errors.OutputError` (disk full, file-size
limit). A killed process cannot run that cleanup, so reopening a folder deletes every
``.tmp-`` file (:func:`remove_temps`).

Use :func:`atomic_output` for writers that want a path (GDAL, Pillow, geopandas, torch),
:func:`atomic_open` for a text handle (CSV), :func:`atomic_write` for a binary stream, and
:func:`write_text` / :func:`write_json` for whole strings.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TextIO

from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioError

from .diskspace import write_error
from .errors import OutputError

__all__ = [
    "SIDE_SUFFIXES",
    "TMP_PREFIX",
    "atomic_open",
    "atomic_output",
    "atomic_write",
    "ensure_writable_dir",
    "remove_output",
    "remove_temps",
    "temp_path",
    "write_json",
    "write_text",
]

#: Every temporary file of every output (tiles, job.json, GeoTIFFs, CSV, JSON, QML, PNG) starts
#: with this prefix, in the folder of its destination; reopening a job deletes them all.
TMP_PREFIX = ".tmp-"
#: Files GDAL or QGIS keep beside a raster; they live and die with their main file.
SIDE_SUFFIXES = (".aux.xml", ".ovr", ".msk")
# temp names of versions before the common prefix: ``.<name>.<12 hex>.<tag><suffix>``
_LEGACY_TEMP = re.compile(r"^\..+\.[0-9a-f]{12}\.(tmp|partial\.tif|probe)")
#: What a failed write raises (besides OutputError): mapped to a one-line OutputError.
WRITE_ERRORS = (OSError, RasterioError, CPLE_BaseError)


def temp_path(dest: Path, tag: str = "") -> Path:
    """``<folder>/.tmp-<stem>-<random>[.<tag>]<suffix>``: same filesystem as dest, so
    os.replace is atomic, and dest's own suffix, so writers that pick a format from the
    extension (GDAL, Pillow) write the right one."""
    middle = f".{tag}" if tag else ""
    return dest.with_name(f"{TMP_PREFIX}{dest.stem}-{secrets.token_hex(6)}{middle}{dest.suffix}")


def remove_quietly(path: Path) -> None:
    """Delete ``path`` if it exists."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def remove_with_side_files(path: Path) -> None:
    """Delete a temp file and anything GDAL created beside it (``.ovr.tmp``, ``.aux.xml``)."""
    remove_quietly(path)
    for side in path.parent.glob(glob.escape(path.name) + ".*"):
        remove_quietly(side)


def remove_output(path: Path) -> None:
    """Delete an output together with its side files (``.aux.xml``, ``.ovr``, ``.msk``)."""
    for side in (path, *(path.with_name(path.name + s) for s in SIDE_SUFFIXES)):
        try:
            remove_quietly(side)
        except OSError as exc:
            raise OutputError(f"cannot remove {side}: {exc.strerror or exc}") from exc


def remove_temps(folder: Path) -> list[Path]:
    """Delete what a killed run left half-written in ``folder`` (files only, not recursive)."""
    removed: list[Path] = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in os.scandir(folder):
            name = entry.name
            if (name.startswith(TMP_PREFIX) or _LEGACY_TEMP.match(name)) and entry.is_file(
                follow_symlinks=False
            ):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def fsync_file(path: Path) -> None:
    """Flush a written file's bytes to its disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make a rename durable; best effort where directories cannot be opened (Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextmanager
def atomic_output(dest: Path | str) -> Iterator[Path]:
    """Yield a temp path in dest's folder (hidden name, same filesystem); on success fsync and
    os.replace to dest; on any exception delete the temp and re-raise (a failed write as
    OutputError). Never leaves a partial dest; an earlier dest stays as it was."""
    dest = Path(dest)
    tmp = temp_path(dest)
    try:
        try:
            yield tmp
        except WRITE_ERRORS as exc:
            raise write_error(dest, exc) from exc
        if not tmp.exists():
            raise OutputError(f"nothing was written for '{dest}'")
        try:
            fsync_file(tmp)
            os.replace(tmp, dest)
        except OSError as exc:
            raise write_error(dest, exc) from exc
    except BaseException:
        remove_with_side_files(tmp)
        raise
    fsync_dir(dest.parent)


@contextmanager
def atomic_open(dest: Path | str, encoding: str = "utf-8") -> Iterator[TextIO]:
    """A text handle (``newline=""``, as :mod:`csv` wants) whose file appears at ``dest`` only
    when the block finishes without an exception."""
    with atomic_output(dest) as tmp, tmp.open("w", encoding=encoding, newline="") as fh:
        yield fh


def atomic_write(dest: Path | str, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write`` with a binary handle; the bytes appear at ``dest`` only if it returns."""
    dest = Path(dest)
    with atomic_output(dest) as tmp, tmp.open("wb") as fh:
        write(fh)
    return dest


def write_text(dest: Path | str, text: str, encoding: str = "utf-8") -> Path:
    """Write a whole string atomically."""
    return atomic_write(dest, lambda fh: fh.write(text.encode(encoding)))


def write_json(dest: Path | str, value: Any, *, indent: int = 2, sort_keys: bool = True) -> Path:
    """Write a JSON document (with a final newline) atomically."""
    return write_text(dest, json.dumps(value, indent=indent, sort_keys=sort_keys) + "\n")


def ensure_writable_dir(path: Path | str) -> Path:
    """Create if needed; raise OutputError with an actionable message if not creatable/writable.

    A real write probe, because permission bits lie (root, ACLs, read-only mounts)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"output path '{path}' exists and is not a folder; choose another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create output folder '{path}': {exc.strerror or exc}; "
            "choose a folder you can write to"
        ) from exc
    probe = temp_path(path / "probe", "probe")
    try:
        probe.write_bytes(b"")
        remove_quietly(probe)
    except OSError as exc:
        remove_quietly(probe)
        raise OutputError(
            f"output folder '{path}' is not writable: {exc.strerror or exc}; "
            "fix its permissions or choose another folder"
        ) from exc
    return path
