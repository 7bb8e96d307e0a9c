"""Taxonomies: the classes a layout may use, with ids, colours, default descriptions and aliases.

A taxonomy is what turns a free-form class field ("Forest", "schrubland", 2) into the uint8 ids
of a label mask, and what gives every class a colour and a default text description. Shipped
taxonomies live in ``geoconf/taxonomies/*.yaml``; users may pass their own YAML file.

Class id 0 is reserved: in every label mask it means "no polygon here" (unlabeled).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import TaxonomyError
from .yamlio import load_yaml_file, load_yaml_text

BACKGROUND_ID = 0
BACKGROUND_NAME = "no polygon"
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


def normalise_name(value: object) -> str:
    """Canonical form used for matching class values: case-folded, single-spaced, stripped."""
    text = str(value).strip().casefold()
    return re.sub(r"[\s_]+", " ", text)


def parse_colour(value: object) -> tuple[int, int, int]:
    """Accept '#RRGGBB' or [r, g, b]; reject anything else with a clear message."""
    if isinstance(value, str):
        match = _HEX.match(value.strip())
        if match:
            h = match.group(1)
            return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
    elif isinstance(value, list | tuple) and len(value) == 3:
        try:
            rgb = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            rgb = (-1, -1, -1)
        if all(0 <= v <= 255 for v in rgb):
            return (rgb[0], rgb[1], rgb[2])
    raise TaxonomyError(f"colour {value!r} is neither '#RRGGBB' nor [r, g, b] with 0..255 values")


@dataclass(frozen=True)
class ClassDef:
    """One class: its mask id, display name, colour, default description and drawing priority."""

    id: int
    name: str
    colour: tuple[int, int, int]
    description: str
    priority: int = 0
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Taxonomy:
    """An ordered set of classes with unique ids (1..255) and unambiguous names and aliases."""

    name: str
    classes: tuple[ClassDef, ...]
    title: str = ""
    source: str = ""
    _lookup: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.classes:
            raise TaxonomyError(f"taxonomy '{self.name}' defines no classes")
        ids: set[int] = set()
        lookup: dict[str, int] = {}
        for c in self.classes:
            if not 1 <= c.id <= 255:
                raise TaxonomyError(
                    f"taxonomy '{self.name}': class '{c.name}' has id {c.id}; ids must be "
                    "1..255 (0 is reserved for 'no polygon')"
                )
            if c.id in ids:
                raise TaxonomyError(f"taxonomy '{self.name}': class id {c.id} is used twice")
            ids.add(c.id)
            for key in (c.name, *c.aliases):
                norm = normalise_name(key)
                if norm in lookup and lookup[norm] != c.id:
                    raise TaxonomyError(
                        f"taxonomy '{self.name}': name or alias '{key}' is used by two classes"
                    )
                lookup[norm] = c.id
        object.__setattr__(self, "_lookup", lookup)

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.classes)

    @property
    def max_id(self) -> int:
        return max(self.ids)

    def by_id(self, class_id: int) -> ClassDef:
        for c in self.classes:
            if c.id == class_id:
                return c
        raise TaxonomyError(f"taxonomy '{self.name}' has no class id {class_id}")

    def resolve(self, value: object) -> int | None:
        """Class id for a field value (name, alias or numeric id), or None when unknown.

        Numbers (and numeric strings) match class ids; text matches names and aliases
        case-insensitively. None and empty strings are unknown.
        """
        if value is None:
            return None
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            if isinstance(value, float) and not value.is_integer():
                return None
            as_int = int(value)
            return as_int if as_int in self.ids else None
        text = normalise_name(value)
        if not text:
            return None
        if text in self._lookup:
            return self._lookup[text]
        if text.lstrip("-").isdigit():
            as_int = int(text)
            return as_int if as_int in self.ids else None
        return None

    def names_by_id(self) -> dict[int, str]:
        """{0: 'unlabeled', id: name, ...} — the category names written into label masks."""
        return {BACKGROUND_ID: BACKGROUND_NAME, **{c.id: c.name for c in self.classes}}

    def colours_by_id(self) -> dict[int, tuple[int, int, int]]:
        return {c.id: c.colour for c in self.classes}

    def to_dict(self) -> dict[str, Any]:
        """Plain form used for provenance and job parameters (stable key order)."""
        return {
            "name": self.name,
            "classes": [
                {
                    "id": c.id,
                    "name": c.name,
                    "colour": "#{:02X}{:02X}{:02X}".format(*c.colour),
                    "description": c.description,
                    "priority": c.priority,
                    "aliases": list(c.aliases),
                }
                for c in self.classes
            ],
        }


def _class_from_mapping(raw: Mapping[str, Any], where: str) -> ClassDef:
    if not isinstance(raw, Mapping):
        raise TaxonomyError(
            f"{where}: class entry {raw!r} is not a mapping (expected id:, name:, colour:, ...)"
        )
    missing = [k for k in ("id", "name") if k not in raw]
    if missing:
        raise TaxonomyError(f"{where}: class entry {dict(raw)!r} lacks {', '.join(missing)}")
    try:
        class_id = int(raw["id"])
    except (TypeError, ValueError) as exc:
        raise TaxonomyError(f"{where}: class id {raw['id']!r} is not an integer") from exc
    name = str(raw["name"]).strip()
    colour = parse_colour(raw.get("colour", raw.get("color", "#808080")))
    aliases = raw.get("aliases") or []
    if not isinstance(aliases, list):
        raise TaxonomyError(f"{where}: aliases of class '{name}' must be a list")
    try:
        priority = int(raw.get("priority", 0))
    except (TypeError, ValueError) as exc:
        raise TaxonomyError(
            f"{where}: priority {raw.get('priority')!r} of class '{name}' is not an integer"
        ) from exc
    return ClassDef(
        id=class_id,
        name=name,
        colour=colour,
        description=str(raw.get("description") or name),
        priority=priority,
        aliases=tuple(str(a) for a in aliases),
    )


def taxonomy_from_mapping(data: Mapping[str, Any], *, source: str = "") -> Taxonomy:
    """Build a Taxonomy from parsed YAML (``name`` and ``classes`` keys)."""
    where = source or "taxonomy"
    if not isinstance(data, Mapping) or "classes" not in data:
        raise TaxonomyError(f"{where}: expected a mapping with a 'classes' list")
    raw_classes = data["classes"]
    if not isinstance(raw_classes, list):
        raise TaxonomyError(f"{where}: 'classes' must be a list")
    classes = tuple(_class_from_mapping(c, where) for c in raw_classes)
    return Taxonomy(
        name=str(data.get("name") or Path(source).stem or "custom"),
        classes=classes,
        title=str(data.get("title") or ""),
        source=source,
    )


def shipped_taxonomies() -> list[str]:
    """Names of the taxonomies that ship with the package."""
    folder = resources.files("geoconf") / "taxonomies"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_taxonomy(name_or_path: str | Path) -> Taxonomy:
    """Load a shipped taxonomy by name (e.g. 'worldcover') or a user YAML file by path."""
    path = Path(name_or_path)
    if path.suffix.lower() in {".yaml", ".yml"} or path.exists():
        data = load_yaml_file(path, "taxonomy file", TaxonomyError)
        return taxonomy_from_mapping(data, source=str(path))
    else:
        resource = resources.files("geoconf") / "taxonomies" / f"{name_or_path}.yaml"
        if not resource.is_file():
            raise TaxonomyError(
                f"unknown taxonomy '{name_or_path}'; shipped taxonomies are: "
                f"{', '.join(shipped_taxonomies())} (or pass a path to a YAML file)"
            )
        text = resource.read_text(encoding="utf-8")
        source = f"geoconf/taxonomies/{name_or_path}.yaml"
    data = load_yaml_text(text, f"taxonomy '{source}'", TaxonomyError)
    return taxonomy_from_mapping(data, source=source)


def unknown_values(taxonomy: Taxonomy, values: Iterable[object]) -> list[str]:
    """Distinct values that do not resolve to a class, as printable strings (sorted)."""
    return sorted({repr(v) if v is None else str(v) for v in values if taxonomy.resolve(v) is None})
