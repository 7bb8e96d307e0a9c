"""Damage presets: the damage scale, damage types and their descriptions, per disaster.

Shipped presets live in ``geoconf/scenarios/damage_<disaster>.yaml`` (``fire``, ``earthquake``,
``flood``); a user passes a YAML path instead, whole or as ``extends: <shipped name>`` plus the
keys it changes (mappings merge key by key, so one new type or one reworded level is a
three-line file). Everything is read through :mod:`rs_seg2any.yamlio` and checked here, so a
hand-edited preset fails at once with its key named, never later inside a render.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import InputError, TaxonomyError
from ..taxonomy import ClassDef, Taxonomy, normalise_name, parse_colour
from ..yamlio import load_yaml_file, load_yaml_text

DISASTERS = ("fire", "earthquake", "flood")
"""The shipped presets, by disaster (``geoconf/scenarios/damage_<name>.yaml``)."""

KINDS = ("building", "area")


@dataclass(frozen=True)
class DamageType:
    """One kind of damage: a building's (it keeps its class) or an area's (its own class)."""

    name: str
    kind: str
    descriptions: dict[int, str]
    """What the generator is told, by level code."""
    area_class: dict[str, Any] | None = None
    """The class an area of this type gets in the post-event label mask (``kind: area``)."""


@dataclass(frozen=True)
class DamagePreset:
    """A checked damage preset (see ``geoconf/scenarios/damage_fire.yaml`` for the keys)."""

    where: str
    disaster: str
    levels: Taxonomy
    """The damage scale as a taxonomy: id = raster code, names and aliases resolve levels."""
    types: dict[str, DamageType]
    default_types: dict[int, str]
    building_classes: dict[str, str] = field(default_factory=dict)
    ground_classes: dict[str, list[str]] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    rendered_share: dict[int, float] = field(default_factory=dict)
    """The share of a damaged building re-rendered, by level code (missing: 1.0)."""

    @property
    def no_damage(self) -> int:
        """The code of the first level: labelled, never re-rendered."""
        return self.levels.classes[0].id

    def level_code(self, value: object) -> int | None:
        """The code of a level field value (name, alias or code), or None."""
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return self.levels.resolve(value)

    def level_name(self, code: int) -> str:
        return self.levels.by_id(code).name

    def level_names(self) -> list[str]:
        return [c.name for c in self.levels.classes]

    def damage_type(self, value: object) -> DamageType | None:
        return self.types.get(normalise_name(value))

    def describe(self, type_name: str, code: int) -> str:
        """The description of ``type_name`` at level ``code``."""
        kind = self.types[normalise_name(type_name)]
        if code == self.no_damage:
            return self.levels.by_id(code).description
        return kind.descriptions[code]


def load_damage_preset(name_or_path: str | Path) -> DamagePreset:
    """A shipped preset (``fire``, ``earthquake``, ``flood``) or a YAML path (typed errors)."""
    data, where = _read(name_or_path, set())
    return _parse(data, where)


def _read(name_or_path: str | Path, seen: set[str]) -> tuple[dict[str, Any], str]:
    path = Path(name_or_path)
    name = str(name_or_path).removeprefix("damage_")
    if path.suffix.lower() in {".yaml", ".yml"}:
        where = f"damage preset '{path}'"
        data = load_yaml_file(path, "damage preset")
    elif name in DISASTERS:
        res = resources.files("geoconf") / "scenarios" / f"damage_{name}.yaml"
        where = f"damage preset 'geoconf/scenarios/damage_{name}.yaml'"
        data = load_yaml_text(res.read_text(encoding="utf-8"), where)
    else:
        raise InputError(
            f"unknown damage preset '{name_or_path}'; shipped: {', '.join(DISASTERS)} "
            "(or a YAML path)"
        )
    if not isinstance(data, dict):
        raise InputError(f"{where} must be a mapping of settings")
    parent = data.pop("extends", None)
    if parent is None:
        return data, where
    if str(parent) in seen or str(parent) not in DISASTERS:
        raise InputError(
            f"{where}: 'extends' must name a shipped preset ({', '.join(DISASTERS)}), "
            f"got {parent!r}"
        )
    base, _ = _read(str(parent), {*seen, str(parent)})
    return _merge(base, data), where


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, mappings merged key by key."""
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        out[key] = (
            _merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
        )
    return out


def _mapping(data: dict[str, Any], key: str, where: str, required: bool = True) -> dict[str, Any]:
    value = data.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict) or (required and not value):
        raise InputError(f"{where}: '{key}' must be a non-empty mapping")
    return value


