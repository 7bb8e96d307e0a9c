"""Copying: how close generated blocks come to blocks of the imagery a generator drew from.

A generator that pastes real pixels (the exemplar backend, or a network that memorised its
training set) can look real because it is real, and a user publishing synthetic data must know
how much of it is a copy. For every ``block``-px block of an image (a regular grid), the
nearest block of the reference imagery (the exemplar bank, the training tiles) is found in all
8 turns and flips, and its RMSE (0-255 grey levels) kept. The same figure for real held-out
blocks is the yardstick: real imagery is not a copy of the training set, so generated blocks
that come much closer than real ones do are copies. Search is two-stage (a coarse 8x8 mean
colour per block shortlists, exact RMSE decides), so it is exact for the shortlist only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]
BLOCK = 32
NEAR = 6.0  # RMSE (grey levels) under which a block counts as a near copy
SHORTLIST = 8


@dataclass(frozen=True)
class CopyScores:
    """Nearest-reference RMSE of the blocks of a set of images."""

    blocks: int
    median_rmse: float
    p05_rmse: float
    share_near: float  # blocks within NEAR of a reference block

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coarse(blocks: NDArray[np.generic]) -> F32:
    n, b = blocks.shape[0], blocks.shape[1]
    f = b // 8
    out: F32 = (
        np.asarray(blocks, np.float32).reshape(n, 8, f, 8, f, 3).mean(axis=(2, 4)).reshape(n, -1)
    )
    return out


def _grid_blocks(image: U8, block: int, stride: int) -> U8:
    h, w = image.shape[:2]
    ys, xs = range(0, h - block + 1, stride), range(0, w - block + 1, stride)
    out = [image[y : y + block, x : x + block, :3] for y in ys for x in xs]
    return np.stack(out) if out else np.zeros((0, block, block, 3), np.uint8)


class BlockIndex:
    """Reference blocks (every ``stride`` px of the reference images, at most ``cap``)."""

    def __init__(
        self, images: Sequence[U8], block: int = BLOCK, stride: int = 8, cap: int = 40_000
    ) -> None:
        if block % 8:
            raise ValueError("block must be a multiple of 8")
        parts = [_grid_blocks(np.asarray(im, np.uint8), block, stride) for im in images]
        blocks = np.concatenate(parts) if parts else np.zeros((0, block, block, 3), np.uint8)
        if len(blocks) == 0:
            raise ValueError(f"reference images are smaller than one {block}-px block")
        if len(blocks) > cap:  # a fixed, even subsample
            blocks = blocks[np.linspace(0, len(blocks) - 1, cap).astype(np.int64)]
        self.block = block
        self.blocks = blocks.reshape(len(blocks), -1).astype(np.float32)
        self.coarse = _coarse(blocks)
        self.coarse_sq = (self.coarse**2).sum(1)

    def nearest_rmse(self, blocks: U8) -> F32:
        """Per query block: RMSE to its nearest reference block over the 8 turns and flips."""
        best = np.full(len(blocks), np.inf, dtype=np.float32)
        for t in range(8):
            turned = np.rot90(blocks, t % 4, axes=(1, 2))
            if t >= 4:
                turned = turned[:, :, ::-1]
            q = np.ascontiguousarray(turned)
            qc = _coarse(q)
            d = self.coarse_sq[None, :] - 2.0 * qc @ self.coarse.T
            k = min(SHORTLIST, d.shape[1])
            short = np.argpartition(d, k - 1, axis=1)[:, :k]
            flat = q.reshape(len(q), -1).astype(np.float32)
            diff = self.blocks[short] - flat[:, None, :]
            rmse = np.sqrt((diff**2).mean(-1)).min(1)
            best = np.minimum(best, rmse.astype(np.float32))
        return best


def copy_scores(images: Sequence[U8], index: BlockIndex, max_blocks: int = 1500) -> CopyScores:
    """Nearest-reference RMSE over the ``block`` grid of ``images`` (an even subsample of at
    most ``max_blocks`` blocks, so the figure costs the same for any scene size)."""
    blocks = np.concatenate([_grid_blocks(np.asarray(im, np.uint8), index.block, index.block)
                             for im in images])  # fmt: skip
    if len(blocks) > max_blocks:
        blocks = blocks[np.linspace(0, len(blocks) - 1, max_blocks).astype(np.int64)]
    rmse = np.concatenate([index.nearest_rmse(blocks[i : i + 256])
                           for i in range(0, len(blocks), 256)])  # fmt: skip
    return CopyScores(
        blocks=len(rmse),
        median_rmse=float(np.median(rmse)),
        p05_rmse=float(np.percentile(rmse, 5)),
        share_near=float((rmse < NEAR).mean()),
    )
