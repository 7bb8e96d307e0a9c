# SPDX-License-Identifier: GPL-2.0-or-later
"""Plugin settings (QgsSettings under the plugin's key, via qgis-plugin-tools).

Backend settings are what the Settings dialog edits; ``last/...`` keys remember the last
choices of the dialogs so a second run starts where the first left off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._tools import resources, settings
from .backend import BackendError, discover_cli
from .cli_schema import CliSchema, load_schema

CLI = "backend/cli"
MODEL = "backend/model"
THREADS = "backend/threads"
DEVICE = "backend/device"
OUTPUT_ROOT = "last/output_root"


def get(key: str, default: Any = None) -> Any:
    """A stored value (QgsSettings hands back strings for most types; callers convert)."""
    value = settings.get_setting(key, default)
    return default if value is None else value


def get_str(key: str, default: str = "") -> str:
    return str(get(key, default) or default)


def get_int(key: str, default: int = 0) -> int:
    try:
        return int(get(key, default))
    except (TypeError, ValueError):
        return default


def get_float(key: str, default: float = 0.0) -> float:
    try:
        return float(get(key, default))
    except (TypeError, ValueError):
        return default


def get_bool(key: str, default: bool = False) -> bool:
    value = get(key, default)
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


def put(key: str, value: str | int | float | bool) -> None:
    settings.set_setting(key, value)


def cli_path() -> Path | None:
    """The backend CLI: the configured one, else $RS_SEG2ANY_CLI, a checkout's .venv, PATH."""
    return discover_cli(get_str(CLI) or None)


def schema() -> CliSchema:
    """The configured backend's ``rs-seg2any schema`` (asked once per backend install);
    BackendError, or SchemaMismatch when plugin and backend do not fit together."""
    return load_schema(cli_path())


def schema_or_error() -> tuple[CliSchema | None, BackendError | None]:
    """``schema()``, or None and the error to show (a form still opens without a backend)."""
    try:
        return schema(), None
    except BackendError as exc:
        return None, exc


def choices(command: str, dest: str) -> list[str]:
    """The values the backend accepts for one option (none without a readable backend)."""
    found, _error = schema_or_error()
    if found is None or not found.has(command, dest):
        return []
    return found.choices(command, dest)


def default_model() -> str | None:
    """Weights file for the embedded backend; None uses the weights shipped with it."""
    return get_str(MODEL) or None


def threads() -> int | None:
    value = get_int(THREADS, 0)
    return value if value > 0 else None


def output_root() -> Path:
    """Parent folder of new output folders (the last one used, else ~/rs_seg2any)."""
    return Path(get_str(OUTPUT_ROOT) or str(Path.home() / "rs_seg2any"))


def icon_path(name: str = "icon.svg") -> str:
    return resources.resources_path("icons", name)
