"""A DEM flood extent computed tile by tile: whole-grid connectivity in bounded memory.

Which low pixels flood depends on the whole grid (water may enter 8 km away), so
:func:`~rs_seg2any.scenarios.flood_extent.flood_from_dem` holds the grid in memory (about
25 bytes per pixel at its peak: float64 heights, int32 labels, masks). Here the same rule
runs in two passes over tiles:

1. each tile's passable pixels (low, or water) are labelled on their own
   (``scipy.ndimage.label``, 4 or 8 neighbours); labels that touch across a tile border are
   joined in a union-find, and the labels holding a source are marked;
2. each tile is labelled again (the same result), its labels mapped to their roots, and a
   low pixel floods when its root is marked.

Memory is one tile's arrays, two rows of labels as wide as the grid, and the union-find
(8 bytes per connected piece of a tile): it grows with the number of pieces, not with the
pixels. The result is exactly :func:`flood_from_dem`'s, with the same errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from rasterio.windows import Window
from scipy import ndimage

from ..errors import InputError, ScenarioError
from .flood_extent import _m, _structure

#: Side of the tiles the extent is computed in.
FLOOD_TILE = 1024

Reader = Callable[[Window], np.ndarray]


class _UnionFind:
    """Disjoint sets over label ids 1..n (0 = not passable), grown tile by tile."""

    def __init__(self) -> None:
        self.parent = np.zeros(1, dtype=np.int64)

    def grow(self, count: int) -> int:
        """Add ``count`` new sets; returns the id offset of the first."""
        offset = len(self.parent) - 1
        self.parent = np.concatenate([self.parent, np.arange(offset + 1, offset + 1 + count)])
        return offset

    def find(self, ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Roots of ``ids`` (vectorised, with path halving until stable)."""
        parent = self.parent
        roots = parent[ids]
        while True:
            up = parent[roots]
            if np.array_equal(up, roots):
                return roots
            roots = up

    def union(self, a: NDArray[np.int64], b: NDArray[np.int64]) -> None:
        """Join the sets of each pair ``(a[i], b[i])``."""
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            rx, ry = x, y
            while self.parent[rx] != rx:
                rx = int(self.parent[rx])
            while self.parent[ry] != ry:
                ry = int(self.parent[ry])
            if rx != ry:
                self.parent[max(rx, ry)] = min(rx, ry)

    def flatten(self) -> None:
        self.parent = self.find(np.arange(len(self.parent)))


def _tiles(shape: tuple[int, int], tile: int) -> Iterator[tuple[int, list[Window]]]:
    """Rows of tiles: (first row, windows left to right)."""
    height, width = shape
    for r0 in range(0, height, tile):
        h = min(tile, height - r0)
        yield r0, [Window(c0, r0, min(tile, width - c0), h) for c0 in range(0, width, tile)]


def _pairs(a: NDArray[np.int64], b: NDArray[np.int64], diagonal: bool) -> NDArray[np.int64]:
    """Unique label pairs of two facing lines of pixels (same length), both passable,
    straight across and, with 8 neighbours, diagonally."""
    found = [np.stack([a, b], axis=1)]
    if diagonal and len(a) > 1:
        found += [np.stack([a[:-1], b[1:]], axis=1), np.stack([a[1:], b[:-1]], axis=1)]
    pairs = np.concatenate(found)
    pairs = pairs[(pairs[:, 0] > 0) & (pairs[:, 1] > 0) & (pairs[:, 0] != pairs[:, 1])]
    return np.unique(pairs, axis=0) if len(pairs) else pairs


@dataclass
class _Tile:
    low: NDArray[np.bool_]
    labels: NDArray[np.int64]  # global ids, 0 = not passable
    heights: NDArray[np.float64]


