# SPDX-License-Identifier: Apache-2.0
"""Tile plans over any GeoBox, and a streaming mosaic that never holds the whole grid.

Generators see fixed-size windows; a job's grid can be far larger than memory. A plan cuts
the grid into overlapping windows, gives every grid pixel exactly one owning tile (its
"core", for exact label maps) and smooth blend weights (for seamless imagery), and
``assemble`` streams the mosaic out one tile core at a time, so memory depends on the tile
size, never on the grid's width or area.
"""

from __future__ import annotations

import hashlib
import operator
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from typing import Any, Literal

import numpy as np
from numpy.typing import DTypeLike, NDArray
from odc.geo.geobox import GeoBox

from rs_seg2any.errors import GridError

__all__ = [
    "BLEND_EPSILON",
    "Tile",
    "TilePlan",
    "assemble",
    "blend_weights",
]

#: Smallest blend weight; keeps every covered pixel's weight sum strictly positive.
BLEND_EPSILON = 1e-3

_Span = tuple[int, int]

Loader = Callable[["Tile"], NDArray[np.generic]]
Sink = Callable[[NDArray[np.generic], slice, slice], None]


@dataclass(frozen=True)
class Tile:
    """One window of a plan; ``core_*`` are the pixels it alone writes in "core" mode."""

    index: tuple[int, int]
    rows: slice
    cols: slice
    core_rows: slice
    core_cols: slice
    seed_key: str

    def __hash__(self) -> int:
        # slices are unhashable before Python 3.12; hash the plain numbers instead.
        return hash((self.index, self.rows.start, self.rows.stop, self.cols.start, self.cols.stop))

    @property
    def shape(self) -> tuple[int, int]:
        """Window shape (rows, cols): what the generator must return per band."""
        return (self.rows.stop - self.rows.start, self.cols.stop - self.cols.start)

    def geobox(self, grid: GeoBox) -> GeoBox:
        """The tile's own GeoBox, so conditions rasterise on exactly the mosaic's pixels."""
        sub = grid[self.rows, self.cols]
        assert isinstance(sub, GeoBox)
        return sub


SOFT_EDGE = 8
"""Pixels at an earlier tile's inner window edge that the tile owning them generates again
(a decoder renders a window's last pixels with less context than the rest)."""


