# SPDX-License-Identifier: Apache-2.0
"""Resumable job directories: finished tiles survive a crash, a kill or a full disk.

Generating a large grid takes hours; a rerun of the same command must pick up where the last
one stopped and produce bit-identical outputs. ``<out>/.rs_seg2any/`` holds ``job.json``
(the job's parameters and tool version) and ``tiles/`` with one ``.npz`` per finished tile.
Every file is written to a temp file, fsynced and renamed, so a tile file is either complete
or absent; leftovers of a kill (``.tmp-*``, the one temp naming scheme of all outputs, see
:data:`rs_seg2any.geoio.TMP_PREFIX`) are removed from the output folder, the state folder and
``tiles/`` when the job is reopened.

One folder, one job. A finished job (or one without a finished tile) whose parameters differ
from the new one is *replaced*:
every output it recorded or planned (with side files such as ``.aux.xml``) is deleted before
the new job writes anything, so no file of the old job (say a 10 m ``image.tif``) stays beside
the new one's (a 20 m ``label.tif``). An unfinished job with other parameters is refused
(JobError) because its tiles would be lost, unless ``restart=True`` discards it likewise.

Locking. Constructing a ``JobDir`` takes an exclusive ``flock`` on ``.rs_seg2any/lock`` (which
holds the owner's PID) before touching anything; a second process gets a JobError naming the
PID at once. The lock is held by the *coordinating* process until :meth:`JobDir.close` (or the
``with`` block ends, or the process dies: the kernel drops ``flock`` locks even on SIGKILL).
``JobDir`` pickles as plain data *without* the lock, so workers (e.g. Dask-distributed ones
writing tiles with :meth:`save_tile`) work under the lock their client holds and never take
or release it themselves. Within one process the lock is shared by all ``JobDir`` objects of
one folder (reference-counted), so it guards against other processes, not other threads.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from rs_seg2any import __version__
from rs_seg2any.atomic import (
    TMP_PREFIX,
    atomic_write,
    ensure_writable_dir,
    remove_output,
    remove_temps,
    write_text,
)
from rs_seg2any.digest import file_sha256
from rs_seg2any.diskspace import write_error
from rs_seg2any.errors import JobError, OutputError
from rs_seg2any.job.manifest import MANIFEST_NAME, Manifest
from rs_seg2any.job.tiling import Tile, TilePlan

__all__ = ["JOB_DIRNAME", "JobDir", "folder_lock"]

#: Name of the hidden state folder inside an output folder.
JOB_DIRNAME = ".rs_seg2any"

_FORMAT = 1
_TMP_PREFIX = TMP_PREFIX
_LOCK_NAME = "lock"
_WRITERS_NAME = "writers"
#: How long a new run waits for workers of a dead client to finish the tile they are writing.
WRITERS_WAIT_S = 60.0
_WINDOW_KEY = "__window__"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: same arrays -> same bytes
_UNREADABLE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)

log = logging.getLogger(__name__)


def _canonical(params: Mapping[str, Any]) -> dict[str, Any]:
    """JSON round trip, so tuples/lists and key order never make equal jobs look different."""
    if not isinstance(params, Mapping):
        raise TypeError(f"job params must be a mapping, got {type(params).__name__}")
    try:
        text = json.dumps(dict(params), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"job params must be JSON-serialisable (no NaN, no Paths): {exc}") from exc
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _diff_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the parameters that differ, so the error says what changed."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if _same(old, new) else [prefix or "<params>"]
    diffs: list[str] = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in old or key not in new:
            diffs.append(path)
        else:
            diffs.extend(_diff_keys(old[key], new[key], path))
    return diffs


def _write_npz(fh: IO[bytes], arrays: Mapping[str, NDArray[Any]]) -> None:
    """An ``.npz`` (readable by ``np.load``) without wall-clock timestamps: byte-deterministic."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, arrays[name], allow_pickle=False)


