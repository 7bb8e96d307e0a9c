"""Seam harmonisation: generated pixels continue the known pixels they border.

A tile that inpaints next to pixels made earlier (its overlap with earlier tiles, or the kept
pixels of an edited image) is generated whole; its known part is then replaced by the exact
known pixels. Where the generator's version of the known part is a little brighter or tinted
(an autoencoder's reconstruction error, a sampler's drift), the pasted boundary shows as a
line. The mismatch is measured exactly on the known pixels themselves: ``known - generated``.
Its low-frequency part is carried into the generated pixels with a weight that is 1 at the
boundary and fades over a few ``sigma`` (normalised convolution), so the boundary meets and
nothing far from it changes. Known pixels are never touched, so inpainting stays exact.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import distance_transform_edt, gaussian_filter

#: Gaussian scale (px) of the mismatch carried across a seam; a quarter of the default overlap.
DEFAULT_SIGMA = 16.0


def harmonise(
    generated: NDArray[np.uint8],
    known: NDArray[np.uint8],
    edit: NDArray[np.bool_],
    sigma: float = DEFAULT_SIGMA,
    feather: int = 0,
) -> NDArray[np.uint8]:
    """``generated`` (``h, w, bands`` uint8) with the known pixels' low-frequency mismatch
    carried into the edited pixels (``edit`` True); known pixels are returned exactly, except
    those within ``feather`` px of the edit, which fade linearly from known to generated."""
    keep = ~edit
    if not keep.any() or not edit.any():
        return np.where(edit[..., None], generated, known)
    weight = keep.astype(np.float32)
    support = gaussian_filter(weight, sigma, mode="nearest")
    residual = known.astype(np.float32) - generated.astype(np.float32)
    carried = np.empty(residual.shape, dtype=np.float32)
    for band in range(residual.shape[2]):
        spread = gaussian_filter(residual[..., band] * weight, sigma, mode="nearest")
        carried[..., band] = spread / np.maximum(support, 1e-6)
    # full correction where known pixels are near, fading where they are not
    fade = np.clip(4.0 * support, 0.0, 1.0)[..., None]
    corrected = np.clip(generated.astype(np.float32) + carried * fade, 0, 255)
    out: NDArray[np.uint8] = np.where(edit[..., None], np.rint(corrected).astype(np.uint8), known)
    if feather > 0:  # fade from the known pixels to the corrected generated ones: no step
        distance = distance_transform_edt(keep)  # known pixels: how far to the edit
        ramp = np.clip(distance / (feather + 1), 0.0, 1.0).astype(np.float32)[..., None]
        faded = np.rint(ramp * known + (1 - ramp) * corrected).astype(np.uint8)
        band = (keep & (distance <= feather))[..., None]
        out = np.where(band, faded, out)
    return out
