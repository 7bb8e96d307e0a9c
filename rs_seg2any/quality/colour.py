"""Colour of generated imagery against real imagery of the same layout.

Two measures, both pooled over all scenes:

- per-class mean-colour distance: the CIE 1976 colour difference (Delta E*ab, CIELAB, D65
  white, sRGB input) between the mean Lab colour of a class's pixels in the generated and in
  the real images; class interiors only (masks eroded by ``erode`` px, so a blurred or shifted
  boundary does not count as a colour error). One Delta E unit is about a just-noticeable
  difference; the summary is the unweighted mean over classes, so rare classes count as much
  as the dominant one.
- mean HSV saturation (``(max - min) / max`` of RGB, on 0-255) of the whole image, and the
  generated / real ratio: washed-out output scores well below 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from ..lab import srgb_to_lab

U8 = NDArray[np.uint8]
F64 = NDArray[np.float64]


def saturation(image: NDArray[np.generic]) -> F64:
    """HSV saturation per pixel on 0-255 (0 for black)."""
    rgb = np.asarray(image, dtype=np.float64)[..., :3]
    hi, lo = rgb.max(axis=-1), rgb.min(axis=-1)
    sat: F64 = np.where(hi > 0, (hi - lo) / np.maximum(hi, 1e-9), 0.0) * 255.0
    return sat


def mean_saturation(images: Sequence[NDArray[np.generic]]) -> float:
    """Pixel-weighted mean HSV saturation (0-255) over all images."""
    total = sum(float(saturation(im).sum()) for im in images)
    count = sum(int(np.asarray(im).shape[0] * np.asarray(im).shape[1]) for im in images)
    return total / count if count else float("nan")


def interior(labels: NDArray[np.integer], cls: int, erode: int) -> NDArray[np.bool_]:
    """Pixels of ``cls`` more than ``erode`` px from another class (the image edge is no
    class border: pixels along it stay)."""
    mask: NDArray[np.bool_] = np.asarray(labels) == cls
    if erode <= 0:
        return mask
    eroded: NDArray[np.bool_] = np.asarray(
        ndimage.binary_erosion(mask, iterations=erode, border_value=1), dtype=bool
    )
    return eroded


def class_mean_lab(
    images: Sequence[NDArray[np.generic]],
    labels: Sequence[NDArray[np.integer]],
    *,
    erode: int = 2,
    min_pixels: int = 256,
    ignore: Sequence[int] = (0,),
) -> dict[int, F64]:
    """Mean Lab colour of each class's interior pixels, pooled over images; classes with
    fewer than ``min_pixels`` interior pixels are left out (their mean is noise)."""
    sums: dict[int, F64] = {}
    counts: dict[int, int] = {}
    for img, lab in zip(images, labels, strict=True):
        lab_img = srgb_to_lab(img)
        for c in np.unique(lab):
            k = int(c)
            if k in ignore:
                continue
            m = interior(lab, k, erode)
            n = int(m.sum())
            if n:
                sums[k] = sums.get(k, np.zeros(3)) + lab_img[m].sum(axis=0)
                counts[k] = counts.get(k, 0) + n
    return {k: sums[k] / counts[k] for k in sorted(sums) if counts[k] >= min_pixels}


@dataclass(frozen=True)
class ColourScores:
    """Per-class Delta E (CIELAB) of class mean colours; saturation of both sides."""

    delta_e: dict[int, float]
    mean_delta_e: float
    saturation: float
    real_saturation: float
    saturation_ratio: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["delta_e"] = {str(k): v for k, v in self.delta_e.items()}
        return d


def colour_scores(
    generated: Sequence[NDArray[np.generic]],
    real: Sequence[NDArray[np.generic]],
    labels: Sequence[NDArray[np.integer]],
    *,
    erode: int = 2,
    min_pixels: int = 256,
    ignore: Sequence[int] = (0,),
) -> ColourScores:
    """Colour of ``generated`` against ``real`` on the same ``labels`` (scene by scene)."""
    gen = class_mean_lab(generated, labels, erode=erode, min_pixels=min_pixels, ignore=ignore)
    ref = class_mean_lab(real, labels, erode=erode, min_pixels=min_pixels, ignore=ignore)
    delta = {k: float(np.linalg.norm(gen[k] - ref[k])) for k in ref if k in gen}
    sat, real_sat = mean_saturation(generated), mean_saturation(real)
    return ColourScores(
        delta_e=delta,
        mean_delta_e=float(np.mean(list(delta.values()))) if delta else float("nan"),
        saturation=sat,
        real_saturation=real_sat,
        saturation_ratio=sat / real_sat if real_sat > 0 else float("nan"),
    )
