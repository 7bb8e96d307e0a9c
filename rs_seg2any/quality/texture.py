"""Texture of generated imagery against real imagery of the same layout, per class.

Texture here is the distribution of local gradient magnitude (Sobel on luminance in [0, 1]):
per class interior, the 1-D Wasserstein distance between the generated and the real
distributions (0 = same texture statistics; in luminance-gradient units, so flat paint scores
about the real class's mean gradient), and the ratio of their means (the sharpness ratio:
< 1 smoother than real, > 1 noisier). The summary is the unweighted mean over classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.stats import wasserstein_distance

from .colour import interior

F32 = NDArray[np.float32]
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def grad_magnitude(img: NDArray[np.generic]) -> F32:
    """Sobel gradient magnitude of the luminance in [0, 1] units."""
    lum = (np.asarray(img, dtype=np.float32)[..., :3] / 255.0) @ _LUMA
    gx = ndimage.sobel(lum, axis=1)
    gy = ndimage.sobel(lum, axis=0)
    mag: F32 = np.hypot(gx, gy).astype(np.float32)
    return mag


@dataclass(frozen=True)
class TextureScores:
    """Per-class gradient-distribution distance and sharpness ratio, with their means."""

    distance: dict[int, float]
    sharpness: dict[int, float]
    mean_distance: float
    mean_sharpness: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["distance"] = {str(k): v for k, v in self.distance.items()}
        d["sharpness"] = {str(k): v for k, v in self.sharpness.items()}
        return d


def _pool(
    images: Sequence[NDArray[np.generic]],
    labels: Sequence[NDArray[np.integer]],
    erode: int,
    ignore: Sequence[int],
) -> dict[int, F32]:
    found: dict[int, list[F32]] = {}
    for img, lab in zip(images, labels, strict=True):
        grad = grad_magnitude(img)
        for c in np.unique(lab):
            if int(c) in ignore:
                continue
            m = interior(lab, int(c), erode)
            if m.any():
                found.setdefault(int(c), []).append(grad[m])
    return {k: np.concatenate(v) for k, v in found.items()}


def texture_scores(
    generated: Sequence[NDArray[np.generic]],
    real: Sequence[NDArray[np.generic]],
    labels: Sequence[NDArray[np.integer]],
    *,
    erode: int = 2,
    min_pixels: int = 256,
    max_samples: int = 20000,
    ignore: Sequence[int] = (0,),
) -> TextureScores:
    """Texture of ``generated`` against ``real`` on the same ``labels``; deterministic
    subsampling (seed 0) keeps large scenes cheap."""
    gen, ref = _pool(generated, labels, erode, ignore), _pool(real, labels, erode, ignore)

    def sub(x: F32, k: int) -> F32:  # the same draw on both sides: identical images score 0
        if x.size <= max_samples:
            return x
        return np.random.default_rng(k).choice(x, max_samples, replace=False)

    dist: dict[int, float] = {}
    sharp: dict[int, float] = {}
    for k in sorted(ref):
        if k not in gen or ref[k].size < min_pixels:
            continue
        dist[k] = float(wasserstein_distance(sub(gen[k], k), sub(ref[k], k)))
        real_mean = float(ref[k].mean())
        sharp[k] = float(gen[k].mean()) / real_mean if real_mean > 0 else float("nan")
    return TextureScores(
        distance=dist,
        sharpness=sharp,
        mean_distance=float(np.mean(list(dist.values()))) if dist else float("nan"),
        mean_sharpness=float(np.mean(list(sharp.values()))) if sharp else float("nan"),
    )
