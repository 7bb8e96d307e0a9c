"""One look per region in the exemplar backend: a connected area of a class is quilted from the
bank crops of one look, continues its neighbour tile's look, and repeats no patch verbatim.

Synthetic banks with known answers: land crops in two distinct tints (a region must take one
tint, not a patchwork of both), and a tiny bank whose every patch is unique (repeats are
counted exactly).
"""

from __future__ import annotations

import numpy as np

from rs_seg2any.generators.exemplar.bank import Candidates, ExemplarBank
from rs_seg2any.generators.exemplar.quilt import RegionLookup, look_group, quilt


def two_look_bank(per_look: int = 6) -> ExemplarBank:
    """Pure land crops (class 2): ``per_look`` yellowish and ``per_look`` greyish-blue ones,
    plus one crop that is mostly road (class 3) with a magenta verge labelled land."""
    rng = np.random.default_rng(0)
    rgb, lab = [], []
    for tint in ([200, 180, 110], [110, 130, 190]):
        for _ in range(per_look):
            rgb.append(np.clip(np.array(tint) + rng.integers(-15, 16, (96, 96, 3)), 0, 255))
            lab.append(np.full((96, 96), 2))
    road = np.full((96, 96, 3), 60)
    road[:, :20] = [220, 40, 220]
    road_lab = np.full((96, 96), 3)
    road_lab[:, :20] = 2
    rgb.append(road)
    lab.append(road_lab)
    return ExemplarBank(
        np.stack(rgb).astype(np.uint8), np.stack(lab).astype(np.uint8), 0.5,
        {2: "land", 3: "road"},
    )  # fmt: skip


def regions_of(bank: ExemplarBank) -> RegionLookup:
    def regions(
        c: int, known: np.ndarray, start: np.ndarray, rng: np.random.Generator
    ) -> Candidates:
        return bank.candidates(c, 1.0, sources=look_group(bank.looks(c), start, known, rng))

    return regions


def yellowish(px: np.ndarray) -> np.ndarray:
    px = px.astype(int)
    return px[..., 0] > px[..., 2]


def test_a_region_takes_one_look_and_regions_differ_across_seeds() -> None:
    bank = two_look_bank()
    labels = np.full((128, 128), 2, np.int64)
    shares = set()
    for seed in range(6):
        img = quilt(labels, lambda c: bank.candidates(c, 1.0), seed, regions=regions_of(bank))
        share = float(yellowish(img).mean())
        assert share in (0.0, 1.0), (seed, share)  # one look, not a patchwork of both
        shares.add(share)
    assert shares == {0.0, 1.0}  # both looks are drawn across seeds


def test_a_crop_mostly_of_another_class_sets_no_look() -> None:
    bank = two_look_bank()
    looks = bank.looks(2)
    assert len(bank.rgb) - 1 not in set(looks.ids.tolist())  # the road crop's verge
    assert len(looks.ids) == 12


def test_a_region_continues_the_look_of_its_known_pixels() -> None:
    bank = two_look_bank()
    labels = np.full((96, 160), 2, np.int64)
    known = np.zeros((96, 160, 3), np.uint8)
    edit = np.ones((96, 160), bool)
    edit[:, :64] = False  # the left tile, already rendered bluish
    known[:, :64] = [110, 130, 190]
    for seed in range(4):
        img = quilt(labels, lambda c: bank.candidates(c, 1.0), seed, known, edit, 0,
                    regions=regions_of(bank))  # fmt: skip
        assert (img[:, :64] == known[:, :64]).all()  # known pixels kept
        assert not yellowish(img[:, 64:]).any(), seed  # and their look carried on


def test_no_patch_is_repeated_verbatim_while_fresh_ones_remain() -> None:
    """Each of the bank's cut patches is placed at most once while unused ones are left:
    quilting that falls into a loop (one stone or shed again and again) is a tell."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (4, 96, 96, 3)).astype(np.uint8)  # every patch unique
    lab = np.full((4, 96, 96), 2, np.uint8)
    bank = ExemplarBank(rgb, lab, 0.5, {2: "land"})
    cands = bank.candidates(2, 1.0)
    assert cands.base is not None
    labels = np.full((104, 104), 2, np.int64)  # 5 x 5 = 25 patches, far fewer than the bank's
    img = quilt(labels, lambda c: cands, 0)
    seen = []
    for y in (0, 24, 48, 72):
        for x in (0, 24, 48, 72):
            corner = img[y + 8 : y + 24, x + 8 : x + 24]  # the interior each patch owns
            hits = [k for k in range(len(cands.flat))
                    if (cands.rgb[k][8:24, 8:24] == corner).all()]  # fmt: skip
            assert hits, (y, x)
            seen.append(int(cands.base[hits[0]]))
    assert len(set(seen)) == len(seen)  # 16 interiors, 16 different cut patches
