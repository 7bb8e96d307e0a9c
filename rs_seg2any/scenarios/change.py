"""Bi-temporal change pairs: T1 from the before layout, T2 edited only where the layout changed.

Nothing is held for the whole grid: the after layouts are checked (a no-op, two identical
pairs) by comparing windows of the two layouts' label masks; the change rasters are
computed window by window from T1's and T2's ``label.tif``, written by the tiled jobs.

The after layout is given, or derived from the before layout by a change recipe (new
buildings on bare land, demolition, road construction, urban growth; see
:mod:`rs_seg2any.scenarios.change_recipes`). The change mask is exactly the cell-wise
difference of the two label masks; the from-to raster codes each changed cell as
``from_id * 256 + to_id`` (uint16, 0 = unchanged), listed in ``change_classes.csv``.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from odc.geo.geobox import GeoBox
from rasterio.windows import Window

from ..atomic import atomic_open
from ..critics.scenario import generate_or_refine
from ..errors import ScenarioError
from ..generators.base import Generator
from ..geoio import GridRasterWriter, ensure_writable_dir
from ..grid import same_grid
from ..job.runner import JobResult
from ..layout import Layout
from ..limits import check
from ..progress import Progress
from ..radiometry import MaskReader
from ..raster import rasterize_window
from .change_recipes import ChangeRoles, apply_recipe
from .common import GenOptions, Polygons, edit_job, exclusive_folder, write_mask
from .masks import raster_mask, windows, write_windows
from .presets import load_preset


@dataclass
class ChangePair:
    t2: JobResult
    change_mask: Path
    change_fromto: Path
    change_classes: Path


@dataclass
class ChangeResult:
    t1: JobResult
    pairs: list[ChangePair] = field(default_factory=list)

    def outputs(self) -> dict[str, Path]:
        out = {f"t1_{k}": v for k, v in self.t1.outputs.items()}
        for i, p in enumerate(self.pairs):
            tag = "" if len(self.pairs) == 1 else f"{i:03d}_"
            out.update({f"t2_{tag}{k}": v for k, v in p.t2.outputs.items()})
            out[f"{tag}change_mask"] = p.change_mask
            out[f"{tag}change_fromto"] = p.change_fromto
        return out


def roles_for(taxonomy_name: str, preset: dict[str, Any], override: str | None) -> ChangeRoles:
    """The classes the recipes use: ``--roles building,bare,road`` or the preset's entry."""
    if override:
        parts = [p.strip() for p in override.split(",")]
        if len(parts) != 3 or not all(parts):
            raise ScenarioError("--roles needs three class names: building,bare,road")
        return ChangeRoles(*parts)
    entry = (preset.get("roles") or {}).get(taxonomy_name)
    if not entry:
        raise ScenarioError(
            f"no change roles for taxonomy '{taxonomy_name}' in the preset; pass "
            "--roles building,bare,road"
        )
    return ChangeRoles(str(entry["building"]), str(entry["bare"]), str(entry["road"]))


def layer_roles(roles: ChangeRoles, polys: Polygons) -> ChangeRoles:
    """Roles spelled as the layer writes its classes: names and ids resolve through the
    taxonomy as the layout does, so ``built-up`` finds the value 50 of a numeric class field."""
    tax = polys.taxonomy
    column = polys.frame[polys.class_field]
    spelled: dict[int, Counter[str]] = {}
    for value in column.dropna().tolist():
        cid = tax.resolve(value)
        if cid is not None:
            spelled.setdefault(cid, Counter())[str(value)] += 1

    def spell(name: str, role: str) -> str:
        cid = tax.resolve(name)
        if cid is None:
            known = ", ".join(c.name for c in tax.classes)
            raise ScenarioError(
                f"change role {role} {name!r} is not a class of taxonomy '{tax.name}'; "
                f"classes: {known}"
            )
        found = spelled.get(cid)
        return found.most_common(1)[0][0] if found else tax.by_id(cid).name

    return ChangeRoles(
        spell(roles.building, "building"), spell(roles.bare, "bare"), spell(roles.road, "road")
    )


def _recipe_frame(before: Polygons, frame: Any) -> Any:
    """A recipe writes class values as text; a numeric class field stays numeric."""
    if pd.api.types.is_numeric_dtype(before.frame[before.class_field].dtype):
        frame[before.class_field] = pd.to_numeric(frame[before.class_field], errors="coerce")
    return frame


def _labels(layout: Layout) -> MaskReader:
    """Windows of a layout's label mask, rasterised on demand: the same pixels as the whole
    grid (:func:`~rs_seg2any.raster.rasterize_window`), never the whole grid at once."""

    def read(window: Window) -> np.ndarray:
        rows, cols = window.toslices()
        return rasterize_window(layout, rows, cols).label

    return read


def _difference(before: MaskReader, after: MaskReader) -> MaskReader:
    return lambda window: np.asarray(before(window) != after(window))


def _fingerprint(before: MaskReader, after: MaskReader, grid: GeoBox) -> tuple[bool, str]:
    """Whether ``after`` changes any pixel of ``before``, and a digest of ``after``'s labels
    (equal digests: the same label mask), in one pass of windows."""
    digest = hashlib.sha256()
    changed = False
    for window in windows(grid):
        label = np.ascontiguousarray(after(window))
        changed = changed or bool((label != before(window)).any())
        digest.update(label.tobytes())
    return changed, digest.hexdigest()