class _FolderLock:
    """An exclusive, non-blocking ``flock`` on one lock file, holding the owner's PID.

    ``flock`` locks belong to the open file and vanish when the process dies (also on
    SIGKILL), so a crashed run never leaves the folder locked. Where ``fcntl`` is missing
    (Windows) ``msvcrt.locking`` of one byte past the PID does the same.
    """

    _held: ClassVar[dict[str, tuple[_FolderLock, int]]] = {}
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    @classmethod
    def acquire(cls, path: Path, folder: Path) -> _FolderLock:
        """The lock, shared by all callers within this process (reference-counted)."""
        key = os.path.realpath(path)
        with cls._guard:
            if key in cls._held:
                lock, count = cls._held[key]
                cls._held[key] = (lock, count + 1)
                return lock
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise write_error(path, exc) from exc
            if not _try_lock(fd):
                owner = _read_pid(fd)
                os.close(fd)
                raise JobError(
                    f"{folder} is in use by another rs_seg2any run (PID {owner}); wait for it "
                    "to finish, stop it, or use another --out folder"
                )
            try:
                _wait_for_writers(path.with_name(_WRITERS_NAME), folder)
            except BaseException:
                os.close(fd)
                raise
            _write_pid(fd)
            lock = cls(path, fd)
            cls._held[key] = (lock, 1)
            return lock

    def release(self) -> None:
        key = os.path.realpath(self.path)
        with self._guard:
            lock, count = self._held.get(key, (self, 1))
            if lock is not self:
                return
            if count > 1:
                self._held[key] = (lock, count - 1)
                return
            del self._held[key]
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)  # no PID: nobody holds it (a SIGKILL leaves a stale one)
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the file drops the flock


_WIN_LOCK_OFFSET = 1 << 20  # lock a byte past the PID, so others can still read the PID


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    return True


def _wait_for_writers(path: Path, folder: Path, wait_s: float | None = None) -> None:
    """Refuse the folder while workers of an earlier run still write tiles into it.

    Workers hold a *shared* lock on ``writers`` for as long as they render and write a tile
    (:meth:`JobDir.writing`); their client holds the folder lock. When the client dies its
    folder lock vanishes at once, but a worker may still be writing: a new run waits for
    the shared locks to go (a worker finishes its one tile; orphans of a local cluster exit
    at once) and is refused with a JobError if they outlast ``WRITERS_WAIT_S``."""
    if sys.platform == "win32" or not path.exists():  # pragma: no cover - no workers there
        return
    import fcntl

    limit = time.monotonic() + (WRITERS_WAIT_S if wait_s is None else wait_s)
    fd = os.open(path, os.O_RDWR)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                if time.monotonic() > limit:
                    raise JobError(
                        f"workers of an earlier run are still writing tiles into {folder}; "
                        "stop them (or wait for them to finish) and rerun"
                    ) from None
                time.sleep(0.2)
                continue
            fcntl.flock(fd, fcntl.LOCK_UN)
            return
    finally:
        os.close(fd)


@contextlib.contextmanager
def _shared_writer_lock(path: Path) -> Iterator[None]:
    """A shared ``flock`` on ``writers`` while a worker writes (see :func:`_wait_for_writers`)."""
    if sys.platform == "win32":  # pragma: no cover
        yield
        return
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def _read_pid(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode("ascii", "replace").strip()
        if text:
            return str(int(text.split()[0]))
    return "unknown"


def _write_pid(fd: int) -> None:
    """Best effort: the PID only makes the message of a competing run helpful."""
    with contextlib.suppress(OSError):
        data = f"{os.getpid()}\n".encode("ascii")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, data)


@contextlib.contextmanager
def folder_lock(out: Path | str) -> Iterator[Path]:
    """Hold ``out``'s job lock for work made of several jobs (a scenario's ``before/``,
    ``after/`` and its own masks), so a second run on the folder is refused at once; clears the
    temporaries a killed run left at the folder's top. Jobs inside share the lock."""
    folder = Path(out)
    made = not folder.exists()
    ensure_writable_dir(folder)
    state = folder / JOB_DIRNAME
    fresh = not state.exists()
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(state, exc) from exc
    lock = _FolderLock.acquire(state / _LOCK_NAME, folder)
    try:
        for path in remove_temps(folder):
            log.info("removed %s left by an interrupted run", path)
        yield folder
    finally:
        if fresh and _only_lock_in(state):  # a refused run leaves the folder as it found it
            with contextlib.suppress(OSError):
                (state / _LOCK_NAME).unlink()
                state.rmdir()
                if made:
                    folder.rmdir()  # only when empty: nothing was written
        lock.release()


def _only_lock_in(state: Path) -> bool:
    with contextlib.suppress(OSError):
        return [p.name for p in state.iterdir()] == [_LOCK_NAME]
    return False


