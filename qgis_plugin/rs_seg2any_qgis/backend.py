# SPDX-License-Identifier: GPL-2.0-or-later
"""Run the ``rs-seg2any`` command of a backend environment and read its JSON-lines events.

QGIS's Python has no torch, so the plugin never imports rs_seg2any: everything goes through
the CLI of a separate environment. This module has no QGIS import so that the task, the
Processing algorithms and the tests share one runner.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

#: Variables of the QGIS process that would point the backend's Python, GDAL or PROJ at
#: QGIS's own copies (other versions) instead of the backend environment's.
CHILD_ENV_DROP = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONEXECUTABLE",
    "GDAL_DATA",
    "GDAL_DRIVER_PATH",
    "PROJ_LIB",
    "PROJ_DATA",
)

#: Shipped taxonomy names, used when the backend cannot be asked.
FALLBACK_TAXONOMIES = ("dubai_aerial", "eolearn_slovenia", "worldcover")

#: Seconds a cancelled job may take to stop cleanly after SIGINT before it is killed. Tiles
#: are saved atomically, so even a killed job resumes; the grace period only spares work.
CANCEL_GRACE_S = 60.0

Event = dict[str, Any]


class BackendError(RuntimeError):
    """The backend command could not be found or started."""


class SchemaMismatch(BackendError):
    """The backend's ``rs-seg2any schema`` is missing, or of a version this plugin cannot read.

    The message names both versions and what to upgrade; ``upgrade`` is ``"backend"`` or
    ``"plugin"``.
    """

    def __init__(
        self,
        message: str,
        *,
        backend_version: str | None = None,
        schema_version: object = None,
        upgrade: str = "backend",
    ) -> None:
        super().__init__(message)
        self.backend_version = backend_version
        self.schema_version = schema_version
        self.upgrade = upgrade


@dataclass
class JobResult:
    """What one CLI run ended with (built from its events and exit status)."""

    returncode: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    out_dir: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    cancelled: bool = False
    tiles_resumed: int = 0
    tiles_total: int = 0
    log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.cancelled and self.error_type is None

    def summary(self) -> str:
        """One line for a message bar: the CLI's own error message where it gave one."""
        if self.ok:
            return f"{len(self.outputs)} outputs in {self.out_dir}"
        if self.error_message:
            return self.error_message
        tail = [line for line in self.log if line.strip()][-3:]
        return " | ".join(tail) or f"rs-seg2any exited with status {self.returncode}"


