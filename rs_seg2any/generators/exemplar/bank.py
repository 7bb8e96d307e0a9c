"""An exemplar bank: real image crops with their class rasters, at a known ground sampling distance.

The bank keeps whole crops (not cut patches), so boundaries between classes stay in it: the
quilter retrieves patches whose own label window matches the target's (a road patch with its
kerb where the layout has one, turned the way the road runs). Patches are cut at run time,
after the crops are resampled from the bank's GSD to the job's, so one bank serves a range of
scales. The shipped bank (``dubai_bank.npz``) holds Dubai training tiles 1-6 at 0.5 m
(built by ``python -m rs_seg2any.train.exemplars``); a user's reference image makes another.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from ...digest import file_sha256

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]
SHIPPED_BANK = "dubai_bank.npz"
PATCH = 32
"""Quilting patch side (px); the overlap between patches is a quarter of it."""


def shipped_path() -> Path:
    """Where the package's own bank file is."""
    return Path(str(resources.files("rs_seg2any.generators.exemplar") / SHIPPED_BANK))


def _recorded_digest(path: Path) -> str | None:
    record = path.with_name(path.name + ".sha256")
    return record.read_text(encoding="utf-8").split()[0] if record.is_file() else None


def shipped_digest() -> str:
    """The shipped bank's sha256 as recorded next to it (:meth:`ExemplarBank.shipped` checks
    the file against it at load, so a job need not hash 3 MB again), else the file's own."""
    path = shipped_path()
    return _recorded_digest(path) or file_sha256(path)


@dataclass(frozen=True)
class Candidates:
    """Patches of one class at one scale: pixels, flattened floats for matching, label masks."""

    rgb: U8  # (n, P, P, 3)
    labels: U8  # (n, P, P) bank class ids
    flat: F32  # (n, P*P*3) in 0..1
    sq: F32  # (n, P*P) squared pixel norms (sum over bands)
    mine: F32  # (n, P*P) 1 where the patch pixel is of the class
    orient: F32  # (n, 2) doubled-angle gradient direction times coherence (structure tensor)
    colour: F32  # (n, 3) mean colour of the class's pixels, 0..1
    median: F32  # (3,) the class's median colour over the candidates
    energy: F32  # (n,) mean gradient magnitude of the class's pixels (texture strength)
    median_energy: float
    source: NDArray[np.int32] | None = None  # (n,) the bank crop each patch was cut from
    base: NDArray[np.int32] | None = None  # (n,) the cut patch before its turn or flip

    def subset(self, keep: NDArray[np.bool_]) -> Candidates:
        """The candidates under ``keep`` (the class's median look is kept)."""
        return Candidates(
            self.rgb[keep], self.labels[keep], self.flat[keep], self.sq[keep], self.mine[keep],
            self.orient[keep], self.colour[keep], self.median, self.energy[keep],
            self.median_energy, None if self.source is None else self.source[keep],
            None if self.base is None else self.base[keep],
        )  # fmt: skip


@dataclass(frozen=True)
class Looks:
    """The crops of a bank that hold one class: crop ``ids``, each one's ``look`` (mean
    colour 0..1 and mean gradient magnitude of the class's pixels) and ``weight`` (pixels)."""

    ids: NDArray[np.int64]
    look: F32  # (n, 4)
    weight: F32  # (n,)
    origin: NDArray[np.int32] | None = None  # (n,) source family (tile) of each crop


GROUP_CACHE = 24
"""Candidate sets of region looks kept at once (each ~36 MB at the default cap): 4 anchor
looks for each of a few classes."""
PURE_SHARE = 0.5
"""A crop sets a region's look only if the class covers at least this share of it."""


