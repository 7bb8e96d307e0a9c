"""A region's textures run one way: the quilter lays each class's patches along one grain per
job (a direction drawn from the job seed), so streaked sand or tracks do not zig-zag into a
herringbone where the layout gives no direction (seen in ``make demo``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rs_seg2any.generators.exemplar import quilt as Q
from rs_seg2any.generators.exemplar.bank import ExemplarBank, orientation
from rs_seg2any.generators.exemplar.quilt import grain_of, quilt


def streaked_bank() -> ExemplarBank:
    """Pure land crops of straight streaks at 30 degrees: their 8 turns and flips run 4 ways."""
    yy, xx = np.mgrid[:96, :96].astype(np.float32)
    rgb = []
    for k in range(4):
        phase = np.sin((xx * np.cos(np.pi / 6) + yy * np.sin(np.pi / 6)) / 2.0 + k)
        grey = (150 + 40 * phase).astype(np.uint8)
        rgb.append(np.repeat(grey[..., None], 3, axis=2))
    return ExemplarBank(np.stack(rgb), np.full((4, 96, 96), 2, np.uint8), 0.5, {2: "land"})


def coherence_along(img: np.ndarray, grain: np.ndarray) -> float:
    """Mean over 32-px blocks of each block's direction (doubled angle, times coherence)
    projected on ``grain``: 1 = every block runs the grain's way."""
    blocks = [img[y : y + 32, x : x + 32].mean(-1) for y in range(0, img.shape[0] - 31, 32)
              for x in range(0, img.shape[1] - 31, 32)]  # fmt: skip
    return float((orientation(np.stack(blocks)) @ grain).mean())


def test_a_job_lays_a_class_along_one_grain_and_the_seed_picks_it() -> None:
    bank = streaked_bank()
    labels = np.full((192, 192), 2, np.int64)

    def lookup(c: int) -> Any:
        return bank.candidates(c, 1.0)

    along, free = [], []
    for seed in range(4):
        grain = grain_of(seed, 2)
        along.append(coherence_along(quilt(labels, lookup, seed, grain_seed=seed), grain))
        free.append(coherence_along(quilt(labels, lookup, seed), grain))
    assert min(along) > 0.3 and np.mean(along) > np.mean(free) + 0.3, (along, free)
    assert not np.allclose(grain_of(0, 2), grain_of(1, 2))  # the job seed picks the grain
    assert np.array_equal(grain_of(5, 2), grain_of(5, 2))
    assert Q.GRAIN_WEIGHT > 0
