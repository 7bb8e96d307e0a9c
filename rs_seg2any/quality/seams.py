"""Tile-seam visibility: the line score.

A tiled generator leaves seams where one tile's pixels meet the next: a column (or row) of
pixels across which the image jumps. The *line strength* of the boundary between columns
``x - 1`` and ``x`` is the mean absolute difference between them (grey levels, averaged over
all rows); likewise for rows. The **line score** is the strength of the worst boundary at the
tiling's lines — every window start and end, i.e. multiples of the stride
``tile_size - overlap`` and those plus ``overlap`` (the last window is shifted back to end at
the grid edge, as :class:`rs_seg2any.job.tiling.TilePlan` does), and each window end less the
soft edge, where the next tile's inpainting meets it — divided by the mean strength of
all boundaries along that axis; the larger of the column and row scores is reported.

A seamless image scores like real imagery, about 1.1-1.2 (the worst of a handful of random
lines is a little above the mean); a visible seam scores well above that. The score is
relative, so flat and textured images are comparable.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ..job.tiling import _axis_windows, soft_edge


def line_strengths(image: NDArray[np.generic], axis: int) -> NDArray[np.float64]:
    """Mean |difference| across each boundary: ``axis=1`` columns (``W - 1`` values),
    ``axis=0`` rows. ``image`` is ``(H, W)`` or ``(H, W, bands)``."""
    grey = np.asarray(image, dtype=np.float64)
    if grey.ndim == 3:
        grey = grey.mean(axis=2)
    diff = np.abs(np.diff(grey, axis=axis))
    strengths: NDArray[np.float64] = diff.mean(axis=1 - axis)
    return strengths


def tile_lines(n: int, tile_size: int, overlap: int) -> list[int]:
    """Boundaries (index ``x`` = between pixels ``x - 1`` and ``x``) the tiling can print:
    window edges, where a tile's inpainting starts (a window's end less the soft edge that
    the next tile makes again, :func:`rs_seg2any.job.tiling.soft_edge`) and where its fade from
    the known pixels starts (the middle of the overlap)."""
    soft = soft_edge(overlap)
    edges = set()
    for start, end in _axis_windows(n, tile_size, overlap):
        edges |= {start, end} | ({end - soft, end - overlap // 2} if end < n else set())
    return sorted(e for e in edges if 0 < e < n)


def axis_score(image: NDArray[np.generic], axis: int, tile_size: int, overlap: int) -> float:
    """Worst window-edge line over the mean line, along one axis (1.0 without window edges)."""
    strengths = line_strengths(image, axis)
    lines = tile_lines(np.asarray(image).shape[axis], tile_size, overlap)
    mean = float(strengths.mean()) if strengths.size else 0.0
    if not lines or mean <= 0:
        return 1.0
    return float(max(strengths[x - 1] for x in lines)) / mean


def line_score(image: NDArray[np.generic], tile_size: int, overlap: int) -> float:
    """The line score of an image generated with this tiling (columns and rows, worst)."""
    return max(axis_score(image, axis, tile_size, overlap) for axis in (0, 1))
