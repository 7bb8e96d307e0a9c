"""Quick realism proxy: per-class distances between generated and real pixel statistics.

Texture is the distribution of local gradient magnitude (Sobel on luminance), colour the
distribution of pixel RGB; both compared per class with the 1-D Wasserstein distance on
class interiors (masks eroded by 2 px, so boundaries do not dominate either way).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.stats import wasserstein_distance

from rs_seg2any.quality.baselines import FlatPainter, blurred, class_colours
from rs_seg2any.quality.texture import grad_magnitude

__all__ = [
    "blurred",
    "class_colours",
    "class_distances",
    "flat_painter",
    "grad_magnitude",
    "mean_distance",
]

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]


def flat_painter(classes: U8, colours: dict[int, tuple[float, float, float]]) -> U8:
    """Baseline: every class painted with its mean training colour."""
    return FlatPainter(colours)(classes)


def _subsample(x: NDArray[np.float32], n: int, rng: np.random.Generator) -> NDArray[np.float32]:
    return x if x.size <= n else rng.choice(x, n, replace=False)


def class_distances(
    generated: list[U8], real: list[U8], classes: list[U8], max_samples: int = 20000
) -> dict[int, dict[str, float]]:
    """``{class: {"texture": W1, "colour": mean W1 over RGB, "pixels": n}}``."""
    rng = np.random.default_rng(0)
    gen_g: dict[int, list[F32]] = {}
    real_g: dict[int, list[F32]] = {}
    gen_c: dict[int, list[F32]] = {}
    real_c: dict[int, list[F32]] = {}
    for g, r, cls in zip(generated, real, classes, strict=True):
        gg, rg = grad_magnitude(g), grad_magnitude(r)
        for c in np.unique(cls):
            m = ndimage.binary_erosion(cls == c, iterations=2)
            if not m.any():
                continue
            k = int(c)
            gen_g.setdefault(k, []).append(gg[m])
            real_g.setdefault(k, []).append(rg[m])
            gen_c.setdefault(k, []).append(g[m].astype(np.float32) / 255.0)
            real_c.setdefault(k, []).append(r[m].astype(np.float32) / 255.0)
    out: dict[int, dict[str, float]] = {}
    for k in sorted(gen_g):
        a = _subsample(np.concatenate(gen_g[k]), max_samples, rng)
        b = _subsample(np.concatenate(real_g[k]), max_samples, rng)
        gc, rc = np.concatenate(gen_c[k]), np.concatenate(real_c[k])
        colour = np.mean(
            [
                wasserstein_distance(
                    _subsample(gc[:, i], max_samples, rng), _subsample(rc[:, i], max_samples, rng)
                )
                for i in range(3)
            ]
        )
        out[k] = {
            "texture": float(wasserstein_distance(a, b)),
            "colour": float(colour),
            "pixels": float(b.size),
        }
    return out


def mean_distance(d: dict[int, dict[str, float]], key: str) -> float:
    """Unweighted mean over classes (rare classes count as much as land)."""
    return float(np.mean([v[key] for v in d.values()])) if d else float("nan")
