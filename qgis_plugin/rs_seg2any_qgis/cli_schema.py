# SPDX-License-Identifier: GPL-2.0-or-later
"""The backend's command line as data: read once from ``rs-seg2any schema``, used everywhere.

The dialogs and the Processing algorithms build their options and their argument lists from
what the configured backend says it accepts (commands, options, types, choices, defaults),
so the plugin spells no CLI flag itself and follows a newer backend by itself. A backend
without the ``schema`` command, or with a schema version this plugin cannot read, is a
``SchemaMismatch`` whose message says which side to upgrade.

No QGIS import here: the dialogs, the algorithms and the tests (also the library's own,
which check that an argv built here is accepted by the CLI's parser) share it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backend import BackendError, SchemaMismatch, child_env

#: The schema versions this plugin reads (``rs-seg2any schema`` -> ``schema_version``).
SUPPORTED_SCHEMA_VERSIONS = (1,)
TYPES = ("path", "text", "int", "float", "bool", "choice")


@dataclass(frozen=True)
class Argument:
    """One option (or positional) of one command, as the backend describes it."""

    dest: str
    flag: str | None
    positional: bool
    type: str
    choices: tuple[str, ...] | None
    default: Any
    required: bool
    repeatable: bool
    help: str
    group: str

    @property
    def label(self) -> str:
        """A form label: the flag without dashes, as words (``--tile-size`` -> Tile size)."""
        words = (self.flag or self.dest).lstrip("-").replace("-", " ").replace("_", " ")
        return words[:1].upper() + words[1:]


class CliSchema:
    """The commands and arguments of one backend, and the argv builder over them."""

    def __init__(self, data: Mapping[str, Any], cli: str = "") -> None:
        self.cli = cli
        self.version = str(data.get("version", "?"))
        self.schema_version = data.get("schema_version")
        self.helps: dict[str, str] = {}
        self.commands: dict[str, list[Argument]] = {}
        try:
            for name, command in dict(data["commands"]).items():
                self.helps[name] = str(command.get("help", ""))
                self.commands[name] = [_argument(a) for a in command["arguments"]]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SchemaMismatch(
                f"the schema of the rs-seg2any backend {self.version} at {cli} is not one this "
                f"plugin ({plugin_version()}) can read ({exc!r}): upgrade the rs_seg2any plugin",
                backend_version=self.version, schema_version=self.schema_version,
                upgrade="plugin",
            ) from exc  # fmt: skip

    def arguments(self, command: str) -> list[Argument]:
        if command not in self.commands:
            raise SchemaMismatch(
                f"the rs-seg2any backend {self.version} at {self.cli} has no '{command}' "
                f"command, which this plugin ({plugin_version()}) uses: "
                f"{upgrade_backend(self.cli)}",
                backend_version=self.version, schema_version=self.schema_version,
            )  # fmt: skip
        return self.commands[command]

    def argument(self, command: str, dest: str) -> Argument:
        for arg in self.arguments(command):
            if arg.dest == dest:
                return arg
        raise SchemaMismatch(
            f"'rs-seg2any {command}' of the backend {self.version} at {self.cli} has no "
            f"option '{dest}', which this plugin ({plugin_version()}) uses: "
            f"{upgrade_backend(self.cli)}",
            backend_version=self.version, schema_version=self.schema_version,
        )  # fmt: skip

    def has(self, command: str, dest: str) -> bool:
        return any(a.dest == dest for a in self.commands.get(command, []))

    def choices(self, command: str, dest: str) -> list[str]:
        return list(self.argument(command, dest).choices or ())

    def default(self, command: str, dest: str) -> Any:
        return self.argument(command, dest).default

    def build_argv(self, command: str, values: Mapping[str, Any]) -> list[str]:
        """``[command, positionals..., flags...]`` for ``values`` (dest -> value), in the
        order given. None, "", False, empty lists and an option's own default are left out
        (also for a dest this command lacks);
        True is a switch; a list repeats a repeatable flag, else it is joined with commas.
        ValueError for a value the option cannot take; SchemaMismatch for an unknown dest.
        """
        args = {a.dest: a for a in self.arguments(command)}
        for dest, value in values.items():
            if dest not in args and not _empty(value):
                self.argument(command, dest)  # raises the mismatch
        head: list[str] = [command]
        tail: list[str] = []
        for dest, value in values.items():
            arg = args.get(dest)
            if arg is None:
                continue  # an option of another command, not set
            if arg.positional:
                if _empty(value):
                    raise ValueError(f"'{dest}' is required for rs-seg2any {command}")
                head.append(_word(arg, value))
            else:
                tail += _option_words(arg, value)
        for arg in args.values():
            given = not _empty(values.get(arg.dest))
            if arg.required and not given:
                raise ValueError(f"{arg.flag or arg.dest} is required for rs-seg2any {command}")
        return head + tail

    def build_job(self, command: str, values: Mapping[str, Any], key: str) -> dict[str, Any]:
        """The job-file mapping for the run ``build_argv`` would start: ``{key: command}``
        (``key`` is ``command`` or ``scenario``) and each set option by dest, typed as the
        job loader reads it (numbers as numbers, switches as true, repeatable options as
        lists, the rest as the CLI's text); ``progress`` is left to whoever runs it."""
        self.build_argv(command, values)  # the same checks and errors as a run
        args = {a.dest: a for a in self.arguments(command)}
        job: dict[str, Any] = {key: command}
        for dest, value in values.items():
            arg = args.get(dest)
            if arg is None or dest == "progress" or _empty(value):
                continue
            if arg.type == "bool":
                job[dest] = True
                continue
            if not arg.repeatable and not arg.positional and _same(value, arg.default):
                continue
            items = list(value) if arg.repeatable and isinstance(value, list | tuple) else None
            if items is not None:
                job[dest] = [_word(arg, v) for v in items]
            elif arg.type == "int":
                job[dest] = int(_word(arg, value))
            elif arg.type == "float":
                job[dest] = float(_word(arg, value))
            else:
                job[dest] = _word(arg, value)
        return job


def upgrade_backend(cli: str | os.PathLike[str]) -> str:
    """What to do about a backend that is too old: the pip command of its own environment."""
    python = Path(cli).parent / ("python.exe" if os.name == "nt" else "python")
    return (
        f"upgrade rs-seg2any in the backend environment ({python} -m pip install -U "
        "rs-seg2any), or choose a newer backend in rs_seg2any > Settings"
    )


def _argument(raw: Mapping[str, Any]) -> Argument:
    kind = str(raw["type"])
    if kind not in TYPES:
        raise ValueError(f"unknown type {kind!r} of '{raw['dest']}'")
    choices = raw.get("choices")
    return Argument(
        dest=str(raw["dest"]),
        flag=raw.get("flag"),
        positional=bool(raw.get("positional", False)),
        type=kind,
        choices=None if choices is None else tuple(str(c) for c in choices),
        default=raw.get("default"),
        required=bool(raw.get("required", False)),
        repeatable=bool(raw.get("repeatable", False)),
        help=str(raw.get("help", "")),
        group=str(raw.get("group", "")),
    )


def _empty(value: Any) -> bool:
    return value is None or value == "" or value is False or value == [] or value == ()


def _option_words(arg: Argument, value: Any) -> list[str]:
    flag = arg.flag or arg.dest
    if arg.type == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{flag} is a switch: give True or False (got {value!r})")
        return [flag] if value else []
    if _empty(value):
        return []
    items = list(value) if arg.repeatable and isinstance(value, list | tuple) else [value]
    if not arg.repeatable and _same(value, arg.default):
        return []  # the CLI's own default: a shorter command line, the same job
    words: list[str] = []
    for item in items:
        text = _word(arg, item)
        words += [f"{flag}={text}"] if text.startswith("-") else [flag, text]
    return words


def _same(value: Any, default: Any) -> bool:
    if default is None or isinstance(value, list | tuple):
        return False
    if isinstance(default, bool) or isinstance(value, bool):
        return value is default
    if isinstance(default, int | float) and isinstance(value, int | float):
        return float(value) == float(default)
    return bool(value == default)


def _word(arg: Argument, value: Any) -> str:
    """One value as the CLI's text, checked against the option's type and choices."""
    if isinstance(value, list | tuple):
        text = ",".join(number_text(v) for v in value)
    else:
        text = value if isinstance(value, str) else number_text(value)
    flag = arg.flag or arg.dest
    if arg.type == "choice" and arg.choices is not None and text not in arg.choices:
        raise ValueError(f"{flag} must be one of {', '.join(arg.choices)} (got {text!r})")
    if arg.type in ("int", "float"):
        pattern = r"[+-]?\d+" if arg.type == "int" else r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?"
        if isinstance(value, bool) or not re.fullmatch(pattern, text.strip()):
            kind = "an integer" if arg.type == "int" else "a number"
            raise ValueError(f"{flag} must be {kind} (got {value!r})")
    return text


def number_text(value: object) -> str:
    """Numbers as the shortest exact text (``10`` not ``10.0``): the CLI parses both."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


# -- reading it from the backend ---------------------------------------------------------

_cache: dict[tuple[str, int, int, tuple[str, ...]], CliSchema | BackendError] = {}


def plugin_version() -> str:
    """This plugin's version (metadata.txt), for the messages that compare versions."""
    meta = Path(__file__).with_name("metadata.txt")
    try:
        for line in meta.read_text(encoding="utf-8").splitlines():
            if line.startswith("version="):
                return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "?"


def load_schema(cli: str | os.PathLike[str] | None, timeout: float = 120) -> CliSchema:
    """The schema of the backend at ``cli``, asked once per backend and version (its path,
    the script's file stamp and the rs_seg2any version installed next to it: no process
    is started to check); BackendError or SchemaMismatch (with which versions do not fit,
    and what to upgrade) else."""
    if cli is None:
        raise BackendError("no rs-seg2any backend: set its path in rs_seg2any > Settings")
    path = Path(cli)
    try:
        stat = path.resolve().stat()
    except OSError:
        raise BackendError(
            f"rs-seg2any not found at '{cli}': set the backend in Settings"
        ) from None
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, installed_versions(path))
    if key not in _cache:
        try:
            _cache[key] = _read_schema(path, timeout)
        except SchemaMismatch as exc:  # asked once too: a form may ask many times
            _cache[key] = exc
    found = _cache[key]
    if isinstance(found, BackendError):
        raise found
    return found