@dataclass
class ExemplarBank:
    """Crops ``rgb`` (N, S, S, 3) uint8 with ``labels`` (N, S, S) bank class ids at ``gsd`` m."""

    rgb: U8
    labels: U8
    gsd: float
    names: dict[int, str]
    source: str = ""
    origin: NDArray[np.int32] | None = None
    """(N,) the source scene (tile) of each crop: one illumination and colour balance."""
    _cache: dict[tuple[int, float, tuple[int, ...], tuple[int, float] | None], Candidates] = field(
        default_factory=dict, repr=False
    )
    _sizes: dict[int, dict[int, float]] = field(default_factory=dict, repr=False)
    _looks: dict[int, Looks] = field(default_factory=dict, repr=False)

    @property
    def classes(self) -> list[int]:
        return sorted(int(c) for c in np.unique(self.labels))

    def dominant(self) -> int:
        """The class with most pixels (what uncovered ground is painted with)."""
        ids, counts = np.unique(self.labels, return_counts=True)
        return int(ids[np.argmax(counts)])

    def digest(self) -> str:
        """sha256 of the bank's content (pixels, labels, GSD, class names, origins): what a
        job records, so a job folder rerun with another bank is never taken for the same job."""
        import hashlib

        h = hashlib.sha256()
        for arr in (self.rgb, self.labels, self.origin):
            if arr is not None:
                a = np.ascontiguousarray(arr)
                h.update(f"{a.dtype.str}{a.shape}".encode())
                h.update(a.tobytes())
        h.update(f"{self.gsd!r}{sorted(self.names.items())}".encode())
        return h.hexdigest()

    def save(self, path: Path) -> None:
        """Write the bank as ``.npz`` through the atomic writer (no half-written bank)."""
        from ...atomic import atomic_write

        names = np.array([f"{k}:{v}" for k, v in sorted(self.names.items())])
        arrays: dict[str, Any] = {
            "rgb": self.rgb,
            "labels": self.labels,
            "gsd": np.float32(self.gsd),
            "names": names,
            "source": np.array(self.source),
        }
        if self.origin is not None:
            arrays["origin"] = np.asarray(self.origin, dtype=np.int32)
        atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))

    def save_digest(self, path: Path) -> Path:
        """Record the sha256 of the saved bank ``path`` next to it (``<bank>.sha256``), so a
        shipped bank is checked byte for byte at load."""
        from ...atomic import write_text

        out = path.with_name(path.name + ".sha256")
        write_text(out, f"{file_sha256(path)}  {path.name}\n")
        return out

    @classmethod
    def load(cls, path: Path) -> ExemplarBank:
        """A bank from ``.npz`` (never unpickled), checked: arrays, dtypes, shapes, GSD; a
        :class:`~rs_seg2any.errors.WeightsError` naming the file otherwise."""
        from ...errors import WeightsError, one_line

        try:
            with np.load(path, allow_pickle=False) as z:  # a bank file never runs code
                names = {int(s.split(":", 1)[0]): s.split(":", 1)[1] for s in z["names"].tolist()}
                origin = np.asarray(z["origin"], dtype=np.int32) if "origin" in z.files else None
                bank = cls(z["rgb"], z["labels"], float(z["gsd"]), names, str(z["source"]), origin)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise WeightsError(
                f"exemplar bank {path} is not a readable bank (truncated, corrupt or of another "
                f"format: {one_line(exc, 120)}); reinstall rs-seg2any or rebuild it"
            ) from exc
        rgb, lab = bank.rgb, bank.labels
        if not (
            rgb.dtype == np.uint8 and lab.dtype == np.uint8 and rgb.ndim == 4
            and rgb.shape[-1] == 3 and lab.shape == rgb.shape[:3] and len(rgb) > 0
            and np.isfinite(bank.gsd) and bank.gsd > 0
            and (bank.origin is None or bank.origin.shape == (len(rgb),))
        ):  # fmt: skip
            raise WeightsError(
                f"exemplar bank {path} holds arrays of the wrong kind (rgb {rgb.dtype} "
                f"{rgb.shape}, labels {lab.dtype} {lab.shape}, gsd {bank.gsd}); rebuild it"
            )
        return bank

    @classmethod
    def shipped(cls) -> ExemplarBank:
        """The bank inside the package, verified against its recorded sha256."""
        from ...errors import WeightsError

        path = shipped_path()
        expected = _recorded_digest(path)
        if path.is_file() and expected is not None and file_sha256(path) != expected:
            raise WeightsError(
                f"{path} does not match the sha256 recorded for the shipped exemplar bank "
                "(corrupt or replaced): reinstall rs-seg2any"
            )
        return cls.load(path)

    def family(self, seed: int) -> int | None:
        """A job's source scene: its looks are drawn from crops of one scene where it can,
        so all classes share one illumination and colour balance (as a real scene's do).
        Drawn by ``seed``, each scene as often as it has crops (an area-weighted bank: as
        often as it covers ground); None without origins."""
        if self.origin is None or not len(self.origin):
            return None
        ids, counts = np.unique(self.origin, return_counts=True)
        rng = np.random.default_rng([int(seed) % (2**63), 104729])
        return int(ids[int(rng.choice(len(ids), p=counts / counts.sum()))])

    def object_sizes(self, cls_id: int) -> dict[int, float]:
        """Per crop: the median area (px, at the bank's GSD) of its ``cls_id`` objects, the
        connected parts of the class not cut by the crop's border (all of them if every
        part is cut)."""
        if cls_id not in self._sizes:
            from scipy.ndimage import label

            out: dict[int, float] = {}
            for i, lab in enumerate(self.labels):
                parts, n = label(lab == cls_id)
                if n:
                    border = np.concatenate([parts[0], parts[-1], parts[:, 0], parts[:, -1]])
                    cut = set(np.unique(border)) - {0}
                    counts = np.bincount(parts.ravel())[1:]
                    areas = [a for k, a in enumerate(counts, 1) if k not in cut] or list(counts)
                    out[i] = float(np.median(areas))
            self._sizes[cls_id] = out
        return self._sizes[cls_id]

    def looks(self, cls_id: int) -> Looks:
        """Per crop holding ``cls_id``: the class's mean colour and texture strength there
        (what a region's one look is chosen by) and its pixel count (how often it is drawn)."""
        if cls_id not in self._looks:
            ids, looks, weights = [], [], []
            for i, (img, lab) in enumerate(zip(self.rgb, self.labels, strict=True)):
                m = lab == cls_id
                if m.mean() < PURE_SHARE:  # mostly another class: its labels are no look
                    continue
                f = img.astype(np.float32) / 255.0
                gy, gx = np.gradient(f.mean(-1))
                ids.append(i)
                looks.append([*f[m].mean(0), float(np.hypot(gx, gy)[m].mean())])
                weights.append(float(m.sum()))
            idx = np.asarray(ids, dtype=np.int64)
            self._looks[cls_id] = Looks(
                idx,
                np.asarray(looks, dtype=np.float32).reshape(-1, 4),
                np.asarray(weights, dtype=np.float32),
                None if self.origin is None else self.origin[idx],
            )
        return self._looks[cls_id]

    def candidates(
        self, cls_id: int, scale: float, seed: int = 0, cap: int = 1536,
        sources: tuple[int, ...] = (), toward: tuple[int, float] | None = None,
    ) -> Candidates:  # fmt: skip
        """Patches holding at least a quarter of ``cls_id`` from the crops resampled by
        ``scale`` (bank GSD / job GSD), in all 8 turns and flips, at most ``cap`` of them
        (a fixed subset: the same for every tile of a job, so neighbours match); only from
        the crops ``sources`` when given (one region's look); ``toward`` = (anchor, strength):
        recoloured by :func:`toward_anchor` (anchor: an index into :meth:`looks`). The last
        few sets are cached (a recoloured set replaces its plain one)."""
        key = (cls_id, round(scale, 4), tuple(sorted(sources)), toward)
        if key in self._cache:
            return self._cache[key]
        if toward is not None:
            plain = self.candidates(cls_id, scale, seed, cap, sources)
            self._cache.pop((*key[:3], None), None)
            out = self._cache[key] = toward_anchor(plain, self.looks(cls_id), *toward)
            return out
        if sources and sum(1 for k in self._cache if k[2]) >= GROUP_CACHE:
            del self._cache[next(k for k in self._cache if k[2])]  # oldest group set
        rgbs, labs, srcs = [], [], []
        for i, (img, lab) in enumerate(zip(self.rgb, self.labels, strict=True)):
            if sources and i not in sources:
                continue
            if not (lab == cls_id).any():
                continue
            img2, lab2 = _resample(img, lab, scale)
            if min(img2.shape[:2]) < PATCH:
                continue
            step = max(PATCH // 4, 4)
            for y in range(0, img2.shape[0] - PATCH + 1, step):
                for x in range(0, img2.shape[1] - PATCH + 1, step):
                    lw = lab2[y : y + PATCH, x : x + PATCH]
                    if (lw == cls_id).mean() >= 0.25:
                        rgbs.append(img2[y : y + PATCH, x : x + PATCH])
                        labs.append(lw)
                        srcs.append(i)
        if not rgbs:
            raise LookupError(cls_id)
        rgb, lab = np.stack(rgbs), np.stack(labs)
        rng = np.random.default_rng([seed + 7919 * cls_id, *key[2]])
        picks = rng.permutation(len(rgb) * 8)[:cap]
        base, turn = picks // 8, picks % 8
        rgb, lab = _dihedrals(rgb, base, turn), _dihedrals(lab, base, turn)
        flat = rgb.reshape(len(rgb), -1).astype(np.float32) / 255.0
        sq = (flat.reshape(len(rgb), PATCH * PATCH, 3) ** 2).sum(-1)
        mine = (lab == cls_id).reshape(len(rgb), -1).astype(np.float32)
        colour = (flat.reshape(len(rgb), -1, 3) * mine[..., None]).sum(1) / np.maximum(
            mine.sum(1), 1.0
        )[:, None]
        gy, gx = np.gradient(rgb.mean(-1).astype(np.float32) / 255.0, axis=(1, 2))
        mag = np.hypot(gx, gy).reshape(len(rgb), -1)
        energy = (mag * mine).sum(1) / np.maximum(mine.sum(1), 1.0)
        out = Candidates(
            rgb,
            lab,
            flat,
            sq,
            mine,
            orientation(rgb.mean(-1)),
            colour.astype(np.float32),
            np.median(colour, axis=0).astype(np.float32),
            energy.astype(np.float32),
            float(np.median(energy)),
            np.asarray(srcs, dtype=np.int32)[base],
            base.astype(np.int32),
        )
        self._cache[key] = out
        return out


def toward_anchor(cands: Candidates, looks: Looks, anchor: int, strength: float) -> Candidates:
    """``cands`` with each patch's colours moved ``strength`` of the way from its crop's class
    look to the anchor crop's: a region quilted from several crops keeps their textures but
    takes one colour (a group filled up with crops of another sand reads as a patchwork
    of tan and grey blocks)."""
    if cands.source is None or strength <= 0:
        return cands
    where = {int(i): k for k, i in enumerate(looks.ids)}
    colour = looks.look[:, :3]
    idx = np.array([where.get(int(s), anchor) for s in cands.source])
    target = colour[anchor]
    shift = (strength * (target - colour[idx])).astype(np.float32)  # (n, 3) in 0..1
    n = len(cands.rgb)
    flat = np.clip(cands.flat.reshape(n, -1, 3) + shift[:, None, :], 0.0, 1.0)
    rgb = np.rint(flat * 255.0).astype(np.uint8).reshape(cands.rgb.shape)
    flat = rgb.reshape(n, -1, 3).astype(np.float32) / 255.0
    mine = cands.mine
    col = (flat * mine[..., None]).sum(1) / np.maximum(mine.sum(1), 1.0)[:, None]
    return Candidates(
        rgb, cands.labels, flat.reshape(n, -1), (flat**2).sum(-1), mine, cands.orient,
        col.astype(np.float32), np.median(col, axis=0).astype(np.float32), cands.energy,
        cands.median_energy, cands.source, cands.base,
    )  # fmt: skip


def orientation(lum: NDArray[np.floating]) -> F32:
    """Dominant gradient direction of each 2-D array in ``lum`` (n, h, w) as a doubled-angle
    vector scaled by its coherence (0 = no direction, 1 = all gradients parallel)."""
    gy, gx = np.gradient(np.asarray(lum, dtype=np.float32), axis=(1, 2))
    jxx, jyy, jxy = (gx * gx).sum((1, 2)), (gy * gy).sum((1, 2)), (gx * gy).sum((1, 2))
    norm = np.maximum(jxx + jyy, 1e-9)
    out: F32 = np.stack([(jxx - jyy) / norm, 2 * jxy / norm], axis=1).astype(np.float32)
    return out


def _dihedrals(a: NDArray[Any], base: NDArray[np.integer], turn: NDArray[np.integer]) -> Any:
    """Patch ``a[base[i]]`` turned ``turn[i] % 4`` quarter turns and, for ``turn[i] >= 4``,
    flipped left-right: all 8 turns and flips of square patches, one array operation each."""
    out = np.empty((len(base), *a.shape[1:]), dtype=a.dtype)
    for t in range(8):
        sel = turn == t
        if sel.any():
            r = np.rot90(a[base[sel]], t % 4, axes=(1, 2))
            out[sel] = r[:, :, ::-1] if t >= 4 else r
    return out


def _resample(img: U8, lab: U8, scale: float) -> tuple[U8, U8]:
    """A crop and its labels resampled by ``scale`` (area-like for shrinking, bilinear for
    enlarging; labels nearest)."""
    if abs(scale - 1.0) < 1e-3:
        return img, lab
    h, w = lab.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    method = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    img2 = np.asarray(Image.fromarray(img).resize(size, method))
    lab2 = np.asarray(Image.fromarray(lab).resize(size, Image.Resampling.NEAREST))
    return img2, lab2


def crops_from_pairs(
    images: list[U8],
    labels: list[U8],
    *,
    crop: int = 128,
    per_class: int = 14,
    seed: int = 0,
    min_share: float = 0.3,
    draw: int = 3,
    area_weighted: bool = True,
) -> tuple[U8, U8]:
    """The crops and labels of :func:`draw_crops` (without their origins)."""
    rgb, lab, _ = draw_crops(
        images, labels, crop=crop, per_class=per_class, seed=seed, min_share=min_share,
        draw=draw, area_weighted=area_weighted,
    )  # fmt: skip
    return rgb, lab


def draw_crops(
    images: list[U8],
    labels: list[U8],
    *,
    crop: int = 128,
    per_class: int = 14,
    seed: int = 0,
    min_share: float = 0.3,
    draw: int = 3,
    area_weighted: bool = True,
) -> tuple[U8, U8, NDArray[np.int32]]:
    """``per_class`` crops per class centred on random pixels of that class with at least
    ``min_share`` of it, the ``per_class`` of ``draw`` times as many whose class colour is
    nearest the median; with the index of the image each came from; deterministic by
    ``seed``. ``area_weighted``: each class pixel of all images is equally likely to centre
    a crop, so the surfaces that cover most ground (plain desert) dominate as in real scenes;
    else the images take turns (an image with a little land counts as much as one of desert)."""
    rng = np.random.default_rng(seed)
    classes = sorted({int(c) for lab in labels for c in np.unique(lab)})
    out_rgb: list[U8] = []
    out_lab: list[U8] = []
    out_src: list[int] = []
    for c in classes:
        rgb, lab, src = _draw_class(images, labels, c, per_class, min_share, crop, draw,
                                    area_weighted, rng)  # fmt: skip
        out_rgb += rgb
        out_lab += lab
        out_src += src
    return np.stack(out_rgb), np.stack(out_lab), np.asarray(out_src, dtype=np.int32)


def _draw_class(
    images: list[U8], labels: list[U8], c: int, count: int, min_share: float, crop: int,
    draw: int, area_weighted: bool, rng: np.random.Generator,
) -> tuple[list[U8], list[U8], list[int]]:  # fmt: skip
    """``count`` crops of class ``c`` (see :func:`draw_crops`)."""
    have = [i for i, lab in enumerate(labels) if (lab == c).mean() > 0.01]
    rng.shuffle(have)
    area = np.array([float((labels[i] == c).sum()) for i in have])
    got, tries = 0, 0
    pool_rgb: list[U8] = []
    pool_lab: list[U8] = []
    pool_src: list[int] = []
    while got < draw * count and have and tries < 200 * draw * count:
        if area_weighted:
            i = have[int(rng.choice(len(have), p=area / area.sum()))]
        else:
            i = have[tries % len(have)]
        tries += 1
        lab = labels[i]
        h, w = lab.shape
        if h < crop or w < crop:
            continue
        ys, xs = np.nonzero(lab == c)
        k = int(rng.integers(len(ys)))
        y = int(np.clip(ys[k] - crop // 2, 0, h - crop))
        x = int(np.clip(xs[k] - crop // 2, 0, w - crop))
        win = lab[y : y + crop, x : x + crop]
        if (win == c).mean() < min_share:
            continue
        pool_rgb.append(np.ascontiguousarray(images[i][y : y + crop, x : x + crop, :3]))
        pool_lab.append(np.ascontiguousarray(win))
        pool_src.append(i)
        got += 1
    if not pool_rgb:
        return [], [], []
    # keep the crops whose class colour is closest to the class's median colour: one
    # coherent look per class (outliers such as green salt flats labelled land go)
    means = np.stack([r[lb == c].mean(0) for r, lb in zip(pool_rgb, pool_lab, strict=True)])
    far = np.linalg.norm(means - np.median(means, axis=0), axis=1)
    keep = np.argsort(far, kind="stable")[:count]
    return [pool_rgb[k] for k in keep], [pool_lab[k] for k in keep], [pool_src[k] for k in keep]


def tile_crops(image: U8, labels: U8, crop: int = 128) -> tuple[U8, U8]:
    """A whole (reference) image cut into overlapping square crops (half-crop stride); the
    crop shrinks to the image's short side for small images."""
    h, w = labels.shape
    s = min(crop, h, w)
    step = max(s // 2, 1)
    ys = sorted({*range(0, h - s + 1, step), h - s})
    xs = sorted({*range(0, w - s + 1, step), w - s})
    rgb = np.stack([image[y : y + s, x : x + s, :3] for y in ys for x in xs])
    lab = np.stack([labels[y : y + s, x : x + s] for y in ys for x in xs])
    return np.ascontiguousarray(rgb), np.ascontiguousarray(lab)