def child_env(cli: str | os.PathLike[str]) -> dict[str, str]:
    """The environment for the backend: QGIS's Python/GDAL/PROJ paths removed, its bin first."""
    env = {k: v for k, v in os.environ.items() if k not in CHILD_ENV_DROP}
    bin_dir = str(Path(cli).resolve().parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONIOENCODING", "utf-8")
    return env


@lru_cache(maxsize=1)
def _default_signal_prefix() -> tuple[str, ...]:
    """``env --default-signal=INT`` where available (GNU coreutils >= 8.31).

    A child inherits an *ignored* SIGINT (QGIS started from a script with ``&``, some CI
    runners); Python then never raises KeyboardInterrupt and cancel would have to kill.
    Resetting the disposition makes SIGINT a clean stop in every case.
    """
    env = shutil.which("env")
    if os.name != "posix" or env is None:
        return ()
    try:
        probe = subprocess.run(
            [env, "--default-signal=INT", "true"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    return (env, "--default-signal=INT") if probe.returncode == 0 else ()


def command_line(cli: str | os.PathLike[str], args: Sequence[str]) -> list[str]:
    """argv for the child: the CLI and its arguments (after the signal reset prefix)."""
    return [*_default_signal_prefix(), str(cli), *args]


def _pump(stream: IO[str], name: str, sink: queue.Queue[tuple[str, str | None]]) -> None:
    for line in stream:
        sink.put((name, line.rstrip("\n")))
    sink.put((name, None))


def parse_event(line: str) -> Event | None:
    """A JSON event line of ``--progress json``, or None for any other stderr line."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        event = json.loads(text)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def stop_process(proc: subprocess.Popen[str]) -> None:
    """Ask the CLI to stop cleanly: SIGINT is its Ctrl-C (it saves state and exits 130)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(OSError):
        if os.name == "posix":
            os.kill(proc.pid, signal.SIGINT)
        else:  # Windows has no SIGINT for a child; tiles are atomic, so terminate is safe
            proc.terminate()


def run_job(
    cli: str | os.PathLike[str],
    args: Sequence[str],
    *,
    on_event: Callable[[Event], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
    on_start: Callable[[subprocess.Popen[str]], None] | None = None,
    grace_s: float = CANCEL_GRACE_S,
    poll_s: float = 0.1,
) -> JobResult:
    """Run ``cli args`` to the end, forwarding its events; stop it when ``is_canceled()``.

    Blocks the calling thread (a QgsTask worker or a Processing thread), never the GUI.
    """
    if not Path(cli).is_file():
        raise BackendError(f"rs-seg2any not found at '{cli}': set the backend in Settings")
    creationflags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0) if os.name == "nt" else 0
    try:
        proc = subprocess.Popen(
            command_line(cli, args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(cli),
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=os.name == "posix",  # a Ctrl-C in QGIS's terminal is not ours
            creationflags=creationflags,
        )
    except OSError as exc:
        raise BackendError(f"cannot start '{cli}': {exc}") from exc
    if on_start is not None:
        on_start(proc)

    result = JobResult()
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    readers = [
        threading.Thread(target=_pump, args=(stream, name, lines), daemon=True)
        for stream, name in ((proc.stderr, "err"), (proc.stdout, "out"))
        if stream is not None
    ]
    for reader in readers:
        reader.start()
    open_streams = len(readers)
    stop_sent_at: float | None = None
    killed = False

    def check_cancel() -> None:
        nonlocal stop_sent_at, killed
        if stop_sent_at is None and is_canceled is not None and is_canceled():
            result.cancelled = True
            stop_sent_at = time.monotonic()
            stop_process(proc)
        elif stop_sent_at is not None and not killed and time.monotonic() - stop_sent_at > grace_s:
            killed = True
            with contextlib.suppress(OSError):
                proc.kill()

    while open_streams:
        try:
            name, line = lines.get(timeout=poll_s)
        except queue.Empty:
            check_cancel()
            continue
        if line is None:
            open_streams -= 1
            continue
        event = parse_event(line) if name == "err" else None
        if event is None:
            result.log.append(line)
        else:
            _apply(result, event)
            if on_event is not None:
                on_event(event)
        check_cancel()

    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    while True:  # streams closed; the process may still be exiting
        try:
            result.returncode = proc.wait(timeout=poll_s)
            break
        except subprocess.TimeoutExpired:
            check_cancel()
    if result.error_type is None and result.returncode not in (0, None):
        result.error_message = result.error_message or _error_line(result.log)
        result.error_type = "Cancelled" if result.cancelled else "ExitStatus"
    if result.error_type == "Cancelled":
        result.cancelled = True
    return result


def _apply(result: JobResult, event: Event) -> None:
    kind = event.get("event")
    if kind == "done":
        result.outputs = {str(k): str(v) for k, v in (event.get("outputs") or {}).items()}
        result.out_dir = event.get("out_dir")
        result.tiles_resumed = int(event.get("tiles_resumed") or 0)
        result.tiles_total = int(event.get("tiles_total") or 0)
    elif kind == "error":
        result.error_type = str(event.get("type") or "Error")
        result.error_message = str(event.get("message") or "")
    elif kind == "message":
        result.log.append(str(event.get("message", "")))


def _error_line(log: Sequence[str]) -> str | None:
    for line in reversed(log):
        if line.startswith("error:"):
            return line.removeprefix("error:").strip()
    return None


def run_quick(cli: str | os.PathLike[str], args: Sequence[str], timeout: float = 60) -> str:
    """stdout of a short command (``--version``, ``taxonomies``); BackendError on failure."""
    if not Path(cli).is_file():
        raise BackendError(f"rs-seg2any not found at '{cli}'")
    try:
        done = subprocess.run(
            [str(cli), *args],
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=child_env(cli),
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise BackendError(f"'{cli} {' '.join(args)}' failed: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise BackendError(f"'{Path(cli).name} {' '.join(args)}' failed: {tail[0]}")
    return done.stdout


def backend_versions(cli: str | os.PathLike[str]) -> dict[str, str]:
    """Versions of the backend: rs-seg2any itself, and Python/torch of its environment.

    Asks the environment's own interpreter (next to the CLI), so QGIS imports nothing of it.
    """
    versions = {"rs-seg2any": run_quick(cli, ["--version"]).strip().removeprefix("rs-seg2any ")}
    python = Path(cli).parent / ("python.exe" if os.name == "nt" else "python")
    if python.is_file():
        probe = (
            "import importlib.metadata as m, platform\n"
            "print('python', platform.python_version())\n"
            "for name in ('torch', 'rasterio', 'numpy'):\n"
            "    try: print(name, m.version(name))\n"
            "    except m.PackageNotFoundError: print(name, 'missing')\n"
        )
        with contextlib.suppress(BackendError):
            for line in run_quick(python, ["-c", probe]).splitlines():
                name, _, version = line.partition(" ")
                versions[name] = version
    return versions


def list_taxonomies(cli: str | os.PathLike[str] | None) -> list[str]:
    """Names printed by ``rs-seg2any taxonomies`` (the shipped list if the CLI is missing)."""
    if cli is None:
        return list(FALLBACK_TAXONOMIES)
    try:
        text = run_quick(cli, ["taxonomies"])
    except BackendError:
        return list(FALLBACK_TAXONOMIES)
    names = [line.split(":", 1)[0].strip() for line in text.splitlines() if line[:1].isalnum()]
    return names or list(FALLBACK_TAXONOMIES)


def checkout_root() -> Path | None:
    """The rs_seg2any source checkout the plugin runs from (``qgis_plugin/`` inside it)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "rs_seg2any").is_dir() else None


def checkout_cli() -> Path | None:
    """The CLI of the checkout's ``.venv`` when the plugin runs from a source checkout."""
    root = checkout_root()
    if root is None:
        return None
    cand = root / ".venv" / ("Scripts" if os.name == "nt" else "bin") / _cli_name()
    return cand if cand.is_file() else None


def _cli_name() -> str:
    return "rs-seg2any.exe" if sys.platform == "win32" else "rs-seg2any"


def discover_cli(configured: str | None) -> Path | None:
    """The backend CLI: the setting, then ``$RS_SEG2ANY_CLI``, a checkout's .venv, PATH."""
    for cand in (configured, os.environ.get("RS_SEG2ANY_CLI")):
        if cand:
            path = Path(cand).expanduser()
            if path.is_dir():  # an environment folder was given
                path = path / ("Scripts" if os.name == "nt" else "bin") / _cli_name()
            if path.is_file():
                return path
    found = checkout_cli()
    if found is not None:
        return found
    on_path = shutil.which(_cli_name())
    return Path(on_path) if on_path else None


def system_python() -> str | None:
    """A Python to create environments with (inside QGIS, sys.executable is QGIS itself)."""
    for name in ("python3", "python"):
        found = shutil.which(name)
        if found:
            return found
    return None


def environment_steps(folder: str | os.PathLike[str], package: str) -> list[list[str]]:
    """Commands that make a backend environment: a venv, then pip installs ``package``
    (a path to the rs_seg2any source or a wheel, or a requirement once it is published)."""
    python = system_python()
    if python is None:
        raise BackendError("no python3 found to create the environment with")
    env_python = Path(folder) / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    return [
        [python, "-m", "venv", str(folder)],
        [str(env_python), "-m", "pip", "install", package],
    ]


def create_environment(
    folder: str | os.PathLike[str],
    package: str,
    *,
    on_line: Callable[[str], None] | None = None,
    steps: Sequence[Sequence[str]] | None = None,
) -> Path:
    """Run ``environment_steps`` and return the new environment's CLI (BackendError else)."""
    env = {k: v for k, v in os.environ.items() if k not in CHILD_ENV_DROP}
    for argv in steps if steps is not None else environment_steps(folder, package):
        if on_line is not None:
            on_line("$ " + " ".join(argv))
        try:
            done = subprocess.run(
                list(argv), capture_output=True, text=True, env=env, check=False, timeout=3600
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise BackendError(f"'{' '.join(argv)}' failed: {exc}") from exc
        if on_line is not None:
            for line in (done.stdout + done.stderr).splitlines()[-20:]:
                on_line(line)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
            errors = [line for line in lines if line.lstrip().lower().startswith("error")]
            raise BackendError(f"'{' '.join(argv[:4])}...' failed: {(errors or lines)[-1]}")
    cli = Path(folder) / ("Scripts" if os.name == "nt" else "bin") / _cli_name()
    if not cli.is_file():
        raise BackendError(f"{package} installed no rs-seg2any command in {folder}")
    return cli