class TiledFlood:
    """The flood of ``dem`` (a reader of float windows, NaN = nodata) at ``level`` from seed
    pixels ``seeds`` (row, col) and the ``water`` reader (bool windows), on a grid of
    ``shape``; see :func:`~rs_seg2any.scenarios.flood_extent.flood_from_dem` for the rule.
    Construction runs pass 1 and raises its errors; :meth:`window` gives pass 2's results.
    """

    def __init__(
        self,
        dem: Reader,
        shape: tuple[int, int],
        level: float,
        *,
        seeds: Sequence[tuple[int, int]] = (),
        water: Reader | None = None,
        connectivity: int = 8,
        tile: int | None = None,
    ) -> None:
        self.dem, self.shape, self.water = dem, (int(shape[0]), int(shape[1])), water
        self.structure = _structure(connectivity)
        self.diagonal = connectivity == 8
        self.tile = int(tile or FLOOD_TILE)
        try:
            self.level = float(level)
        except (TypeError, ValueError) as exc:
            raise InputError(f"water level {level!r} is not a number of metres") from exc
        if not math.isfinite(self.level):
            raise InputError(f"water level must be a finite number of metres, got {level}")
        self.seeds = [(int(r), int(c)) for r, c in seeds]
        self.sets = _UnionFind()
        self.offsets: dict[tuple[int, int], int] = {}
        self._first_pass()

    def _seed_mask(self, window: Window) -> NDArray[np.bool_]:
        out = np.zeros((int(window.height), int(window.width)), dtype=bool)
        for r, c in self.seeds:
            rr, cc = r - int(window.row_off), c - int(window.col_off)
            if 0 <= rr < out.shape[0] and 0 <= cc < out.shape[1]:
                out[rr, cc] = True
        return out

    def _water(self, window: Window) -> NDArray[np.bool_]:
        if self.water is None:
            return np.zeros((int(window.height), int(window.width)), dtype=bool)
        return np.asarray(self.water(window), dtype=bool)

    def _label(self, window: Window) -> tuple[_Tile, NDArray[np.bool_], int]:
        """One tile: low pixels, global labels, heights; its water mask; its label count."""
        heights = np.asarray(self.dem(window), dtype=np.float64)
        valid = np.isfinite(heights)
        low = valid & (heights < self.level)
        water = self._water(window)
        local, count = ndimage.label(low | water, structure=self.structure)
        key = (int(window.row_off), int(window.col_off))
        if key not in self.offsets:
            self.offsets[key] = self.sets.grow(int(count))
        labels = np.where(local > 0, local.astype(np.int64) + self.offsets[key], 0)
        return _Tile(low, labels, heights), water, int(count)

    def _first_pass(self) -> None:
        any_valid, any_water = False, False
        lowest = math.inf
        source_low = math.inf  # lowest valid height at a seed or water pixel
        wet: list[NDArray[np.int64]] = []
        above: NDArray[np.int64] | None = None  # bottom row of the previous tile row
        for _, row in _tiles(self.shape, self.tile):
            top, bottom, left = [], [], None
            for window in row:
                t, water, _ = self._label(window)
                valid = np.isfinite(t.heights)
                if valid.any():
                    any_valid = True
                    lowest = min(lowest, float(t.heights[valid].min()))
                seeds = self._seed_mask(window)
                any_water = any_water or bool(water.any())
                at = (seeds | water) & valid
                if at.any():
                    source_low = min(source_low, float(t.heights[at].min()))
                sources = water | (seeds & t.low)
                wet.append(np.unique(t.labels[sources]))
                if left is not None:
                    pairs = _pairs(left, t.labels[:, 0], self.diagonal)
                    self.sets.union(pairs[:, 0], pairs[:, 1])
                left = t.labels[:, -1]
                top.append(t.labels[0])
                bottom.append(t.labels[-1])
            first = np.concatenate(top)
            if above is not None:
                pairs = _pairs(above, first, self.diagonal)
                self.sets.union(pairs[:, 0], pairs[:, 1])
            above = np.concatenate(bottom)
        self._check(any_valid, any_water, lowest)
        self.sets.flatten()
        self.wet = np.zeros(len(self.sets.parent), dtype=bool)
        ids = np.concatenate(wet) if wet else np.zeros(0, dtype=np.int64)
        self.wet[self.sets.parent[ids[ids > 0]]] = True
        self._any_water, self._source_low = any_water, source_low

    def _check(self, any_valid: bool, any_water: bool, lowest: float) -> None:
        if not any_valid:
            raise InputError(f"the DEM {self.shape} holds no valid height (all nodata)")
        if not (self.seeds or any_water):
            raise ScenarioError(
                "the flood has no source: give seed locations or a river/water class "
                "(seeds and water are both missing or empty)"
            )
        if self.level <= lowest:
            where = "below" if self.level < lowest else "level with"
            raise ScenarioError(
                f"water level {_m(self.level)} m is {where} all terrain (lowest {_m(lowest)} m):"
                " nothing can flood"
            )

    def window(self, window: Window) -> tuple[NDArray[np.bool_], NDArray[np.float32]]:
        """Pass 2 for one tile of this flood's tiling: the flood mask and the depth (metres,
        0 outside the mask), as ``flood_from_dem`` gives them for these pixels."""
        t, _, _ = self._label(window)
        roots = self.sets.parent[t.labels]
        mask = self.wet[roots] & (t.labels > 0) & t.low
        depth = np.where(mask, self.level - t.heights, 0.0).astype(np.float32)
        return mask, depth

    def windows(self) -> Iterator[Window]:
        for _, row in _tiles(self.shape, self.tile):
            yield from row

    def empty_error(self) -> ScenarioError:
        """The error ``flood_from_dem`` raises when no pixel floods."""
        what = {
            (True, False): "seeds",
            (False, True): "river/water pixels",
            (True, True): "seeds and river/water pixels",
        }[(bool(self.seeds), self._any_water)]
        if math.isfinite(self._source_low):
            detail = f"lowest terrain at the {what} {_m(self._source_low)} m"
        else:
            detail = f"the {what} lie on DEM nodata only"
        return ScenarioError(
            f"the {what} are all above the water level {_m(self.level)} m ({detail}) and no "
            "terrain below the level touches them: move the seeds or raise the level"
        )
