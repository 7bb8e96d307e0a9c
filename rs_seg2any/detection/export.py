"""A scene (image + instances) cut into chips and written in every requested format.

One pass over the chips: each chip's pixels are read from the image by window and written as
a GeoTIFF chip (CRS and transform of its window), its annotations computed from the instance
map and handed to every format writer. Memory holds the instance map, one chip and the
exported records: it does not grow with the number of objects beyond those records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from ..atomic import atomic_output
from ..errors import InputError
from ..inputs import open_raster
from .chips import Annotation, Chip, assign_splits, chip_annotations, chip_windows
from .formats import CocoWriter, DotaWriter, YoloWriter, chip_path, write_classes
from .instances import Scene
from .vector import VectorWriter

ObjectScore = Callable[[int], dict[str, Any]]


@dataclass(frozen=True)
class ChipSettings:
    """How a scene is chipped, split and exported."""

    size: int = 256
    stride: int = 256
    min_visible: float = 0.5
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    block: int = 1024
    buffer: int = 0
    seed: int = 0
    formats: tuple[str, ...] = ("coco", "yolo", "dota", "vector")
    rle: bool = True
    skip_empty: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_visible <= 1.0:
            raise InputError(f"--min-visible must be within [0, 1] (got {self.min_visible})")


@dataclass
class ChipRecord:
    """What became of one chip: its split, its visible objects (``kept``), those too little
    visible (``rejected``, with reasons) and the doubts that reject the whole sample."""

    chip: Chip
    kept: list[Annotation] = field(default_factory=list)
    rejected: list[tuple[Annotation, list[str]]] = field(default_factory=list)
    flags: dict[int, list[str]] = field(default_factory=dict)
    exported: bool = False
    kept_counts: dict[str, int] | None = None  # of a compact record, whose ``kept`` is empty

    @property
    def counts(self) -> dict[str, int]:
        """Kept objects by class."""
        if self.kept_counts is not None:
            return dict(self.kept_counts)
        out: dict[str, int] = {}
        for a in self.kept:
            out[a.category] = out.get(a.category, 0) + 1
        return out

    def compact(self) -> ChipRecord:
        """The record without its annotations (the STAC catalog needs only the counts)."""
        return ChipRecord(self.chip, exported=self.exported, kept_counts=self.counts)

    @property
    def sample_rejected(self) -> list[str]:
        return [f"object {oid}: {r}" for oid, rs in self.flags.items() for r in rs]


def _write_chip(src: Any, chip: Chip, dest: Path, grid_affine: Affine) -> None:
    data = src.read(window=Window(chip.col, chip.row, chip.size, chip.size))
    profile = {
        "driver": "GTiff", "width": chip.size, "height": chip.size, "count": src.count,
        "dtype": src.dtypes[0], "crs": src.crs, "nodata": src.nodata,
        "transform": grid_affine * Affine.translation(chip.col, chip.row),
        "compress": "DEFLATE", "photometric": "RGB" if src.count == 3 else None,
    }  # fmt: skip
    profile = {k: v for k, v in profile.items() if v is not None}
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(dest) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(RS_SEG2ANY_CHIP=chip.id, RS_SEG2ANY_SPLIT=chip.split)


def plan_chips(scene: Scene, settings: ChipSettings) -> tuple[list[Chip], int]:
    """The chips of the scene with their splits, and how many the split buffer dropped."""
    shape = (int(scene.grid.shape[0]), int(scene.grid.shape[1]))
    chips = chip_windows(shape, settings.size, settings.stride)
    return assign_splits(
        chips,
        shape,
        block=settings.block,
        buffer=settings.buffer,
        fractions=settings.fractions,
        seed=settings.seed,
    )


def judge(
    scene: Scene,
    chip: Chip,
    settings: ChipSettings,
    object_checks: Callable[[int], list[str]] | None = None,
) -> ChipRecord:
    """The chip's annotations: kept, or rejected as too little visible (dropped from the
    labels); ``object_checks`` (object id -> doubts) flag objects whose doubts reject the
    whole sample when filtering (its pixels show the doubtful object)."""
    record = ChipRecord(chip)
    for ann, visible in chip_annotations(scene, chip, settings.min_visible):
        doubts = object_checks(ann.object_id) if object_checks else []
        if doubts:
            record.flags[ann.object_id] = doubts
        if visible:
            record.kept.append(ann)
        else:
            record.rejected.append((ann, ["visibility"]))
    return record


def export_scene(
    out: Path,
    scene: Scene,
    image: Path,
    settings: ChipSettings,
    *,
    info: dict[str, Any] | None = None,
    object_checks: Callable[[int], list[str]] | None = None,
    filter: bool = True,
    keep_masks: bool = False,
    on_record: Callable[[ChipRecord], None] | None = None,
) -> tuple[dict[str, Path], list[ChipRecord], int]:
    """Chips of ``image`` (on the scene's grid) and their labels in ``settings.formats``.
    Returns the outputs, the record of every chip, and the chips dropped by the split buffer.
    With ``filter``, samples flagged by ``object_checks`` are not exported. The records keep
    each annotation's mask only with ``keep_masks`` (memory then grows with the objects).
    ``on_record``: called with each chip's record once written; the returned records are
    then compact (no annotations), so memory does not grow with the objects.
    """
    info = dict(info or {})
    chips, dropped = plan_chips(scene, settings)
    cats = scene.categories
    writers: list[Any] = []
    if "coco" in settings.formats:
        writers.append(CocoWriter(out, scene.grid, cats, rle=settings.rle))
    if "yolo" in settings.formats:
        writers.append(YoloWriter(out, cats))
    if "dota" in settings.formats:
        writers.append(DotaWriter(out, float(abs(scene.grid.affine.a))))
    if "vector" in settings.formats:
        writers.append(VectorWriter(out, scene.grid))
    records = []
    try:
        with open_raster(image, "background image") as src:
            if (src.height, src.width) != tuple(scene.grid.shape) or (
                src.transform != scene.grid.affine
            ):
                raise InputError(f"the image {image} is not on the objects' grid")
            for chip in chips:
                record = judge(scene, chip, settings, object_checks)
                skip = (filter and record.flags) or (settings.skip_empty and not record.kept)
                if not skip:
                    record.exported = True
                    _write_chip(src, chip, out / chip_path(chip), scene.grid.affine)
                    for writer in writers:
                        writer.add(chip, record.kept)
                if on_record is not None:
                    on_record(record)
                    records.append(record.compact())
                    continue
                if not keep_masks:
                    record.kept = [_light(a) for a in record.kept]
                    record.rejected = [(_light(a), r) for a, r in record.rejected]
                records.append(record)
    except BaseException:
        for writer in writers:
            writer.abort()  # no scratch file outlives a failed export
        raise
    outputs: dict[str, Path] = {"classes": write_classes(out, cats)}
    for writer in writers:
        outputs.update(writer.close(info))
    return outputs, records, dropped


_NO_MASK = np.zeros((0, 0), dtype=bool)


def _light(ann: Annotation) -> Annotation:
    """The annotation without its mask (the report needs only its numbers)."""
    return replace(ann, mask=_NO_MASK)


def count_pixels(scene: Scene) -> np.ndarray:
    """Pixels of each object visible in the scene (index = object id)."""
    return np.bincount(scene.instances.ravel(), minlength=len(scene.objects) + 1)
