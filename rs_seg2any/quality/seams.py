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
relative, so flat and textured images are comparable. Content lifts it too (a road edge that
happens to lie on a tile line: real tile_7 scenes score 1.31), so two companions are
reported: the *chance* figure, the worst of as many randomly placed lines (what content alone
gives), and the mean of the tiling lines (a faint seam on every line lifts it above 1.0).

A seam sits on the same tiling line in every scene; content does not. The *pooled* score
averages each scene's line strengths (over its mean line) across all scenes of one size before
taking the worst tiling line, so content averages out and a faint seam that repeats stands
out (:func:`pooled_tile_lines`, with its own chance figure).

The token-period scores do the same at every multiple of the model's token size (16 px):
the worst such line, and the mean of all of them (a faint grid on every token line raises
the mean even where single lines drown in content). :func:`seam_scores` gives all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

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


def lines_over_mean(strengths: NDArray[np.float64], lines: list[int]) -> tuple[float, float]:
    """(worst, mean) strength of the boundaries ``lines`` over the mean boundary; (1.0, 1.0)
    without lines or where the axis is flat."""
    mean = float(strengths.mean()) if strengths.size else 0.0
    if not lines or mean <= 0:
        return 1.0, 1.0
    at = strengths[np.asarray(lines) - 1]
    return float(at.max()) / mean, float(at.mean()) / mean


def axis_score(image: NDArray[np.generic], axis: int, tile_size: int, overlap: int) -> float:
    """Worst window-edge line over the mean line, along one axis (1.0 without window edges)."""
    lines = tile_lines(np.asarray(image).shape[axis], tile_size, overlap)
    return lines_over_mean(line_strengths(image, axis), lines)[0]


def chance_worst(strengths: NDArray[np.float64], count: int, draws: int = 200) -> float:
    """The worst of ``count`` lines drawn at random (no repeats), over the mean line, averaged
    over ``draws`` draws (fixed seed): what content alone gives the worst-line ratio of that
    many lines. A road edge or shoreline that happens to run along a tile line makes real
    imagery score 1.3-1.5 too; a seam shows as a tile-line score above this figure."""
    mean = float(strengths.mean()) if strengths.size else 0.0
    if count < 1 or mean <= 0 or strengths.size < count:
        return 1.0
    rng = np.random.default_rng(0)
    worst = [float(strengths[rng.choice(strengths.size, count, replace=False)].max())
             for _ in range(draws)]  # fmt: skip
    return float(np.mean(worst)) / mean


def tile_line_profile(
    image: NDArray[np.generic], tile_size: int, overlap: int
) -> tuple[float, float, float]:
    """(worst, mean, chance) over the axes' tiling lines, each over the mean line: the worst
    line (:func:`line_score`), the mean of all tiling lines (a faint seam on every tile line
    lifts it above 1.0 where content averages out) and :func:`chance_worst` for as many lines;
    each the larger of columns and rows."""
    out = []
    for axis in (0, 1):
        strengths = line_strengths(image, axis)
        lines = tile_lines(np.asarray(image).shape[axis], tile_size, overlap)
        out.append((*lines_over_mean(strengths, lines), chance_worst(strengths, len(lines))))
    return max(o[0] for o in out), max(o[1] for o in out), max(o[2] for o in out)


def pooled_tile_lines(
    images: Sequence[NDArray[np.generic]], tile_size: int, overlap: int
) -> tuple[float, float]:
    """(worst, chance) of the tiling lines after each line's strength over its scene's mean
    line is averaged over the scenes (those of the first scene's shape): a faint seam that
    every scene repeats stands out where one scene's content drowns it. Columns and rows,
    the larger of each; (1.0, 1.0) without scenes."""
    if not len(images):
        return 1.0, 1.0
    shape = np.asarray(images[0]).shape[:2]
    same = [im for im in images if np.asarray(im).shape[:2] == shape]
    worst, chance = [], []
    for axis in (0, 1):
        profiles = []
        for im in same:
            strengths = line_strengths(im, axis)
            mean = float(strengths.mean()) if strengths.size else 0.0
            if mean > 0:
                profiles.append(strengths / mean)
        lines = tile_lines(shape[axis], tile_size, overlap)
        if not profiles or not lines:
            continue
        pooled = np.mean(profiles, axis=0)
        worst.append(lines_over_mean(pooled, lines)[0])
        chance.append(chance_worst(pooled, len(lines)))
    return max(worst, default=1.0), max(chance, default=1.0)


