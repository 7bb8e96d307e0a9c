"""The Dubai aerial training set: (image, mask) pairs -> augmented Seg2Any training crops.

Entities are connected components per class, computed *after* cropping so a crop sees the
same kind of condition as a tile at inference time (outlines stop at the array border).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image
from scipy import ndimage

from rs_seg2any.errors import InputError
from rs_seg2any.generators.tiny.model import Condition
from rs_seg2any.generators.tiny.text import TextEncoder
from rs_seg2any.raster import contours_from_instances  # the rasteriser's own definition
from rs_seg2any.train import paraphrase

# mask RGB -> taxonomy id (building 1, land 2, road 3, vegetation 4, water 5, unlabeled 6)
PALETTE: dict[tuple[int, int, int], int] = {
    (60, 16, 152): 1,
    (132, 41, 246): 2,
    (110, 193, 228): 3,
    (254, 221, 58): 4,
    (226, 169, 41): 5,
    (155, 155, 155): 6,
    (0, 0, 0): 6,
}
N_CLASSES = 6

U8 = NDArray[np.uint8]
I32 = NDArray[np.int32]


def classes_from_mask_rgb(rgb: U8) -> U8:
    """Class ids from a mask in the data set's palette; unknown colours become unlabeled."""
    key = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    out = np.full(rgb.shape[:2], 6, dtype=np.uint8)
    for (r, g, b), cid in PALETTE.items():
        out[key == ((r << 16) | (g << 8) | b)] = cid
    return out


def entities_from_classes(cls: U8, max_entities: int) -> tuple[I32, list[int]]:
    """Instance map (ids 1..E, largest first) and the class of each entity.

    Beyond ``max_entities`` the smallest components of each class are merged into one entity
    per class, so every pixel keeps a description and the token budget stays bounded.
    """
    comps: list[tuple[int, int, int]] = []  # (area, class, label)
    labels: dict[int, NDArray[np.int32]] = {}
    for c in np.unique(cls):
        if c == 0:
            continue
        lab, n = ndimage.label(cls == c)
        labels[int(c)] = lab.astype(np.int32)
        areas = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        comps.extend((int(a), int(c), k + 1) for k, a in enumerate(areas))
    comps.sort(key=lambda x: (-x[0], x[1], x[2]))
    n_single = min(len(comps), max_entities)
    while n_single > 0 and n_single + len({c for _, c, _ in comps[n_single:]}) > max_entities:
        n_single -= 1
    inst = np.zeros(cls.shape, dtype=np.int32)
    ent_cls: list[int] = []
    merged: dict[int, int] = {}
    for i, (_, c, k) in enumerate(comps):
        if i < n_single:
            ent_cls.append(c)
            inst[labels[c] == k] = len(ent_cls)
        else:
            if c not in merged:
                ent_cls.append(c)
                merged[c] = len(ent_cls)
            inst[labels[c] == k] = merged[c]
    if merged:  # keep ids dense and ordered by area after merging
        areas = np.bincount(inst.ravel(), minlength=len(ent_cls) + 1)[1:]
        order = np.argsort(-areas, kind="stable")
        remap = np.zeros(len(ent_cls) + 1, dtype=np.int32)
        remap[order + 1] = np.arange(1, len(ent_cls) + 1, dtype=np.int32)
        inst = remap[inst]
        ent_cls = [ent_cls[j] for j in order]
    return inst, ent_cls


@dataclass(frozen=True)
class Pair:
    """One aerial image and its class map, cropped to their common size."""

    name: str
    image: U8  # (H, W, 3)
    classes: U8  # (H, W)


def load_pairs(root: Path, tiles: list[int]) -> list[Pair]:
    """Read ``tile_N/images/*.jpg`` with their masks for the given tile numbers."""
    pairs: list[Pair] = []
    for t in tiles:
        folder = root / f"tile_{t}"
        images = sorted((folder / "images").glob("*.jpg"))
        if not images:
            raise InputError(f"no images under {folder / 'images'}; is the data set at {root}?")
        for img_path in images:
            mask_path = folder / "masks" / (img_path.stem + ".png")
            img = np.asarray(Image.open(img_path).convert("RGB"))
            mask = np.asarray(Image.open(mask_path).convert("RGB"))
            h, w = min(img.shape[0], mask.shape[0]), min(img.shape[1], mask.shape[1])
            pairs.append(
                Pair(
                    f"tile_{t}/{img_path.stem}",
                    img[:h, :w].copy(),
                    classes_from_mask_rgb(mask[:h, :w]),
                )
            )
    return pairs


