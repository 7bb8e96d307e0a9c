"""Baseline "generators" every realism score is read against: plain functions of a label raster.

- :class:`FlatPainter`: each class painted with its mean colour from training imagery (right
  layout and colour, no texture at all) — must lose every realism test.
- :class:`ClassPatchFill`: each class filled with random real patches of that class from
  training imagery, feathered into each other and across class borders (real colour and
  texture, no coherence: blotches, no roads along roads) — the naive semi-parametric baseline.
- :func:`blurred`: the real image itself blurred (sigma 4): exact colour and layout, no fine
  texture — a classifier that cannot spot it is too weak to judge anything.

Painters are callables ``labels (H, W) uint8 -> image (H, W, 3) uint8``, so anything that
scores a generator (``rs_seg2any.quality.evaluate``) takes them as candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]
Painter = Callable[[NDArray[np.integer]], U8]
"""A baseline generator: class-id raster in, RGB uint8 image of the same shape out."""


def blurred(image: NDArray[np.generic], sigma: float = 4.0) -> U8:
    """The real image Gaussian-blurred per band (right colours, no fine texture)."""
    f = ndimage.gaussian_filter(np.asarray(image, dtype=np.float32), sigma=(sigma, sigma, 0))
    out: U8 = np.clip(np.round(f), 0, 255).astype(np.uint8)
    return out


def class_colours(
    images: Sequence[NDArray[np.generic]], labels: Sequence[NDArray[np.integer]]
) -> dict[int, tuple[float, float, float]]:
    """Mean RGB of every class over all pixels of the given images."""
    sums: dict[int, NDArray[np.float64]] = {}
    counts: dict[int, int] = {}
    for img, lab in zip(images, labels, strict=True):
        rgb = np.asarray(img)[..., :3]
        for c in np.unique(lab):
            m = lab == c
            sums[int(c)] = sums.get(int(c), np.zeros(3)) + rgb[m].sum(axis=0)
            counts[int(c)] = counts.get(int(c), 0) + int(m.sum())
    return {c: (float(v[0]), float(v[1]), float(v[2])) for c, s in sums.items()
            for v in [s / counts[c]]}  # fmt: skip


@dataclass(frozen=True)
class FlatPainter:
    """Every class in its mean training colour; unknown classes in the overall mean."""

    colours: dict[int, tuple[float, float, float]]

    @classmethod
    def from_pairs(
        cls, images: Sequence[NDArray[np.generic]], labels: Sequence[NDArray[np.integer]]
    ) -> FlatPainter:
        return cls(class_colours(images, labels))

    def __call__(self, labels: NDArray[np.integer]) -> U8:
        fallback = np.mean(list(self.colours.values()), axis=0) if self.colours else np.zeros(3)
        out = np.empty((*np.asarray(labels).shape, 3), dtype=np.uint8)
        out[:] = np.round(fallback).astype(np.uint8)
        for c, rgb in self.colours.items():
            out[labels == c] = np.round(rgb).astype(np.uint8)
        return out


def _window(size: int) -> F32:
    """2-D weight peaking in the middle and falling to ~0 at the rim, raised to a power so one
    patch dominates each pixel (averaging many patches would wash the texture out)."""
    ramp = np.sin(np.pi * (np.arange(size) + 0.5) / size).astype(np.float32)
    w: F32 = (np.outer(ramp, ramp) ** 4 + 1e-6).astype(np.float32)
    return w


@dataclass(frozen=True)
class ClassPatchFill:
    """Random real patches per class, feathered: ``bank[c]`` holds ``(n, P, P, 3)`` patches."""

    bank: dict[int, U8]
    seed: int = 0
    border_sigma: float = 1.5  # feathering across class borders, px
    fallback: FlatPainter = field(default_factory=lambda: FlatPainter({}))

    @classmethod
    def from_pairs(
        cls,
        images: Sequence[NDArray[np.generic]],
        labels: Sequence[NDArray[np.integer]],
        *,
        patch: int = 48,
        per_class: int = 96,
        purity: float = 0.9,
        seed: int = 0,
        tries: int = 4000,
    ) -> ClassPatchFill:
        """Draw up to ``per_class`` patches per class whose pixels are at least ``purity``
        that class (random positions, deterministic by ``seed``)."""
        rng = np.random.default_rng(seed)
        found: dict[int, list[U8]] = {}
        usable = [i for i, lab in enumerate(labels) if min(np.asarray(lab).shape) >= patch]
        if not usable:
            raise ValueError(f"no training image is at least {patch} px a side")
        classes = sorted({int(c) for i in usable for c in np.unique(labels[i])})
        for _ in range(tries):
            i = usable[int(rng.integers(len(usable)))]
            lab = np.asarray(labels[i])
            y = int(rng.integers(lab.shape[0] - patch + 1))
            x = int(rng.integers(lab.shape[1] - patch + 1))
            win = lab[y : y + patch, x : x + patch]
            vals, counts = np.unique(win, return_counts=True)
            top = int(vals[np.argmax(counts)])
            if counts.max() >= purity * win.size and len(found.get(top, [])) < per_class:
                img = np.asarray(images[i])[y : y + patch, x : x + patch, :3]
                found.setdefault(top, []).append(np.ascontiguousarray(img, dtype=np.uint8))
            if all(len(found.get(c, [])) >= per_class for c in classes):
                break
        bank = {c: np.stack(p) for c, p in found.items()}
        return cls(bank, seed, fallback=FlatPainter.from_pairs(images, labels))

    def _canvas(self, c: int, shape: tuple[int, int], rng: np.random.Generator) -> F32:
        """Class ``c``'s texture over the whole scene: patches on a jittered half-patch grid,
        each turned and flipped at random, blended with dominant-centre weights."""
        patches = self.bank[c]
        p = patches.shape[1]
        h, w = shape
        step = p // 2
        acc = np.zeros((h + 3 * p, w + 3 * p, 3), np.float32)  # the scene sits at [p, p + h)
        wsum = np.zeros((h + 3 * p, w + 3 * p, 1), np.float32)
        win = _window(p)[..., None]
        for y in range(0, h + p, step):
            for x in range(0, w + p, step):
                jy, jx = (int(v) for v in rng.integers(-(step // 2), step // 2 + 1, size=2))
                yy, xx = y + jy + p // 2, x + jx + p // 2
                tile = np.rot90(patches[int(rng.integers(len(patches)))], int(rng.integers(4)))
                if rng.random() < 0.5:
                    tile = tile[:, ::-1]
                acc[yy : yy + p, xx : xx + p] += tile.astype(np.float32) * win
                wsum[yy : yy + p, xx : xx + p] += win
        out: F32 = (acc / np.maximum(wsum, 1e-6)).astype(np.float32)[p : p + h, p : p + w]
        return out

    def __call__(self, labels: NDArray[np.integer]) -> U8:
        lab = np.asarray(labels)
        rng = np.random.default_rng(self.seed)
        flat = self.fallback(lab).astype(np.float32)
        acc = np.zeros((*lab.shape, 3), np.float32)
        wsum = np.zeros((*lab.shape, 1), np.float32)
        for c in np.unique(lab):
            k = int(c)
            soft = ndimage.gaussian_filter((lab == k).astype(np.float32), self.border_sigma)
            texture = self._canvas(k, lab.shape, rng) if k in self.bank else flat
            acc += texture * soft[..., None]
            wsum += soft[..., None]
        out: U8 = np.clip(np.round(acc / np.maximum(wsum, 1e-6)), 0, 255).astype(np.uint8)
        return out
