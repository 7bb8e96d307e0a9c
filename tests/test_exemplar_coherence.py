"""A job of the exemplar backend paints one surface per class, not a collage.

Three defects the eye saw on big desert regions (all-land scenes): tan sand blocks inside a
blue-grey desert (a region's crop group filled up with crops of another colour), the desert
on the two sides of a road in two different looks (each region drew its own look), and
tracks woven into a criss-cross lattice (patches in all their 8 turns). Synthetic banks with
known answers and the shipped bank on a synthetic layout.
"""

from __future__ import annotations

import numpy as np

from rs_seg2any.generators.base import TileCondition
from rs_seg2any.generators.exemplar.backend import ExemplarBackend
from rs_seg2any.generators.exemplar.bank import ExemplarBank, Looks, orientation
from rs_seg2any.generators.exemplar.quilt import LOOK_GROUP, look_group, quilt
from rs_seg2any.lab import srgb_to_lab
from rs_seg2any.taxonomy import load_taxonomy


def test_a_region_group_takes_no_crop_of_another_colour() -> None:
    """Two tan crops and six blue-grey ones: a tan anchor's group keeps to the tan crops even
    though that leaves fewer than LOOK_GROUP (before: three blue crops filled it up)."""
    tan, blue = [0.82, 0.78, 0.70], [0.74, 0.76, 0.84]
    look = np.array([[*tan, 0.05]] * 2 + [[*blue, 0.05]] * 6, np.float32)
    looks = Looks(np.arange(8), look, np.ones(8, np.float32))
    start = np.zeros((64, 64, 3), np.float32)
    start[...] = tan  # the region's known pixels are tan: the anchor is a tan crop
    known = np.ones((64, 64), bool)
    group = look_group(looks, start, known, np.random.default_rng(0))
    assert set(group) == {0, 1}, group
    assert LOOK_GROUP > 2  # the cap, not the group size, kept the blue crops out


def land_road_condition(seed_offset: int = 0) -> TileCondition:
    """256 px of land cut by a road into two unconnected land regions."""
    tax = load_taxonomy("dubai_aerial")
    ids = {c.name: c.id for c in tax.classes}
    labels = np.full((256, 256), ids["land"], np.int64)
    labels[120 + seed_offset : 136 + seed_offset] = ids["road"]
    inst = np.ones_like(labels)
    inst[labels == ids["road"]] = 2
    inst[136 + seed_offset :] = np.where(labels[136 + seed_offset :] == ids["land"], 3, 2)
    names = tax.names_by_id()
    descs = [names[ids["land"]], names[ids["road"]], names[ids["land"]]]
    return TileCondition(inst, descs, "aerial image", labels=labels,
                         extra={"class_names": names, "job_seed": 7}, gsd=0.5)  # fmt: skip


def region_lab(img: np.ndarray, rows: slice) -> np.ndarray:
    return np.asarray(srgb_to_lab(img[rows].reshape(-1, 3)).mean(0))


def test_the_regions_of_a_class_share_one_look_across_a_job() -> None:
    """Land above and below a road, in one tile and in a second tile of the same job (another
    tile seed): one desert, within 3 Delta E (before: up to 7), whatever the job seed."""
    backend = ExemplarBackend()
    for job_seed in range(4):
        means = []
        for tile_seed in (job_seed * 10, job_seed * 10 + 1):
            cond = land_road_condition()
            cond.extra["job_seed"] = job_seed
            img = backend.generate(cond, steps=1, guidance=1.0, gamma=1.0, seed=tile_seed)
            means += [region_lab(img, slice(0, 110)), region_lab(img, slice(146, 256))]
        spread = max(float(np.linalg.norm(m - means[0])) for m in means)
        assert spread < 3.0, (job_seed, spread)


def coherence(img: np.ndarray, along: np.ndarray) -> tuple[float, float]:
    """Over the 32-px windows of ``img``: length of the mean doubled-angle orientation vector
    (0 = directions all over, 1 = all alike) and its component along ``along``."""
    lum = img.mean(-1).astype(np.float32)
    wins = np.stack([lum[y : y + 32, x : x + 32] for y in range(0, 224, 32)
                     for x in range(0, 224, 32)])  # fmt: skip
    mean = orientation(wins).mean(0)
    return float(np.linalg.norm(mean)), float(mean @ along)


def test_texture_follows_one_grain_where_the_layout_gives_no_direction() -> None:
    """An all-land tile from the shipped bank: with a grain, the windows' texture directions
    agree (and point the grain's way); in the 8 free turns they do not."""
    bank = ExemplarBank.shipped()
    land = next(k for k, v in bank.names.items() if v == "land")
    labels = np.full((256, 256), land, np.int64)
    looks = bank.looks(land)
    group = tuple(int(i) for i in looks.ids[:3])

    def lookup(c: int):  # type: ignore[no-untyped-def]
        return bank.candidates(c, 1.0, sources=group)

    grain = 0.6
    along = np.array([np.cos(2 * grain), np.sin(2 * grain)])
    free = [coherence(quilt(labels, lookup, s), along) for s in range(2)]
    grained = [coherence(quilt(labels, lookup, s, grain=grain), along) for s in range(2)]
    for (r_free, _), (r_grain, a_grain) in zip(free, grained, strict=True):
        assert r_grain > r_free + 0.05, (free, grained)
        assert a_grain > 0.8 * r_grain, grained  # the grain's direction, not another