HELD_OUT_TILE = 7
"""The Dubai tile held out for testing: nothing is trained, tuned or built from it."""


def refuse_held_out(tiles: Sequence[int], what: str) -> None:
    """InputError when ``tiles`` include the held-out tile (``what``: "train on", ...)."""
    if HELD_OUT_TILE in tiles:
        raise InputError(
            f"tile_{HELD_OUT_TILE} is the held-out test tile and stays held out: do not {what} it"
        )


def central_scenes(pairs: list[Pair], n: int, size: int) -> tuple[list[U8], list[U8], list[str]]:
    """Central square windows of ``n`` of ``pairs``, spread over them (first and last
    included): ``size`` px, or an image's short side where it is smaller."""
    picks = [pairs[round(i * (len(pairs) - 1) / max(n - 1, 1))] for i in range(n)]
    images, labels, names = [], [], []
    for p in picks:
        h, w = p.classes.shape
        s = min(size, h, w)
        y, x = (h - s) // 2, (w - s) // 2
        images.append(np.ascontiguousarray(p.image[y : y + s, x : x + s]))
        labels.append(np.ascontiguousarray(p.classes[y : y + s, x : x + s]))
        names.append(p.name)
    return images, labels, names


@dataclass
class Crop:
    """One training example before text embedding."""

    image: U8  # (S, S, 3)
    classes: U8  # (S, S)
    instances: I32  # (S, S)
    contours: U8  # (S, S)
    entity_classes: list[int]


def random_crop(
    pair: Pair, size: int, rng: random.Random, max_entities: int, augment: bool = True
) -> Crop:
    """Random crop with flips and 90-degree rotations (aerial images have no up direction)."""
    h, w = pair.classes.shape
    y, x = rng.randrange(h - size + 1), rng.randrange(w - size + 1)
    img = pair.image[y : y + size, x : x + size]
    cls = pair.classes[y : y + size, x : x + size]
    if augment:
        k = rng.randrange(4)
        img, cls = np.rot90(img, k), np.rot90(cls, k)
        if rng.random() < 0.5:
            img, cls = img[:, ::-1], cls[:, ::-1]
    return make_crop(np.ascontiguousarray(img), np.ascontiguousarray(cls), max_entities)


def make_crop(img: U8, cls: U8, max_entities: int) -> Crop:
    inst, ent_cls = entities_from_classes(cls, max_entities)
    return Crop(img, cls, inst, contours_from_instances(inst), ent_cls)


def collate(
    crops: list[Crop],
    encoder: TextEncoder,
    max_entities: int,
    rng: random.Random | None,
) -> tuple[torch.Tensor, Condition]:
    """Images in [-1, 1] and their condition; ``rng=None`` uses canonical descriptions."""
    b, s = len(crops), crops[0].classes.shape[0]
    texts: list[str] = []
    captions: list[str] = []
    valid = torch.zeros(b, max_entities, dtype=torch.bool)
    for i, cr in enumerate(crops):
        ents = cr.entity_classes[:max_entities]
        texts.extend(paraphrase.describe(c, rng) for c in ents)
        texts.extend([""] * (max_entities - len(ents)))
        valid[i, : len(ents)] = True
        counts = np.bincount(cr.classes.ravel(), minlength=N_CLASSES + 1)
        present = [int(c) for c in np.argsort(-counts, kind="stable") if c > 0 and counts[c] > 0]
        captions.append(paraphrase.caption(present, rng))
    emb = encoder.encode(texts).view(b, max_entities, -1) * valid[:, :, None]
    images = torch.from_numpy(np.stack([c.image for c in crops])).permute(0, 3, 1, 2)
    cond = Condition(
        instances=torch.from_numpy(np.stack([c.instances for c in crops])).long(),
        contours=torch.from_numpy(np.stack([c.contours for c in crops])).float(),
        texts=emb,
        text_valid=valid,
        caption=encoder.encode(captions),
        drop_text=None,
        drop_cond=None,
    )
    assert s == images.shape[-1]
    return images.float() / 127.5 - 1.0, cond