def installed_versions(cli: Path) -> tuple[str, ...]:
    """The rs_seg2any distributions of the environment the CLI belongs to (name-version)."""
    env = cli.resolve().parent.parent
    found = [*env.glob("lib/python*/site-packages/rs_seg2any-*.dist-info"),
             *env.glob("Lib/site-packages/rs_seg2any-*.dist-info")]  # fmt: skip
    return tuple(sorted(p.name.removesuffix(".dist-info") for p in found))


def _run(cli: Path, args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [str(cli), *args], capture_output=True, text=True, encoding="utf-8",
            errors="replace", env=child_env(cli), timeout=timeout, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise BackendError(f"'{cli} {' '.join(args)}' failed: {exc}") from exc


def _backend_version(cli: Path, timeout: float) -> str:
    done = _run(cli, ["--version"], timeout)
    text = (done.stdout or done.stderr).strip()
    return text.removeprefix("rs-seg2any ").strip() if done.returncode == 0 and text else "?"


def _read_schema(cli: Path, timeout: float) -> CliSchema:
    done = _run(cli, ["schema"], timeout)
    if done.returncode != 0:
        err = (done.stderr or done.stdout).strip()
        version = _backend_version(cli, timeout)
        if done.returncode == 2 or "invalid choice" in err:  # argparse: no such command
            raise SchemaMismatch(
                f"the rs-seg2any backend {version} at {cli} has no 'schema' command: this "
                f"plugin ({plugin_version()}) reads the backend's options from it (schema "
                f"version {_supported()}); {upgrade_backend(cli)}",
                backend_version=version,
            )  # fmt: skip
        tail = err.splitlines()[-1:] or ["no output"]
        raise BackendError(f"'{cli.name} schema' failed: {tail[0]}")
    try:
        data = json.loads(done.stdout)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise SchemaMismatch(
            f"'rs-seg2any schema' of the backend at {cli} printed no JSON schema: this plugin "
            f"({plugin_version()}) needs schema version {_supported()}; {upgrade_backend(cli)}",
            backend_version=_backend_version(cli, timeout),
        )  # fmt: skip
    check_schema_version(data, str(cli))
    return CliSchema(data, str(cli))


def _supported() -> str:
    return " or ".join(str(v) for v in SUPPORTED_SCHEMA_VERSIONS)


def check_schema_version(data: Mapping[str, Any], cli: str = "") -> None:
    """SchemaMismatch unless this plugin reads ``data``'s ``schema_version``."""
    found = data.get("schema_version")
    version = str(data.get("version", "?"))
    if found in SUPPORTED_SCHEMA_VERSIONS and not isinstance(found, bool):
        return
    mine = f"this plugin ({plugin_version()}) reads schema version {_supported()}"
    newer = isinstance(found, int) and found > max(SUPPORTED_SCHEMA_VERSIONS)
    if newer:
        raise SchemaMismatch(
            f"the rs-seg2any backend {version} at {cli} writes schema version {found}, newer "
            f"than {mine}: upgrade the rs_seg2any plugin (Plugins > Manage and Install "
            "Plugins), or choose an older backend in rs_seg2any > Settings",
            backend_version=version, schema_version=found, upgrade="plugin",
        )  # fmt: skip
    what = "no schema version" if found is None else f"schema version {found}"
    raise SchemaMismatch(
        f"the rs-seg2any backend {version} at {cli} writes {what}, older than {mine}: "
        f"{upgrade_backend(cli)}",
        backend_version=version, schema_version=found,
    )  # fmt: skip