def line_score(image: NDArray[np.generic], tile_size: int, overlap: int) -> float:
    """The line score of an image generated with this tiling (columns and rows, worst)."""
    return max(axis_score(image, axis, tile_size, overlap) for axis in (0, 1))


TOKEN_PERIOD = 16
"""Side of a model token in pixels (the embedded model's and FLUX's 16-px patches after the
autoencoder): a grid at this period betrays token-wise generation."""


def period_lines(n: int, period: int, offset: int = 0) -> list[int]:
    """Boundaries at ``offset + k * period`` strictly inside ``(0, n)``."""
    if period < 1:
        raise ValueError(f"period must be >= 1, got {period}")
    return [x for x in range(offset % period, n, period) if 0 < x < n]


def period_axis_scores(
    image: NDArray[np.generic], axis: int, period: int, offset: int = 0
) -> tuple[float, float]:
    """(worst, mean) strength of the period's lines over the mean line, along one axis.

    The mean ratio finds a faint grid on every period line (it averages out the content);
    the worst ratio finds a single bad line. Both are 1.0 where the axis has no period line.
    """
    lines = period_lines(np.asarray(image).shape[axis], period, offset)
    return lines_over_mean(line_strengths(image, axis), lines)


@dataclass(frozen=True)
class SeamScores:
    """Line artefacts of one image: the tiling's lines and the token period's lines, each as
    the worst (and for the token period also the mean) line over the average line; columns
    and rows, the larger of the two. Real imagery: about 1.0-1.2."""

    tile_worst: float
    token_worst: float
    token_mean: float
    tile_size: int
    overlap: int
    token_period: int
    tile_mean: float = 1.0
    tile_chance: float = 1.0
    tile_pooled: float | None = None
    """Worst tiling line of the line strengths pooled over scenes (:func:`pooled_tile_lines`);
    set for a set of scenes, None for one scene."""
    tile_pooled_chance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def seam_scores(
    image: NDArray[np.generic], tile_size: int, overlap: int, token_period: int = TOKEN_PERIOD
) -> SeamScores:
    """Line scores of one whole (multi-tile) scene at its tiling and at the token period."""
    token = [period_axis_scores(image, axis, token_period) for axis in (0, 1)]
    worst, mean, chance = tile_line_profile(image, tile_size, overlap)
    return SeamScores(
        tile_worst=worst,
        token_worst=max(t[0] for t in token),
        token_mean=max(t[1] for t in token),
        tile_size=tile_size,
        overlap=overlap,
        token_period=token_period,
        tile_mean=mean,
        tile_chance=chance,
    )


def scene_set_seams(
    images: Sequence[NDArray[np.generic]], tile_size: int, overlap: int,
    token_period: int = TOKEN_PERIOD,
) -> tuple[SeamScores, tuple[SeamScores, ...]]:  # fmt: skip
    """Line scores of several scenes rendered at one tiling: (the per-scene scores averaged,
    with the pooled worst line and its chance; the per-scene scores)."""
    per_scene = tuple(seam_scores(im, tile_size, overlap, token_period) for im in images)
    worst, chance = pooled_tile_lines(images, tile_size, overlap)
    return replace(mean_seams(list(per_scene)), tile_pooled=worst,
                   tile_pooled_chance=chance), per_scene  # fmt: skip


def mean_seams(scores: list[SeamScores]) -> SeamScores:
    """Each score averaged over several scenes (per-scene values stay in the report)."""
    if not scores:
        raise ValueError("no seam scores to combine")
    first = scores[0]
    return SeamScores(
        tile_worst=float(np.mean([s.tile_worst for s in scores])),
        token_worst=float(np.mean([s.token_worst for s in scores])),
        token_mean=float(np.mean([s.token_mean for s in scores])),
        tile_size=first.tile_size,
        overlap=first.overlap,
        token_period=first.token_period,
        tile_mean=float(np.mean([s.tile_mean for s in scores])),
        tile_chance=float(np.mean([s.tile_chance for s in scores])),
    )