def check_same_grid(a: GeoBox, b: GeoBox) -> None:
    if not same_grid(a, b):
        raise ScenarioError(
            f"the before and after layouts lie on different grids ({a.shape[1]}x{a.shape[0]} px, "
            f"{a.crs} vs {b.shape[1]}x{b.shape[0]} px, {b.crs}); load both on one grid "
            "(e.g. --like the same raster)"
        )


def write_change(
    out: Path, before: MaskReader, after: MaskReader, polys: Polygons, grid: GeoBox
) -> tuple[Path, Path, Path]:
    """change_mask.tif, change_fromto.tif and change_classes.csv of two label masks, given as
    readers of their windows: written window by window, counted as they pass."""
    tags = {"RS_SEG2ANY_SCENARIO": "change"}
    counts: Counter[int] = Counter()

    def fromto(window: Window) -> np.ndarray:
        a, b = before(window), after(window)
        changed = a != b
        code = np.where(changed, a.astype(np.uint16) * 256 + b.astype(np.uint16), 0)
        values, n = np.unique(code[changed], return_counts=True)
        counts.update(dict(zip(values.tolist(), n.tolist(), strict=True)))
        return code.astype(np.uint16)

    code_path = out / "change_fromto.tif"
    with GridRasterWriter(code_path, grid, dtype="uint16", nodata=0) as writer:
        write_windows(writer, fromto, grid)
        writer.finalize(categorical=True, tags=tags)
    mask_path = write_mask(
        out / "change_mask.tif", _difference(before, after), grid, tags, ("unchanged", "changed")
    )
    names = polys.taxonomy.names_by_id()
    names[0] = "no polygon"
    csv_path = out / "change_classes.csv"
    with atomic_open(csv_path) as f:
        w = csv.writer(f)
        w.writerow(["code", "from_id", "from_class", "to_id", "to_class", "pixels"])
        for v in sorted(counts):
            a, b = divmod(int(v), 256)
            w.writerow([v, a, names.get(a, a), b, names.get(b, b), counts[v]])
    return mask_path, code_path, csv_path


@exclusive_folder
def change_pairs(
    out: str | Path,
    generator: Generator,
    before: Polygons,
    grid: GeoBox,
    *,
    after: Polygons | None = None,
    after_grid: GeoBox | None = None,
    recipe: str | None = None,
    recipe_params: dict[str, Any] | None = None,
    roles: str | None = None,
    pairs: int = 1,
    opts: GenOptions | None = None,
    preset: str | Path = "change",
    progress: Progress | None = None,
) -> ChangeResult:
    """T1 of ``before``; then ``pairs`` T2 images, each from ``after`` or a recipe draw."""
    opts = opts or GenOptions()
    if (after is None) == (recipe is None):
        raise ScenarioError("give either an after layout or a change recipe (not both)")
    pairs = check("pairs", pairs)
    if after is not None and after_grid is not None:
        check_same_grid(grid, after_grid)
    cfg = load_preset(preset)
    params = {**(cfg.get("recipes") or {}).get(recipe or "", {}), **(recipe_params or {})}
    role_set = layer_roles(roles_for(before.taxonomy.name, cfg, roles), before) if recipe else None
    out = ensure_writable_dir(out)
    layout1 = before.layout(grid)  # each layer is validated once; every step reuses it
    label1 = _labels(layout1)
    # derive every after layout (and fail on a no-op) before any long render starts
    afters: list[tuple[Polygons, str]] = []
    for i in range(pairs):
        if after is not None:
            polys = after
        else:
            rng = np.random.default_rng(opts.seed + 1000 + i)
            assert recipe is not None and role_set is not None
            frame = apply_recipe(
                before.frame, before.class_field, role_set, recipe, rng=rng, **params
            )
            polys = before.with_frame(_recipe_frame(before, frame))
        changed, digest = _fingerprint(label1, _labels(polys.layout(grid)), grid)
        if not changed:
            raise ScenarioError(f"pair {i}: the after layout changes no pixel of the before one")
        same = [j for j, (_, other) in enumerate(afters) if other == digest]
        if same:
            what = f"recipe '{recipe}'" if recipe else "the after layout"
            raise ScenarioError(
                f"--pairs {pairs}: {what} gives pair {i} identical to pair {same[0]} (it does "
                "not vary with the seed); use --pairs 1, or vary it with --param"
            )
        afters.append((polys, digest))
    t1 = generate_or_refine(layout1, out / "t1", generator, opts, progress)
    result = ChangeResult(t1)
    before_labels = raster_mask(Path(t1.outputs["label"]))  # T1's label.tif, by window
    for i, (polys, _) in enumerate(afters):
        pair_dir = out if pairs == 1 else ensure_writable_dir(out / f"pair_{i:03d}")
        mask = _difference(before_labels, _labels(polys.layout(grid)))
        t2 = edit_job(
            polys,
            grid,
            t1.outputs["image"],
            mask,
            pair_dir / "t2",
            generator,
            opts,
            progress,
            seed_offset=1 + i,
        )
        written = raster_mask(Path(t2.outputs["label"]))  # T2's label.tif, by window
        m, c, k = write_change(pair_dir, before_labels, written, polys, grid)
        result.pairs.append(ChangePair(t2, m, c, k))
    return result
