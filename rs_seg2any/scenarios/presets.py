"""Scenario presets: editable YAML in ``geoconf/scenarios/`` (or a user file)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..yamlio import load_yaml_file, load_yaml_text

SHIPPED = ("flood", "planning", "seasons", "change")


def load_preset(name_or_path: str | Path) -> dict[str, Any]:
    """A shipped preset (``flood``, ``planning``, ``seasons``, ``change``) or a YAML path."""
    path = Path(name_or_path)
    if path.suffix.lower() in {".yaml", ".yml"}:
        where = f"preset '{path}'"
        data = load_yaml_file(path, "preset")
    elif str(name_or_path) in SHIPPED:
        res = resources.files("geoconf") / "scenarios" / f"{name_or_path}.yaml"
        where = f"preset 'geoconf/scenarios/{name_or_path}.yaml'"
        data = load_yaml_text(res.read_text(encoding="utf-8"), where)
    else:
        raise InputError(f"unknown preset '{name_or_path}'; shipped: {', '.join(SHIPPED)}")
    if not isinstance(data, dict):
        raise InputError(f"preset {where} must be a mapping")
    return data
