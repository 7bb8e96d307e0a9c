"""Objects and shadows of the exemplar backend: one roof per building, measured shadows.

Synthetic banks with known answers: two source crops of distinct colours (every building must
come from one of them), imagery darkened on one side of its buildings (the estimated shadow
must point there), and imagery without shadows (no shadow model).
"""

from __future__ import annotations

import numpy as np

from rs_seg2any.generators.exemplar.bank import Candidates, ExemplarBank
from rs_seg2any.generators.exemplar.quilt import quilt
from rs_seg2any.generators.exemplar.shadows import DUBAI, estimate_shadows


def two_source_bank() -> ExemplarBank:
    """Two crops of buildings (class 1) on land (class 2): crop 0 reddish, crop 1 bluish."""
    rng = np.random.default_rng(0)
    rgb = np.zeros((2, 96, 96, 3), np.uint8)
    lab = np.full((2, 96, 96), 2, np.uint8)
    for i, tint in enumerate(([170, 60, 60], [60, 60, 170])):
        noise = rng.integers(-12, 13, (96, 96, 3))
        rgb[i] = np.clip(np.array(tint) + noise, 0, 255)
        lab[i, 8:88, 8:88] = 1
    rgb[:, lab[0] == 2] = 200  # land alike in both
    return ExemplarBank(rgb, lab, 0.5, {1: "building", 2: "land"})


def test_each_building_is_quilted_from_one_source_crop() -> None:
    bank = two_source_bank()

    def lookup(c: int) -> Candidates:
        return bank.candidates(c, 1.0)

    labels = np.full((96, 96), 2, np.int64)
    inst = np.zeros((96, 96), np.int64)
    for e, (y, x) in enumerate([(4, 4), (4, 52), (52, 4), (52, 52)], start=1):
        labels[y : y + 40, x : x + 40] = 1
        inst[y : y + 40, x : x + 40] = e
    sources = set()
    for seed in range(3):
        img = quilt(labels, lookup, seed, objects=(1, inst, {0: 1600.0, 1: 1600.0}))
        for e in range(1, 5):
            px = img[inst == e].astype(int)
            reddish = (px[:, 0] > px[:, 2]).mean()
            assert reddish in (0.0, 1.0), (seed, e, reddish)  # one source, not a mosaic
            sources.add(reddish)
    assert sources == {0.0, 1.0}  # and both sources are used across buildings and seeds


def shadowed_scene(side: tuple[int, int], strength: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    lab = np.full((192, 192), 2, np.uint8)
    img = np.clip(150 + rng.normal(0, 8, (192, 192, 3)), 0, 255)
    for y in range(24, 170, 48):
        for x in range(24, 170, 48):
            lab[y : y + 16, x : x + 16] = 1
            dy, dx = side
            sy, sx = slice(y + 8 * dy, y + 16 + 8 * dy), slice(x + 8 * dx, x + 16 + 8 * dx)
            img[sy, sx] *= strength
    img[lab == 1] = 220
    return img.astype(np.uint8), lab


def test_shadow_direction_and_darkening_are_measured_from_the_imagery() -> None:
    img, lab = shadowed_scene((-1, -1), 0.6)  # shadows up and to the left
    model = estimate_shadows([img], [lab], 1)
    assert model is not None
    assert model.dy < 0 and model.dx < 0
    assert model.profile[:6].min() < 0.85
    flat, lab2 = shadowed_scene((0, 0), 1.0)
    assert estimate_shadows([flat], [lab2], 1) is None  # no shadow side: none drawn


def test_shadows_darken_only_generated_ground_beside_buildings() -> None:
    img = np.full((64, 64, 3), 150, np.uint8)
    buildings = np.zeros((64, 64), bool)
    buildings[30:40, 30:40] = True
    water = np.zeros((64, 64), bool)
    water[:, :8] = True
    where = np.ones((64, 64), bool)
    where[:, 56:] = False
    out = DUBAI.apply(img, buildings, where, 1.0, water)
    changed = (out != img).any(-1)
    assert changed.any()
    assert not changed[buildings].any() and not changed[water].any() and not changed[~where].any()
    ys, xs = np.nonzero(changed)
    assert ys.mean() < 35 and xs.mean() < 35  # up and to the left of the building


def test_shadows_on_a_tile_thinner_than_their_reach() -> None:
    """A layout 2 px wide (the edge strip of a scene) with a building: the shadow's far
    reach falls outside the tile; the near pixels are still darkened (this raised before)."""
    for shape in [(256, 2), (2, 256), (3, 3)]:
        img = np.full((*shape, 3), 150, np.uint8)
        buildings = np.zeros(shape, bool)
        buildings[-1, -1] = True
        out = DUBAI.apply(img, buildings, np.ones(shape, bool), 2.0)
        assert out.shape == img.shape
        assert (out[~buildings] <= 150).all()
        assert (out != img).any(), shape  # the up-left neighbour is in shadow
