"""sRGB <-> CIELAB (D65): the colour space colour distances and colour edits are made in."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
U8 = NDArray[np.uint8]

_SRGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375],
     [0.2126729, 0.7151522, 0.0721750],
     [0.0193339, 0.1191920, 0.9503041]]
)  # fmt: skip
_D65 = np.array([0.95047, 1.0, 1.08883])
_E = 6 / 29


def srgb_to_lab(rgb: NDArray[np.generic]) -> F64:
    """CIELAB (D65) of sRGB uint8 pixels ``(..., 3)``."""
    c = np.asarray(rgb, dtype=np.float64)[..., :3] / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = lin @ _SRGB_TO_XYZ.T / _D65
    f = np.where(xyz > _E**3, np.cbrt(xyz), xyz / (3 * _E**2) + 4 / 29)
    lab: F64 = np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )
    return lab


def lab_to_srgb(lab: NDArray[np.floating]) -> U8:
    """sRGB uint8 of CIELAB (D65) values ``(..., 3)``; out-of-gamut colours are clipped."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > _E, f**3, 3 * _E**2 * (f - 4 / 29)) * _D65
    lin = np.clip(xyz @ np.linalg.inv(_SRGB_TO_XYZ).T, 0.0, 1.0)
    c = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    out: U8 = np.clip(np.rint(c * 255.0), 0, 255).astype(np.uint8)
    return out
