"""Chips of a scene and the annotations of the objects they show.

A chip is a ``size`` x ``size`` window of the scene grid; windows step by ``stride`` and the
last row and column are moved back to end at the scene's edge, so every pixel is in a chip
and no chip reaches outside the image.

Partially visible objects: an object's *visible fraction* in a chip is the number of its
pixels in the chip (not covered by a later object) over its whole area on the grid lattice
(:attr:`~rs_seg2any.detection.instances.ObjectInfo.full_area`). An object below
``min_visible`` is left out of the chip's labels and reported as rejected (``visibility``).
A kept object cut by the chip border (or the scene border) is flagged ``truncated``; one that
is whole in the chip but partly hidden by another object is flagged ``occluded``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import shapely
from scipy import ndimage

from ..errors import InputError
from .geometry import Box, OrientedBox, mask_polygons, oriented_box
from .instances import Scene


@dataclass(frozen=True)
class Chip:
    """A window of the scene: its top-left pixel and size, and the split it belongs to."""

    row: int
    col: int
    size: int
    split: str = "train"

    @property
    def id(self) -> str:
        return f"r{self.row:06d}_c{self.col:06d}"

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.row, self.row + self.size), slice(self.col, self.col + self.size)


@dataclass(frozen=True)
class Annotation:
    """One object as one chip shows it (pixel coordinates of the chip)."""

    object_id: int
    category: str
    description: str
    source: str
    box: Box
    obox: OrientedBox
    mask: np.ndarray  # bool, the box's window of the chip
    area: int
    visible_fraction: float
    truncated: bool
    occluded: bool

    @functools.cached_property
    def polygons(self) -> list[shapely.Polygon]:
        """Pixel-exact outlines in chip pixels (largest part first), computed once for every
        format that needs them."""
        return mask_polygons(self.mask, (self.box[0], self.box[1]))

    def full_mask(self, size: int) -> np.ndarray:
        """The object's mask on the whole chip."""
        out = np.zeros((size, size), dtype=bool)
        x0, y0, x1, y1 = self.box
        out[y0:y1, x0:x1] = self.mask
        return out


def _starts(length: int, size: int, stride: int) -> list[int]:
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def chip_windows(shape: tuple[int, int], size: int, stride: int) -> list[Chip]:
    """Row-major chips covering a scene of ``shape`` (see the module docstring)."""
    if size < 8:
        raise InputError(f"chip size {size} is too small (at least 8 px)")
    if stride < 1:
        raise InputError(f"chip stride must be at least 1 px (got {stride})")
    height, width = shape
    if size > height or size > width:
        raise InputError(
            f"chip size {size} px is larger than the scene ({width}x{height} px); "
            "use a smaller --chip-size"
        )
    return [
        Chip(r, c, size)
        for r in _starts(height, size, stride)
        for c in _starts(width, size, stride)
    ]


def chip_annotations(
    scene: Scene, chip: Chip, min_visible: float
) -> Iterator[tuple[Annotation, bool]]:
    """Every object with a pixel in ``chip``, with whether it is kept (visible enough)."""
    window = scene.instances[chip.slices]
    ids, local = np.unique(window, return_inverse=True)
    local = local.reshape(window.shape)
    counts = np.bincount(local.ravel(), minlength=ids.size)
    boxes = ndimage.find_objects(local)
    for k, oid in enumerate(ids):
        if oid == 0:
            continue
        info = scene.objects[int(oid) - 1]
        sl = boxes[k - 1]  # find_objects' entry i is label i + 1
        if sl is None:
            continue
        rows, cols = sl
        mask = local[sl] == k
        area = int(counts[k])
        box = (cols.start, rows.start, cols.stop, rows.stop)
        fx0, fy0, fx1, fy1 = info.full_box
        inside = fx0 >= chip.col and fy0 >= chip.row
        inside = inside and fx1 <= chip.col + chip.size and fy1 <= chip.row + chip.size
        fraction = min(1.0, area / info.full_area) if info.full_area else 1.0
        ann = Annotation(
            object_id=int(oid),
            category=info.category,
            description=info.description,
            source=info.source,
            box=box,
            obox=oriented_box(mask, (cols.start, rows.start)),
            mask=mask,
            area=area,
            visible_fraction=fraction,
            truncated=not inside,
            occluded=inside and area < info.full_area,
        )
        yield ann, fraction >= min_visible


# --- spatially separated splits -----------------------------------------------------------


SPLITS = ("train", "val", "test")


def parse_fractions(text: str) -> tuple[float, float, float]:
    """``train,val,test`` fractions (they are normalised to sum to 1)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"--split {text!r} must be three numbers: train,val,test") from None
    if len(values) != 3 or any(v < 0 or v != v for v in values) or sum(values) <= 0:
        raise InputError(f"--split {text!r} must be three non-negative numbers: train,val,test")
    total = sum(values)
    return values[0] / total, values[1] / total, values[2] / total


def block_splits(
    shape: tuple[int, int], block: int, fractions: tuple[float, float, float], seed: int
) -> np.ndarray:
    """The split index (0 train, 1 val, 2 test) of every ``block`` x ``block`` cell of the
    scene: cells shuffled by ``seed`` and dealt out by the fractions."""
    rows = -(-shape[0] // block)
    cols = -(-shape[1] // block)
    n = rows * cols
    counts = [round(f * n) for f in fractions]
    for i, f in enumerate(fractions):  # every split asked for gets a cell when it can
        if f > 0 and counts[i] == 0 and n >= sum(1 for v in fractions if v > 0):
            counts[i] = 1
    while sum(counts) > n:
        counts[int(np.argmax(counts))] -= 1
    counts[int(np.argmax(fractions))] += n - sum(counts)
    labels = np.repeat(np.arange(3), counts)
    np.random.default_rng(seed).shuffle(labels)
    out: np.ndarray = labels.reshape(rows, cols)
    return out


def assign_splits(
    chips: list[Chip],
    shape: tuple[int, int],
    *,
    block: int,
    buffer: int,
    fractions: tuple[float, float, float],
    seed: int,
) -> tuple[list[Chip], int]:
    """Chips with their split, and how many were dropped: a chip is kept when it, widened by
    ``buffer`` pixels, lies in cells of one split only; so chips of different splits are at
    least ``buffer`` pixels apart and never overlap."""
    if block < 1:
        raise InputError(f"--split-block must be at least 1 px (got {block})")
    if buffer < 0:
        raise InputError(f"--split-buffer must be >= 0 px (got {buffer})")
    cells = block_splits(shape, block, fractions, seed)
    kept: list[Chip] = []
    for chip in chips:
        r0 = max(chip.row - buffer, 0) // block
        c0 = max(chip.col - buffer, 0) // block
        r1 = (min(chip.row + chip.size + buffer, shape[0]) - 1) // block
        c1 = (min(chip.col + chip.size + buffer, shape[1]) - 1) // block
        touched = np.unique(cells[r0 : r1 + 1, c0 : c1 + 1])
        if touched.size == 1:
            kept.append(Chip(chip.row, chip.col, chip.size, SPLITS[int(touched[0])]))
    return kept, len(chips) - len(kept)