def _tile_arrays(tile: Tile, arrays: Mapping[str, Any]) -> dict[str, NDArray[Any]]:
    """Validate names (they become zip member names) and add the tile's window for checks."""
    if not arrays:
        raise ValueError(f"tile {tile.seed_key}: nothing to save")
    out: dict[str, NDArray[Any]] = {}
    for name, value in arrays.items():
        if not (isinstance(name, str) and name.isidentifier()) or name.startswith("__"):
            raise ValueError(
                f"tile array names must be identifiers not starting with '__', got {name!r}"
            )
        array = np.ascontiguousarray(value)
        if array.dtype.hasobject:
            raise TypeError(
                f"tile array {name!r} has dtype object; only plain numeric arrays are saved"
            )
        out[name] = array
    out[_WINDOW_KEY] = _window(tile)
    return out


def _window(tile: Tile) -> NDArray[np.int64]:
    bounds = (tile.rows.start, tile.rows.stop, tile.cols.start, tile.cols.stop)
    return np.array(bounds, dtype=np.int64)


def _reads_whole(path: Path) -> bool:
    """Every member's CRC checks out (a full read; only for tiles the manifest lacks)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except _UNREADABLE:
        return False


class JobDir:
    """<out>/.rs_seg2any/: job.json (params + tool version) and tiles/ (one .npz per finished tile).

    Holds the folder's lock until :meth:`close` (use it as a context manager). Reopening an
    UNFINISHED job with different params raises JobError (use a new --out, or --restart),
    because its tiles would be lost; a FINISHED job (or one that never finished a tile, e.g.
    refused for lack of space) is replaced by the new one: its outputs are deleted first.
    ``restart=True`` discards the old job (tiles and outputs) either way.
    ``planned`` names the files (relative to the output folder) this job will write, so that
    a later replacement can remove them even if this run never finishes.
    """

    def __init__(
        self,
        out_dir: Path | str,
        params: Mapping[str, Any],
        *,
        restart: bool = False,
        planned: Iterable[str] = (),
    ) -> None:
        self._path = Path(out_dir) / JOB_DIRNAME
        self._tiles = self._path / "tiles"
        self._params = _canonical(params)
        self._planned = sorted({str(p) for p in planned})
        self._lock: _FolderLock | None = None
        self._manifest: Manifest | None = None
        self._verified: dict[str, tuple[int, int]] = {}
        self._make_dirs()
        self._lock = _FolderLock.acquire(self._path / _LOCK_NAME, self._path.parent)
        try:
            self._open(restart)
        except BaseException:
            self.close()
            raise

    def _open(self, restart: bool) -> None:
        self._remove_temps()
        record = self._read_record_or_none() if restart else self._read_record()
        if (
            not restart
            and record is not None
            and (record.get("complete") or not self._finished_tile_files())
            and not _same(record.get("params"), self._params)
        ):
            restart = True  # nothing unfinished to protect: replace the finished (or empty) job
        if restart:
            if record is not None:
                self._remove_outputs(record)
            record = None
        if record is None:
            if restart:
                self._wipe_tiles()
            elif self._finished_tile_files():
                raise JobError(
                    f"{self._path} holds finished tiles but no job.json, so they cannot be "
                    "trusted; use a new --out folder or pass --restart to discard them"
                )
            self._drop_manifest()
            record = self._new_record()
            self._write_record(record)
        else:
            self._check_params(record)
            if self._planned and record.get("planned") != self._planned:
                record = {**record, "planned": self._planned}
                self._write_record(record)
        self._record = record

    # -- lock -----------------------------------------------------------------------------

    def close(self) -> None:
        """Release the folder's lock (idempotent); the job's files stay as they are."""
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    def __enter__(self) -> JobDir:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __getstate__(self) -> dict[str, Any]:
        """Plain data for workers: the lock stays with the coordinating process."""
        state = dict(self.__dict__)
        state["_lock"] = None
        state["_manifest"] = None  # the coordinator alone writes it
        return state

    # -- job.json -------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The hidden state folder ``<out>/.rs_seg2any``."""
        return self._path

    @property
    def params(self) -> dict[str, Any]:
        """The job's canonical (JSON round-tripped) parameters."""
        return json.loads(json.dumps(self._params))  # type: ignore[no-any-return]

    @property
    def complete(self) -> bool:
        """True once ``mark_complete`` ran: all outputs were written by an earlier run."""
        return bool(self._record.get("complete", False))

    @property
    def outputs(self) -> dict[str, str]:
        """Outputs recorded by ``mark_complete`` (name -> path)."""
        return dict(self._record.get("outputs", {}))

    def mark_complete(self, outputs: Mapping[str, str | os.PathLike[str]]) -> None:
        """Record the finished outputs, so a rerun can tell the job is already done."""
        record = {
            **self._record,
            "complete": True,
            "outputs": {k: str(v) for k, v in outputs.items()},
        }
        self.manifest.set_outputs({k: Path(v) for k, v in outputs.items()}, self._path.parent)
        self.manifest.save(force=True)
        self._write_record(record)
        self._record = record

    def outputs_intact(self) -> bool:
        """A finished job whose every output still has the bytes the manifest recorded: a
        rerun has nothing to do."""
        return self.complete and self.manifest.outputs_intact(self._path.parent)

    def _new_record(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "tool": "rs_seg2any",
            "version": __version__,
            "params": self._params,
            "complete": False,
            "outputs": {},
            "planned": self._planned,
        }

    def _record_path(self) -> Path:
        return self._path / "job.json"

    def _read_record(self) -> dict[str, Any] | None:
        path = self._record_path()
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise JobError(
                f"{path} is unreadable ({exc}); use a new --out folder or pass --restart"
            ) from exc
        if not isinstance(record, dict) or "params" not in record:
            raise JobError(f"{path} is not an rs_seg2any job file; use a new --out or --restart")
        return record

    def _read_record_or_none(self) -> dict[str, Any] | None:
        """The old record when it is readable (a restart discards what it can find)."""
        try:
            return self._read_record()
        except JobError:
            return None

    def _remove_outputs(self, record: Mapping[str, Any]) -> None:
        """Delete every output the old job recorded or planned, with its side files.

        Only files inside the output folder are touched, whatever job.json says."""
        out = self._path.parent.resolve()
        names = [str(v) for v in dict(record.get("outputs") or {}).values()]
        names += [str(v) for v in record.get("planned") or []]
        for name in names:
            path = (out / name).resolve()
            if path.parent == out or out in path.parents:
                if path.is_dir() or JOB_DIRNAME in path.parts:
                    continue
                log.info("removing %s of the earlier job in %s", path.name, out)
                remove_output(path)

    def _write_record(self, record: Mapping[str, Any]) -> None:
        text = json.dumps(record, sort_keys=True, indent=2) + "\n"
        dest = self._record_path()
        write_text(dest, text)

    def _check_params(self, record: Mapping[str, Any]) -> None:
        old = record["params"]
        if _same(old, self._params):
            return
        keys = ", ".join(_diff_keys(old, self._params))
        done = len(self._finished_tile_files())
        raise JobError(
            f"{self._path.parent} holds a job with different parameters (differing: {keys}; "
            f"{done} finished tiles). Use a new --out folder, or pass --restart to discard "
            "them and start over."
        )

    # -- tiles ----------------------------------------------------------------------------

    def tile_path(self, tile: Tile) -> Path:
        """Where the tile's arrays live once finished."""
        return self._tiles / f"{tile.seed_key}.npz"

    def tile_done(self, tile: Tile) -> bool:
        """Whether the tile is finished; a truncated file is deleted (so it is recomputed)."""
        path = self.tile_path(tile)
        if not path.is_file():
            return False
        if self._looks_intact(path):
            return True
        self._discard(path, "it is truncated or not an .npz archive")
        return False

    def pending(self, plan: TilePlan) -> list[Tile]:
        """Tiles still to compute, in plan order. A tile file counts as finished when the
        manifest records its exact sha256, or (written after the manifest's last save) when
        it reads back whole; a file whose bytes differ from the recorded ones is deleted."""
        present = set(self._finished_tile_files())
        return [t for t in plan.tiles if f"{t.seed_key}.npz" not in present or not self._proven(t)]

    def _proven(self, tile: Tile) -> bool:
        path = self.tile_path(tile)
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        stamp = (st.st_size, st.st_mtime_ns)
        if self._verified.get(tile.seed_key) == stamp:
            return True
        entry = self.manifest.tiles.get(tile.seed_key) or {}
        if entry.get("status") == "done" and entry.get("sha256"):
            ok = self.manifest.verified_sha(tile.seed_key, path)
            if not ok:
                self._discard(path, "its bytes differ from those the manifest recorded")
        else:
            ok = self.tile_done(tile) and _reads_whole(path)
            if ok:
                self.manifest.record_done(tile.seed_key, file_sha256(path))
            else:
                self._discard(path, "it does not read back whole")
        if ok:
            self._verified[tile.seed_key] = stamp
        return ok

    def save_tile(self, tile: Tile, arrays: Mapping[str, NDArray[Any]]) -> str:
        """Save a finished tile atomically; identical arrays always give identical bytes.
        Returns the file's sha256 (for the manifest)."""
        payload = _tile_arrays(tile, arrays)
        dest = self.tile_path(tile)
        try:
            self._tiles.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(dest, exc) from exc
        atomic_write(dest, lambda fh: _write_npz(fh, payload))
        return file_sha256(dest)  # read back from the page cache: the bytes as stored

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Held by a worker while it renders and writes a tile: a new run on this folder
        waits (then is refused) until it is done, even if the client holding the folder lock
        has died meanwhile."""
        with _shared_writer_lock(self._path / _WRITERS_NAME):
            yield

    # -- manifest -------------------------------------------------------------------------

    @property
    def manifest(self) -> Manifest:
        """The job's manifest (tiles and outputs with status, attempts and sha256)."""
        if self._manifest is None:
            self._manifest = Manifest(self._path)
        return self._manifest

    def _drop_manifest(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._path / MANIFEST_NAME).unlink()
        self._manifest = None
        self._verified.clear()

    def load_tile(self, tile: Tile) -> dict[str, NDArray[Any]]:
        """The tile's arrays; an unreadable file is deleted and reported, so a rerun redoes it."""
        path = self.tile_path(tile)
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays: dict[str, NDArray[Any]] = {name: archive[name] for name in archive.files}
        except FileNotFoundError:
            raise JobError(
                f"tile {tile.seed_key} has not been computed ({path} is missing)"
            ) from None
        except _UNREADABLE as exc:
            self._discard(path, f"it is unreadable ({exc})")
            raise JobError(
                f"tile file {path} was unreadable, probably cut short by a full disk or a crash; "
                "it has been deleted: rerun the same command to recompute it"
            ) from exc
        window = arrays.pop(_WINDOW_KEY, None)
        if window is None or window.tolist() != _window(tile).tolist():
            raise JobError(
                f"tile file {path} was made for a different tile plan; use a new --out folder "
                "or pass --restart"
            )
        return arrays

    def clean_tiles(self) -> None:
        """Remove tiles/ after a successful assembly; job.json stays as the job's record."""
        self._wipe_tiles()

    # -- housekeeping ---------------------------------------------------------------------

    def _make_dirs(self) -> None:
        try:
            self._path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"cannot create the job folder {self._path}: {exc.strerror or exc}; "
                "choose a writable --out folder"
            ) from exc

    def _finished_tile_files(self) -> list[str]:
        try:
            names = os.listdir(self._tiles)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if n.endswith(".npz") and not n.startswith(_TMP_PREFIX))

    def _remove_temps(self) -> None:
        """Delete what a killed run left half-written (tiles, job.json and every output's
        temp file) and side files whose main output is gone; none of them counts as done."""
        for folder in (self._path.parent, self._path, self._tiles):
            for path in remove_temps(folder):
                log.info("removed %s left by an interrupted run", path)
        out = self._path.parent
        with contextlib.suppress(OSError):
            for side in out.glob("*.aux.xml"):
                main = side.with_name(side.name[: -len(".aux.xml")])
                if not main.exists() and self._is_output_name(main.name):
                    side.unlink(missing_ok=True)

    def _is_output_name(self, name: str) -> bool:
        """Whether a file name is one of this job's planned outputs (or recorded ones)."""
        record = self._read_record_or_none() or {}
        known = {Path(str(v)).name for v in dict(record.get("outputs") or {}).values()}
        known |= {Path(p).name for p in [*self._planned, *(record.get("planned") or [])]}
        return name in known

    def _wipe_tiles(self) -> None:
        try:
            shutil.rmtree(self._tiles, ignore_errors=False)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise OutputError(f"cannot remove {self._tiles}: {exc.strerror or exc}") from exc

    @staticmethod
    def _looks_intact(path: Path) -> bool:
        """Cheap check (zip directory only, no decompression): catches truncated files."""
        try:
            with zipfile.ZipFile(path) as archive:
                return f"{_WINDOW_KEY}.npy" in archive.namelist()
        except _UNREADABLE:
            return False

    @staticmethod
    def _discard(path: Path, why: str) -> None:
        log.warning("deleting tile file %s because %s; it will be recomputed", path, why)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def __repr__(self) -> str:
        return f"JobDir({str(self._path.parent)!r}, complete={self.complete})"