def _text(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: {key} must be a non-empty text")
    return value.strip()


def _levels(data: dict[str, Any], where: str) -> Taxonomy:
    classes = []
    for name, spec in _mapping(data, "levels", where).items():
        if not isinstance(spec, dict):
            raise InputError(f"{where}: level '{name}' must be a mapping with a 'code'")
        code = spec.get("code")
        if not isinstance(code, int) or isinstance(code, bool) or not 1 <= code <= 255:
            raise InputError(f"{where}: level '{name}' needs a 'code' from 1 to 255")
        aliases = spec.get("aliases") or []
        if not isinstance(aliases, list):
            raise InputError(f"{where}: level '{name}' 'aliases' must be a list")
        try:
            colour = parse_colour(spec.get("colour", "#FF00FF"))
        except TaxonomyError as exc:
            raise InputError(f"{where}: level '{name}': {exc}") from exc
        desc = str(spec.get("description") or name)
        classes.append(
            ClassDef(code, str(name), colour, desc, aliases=tuple(str(a) for a in aliases))
        )
    if len(classes) < 2:
        raise InputError(f"{where}: 'levels' needs at least two levels (no damage, then damage)")
    codes = [c.id for c in classes]
    if codes != sorted(codes):
        raise InputError(f"{where}: level codes must increase with damage (got {codes})")
    try:
        return Taxonomy("damage levels", tuple(classes), title="damage levels", source=where)
    except TaxonomyError as exc:
        raise InputError(f"{where}: {exc}") from exc


def _types(data: dict[str, Any], where: str, levels: Taxonomy) -> dict[str, DamageType]:
    damaged = levels.classes[1:]
    out: dict[str, DamageType] = {}
    for name, spec in _mapping(data, "types", where).items():
        at = f"type '{name}'"
        if not isinstance(spec, dict):
            raise InputError(f"{where}: {at} must be a mapping")
        kind = spec.get("kind")
        if kind not in KINDS:
            raise InputError(f"{where}: {at} needs kind: building or kind: area")
        texts = _mapping(spec, "levels", f"{where}: {at}")
        descriptions: dict[int, str] = {}
        for level in damaged:
            text = texts.get(level.name)
            descriptions[level.id] = _text(text, where, f"{at} level '{level.name}'")
        unknown = sorted(str(k) for k in texts if levels.resolve(k) is None)
        if unknown:
            raise InputError(f"{where}: {at} describes unknown levels {unknown}")
        area_class = spec.get("class")
        if kind == "area":
            if not isinstance(area_class, dict) or not str(area_class.get("name") or "").strip():
                raise InputError(f"{where}: area {at} needs class: {{name: ...}}")
            try:
                parse_colour(area_class.get("colour", "#FF00FF"))
                int(area_class.get("priority", 1000))
            except (TaxonomyError, TypeError, ValueError) as exc:
                raise InputError(f"{where}: {at} class colour or priority: {exc}") from exc
        out[normalise_name(name)] = DamageType(
            str(name), str(kind), descriptions, area_class if kind == "area" else None
        )
    return out


def _parse(data: dict[str, Any], where: str) -> DamagePreset:
    levels = _levels(data, where)
    types = _types(data, where, levels)
    defaults: dict[int, str] = {}
    for level, type_name in _mapping(data, "default_types", where).items():
        code = levels.resolve(level)
        kind = types.get(normalise_name(type_name))
        if code is None or kind is None or kind.kind != "building":
            raise InputError(
                f"{where}: default_types '{level}: {type_name}' must map a level to a building type"
            )
        defaults[code] = kind.name
    missing = [c.name for c in levels.classes[1:] if c.id not in defaults]
    if missing:
        raise InputError(f"{where}: default_types lacks levels {missing}")
    buildings = _mapping(data, "building_classes", where, required=False)
    ground = _mapping(data, "ground_classes", where, required=False)
    for tax, names in ground.items():
        if not isinstance(names, list):
            raise InputError(f"{where}: ground_classes '{tax}' must be a list of class names")
    recipe = _mapping(data, "recipe", where, required=False)
    for key, value in recipe.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{where}: recipe '{key}' must be finite")
    shares: dict[int, float] = {}
    for level, share in _mapping(data, "rendered_share", where, required=False).items():
        code = levels.resolve(level)
        ok = isinstance(share, int | float) and not isinstance(share, bool) and 0 < share <= 1
        if code is None or not ok:
            raise InputError(
                f"{where}: rendered_share '{level}: {share}' must map a level to a share in (0, 1]"
            )
        shares[code] = float(share)
    return DamagePreset(
        where=where,
        disaster=str(data.get("disaster") or "custom"),
        levels=levels,
        types=types,
        default_types=defaults,
        building_classes={str(k): str(v) for k, v in buildings.items()},
        ground_classes={str(k): [str(n) for n in v] for k, v in ground.items()},
        recipe=dict(recipe),
        rendered_share=shares,
    )
