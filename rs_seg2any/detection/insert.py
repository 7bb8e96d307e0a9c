"""Rare and anomalous objects inserted into a background, exact outside them.

Where: given polygons (a layer with a class and a description per object), or sampled: each
kind's rule in ``geoconf/detection/insertion.yaml`` says which background classes the whole
footprint must lie on (ships on water, sheds on bare land), its size in metres and the
clearance it keeps from other objects. Sampling is seeded, so a rerun places the same objects.

How: the inserted polygons become the edit mask of the generator's edit path
(:func:`~rs_seg2any.scenarios.common.edit_job`), conditioned on the scene's layout with the
objects drawn on top, each with its own description. Pixels outside the mask are copied from
the background, so the object's label is the inserted region itself (the same rasterisation
of the same polygon), not a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from odc.geo.geobox import GeoBox
from scipy import ndimage
from shapely import affinity

from ..errors import InputError, ScenarioError
from ..taxonomy import Taxonomy
from ..yamlio import load_yaml_file, load_yaml_text
from .instances import footprint


@dataclass(frozen=True)
class InsertRule:
    """Where and how big one kind of object is."""

    kind: str
    category: str
    description: str
    on: tuple[str, ...]
    size_m: tuple[float, float]
    clearance_px: int = 1


def load_rules(name_or_path: str | Path = "insertion") -> dict[str, InsertRule]:
    """The insertion rules: shipped (``insertion``) or a YAML file of the same shape."""
    path = Path(name_or_path)
    if path.suffix.lower() in {".yaml", ".yml"}:
        where = f"insertion rules '{path}'"
        data = load_yaml_file(path, "insertion rules")
    elif str(name_or_path) == "insertion":
        res = resources.files("geoconf") / "detection" / "insertion.yaml"
        where = "insertion rules 'geoconf/detection/insertion.yaml'"
        data = load_yaml_text(res.read_text(encoding="utf-8"), where)
    else:
        raise InputError(f"unknown insertion rules '{name_or_path}'; shipped: insertion")
    kinds = data.get("kinds") if isinstance(data, dict) else None
    if not isinstance(kinds, dict) or not kinds:
        raise InputError(f"{where} needs 'kinds:', a mapping of object kinds to rules")
    rules = {}
    for kind, raw in kinds.items():
        try:
            size = tuple(float(v) for v in raw["size_m"])
            rule = InsertRule(
                kind=str(kind),
                category=str(raw.get("class", kind)),
                description=str(raw.get("description", kind)),
                on=tuple(str(v) for v in raw["on_classes"]),
                size_m=(size[0], size[1]),
                clearance_px=int(raw.get("clearance_px", 1)),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InputError(
                f"{where}: kind '{kind}' needs class, description, on_classes: [classes] and "
                f"size_m: [length, width] ({exc})"
            ) from None
        if min(rule.size_m) <= 0 or not all(math.isfinite(v) for v in rule.size_m):
            raise InputError(f"{where}: kind '{kind}' size_m must be positive metres")
        rules[str(kind)] = rule
    return rules


def _allowed(labels: np.ndarray, taxonomy: Taxonomy, names: tuple[str, ...]) -> np.ndarray:
    ids = {taxonomy.resolve(n) for n in names} - {None}
    return np.isin(labels, sorted(int(i) for i in ids if i is not None))


def sample_objects(
    labels: np.ndarray,
    taxonomy: Taxonomy,
    grid: GeoBox,
    kinds: list[str],
    count: int,
    rules: dict[str, InsertRule],
    *,
    occupied: np.ndarray,
    seed: int,
    description: str | None = None,
    tries: int = 200,
) -> gpd.GeoDataFrame:
    """``count`` objects (kinds taken in turn) at seeded random places whose whole footprint
    lies on the rule's classes, clear of ``occupied`` pixels and of each other."""
    if grid.crs is None or grid.crs.geographic:
        raise InputError("sampled insertion sizes are in metres: the grid needs a projected CRS")
    unknown = [k for k in kinds if k not in rules]
    if unknown or not kinds:
        raise InputError(
            f"unknown --insert-kind {', '.join(unknown) or '(none given)'}; kinds are: "
            f"{', '.join(rules)}"
        )
    rng = np.random.default_rng(seed)
    blocked = occupied.copy()
    height, width = int(grid.shape[0]), int(grid.shape[1])
    rows, cats, texts, kinds_out = [], [], [], []
    for i in range(count):
        rule = rules[kinds[i % len(kinds)]]
        allowed = _allowed(labels, taxonomy, rule.on)
        free = allowed & ~blocked
        candidates = np.flatnonzero(free)
        placed = None
        for _ in range(tries if candidates.size else 0):
            r, c = np.unravel_index(int(rng.choice(candidates)), free.shape)
            x, y = grid.affine * (c + 0.5, r + 0.5)
            length, breadth = rule.size_m
            geom = affinity.rotate(
                shapely.box(x - length / 2, y - breadth / 2, x + length / 2, y + breadth / 2),
                float(rng.uniform(0, 180)),
            )
            mask, c0, r0 = footprint(geom, grid)
            h, w = mask.shape
            if not mask.any() or c0 < 0 or r0 < 0 or c0 + w > width or r0 + h > height:
                continue
            if not free[r0 : r0 + h, c0 : c0 + w][mask].all():
                continue
            placed = geom
            grown = (
                ndimage.binary_dilation(mask, iterations=rule.clearance_px)
                if rule.clearance_px
                else mask
            )
            blocked[r0 : r0 + h, c0 : c0 + w] |= grown
            break
        if placed is None:
            raise ScenarioError(
                f"no room for {count} '{rule.kind}' object(s) on {', '.join(rule.on)} "
                f"(placed {i}); lower --insert-count or use a scene with more of those classes"
            )
        rows.append(placed)
        cats.append(rule.category)
        texts.append(description or rule.description)
        kinds_out.append(rule.kind)
    return gpd.GeoDataFrame(
        {"class": cats, "description": texts, "kind": kinds_out}, geometry=rows, crs=grid.crs
    )
