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
Known pixels are kept, except in a ``feather``-px band before the area to generate at a tile's
top and left overlaps, where the cut may pass through them (tile seams become quilting seams);
the patches next to known pixels are chosen to continue them, and the remaining low-frequency
mismatch is carried into the new pixels (:func:`rs_seg2any.harmonise.harmonise`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import binary_opening, gaussian_filter, label

from ...harmonise import harmonise
from ...job.tiling import SOFT_EDGE
from .bank import PATCH, Candidates, ExemplarBank, Looks

U8 = NDArray[np.uint8]
RegionLookup = Callable[
    [int, NDArray[np.bool_], NDArray[np.float32], np.random.Generator], Candidates
]
OVERLAP = PATCH // 4
MISSING_WEIGHT = 0.25  # layout says class c, patch pixel is not c: its texture would be wrong
CONTEXT_WEIGHT = 0.05  # patch pixel is c where the layout has a neighbour: context mismatch
COLOUR_WEIGHT = 0.2  # patch's class colour far from the class median: one look per class
ORIENT_WEIGHT = {3: 0.03}  # lanes along roads (bank class 3 = road); others use DEFAULT
ORIENT_DEFAULT = 0.005
ENERGY_WEIGHT = 0.005  # texture strength far from the target (relative, squared)
ENERGY_TARGET = 0.6  # target texture strength / the class's median over the candidates
HARMONISE_SIGMA = 8.0  # px: the scale of the colour mismatch carried across a tile seam
FREE_SLACK = 0.01  # a patch with nothing under it yet: a wider choice (seeds differ)
TOLERANCE = 0.03  # pick at random among candidates within 3 % of the best cost
REUSE_WEIGHT = 0.006  # per earlier use of the same patch: no verbatim repeats (tiled look)


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


def _new_side(
    err: NDArray[np.float32], filled: NDArray[np.bool_], locked: NDArray[np.bool_]
) -> NDArray[np.bool_]:
    """Pixels of a patch that take the new patch: right of the least-error vertical cut and
    below the least-error horizontal cut, both kept inside the pixels already filled that may
    change (an earlier patch's overlap, or a tile's seam band), so the cut never lies along
    the edge of that zone; unfilled pixels always take the new patch."""
    big = float(err.max()) + 1.0
    e = np.where(filled & ~locked, err, big).astype(np.float32)
    rows = np.flatnonzero(filled.any(axis=1))
    cols = np.flatnonzero(filled.any(axis=0))
    r_max = max(int(rows[-1]) + 1 if len(rows) else 0, OVERLAP)
    c_max = max(int(cols[-1]) + 1 if len(cols) else 0, OVERLAP)
    idx = np.arange(PATCH)
    new = np.ones(err.shape, dtype=bool)
    vpath = _cut_path(e[:, :c_max])
    new &= idx[None, :] >= vpath[:, None]
    hpath = _cut_path(e[:r_max, :].T)
    new &= idx[:, None] >= hpath[None, :]
    return new | ~filled


def quilt_class(
    cls_id: int,
    labels: NDArray[np.integer],
    cands: Candidates,
    canvas: NDArray[np.float32],
    filled: NDArray[np.bool_],
    locked: NDArray[np.bool_],
    rng: np.random.Generator,
    shadow: NDArray[np.float32] | None = None,
) -> None:
    """Quilt class ``cls_id``'s canvas in place (``canvas`` 0..1 floats, ``filled`` where it
    already has pixels, ``locked`` pixels that must not change). ``shadow`` receives what the
    patches would have put on the locked pixels of the class (for the seam harmonisation)."""
    h, w = labels.shape
    need = (labels == cls_id) & ~locked
    placed = np.zeros((h, w), dtype=bool)
    good = filled.copy()  # pixels whose texture is of this class (known ones, then patches')
    target_all = (labels == cls_id).astype(np.float32)
    # the layout's direction: gradients of the smoothed class mask run across its borders,
    # as real gradients (lane marks, kerbs, rows of trees) do
    smooth = gaussian_filter(target_all, 6.0)
    gy, gx = np.gradient(smooth)
    w_or = ORIENT_WEIGHT.get(cls_id, ORIENT_DEFAULT)
    prior = COLOUR_WEIGHT * ((cands.colour - cands.median) ** 2).sum(1)
    # least-squares matching favours flat patches (they differ least from anything): hold
    # texture strength near the class's typical one
    # held a little below the median: most ground is plainer than the crops' busy borders
    target = ENERGY_TARGET * cands.median_energy
    rel = (cands.energy - target) / max(target, 1e-6)
    prior = prior + ENERGY_WEIGHT * rel**2
    # earlier uses of each cut patch, turned or not: the same stone or shed twice is a tell
    base = cands.base if cands.base is not None else np.arange(len(cands.flat))
    uses = np.zeros(int(base.max()) + 1 if len(base) else 0, dtype=np.float32)
    mine_sum = cands.mine.sum(1)
    u_norm = np.linalg.norm(cands.orient, axis=1)
    for y in _positions(h):
        for x in _positions(w):
            win = (slice(y, y + PATCH), slice(x, x + PATCH))
            if not (need[win] & ~placed[win]).any():
                continue
            m = filled[win].astype(np.float32).reshape(-1)
            t = target_all[win].reshape(-1)
            mine_t = cands.mine @ t
            missing = (t.sum() - mine_t) / t.size
            context = (mine_sum - mine_t) / t.size
            cost = MISSING_WEIGHT * missing + CONTEXT_WEIGHT * context + prior
            wx, wy = gx[win], gy[win]
            jxx, jyy, jxy = float((wx * wx).sum()), float((wy * wy).sum()), float((wx * wy).sum())
            if jxx + jyy > 1e-6:
                v = np.array([jxx - jyy, 2 * jxy], np.float32) / (jxx + jyy)
                u = cands.orient
                mag = u_norm * float(np.linalg.norm(v))
                cost = cost + w_or * (mag - u @ v) / 2
            if m.any():
                cur = canvas[win].reshape(-1, 3)
                mc = (cur * m[:, None]).reshape(-1)
                ssd = cands.sq @ m - 2.0 * (cands.flat @ mc) + float((cur**2).sum(1) @ m)
                cost = cost + ssd / (3.0 * m.sum())
            cost = cost + REUSE_WEIGHT * uses[base]
            best = float(cost.min())
            slack = TOLERANCE * abs(best) + (1e-6 if m.any() else FREE_SLACK)
            pool = np.flatnonzero(cost <= best + slack)
            k = int(pool[int(rng.integers(len(pool)))]) if len(pool) else int(np.argmin(cost))
            uses[base[k]] += 1.0
            patch = cands.flat[k].reshape(PATCH, PATCH, 3)
            err = ((patch - canvas[win]) ** 2).sum(-1) * filled[win]
            side = _new_side(err.astype(np.float32), filled[win], locked[win])
            new = side & ~locked[win]
            if shadow is not None:
                over = side & locked[win] & (labels[win] == cls_id)
                shadow[win][over] = patch[over]
            canvas[win][new] = patch[new]
            filled[win] |= new
            placed[win] |= new
            good[win] = np.where(new, cands.labels[k] == cls_id, good[win])
    _repair(cls_id, need & ~good, cands, canvas, good, locked, prior, rng)


def _repair(
    cls_id: int,
    holes: NDArray[np.bool_],
    cands: Candidates,
    canvas: NDArray[np.float32],
    good: NDArray[np.bool_],
    locked: NDArray[np.bool_],
    prior: NDArray[np.float32],
    rng: np.random.Generator,
) -> None:
    """Pixels of the class that got another class's texture (a patch's kerb or tree over
    the layout's road) are refilled from patches whose own pixels there are of the class,
    matched to the good pixels around them; windows centred on the first hole left."""
    h, w = holes.shape
    holes = holes.copy()
    for _ in range(4 * (h // 8 + 1) * (w // 8 + 1)):
        ys, xs = np.nonzero(holes)
        if not len(ys):
            return
        y = int(np.clip(ys[0] - PATCH // 4, 0, h - PATCH))
        x = int(np.clip(xs[0] - PATCH // 2, 0, w - PATCH))
        win = (slice(y, y + PATCH), slice(x, x + PATCH))
        t = holes[win].astype(np.float32).reshape(-1)
        m = (good[win] & ~holes[win]).astype(np.float32).reshape(-1)
        cost = MISSING_WEIGHT * (t.sum() - cands.mine @ t) / max(float(t.sum()), 1.0) + prior
        if m.any():
            cur = canvas[win].reshape(-1, 3)
            mc = (cur * m[:, None]).reshape(-1)
            ssd = cands.sq @ m - 2.0 * (cands.flat @ mc) + float((cur**2).sum(1) @ m)
            cost = cost + ssd / (3.0 * m.sum())
        best = float(cost.min())
        pool = np.flatnonzero(cost <= best + TOLERANCE * abs(best) + 1e-6)
        k = int(pool[int(rng.integers(len(pool)))])
        fix = holes[win] & (cands.labels[k] == cls_id) & ~locked[win]
        if not fix.any():  # no patch has the class there: leave these pixels as they are
            holes[win] &= False
            continue
        canvas[win][fix] = cands.flat[k].reshape(PATCH, PATCH, 3)[fix]
        good[win] |= fix
        holes[win] &= ~fix


MIN_SOURCE_PATCHES = 24  # a crop with fewer patches of the class cannot quilt an object


def _one_source(
    cands: Candidates, start: NDArray[np.float32], known: NDArray[np.bool_], area: float,
    sizes: Mapping[int, float], rng: np.random.Generator,
) -> int:  # fmt: skip
    """The bank crop an object is quilted from: the one whose class colour is nearest the
    object's known pixels (it continues a neighbour tile's part of it), else one at random
    among the three crops with enough patches whose objects are nearest its size (a
    warehouse from a crop of warehouses, a villa from a crop of villas)."""
    assert cands.source is not None
    ids, counts = np.unique(cands.source, return_counts=True)
    ok = ids[counts >= MIN_SOURCE_PATCHES]
    ok = ok if len(ok) else ids
    if sizes and known.sum() < 16:
        gap = np.array([abs(np.log(max(sizes.get(int(i), 1.0), 1.0) / max(area, 1.0))) for i in ok])
        ok = ok[np.argsort(gap, kind="stable")[:3]]
    if known.sum() >= 16:
        want = start[known].mean(0)
        means = np.stack([cands.colour[cands.source == i].mean(0) for i in ok])
        return int(ok[int(np.argmin(((means - want) ** 2).sum(1)))])
    return int(ok[int(rng.integers(len(ok)))])


MIN_REGION = 64 * 64  # px: smaller regions take the class's whole bank (cheaper, as good)
LOOK_GROUP = 5  # bank crops per region: enough patches for context, one look
LOOK_ANCHORS = 4  # looks a class's regions draw from (one candidate set each)
ENERGY_SCALE = 2.0  # texture strength's weight against colour when grouping looks
FAMILY_GAP = 1.0  # look distance added to crops of other scenes: the job's scene first
ONE_LOOK = 1.0
"""How far a region's group crops are recoloured toward its anchor's class colour (1: all
the way). Dev scenes (tile_6, three render seeds), classifier 0.811 -> 0.761, lower for each
seed (0.6 of the way: 0.82 on one seed; toward the group's mean colour instead: 0.813);
held-out tile_7 0.916 -> 0.905, saturation 0.79 -> 0.70 of real; by eye, no tan and grey
blocks inside one desert."""


def look_anchors(look: NDArray[np.float32], k: int = LOOK_ANCHORS) -> NDArray[np.int64]:
    """``k`` crops that span a class's looks: the most typical one (nearest the median
    look), then each next the one farthest from those chosen (deterministic)."""
    chosen = [int(np.argmin(((look - np.median(look, axis=0)) ** 2).sum(1)))]
    dist = ((look - look[chosen[0]]) ** 2).sum(1)
    while len(chosen) < min(k, len(look)):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, ((look - look[nxt]) ** 2).sum(1))
    return np.asarray(chosen, dtype=np.int64)


def look_anchor(looks: Looks, start: NDArray[np.float32], known: NDArray[np.bool_],
                rng: np.random.Generator, family: int | None = None) -> int:  # fmt: skip
    """The crop (index into ``looks``) whose look a connected region of a class takes.
    Anchors are the few :func:`look_anchors` (a job reuses a few candidate sets, not one
    per region). The anchor continues the region's known pixels (a neighbour tile's part of
    it) when there are enough, else is drawn at random, typical looks and big crops more
    often. ``family``: the job's source scene (:meth:`ExemplarBank.family`); where it has
    crops of the class, anchors are drawn among those."""
    look = looks.look * np.array([1.0, 1.0, 1.0, ENERGY_SCALE], np.float32)
    anchors = look_anchors(look)
    mine = _of_family(looks, family)
    own = np.flatnonzero(mine)[look_anchors(look[mine])] if mine.any() else anchors
    if known.sum() >= 16:
        pool = np.unique(np.concatenate([anchors, own]))
        gap = ((look[pool, :3] - start[known].mean(0)) ** 2).sum(1)
        return int(pool[int(np.argmin(gap))])
    # typical looks more often: a plain desert, not the odd roundabout
    far = ((look[own] - np.median(look, axis=0)) ** 2).sum(1)
    p = looks.weight[own] * np.exp(-far / max(float(np.median(far)), 1e-9))
    return int(own[int(rng.choice(len(own), p=p / p.sum()))])


def _of_family(looks: Looks, family: int | None) -> NDArray[np.bool_]:
    if family is None or looks.origin is None:
        return np.zeros(len(looks.ids), dtype=bool)
    out: NDArray[np.bool_] = looks.origin == family
    return out


def group_of(looks: Looks, anchor: int, family: int | None = None) -> tuple[int, ...]:
    """The ``LOOK_GROUP`` bank crops (ids) whose class look (mean colour, texture strength)
    is nearest crop ``anchor``'s, the job's source scene's first: enough patches for context."""
    look = looks.look * np.array([1.0, 1.0, 1.0, ENERGY_SCALE], np.float32)
    gap = np.where(_of_family(looks, family), 0.0, FAMILY_GAP)
    dist = ((look - look[anchor]) ** 2).sum(1) + gap
    near = np.argsort(dist, kind="stable")[:LOOK_GROUP]
    return tuple(sorted(int(i) for i in looks.ids[near]))


def look_group(looks: Looks, start: NDArray[np.float32], known: NDArray[np.bool_],
               rng: np.random.Generator, family: int | None = None) -> tuple[int, ...]:  # fmt: skip
    """The bank crops a connected region of a class is quilted from (:func:`look_anchor`,
    then :func:`group_of`), so a region has one surface (one desert, one asphalt), not a
    patchwork of every crop's."""
    return group_of(looks, look_anchor(looks, start, known, rng, family), family)


def region_looks(bank: ExemplarBank, scale: float, family: int | None,
                 fallback: Callable[[int], Candidates], strength: float = ONE_LOOK,
                 ) -> RegionLookup:  # fmt: skip
    """The candidates of each connected region of a class: the group of its anchor crop
    (:func:`look_anchor`, :func:`group_of`) recoloured to the anchor's colour
    (:func:`~.bank.toward_anchor`); ``fallback(c)`` for a class no crop shows as a look."""

    def regions(c: int, known: NDArray[np.bool_], start: NDArray[np.float32],
                rng: np.random.Generator) -> Candidates:  # fmt: skip
        looks = bank.looks(c)
        if not len(looks.ids):
            return fallback(c)
        anchor = look_anchor(looks, start, known, rng, family)
        group = group_of(looks, anchor, family)
        return bank.candidates(c, scale, sources=group, toward=(anchor, strength))

    return regions


def seam_band(edit: NDArray[np.bool_], feather: int) -> NDArray[np.bool_]:
    """Known pixels the cut may pass through: up to ``feather`` px above a long horizontal run
    of the area to generate, or left of a long vertical one (a tile's top and left overlaps,
    which the tile owns there). Not beside short runs: the ends of a soft edge reach into
    pixels other tiles own."""
    band = np.zeros(edit.shape, dtype=bool)
    if feather <= 0:
        return band
    run = 2 * SOFT_EDGE + 1  # longer than a soft edge is tall
    long_h = binary_opening(edit, np.ones((1, run), bool))
    long_v = binary_opening(edit, np.ones((run, 1), bool))
    for d in range(1, feather + 1):
        band[:-d] |= long_h[d:]
        band[:, :-d] |= long_v[:, d:]
    return band & ~edit


def quilt(
    labels: NDArray[np.integer],
    lookup: Callable[[int], Candidates],
    seed: int,
    known: U8 | None = None,
    edit: NDArray[np.bool_] | None = None,
    feather: int = 0,
    objects: tuple[int, NDArray[np.integer], Mapping[int, float]] | None = None,
    regions: RegionLookup | None = None,
) -> U8:
    """An RGB tile for class raster ``labels`` (ids the ``lookup`` understands). With
    ``known`` + ``edit`` (True = generate): known pixels are kept exactly and matched by the
    patches next to them, except in the :func:`seam_band` (``feather`` px). ``objects`` =
    (class id, instance raster, bank crop -> typical object area in px at this scale): each
    instance of that class (a building) is quilted from the patches of one bank crop whose
    objects are about its size, so it has one roof, not a mosaic of many. ``regions``
    (class id, region's known pixels, start, rng -> candidates): each connected region of
    the other classes is quilted from its own candidates (one look per region)."""
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
            None
            if objects is None
            else (objects[0], np.pad(objects[1], pad, mode="edge"), objects[2]),
            regions,
        )
        return big[:h, :w]
    rng = np.random.default_rng(seed)
    if known is not None and edit is not None:
        keep = ~edit
        locked = keep & ~seam_band(edit, feather)
        start = known.astype(np.float32) / 255.0
    else:
        keep = np.zeros((h, w), dtype=bool)
        locked = keep
        start = np.zeros((h, w, 3), dtype=np.float32)
    out = start.copy()
    shadow = start.copy()
    for c in sorted(int(v) for v in np.unique(labels)):
        mask = labels == c
        if not (mask & ~locked).any():
            continue
        cands = lookup(c)
        if objects is not None and objects[0] == c and cands.source is not None:
            inst = objects[1]
            for e in sorted(int(v) for v in np.unique(inst[mask])):
                part = mask & (inst == e)
                if not (part & ~locked).any():
                    continue
                src = _one_source(cands, start, keep & part, float(part.sum()), objects[2], rng)
                sub = cands.subset(cands.source == src)
                canvas = start.copy()
                quilt_class(c, np.where(part, c, -1), sub, canvas, keep & part, locked, rng,
                            shadow)  # fmt: skip
                out[part] = canvas[part]
            continue
        if regions is not None:
            parts, n = label(mask)
            size = np.bincount(parts.ravel(), minlength=n + 1)
            size[0] = 0
            small = (size < MIN_REGION)[parts] & mask  # quilted together, from the whole bank
            groups = [(small, cands)] if (small & ~locked).any() else []
            for region in np.flatnonzero(size >= MIN_REGION):
                part = parts == region
                if (part & ~locked).any():
                    groups.append((part, regions(c, keep & part, start, rng)))
            for part, sub in groups:
                canvas = start.copy()
                quilt_class(c, np.where(part, c, -1), sub, canvas, keep & part, locked, rng,
                            shadow)  # fmt: skip
                out[part] = canvas[part]
            continue
        canvas = start.copy()
        filled = keep & mask
        quilt_class(c, labels, cands, canvas, filled, locked, rng, shadow)
        out[mask] = canvas[mask]
    img: U8 = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    if known is not None and edit is not None:
        # the patches' own version of the known pixels next to them, against the known
        # pixels: its low-frequency mismatch is carried into the new pixels (no seam step)
        ours = np.where(locked[..., None], np.clip(np.rint(shadow * 255.0), 0, 255), img)
        img = harmonise(ours.astype(np.uint8), known, ~locked, sigma=HARMONISE_SIGMA)
    return img