def soft_edge(overlap: int) -> int:
    """The soft edge in use: at most a quarter of the overlap, so it lies in the owner's core."""
    return min(SOFT_EDGE, overlap // 4)


def feather_width(overlap: int) -> int:
    """Known pixels before the soft edge that the owning tile fades into its own: from the
    middle of the overlap (where its core starts) to where its inpainting starts."""
    return overlap // 2 - soft_edge(overlap)


def _axis_windows(n: int, size: int, overlap: int) -> list[_Span]:
    """Regular windows with the last one shifted back, so every window is full size."""
    if n <= size:
        return [(0, n)]
    stride = size - overlap
    count = -(-(n - size) // stride) + 1
    starts = [i * stride for i in range(count - 1)] + [n - size]
    return [(s, s + size) for s in starts]


def _axis_cores(windows: Sequence[_Span]) -> list[_Span]:
    """Cut midway through each overlap: the cores partition the axis exactly."""
    cuts = [windows[0][0]]
    for (_, prev_end), (next_start, _) in pairwise(windows):
        cuts.append((next_start + prev_end) // 2)
    cuts.append(windows[-1][1])
    return list(pairwise(cuts))


def _axis_ramp(windows: Sequence[_Span], i: int) -> NDArray[np.float32]:
    """1-D weights: 1 inside, linear ramps over overlaps with neighbours, flat at grid edges.

    Ramps are sampled at pixel centres over the actual overlap, so two neighbours' weights
    sum to exactly 1 there (a partition of unity: no brightness dip across seams).
    """
    start, end = windows[i]
    centres = np.arange(start, end, dtype=np.float64) + 0.5
    weight = np.ones(end - start, dtype=np.float64)
    if i > 0:
        lap = windows[i - 1][1] - start
        weight = np.minimum(weight, (centres - start) / lap)
    if i < len(windows) - 1:
        lap = end - windows[i + 1][0]
        weight = np.minimum(weight, (end - centres) / lap)
    return np.maximum(weight, BLEND_EPSILON).astype(np.float32)


def _as_int(value: object, name: str) -> int:
    if isinstance(value, bool):
        raise GridError(f"{name} must be an integer number of pixels, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise GridError(f"{name} must be an integer number of pixels, got {value!r}") from None


@dataclass(frozen=True)
class TilePlan:
    """Overlapping fixed-size windows over a grid; a value, cheap to rebuild anywhere."""

    grid: GeoBox
    tile_size: int
    overlap: int

    def __post_init__(self) -> None:
        size = _as_int(self.tile_size, "tile_size")
        overlap = _as_int(self.overlap, "overlap")
        if size <= 0:
            raise GridError(f"tile_size must be a positive number of pixels, got {size}")
        if overlap < 0 or 2 * overlap >= size:
            raise GridError(
                f"overlap must be >= 0 and less than half the tile size ({size} px), got "
                f"{overlap}; e.g. use --overlap {size // 8}"
            )
        ny, nx = self.grid.shape
        if ny <= 0 or nx <= 0:
            raise GridError(f"the target grid is empty ({ny} x {nx} pixels)")
        object.__setattr__(self, "tile_size", size)
        object.__setattr__(self, "overlap", overlap)

    @classmethod
    def for_grid(cls, grid: GeoBox, tile_size: int = 512, overlap: int = 64) -> TilePlan:
        """Plan tiles over ``grid``; raises GridError for impossible sizes."""
        return cls(grid=grid, tile_size=tile_size, overlap=overlap)

    @cached_property
    def _row_windows(self) -> list[_Span]:
        return _axis_windows(self.grid.shape[0], self.tile_size, self.overlap)

    @cached_property
    def _col_windows(self) -> list[_Span]:
        return _axis_windows(self.grid.shape[1], self.tile_size, self.overlap)

    @property
    def shape(self) -> tuple[int, int]:
        """Number of tiles along (rows, cols)."""
        return (len(self._row_windows), len(self._col_windows))

    @cached_property
    def tiles(self) -> tuple[Tile, ...]:
        """All tiles, row-major (tile row 0 first), so stripes can stream top to bottom."""
        row_cores = _axis_cores(self._row_windows)
        col_cores = _axis_cores(self._col_windows)
        return tuple(
            Tile(
                index=(r, c),
                rows=slice(*rw),
                cols=slice(*cw),
                core_rows=slice(*row_cores[r]),
                core_cols=slice(*col_cores[c]),
                seed_key=f"r{r:04d}_c{c:04d}",
            )
            for r, rw in enumerate(self._row_windows)
            for c, cw in enumerate(self._col_windows)
        )

    def tile_row(self, r: int) -> tuple[Tile, ...]:
        """The tiles of tile row ``r``, left to right."""
        ncols = self.shape[1]
        return self.tiles[r * ncols : (r + 1) * ncols]

    def tile_seed(self, job_seed: int, tile: Tile) -> int:
        """Per-tile seed from the job seed: independent of order, process and PYTHONHASHSEED."""
        digest = hashlib.sha256(f"{int(job_seed)}:{tile.seed_key}".encode()).digest()
        return int.from_bytes(digest[:8], "big") >> 1


def blend_weights(plan: TilePlan, tile: Tile) -> NDArray[np.float32]:
    """(h, w) float32 weights of ``tile``: 1 inside, ramping to ~0 where a neighbour takes over."""
    r, c = tile.index
    return np.outer(_axis_ramp(plan._row_windows, r), _axis_ramp(plan._col_windows, c))


def _cast(values: NDArray[Any], dtype: np.dtype[Any]) -> NDArray[Any]:
    """Cast for writing: integers are rounded and clipped, never wrapped around."""
    if np.issubdtype(dtype, np.integer) and np.issubdtype(values.dtype, np.floating):
        info = np.iinfo(dtype)
        rounded: NDArray[Any] = np.clip(np.rint(values), info.min, info.max)
        return rounded.astype(dtype)
    if dtype == np.bool_ and np.issubdtype(values.dtype, np.floating):
        return values >= 0.5
    return values.astype(dtype, copy=False)


def _load_checked(load: Loader, tile: Tile, bands: int) -> NDArray[np.generic]:
    """Accept (h, w) for one band; fail loudly on a generator returning the wrong shape."""
    data = np.asarray(load(tile))
    if data.ndim == 2 and bands == 1:
        data = data[np.newaxis]
    expected = (bands, *tile.shape)
    if data.shape != expected:
        raise ValueError(
            f"tile {tile.seed_key}: expected an array of shape {expected}, got {data.shape}"
        )
    return data


def _core_part(data: NDArray[np.generic], tile: Tile) -> NDArray[np.generic]:
    r0, c0 = tile.rows.start, tile.cols.start
    rows = slice(tile.core_rows.start - r0, tile.core_rows.stop - r0)
    cols = slice(tile.core_cols.start - c0, tile.core_cols.stop - c0)
    return data[:, rows, cols]


def _covering(windows: Sequence[_Span], span: slice) -> list[int]:
    """Indices of the windows that overlap ``span`` along one axis."""
    return [i for i, (start, end) in enumerate(windows) if start < span.stop and end > span.start]


class _TileCache:
    """A few recently loaded tiles: neighbours are reused while blending a tile row."""

    def __init__(self, load: Loader, bands: int, size: int) -> None:
        self._load, self._bands, self._size = load, bands, size
        self._items: OrderedDict[tuple[int, int], NDArray[np.generic]] = OrderedDict()

    def get(self, tile: Tile) -> NDArray[np.generic]:
        if tile.index in self._items:
            self._items.move_to_end(tile.index)
            return self._items[tile.index]
        data = _load_checked(self._load, tile, self._bands)
        self._items[tile.index] = data
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return data


def _assemble_core(
    plan: TilePlan, load: Loader, sink: Sink, dtype: np.dtype[np.generic], bands: int
) -> None:
    for tile in plan.tiles:
        data = _load_checked(load, tile, bands)
        sink(_cast(_core_part(data, tile), dtype), tile.core_rows, tile.core_cols)


def _assemble_blend(
    plan: TilePlan, load: Loader, sink: Sink, dtype: np.dtype[np.generic], bands: int
) -> None:
    acc_dtype = np.result_type(np.float32, dtype)
    ncols = plan.shape[1]
    rows_cover = {r: _covering(plan._row_windows, t.core_rows) for r, t in _first_of_rows(plan)}
    cols_cover = [_covering(plan._col_windows, t.core_cols) for t in plan.tile_row(0)]
    cache = _TileCache(load, bands, size=4 * max(len(c) for c in cols_cover) + 4)
    for tile in plan.tiles:
        core_r, core_c = tile.core_rows, tile.core_cols
        height, width = core_r.stop - core_r.start, core_c.stop - core_c.start
        total = np.zeros((bands, height, width), dtype=acc_dtype)
        weight = np.zeros((height, width), dtype=acc_dtype)
        for r in rows_cover[tile.index[0]]:
            for c in cols_cover[tile.index[1]]:
                other = plan.tiles[r * ncols + c]
                r0, r1 = max(core_r.start, other.rows.start), min(core_r.stop, other.rows.stop)
                c0, c1 = max(core_c.start, other.cols.start), min(core_c.stop, other.cols.stop)
                dst = (
                    slice(r0 - core_r.start, r1 - core_r.start),
                    slice(c0 - core_c.start, c1 - core_c.start),
                )
                src = (
                    slice(r0 - other.rows.start, r1 - other.rows.start),
                    slice(c0 - other.cols.start, c1 - other.cols.start),
                )
                w = blend_weights(plan, other)[src]
                part = cache.get(other)[(slice(None), *src)].astype(acc_dtype)
                total[(slice(None), *dst)] += part * w
                weight[dst] += w
        sink(_cast(total / weight[np.newaxis], dtype), core_r, core_c)


def _first_of_rows(plan: TilePlan) -> list[tuple[int, Tile]]:
    return [(r, plan.tile_row(r)[0]) for r in range(plan.shape[0])]


def assemble(
    plan: TilePlan,
    load: Loader,
    sink: Sink,
    *,
    mode: Literal["blend", "core"],
    dtype: DTypeLike,
    bands: int = 1,
) -> None:
    """Stream the mosaic to ``sink(block (bands, h, w), rows, cols)``, one core block per tile.

    ``mode="core"`` copies each pixel from the tile that owns it (exact: labels, instances,
    contours); ``mode="blend"`` averages all covering tiles with ``blend_weights`` (imagery)
    and rounds for integer dtypes. Memory is a few tiles, whatever the grid size: blending
    re-reads a neighbour when it has left a small cache rather than holding whole stripes.
    """
    out_dtype = np.dtype(dtype)
    if bands < 1:
        raise ValueError(f"bands must be >= 1, got {bands}")
    if mode == "core":
        _assemble_core(plan, load, sink, out_dtype, bands)
    elif mode == "blend":
        _assemble_blend(plan, load, sink, out_dtype, bands)
    else:
        raise ValueError(f"mode must be 'blend' or 'core', got {mode!r}")
