"""Scenario presets: editable YAML in ``geoconf/scenarios/`` (or a user file)."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..yamlio import load_yaml_file, load_yaml_text

SHIPPED = ("flood", "planning", "seasons", "change")


def load_preset(name_or_path: str | Path, needs: tuple[str, ...] = ()) -> dict[str, Any]:
    """A shipped preset (``flood``, ``planning``, ``seasons``, ``change``) or a YAML path;
    ``needs``: the keys the calling scenario cannot do without."""
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
        raise InputError(f"{where} must be a mapping of settings")
    _check_shape(data, where)
    missing = [k for k in needs if not data.get(k)]
    if missing:
        raise InputError(f"{where} lacks {', '.join(repr(k) for k in missing)}")
    return data


_MAPPINGS = ("descriptions", "water_classes", "roles", "recipes", "seasons")


def _check_shape(data: dict[str, Any], where: str) -> None:
    """The keys the scenarios read have the kinds they expect, so a hand-edited preset fails
    here with its key named, not later with a KeyError deep in a scenario."""
    for key in _MAPPINGS:
        value = data.get(key)
        if value is not None and not isinstance(value, dict):
            raise InputError(f"{where}: '{key}' must be a mapping")
    cls = data.get("class")
    if cls is not None and not (isinstance(cls, dict) and str(cls.get("name") or "").strip()):
        raise InputError(f"{where}: 'class' must be a mapping with a 'name'")
    if cls is not None:
        _check_class(cls, where)
    thresholds = data.get("depth_thresholds_m")
    if thresholds is not None:
        _check_thresholds(thresholds, where)
    for section, inner in (("roles", ("building", "bare", "road")), ("recipes", ()),
                           ("seasons", ())):  # fmt: skip
        for name, value in (data.get(section) or {}).items():
            if not isinstance(value, dict) or any(k not in value for k in inner):
                need = f" with {', '.join(inner)}" if inner else ""
                raise InputError(f"{where}: {section} '{name}' must be a mapping{need}")


def _check_class(cls: dict[str, Any], where: str) -> None:
    from ..errors import TaxonomyError
    from ..taxonomy import parse_colour

    try:
        parse_colour(cls.get("colour", "#FF00FF"))
        int(cls.get("priority", 1000))
    except (TaxonomyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: 'class' colour or priority is invalid: {exc}") from exc


def _check_thresholds(values: Any, where: str) -> None:
    ok = isinstance(values, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        for v in values
    )
    if not ok or list(values) != sorted(set(values)):
        raise InputError(
            f"{where}: 'depth_thresholds_m' must be a list of increasing positive depths in "
            f"metres (got {values!r})"
        )
