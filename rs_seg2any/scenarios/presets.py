"""Scenario presets: editable YAML in ``geoconf/scenarios/`` (or a user file)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError

SHIPPED = ("flood", "planning", "seasons", "change")


def load_preset(name_or_path: str | Path) -> dict[str, Any]:
    """A shipped preset (``flood``, ``planning``, ``seasons``, ``change``) or a YAML path."""
    path = Path(name_or_path)
    if path.suffix.lower() in {".yaml", ".yml"}:
        if not path.is_file():
            raise InputError(f"preset file not found: {path}")
        text, where = path.read_text(encoding="utf-8"), str(path)
    elif str(name_or_path) in SHIPPED:
        res = resources.files("geoconf") / "scenarios" / f"{name_or_path}.yaml"
        text, where = res.read_text(encoding="utf-8"), f"geoconf/scenarios/{name_or_path}.yaml"
    else:
        raise InputError(f"unknown preset '{name_or_path}'; shipped: {', '.join(SHIPPED)}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"preset {where} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"preset {where} must be a mapping")
    return data
