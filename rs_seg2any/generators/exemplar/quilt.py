"""Image quilting by numbers: each class's area filled with overlapping real patches, each
chosen to continue the pixels already there and to match the layout around it, and cut along
the path of least difference (Efros and Freeman's minimum-error boundary cut).

Per class present in a tile, a canvas is quilted in raster order on a grid of 32-px patches
overlapping by 8 px. A candidate patch's cost is the mean squared difference to the pixels
already on the canvas under it (known pixels of earlier tiles or of the image being edited,
then earlier patches) plus a label term: the share of the window where the patch's own class
raster disagrees with the layout's. The label term is what makes retrieval respect context:
a patch whose road edge runs the way the layout's does, with the neighbour class on the
right side, beats a pure road patch there. The output takes each pixel from its class's canvas.
Known pixels are never overwritten (``feather`` is not used): the patches next to them are
chosen to continue them, which is what makes a tile continue its neighbours. A fade into known
pixels would change pixels other tiles own (the ends of a soft edge reach into them).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter

from .bank import PATCH, Candidates

U8 = NDArray[np.uint8]
OVERLAP = PATCH // 4
MISSING_WEIGHT = 0.25  # layout says class c, patch pixel is not c: its texture would be wrong
CONTEXT_WEIGHT = 0.05  # patch pixel is c where the layout has a neighbour: context mismatch
COLOUR_WEIGHT = 0.2  # patch's class colour far from the class median: one look per class
ORIENT_WEIGHT = {3: 0.03}  # lanes along roads (bank class 3 = road); others use DEFAULT
ORIENT_DEFAULT = 0.005
FREE_SLACK = 0.01  # a patch with nothing under it yet: a wider choice (seeds differ)
TOLERANCE = 0.03  # pick at random among candidates within 3 % of the best cost


def _positions(n: int) -> list[int]:
    step = PATCH - OVERLAP
    out = list(range(0, max(n - PATCH, 0) + 1, step))
    if out[-1] + PATCH < n:
        out.append(n - PATCH)
    return out


def _cut_path(err: NDArray[np.float32]) -> NDArray[np.int64]:
    """Per row, the column of the minimum-error vertical path through ``err`` (rows, cols)."""
    rows, cols = err.shape
    acc = err.astype(np.float64).copy()
    for r in range(1, rows):
        prev = acc[r - 1]
        left = np.concatenate([[np.inf], prev[:-1]])
        right = np.concatenate([prev[1:], [np.inf]])
        acc[r] += np.minimum(np.minimum(left, prev), right)
    path = np.empty(rows, dtype=np.int64)
    path[-1] = int(np.argmin(acc[-1]))
    for r in range(rows - 2, -1, -1):
        c = path[r + 1]
        lo, hi = max(c - 1, 0), min(c + 2, cols)
        path[r] = lo + int(np.argmin(acc[r, lo:hi]))
    return path


def _new_side(err: NDArray[np.float32]) -> NDArray[np.bool_]:
    """Pixels of a patch that take the new patch: right of the cut through its left overlap
    and below the cut through its top overlap."""
    new = np.ones(err.shape, dtype=bool)
    cols = np.arange(PATCH)
    vpath = _cut_path(err[:, :OVERLAP])
    new &= cols[None, :] >= vpath[:, None]
    hpath = _cut_path(err[:OVERLAP, :].T)
    new &= cols[:, None] >= hpath[None, :]
    return new


def quilt_class(
    cls_id: int,
    labels: NDArray[np.integer],
    cands: Candidates,
    canvas: NDArray[np.float32],
    filled: NDArray[np.bool_],
    locked: NDArray[np.bool_],
    rng: np.random.Generator,
) -> None:
    """Quilt class ``cls_id``'s canvas in place (``canvas`` 0..1 floats, ``filled`` where it
    already has pixels, ``locked`` pixels that must not change)."""
    h, w = labels.shape
    need = (labels == cls_id) & ~locked
    placed = np.zeros((h, w), dtype=bool)
    target_all = (labels == cls_id).astype(np.float32)
    # the layout's direction: gradients of the smoothed class mask run across its borders,
    # as real gradients (lane marks, kerbs, rows of trees) do
    smooth = gaussian_filter(target_all, 6.0)
    gy, gx = np.gradient(smooth)
    w_or = ORIENT_WEIGHT.get(cls_id, ORIENT_DEFAULT)
    prior = COLOUR_WEIGHT * ((cands.colour - cands.median) ** 2).sum(1)
    for y in _positions(h):
        for x in _positions(w):
            win = (slice(y, y + PATCH), slice(x, x + PATCH))
            if not (need[win] & ~placed[win]).any():
                continue
            m = filled[win].astype(np.float32).reshape(-1)
            t = target_all[win].reshape(-1)
            missing = (t.sum() - cands.mine @ t) / t.size
            context = (cands.mine.sum(1) - cands.mine @ t) / t.size
            cost = MISSING_WEIGHT * missing + CONTEXT_WEIGHT * context + prior
            wx, wy = gx[win], gy[win]
            jxx, jyy, jxy = float((wx * wx).sum()), float((wy * wy).sum()), float((wx * wy).sum())
            if jxx + jyy > 1e-6:
                v = np.array([jxx - jyy, 2 * jxy], np.float32) / (jxx + jyy)
                u = cands.orient
                mag = np.linalg.norm(u, axis=1) * float(np.linalg.norm(v))
                cost = cost + w_or * (mag - u @ v) / 2
            if m.any():
                cur = canvas[win].reshape(-1, 3)
                mc = (cur * m[:, None]).reshape(-1)
                ssd = cands.sq @ m - 2.0 * (cands.flat @ mc) + float((cur**2).sum(1) @ m)
                cost = cost + ssd / (3.0 * m.sum())
            best = float(cost.min())
            slack = TOLERANCE * abs(best) + (1e-6 if m.any() else FREE_SLACK)
            pool = np.flatnonzero(cost <= best + slack)
            k = int(pool[int(rng.integers(len(pool)))]) if len(pool) else int(np.argmin(cost))
            patch = cands.flat[k].reshape(PATCH, PATCH, 3)
            err = ((patch - canvas[win]) ** 2).sum(-1) * filled[win]
            new = (_new_side(err.astype(np.float32)) | ~filled[win]) & ~locked[win]
            canvas[win][new] = patch[new]
            filled[win] |= new
            placed[win] |= new


def quilt(
    labels: NDArray[np.integer],
    lookup: Callable[[int], Candidates],
    seed: int,
    known: U8 | None = None,
    edit: NDArray[np.bool_] | None = None,
    feather: int = 0,
) -> U8:
    """An RGB tile for class raster ``labels`` (ids the ``lookup`` understands). With
    ``known`` + ``edit`` (True = generate): known pixels are kept exactly and matched by the
    patches next to them (``feather`` is accepted for the protocol and not used)."""
    h, w = labels.shape
    pad_h, pad_w = max(PATCH - h, 0), max(PATCH - w, 0)
    if pad_h or pad_w:  # smaller than one patch: quilt a padded tile, crop
        pad = ((0, pad_h), (0, pad_w))
        big = quilt(
            np.pad(labels, pad, mode="edge"),
            lookup,
            seed,
            None if known is None else np.pad(known, (*pad, (0, 0))),
            None if edit is None else np.pad(edit, pad, constant_values=True),
            feather,
        )
        return big[:h, :w]
    rng = np.random.default_rng(seed)
    if known is not None and edit is not None:
        keep = ~edit
        locked = keep  # every known pixel kept: patches are matched to continue them
        start = known.astype(np.float32) / 255.0
    else:
        keep = np.zeros((h, w), dtype=bool)
        locked = keep
        start = np.zeros((h, w, 3), dtype=np.float32)
    out = start.copy()
    for c in sorted(int(v) for v in np.unique(labels)):
        mask = labels == c
        if not (mask & ~locked).any():
            continue
        canvas = start.copy()
        filled = keep & mask
        quilt_class(c, labels, lookup(c), canvas, filled, locked, rng)
        out[mask] = canvas[mask]
    img: U8 = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    if known is not None and edit is not None:
        img = np.where(locked[..., None], known, img)
    return img
