"""Edit critics: an edit is a segmentation in disguise.

The difference between an edited image and its source shows where the edit really happened.
:func:`recovered_mask` thresholds that difference robustly; :func:`coverage` compares it with
the intended mask (IoU); :func:`leakage` measures change outside the intended mask (zero for
backends whose inpainting is exact, as every scenario here asks for).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

MIN_STEP = 1.0
"""A pixel counts as changed only if some band moved by more than this (digital numbers)."""


def difference(source: NDArray[Any], edited: NDArray[Any]) -> NDArray[np.float64]:
    """Largest absolute band difference per pixel; images are ``(H, W, bands)``."""
    a, b = np.asarray(source, dtype=np.float64), np.asarray(edited, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"source {a.shape} and edited {b.shape} differ in shape")
    d = np.abs(a - b)
    out: NDArray[np.float64] = d.max(axis=-1) if d.ndim == 3 else d
    return out


def threshold(diff: NDArray[np.float64]) -> float:
    """Otsu's split of ``log(1 + diff)`` over all pixels, never below :data:`MIN_STEP`.
    On a log scale unchanged pixels (0, or a lossy backend's drift of a few digital numbers)
    and generated ones (tens of numbers apart) form two clear groups whatever their sizes."""
    x = np.log1p(diff.ravel())
    if x.size < 2 or float(x.max()) == float(x.min()):
        return MIN_STEP
    hist, edges = np.histogram(x, bins=128)
    return otsu_log(hist, edges)


def otsu_log(hist: NDArray[np.integer], edges: NDArray[np.float64]) -> float:
    """The :func:`threshold` from a histogram of ``log(1 + diff)`` (``edges``: its bins), so
    a large image can be binned window by window."""
    if int(np.count_nonzero(hist)) < 2:
        return MIN_STEP
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    s0 = np.cumsum(hist * centres)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    k = int(np.argmax(between))
    return max(MIN_STEP, float(np.expm1(edges[k + 1])))


def recovered_mask(source: NDArray[Any], edited: NDArray[Any]) -> NDArray[np.bool_]:
    """Where ``edited`` differs from ``source`` (the edit as it really happened)."""
    d = difference(source, edited)
    mask: NDArray[np.bool_] = d > threshold(d)
    return mask


def iou(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    """Intersection over union; two empty masks agree (1.0)."""
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


@dataclass(frozen=True)
class EditCheck:
    """How an edit matched its intended mask."""

    iou: float  # recovered vs intended
    intended_pixels: int
    recovered_pixels: int
    leaked_pixels: int  # changed outside the intended mask
    leakage: float  # leaked / pixels outside the mask
    max_change_outside: float  # largest band difference outside the mask
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def leakage(
    source: NDArray[Any], edited: NDArray[Any], intended: NDArray[np.bool_]
) -> tuple[int, float, float]:
    """Pixels changed at all outside ``intended``, their share, and the largest change there."""
    d = difference(source, edited)
    outside = ~np.asarray(intended, dtype=bool)
    changed = (d > 0) & outside
    n_out = int(outside.sum())
    worst = float(d[outside].max()) if n_out else 0.0
    return int(changed.sum()), (int(changed.sum()) / n_out if n_out else 0.0), worst


def check_edit(
    source: NDArray[Any], edited: NDArray[Any], intended: NDArray[np.bool_]
) -> tuple[EditCheck, NDArray[np.bool_]]:
    """The recovered mask and its :class:`EditCheck` against ``intended``."""
    intended = np.asarray(intended, dtype=bool)
    d = difference(source, edited)
    t = threshold(d)
    rec: NDArray[np.bool_] = d > t
    leaked, share, worst = leakage(source, edited, intended)
    check = EditCheck(
        iou=iou(rec, intended),
        intended_pixels=int(intended.sum()),
        recovered_pixels=int(rec.sum()),
        leaked_pixels=leaked,
        leakage=share,
        max_change_outside=worst,
        threshold=t,
    )
    return check, rec
