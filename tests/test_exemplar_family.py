"""Scene-consistent looks in the exemplar backend: bank crops are drawn area-weighted (the
surfaces that cover most ground dominate) and remember their source scene, and a job takes all
its region looks from one scene, so its classes share one colour balance.

Synthetic images and banks with known answers: a land-only image beside one with a little
land (area weighting), and two scenes whose land and road differ in tint (one family per job).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rs_seg2any.generators.exemplar.bank import Candidates, ExemplarBank, draw_crops
from rs_seg2any.generators.exemplar.quilt import look_group, quilt


def test_area_weighted_crops_follow_ground_cover() -> None:
    """All land in image 0, land in 30 % of image 1: area-weighted draws centre most land
    crops in image 0 (about 77 %); taking turns gives each image half."""
    lab0 = np.full((256, 256), 2, np.uint8)
    lab1 = np.full((256, 256), 3, np.uint8)
    lab1[:, :77] = 2
    rgb = [np.full((256, 256, 3), 128, np.uint8)] * 2
    kw = {"crop": 128, "per_class": 40, "draw": 1, "seed": 0}
    _, lab, src = draw_crops(rgb, [lab0, lab1], area_weighted=True, **kw)
    land = src[(lab == 2).mean((1, 2)) >= 0.3][:40]
    assert (land == 0).sum() >= 27, np.bincount(land)
    _, lab, src = draw_crops(rgb, [lab0, lab1], area_weighted=False, **kw)
    land = src[:40]  # class 2's crops come first (classes in order)
    assert (land == 0).sum() == 20, np.bincount(land)


TINTS = {  # (scene, class) -> colour
    (1, 2): (210, 190, 120), (2, 2): (120, 140, 200),
    (1, 3): (200, 60, 60), (2, 3): (60, 200, 60),
}  # fmt: skip


def two_scene_bank() -> ExemplarBank:
    """Pure land (2) and road (3) crops from scenes 1 and 2, four each, in each scene's tint."""
    rng = np.random.default_rng(0)
    rgb, lab, origin = [], [], []
    for (scene, cls), tint in TINTS.items():
        for _ in range(4):
            rgb.append(np.clip(np.array(tint) + rng.integers(-10, 11, (96, 96, 3)), 0, 255))
            lab.append(np.full((96, 96), cls))
            origin.append(scene)
    return ExemplarBank(
        np.stack(rgb).astype(np.uint8), np.stack(lab).astype(np.uint8), 0.5,
        {2: "land", 3: "road"}, "test", np.asarray(origin, np.int32),
    )  # fmt: skip


def scene_of(px: np.ndarray, cls: int) -> int:
    """The scene whose tint of ``cls`` is nearest the mean of ``px``."""
    mean = px.reshape(-1, 3).mean(0)
    return min((1, 2), key=lambda s: float(((mean - TINTS[(s, cls)]) ** 2).sum()))


def test_a_job_takes_every_class_look_from_one_scene(tmp_path: Path) -> None:
    bank = two_scene_bank()
    bank.save(tmp_path / "b.npz")
    bank = ExemplarBank.load(tmp_path / "b.npz")  # the origins survive the file
    assert bank.origin is not None and sorted(set(bank.origin.tolist())) == [1, 2]
    labels = np.full((128, 128), 2, np.int64)
    labels[:, 64:] = 3
    seen = set()
    for seed in range(8):
        family = bank.family(seed)
        assert family == bank.family(seed)  # the job seed decides, every tile alike

        def regions(c: int, known: np.ndarray, start: np.ndarray,
                    rng: np.random.Generator, f: int | None = family) -> Candidates:  # fmt: skip
            return bank.candidates(c, 1.0, sources=look_group(bank.looks(c), start, known, rng, f))

        img = quilt(labels, lambda c: bank.candidates(c, 1.0), seed, regions=regions)
        land, road = scene_of(img[:, :64], 2), scene_of(img[:, 64:], 3)
        assert land == road == family, (seed, land, road, family)
        seen.add(family)
    assert seen == {1, 2}  # jobs differ by seed
