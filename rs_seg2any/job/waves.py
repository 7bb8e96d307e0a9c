# SPDX-License-Identifier: Apache-2.0
"""Which tiles a tile reads, and the wavefronts that let many tiles run at once.

A generate job inpaints: tile T is conditioned on the pixels of every tile that comes
*before* it in row-major order and whose window intersects T's window (see
``_TileRenderer._known``). Those are T's dependencies; nothing else of another tile is read.
For a regular plan (overlap < half the tile) that is at most four neighbours::

    (r-1, c-1)  (r-1, c)  (r-1, c+1)
    (r,   c-1)     T

The last window of an axis is shifted back to stay full size, so near the right and bottom
edges a window can also reach the tile two steps back; :func:`dependencies` computes the set
from the windows themselves, so every plan is handled, not only regular ones.

A tile's *wave* is the length of the longest chain of dependencies below it (0 for a tile
that reads nothing). Every dependency of a tile lies in an earlier wave, so all tiles of one
wave can run in parallel, and running waves in order reproduces the sequential row-major run
exactly: each tile sees the same finished neighbours, pixel for pixel. For the regular plan
wave(r, c) = 2r + c (the upper-right neighbour forbids the plain anti-diagonal r + c), so a
grid of R x C tiles needs 2(R-1) + C waves instead of R*C steps. Jobs without overlap (layout
jobs) have no dependencies: one wave.
"""

from __future__ import annotations

from .tiling import Tile, TilePlan, _covering

__all__ = ["dependencies", "waves"]

Index = tuple[int, int]


def dependencies(plan: TilePlan) -> dict[Index, tuple[Tile, ...]]:
    """For each tile, the earlier (row-major) tiles whose windows intersect its own."""
    ncols = plan.shape[1]
    deps: dict[Index, tuple[Tile, ...]] = {}
    for tile in plan.tiles:
        rows = _covering(plan._row_windows, tile.rows)
        cols = _covering(plan._col_windows, tile.cols)
        deps[tile.index] = tuple(
            plan.tiles[r * ncols + c] for r in rows for c in cols if (r, c) < tile.index
        )
    return deps


def waves(plan: TilePlan, deps: dict[Index, tuple[Tile, ...]] | None = None) -> dict[Index, int]:
    """The wave of every tile: 0 without dependencies, else one more than its latest one."""
    deps = dependencies(plan) if deps is None else deps
    level: dict[Index, int] = {}
    for tile in plan.tiles:  # row-major: dependencies come first
        level[tile.index] = 1 + max((level[d.index] for d in deps[tile.index]), default=-1)
    return level
