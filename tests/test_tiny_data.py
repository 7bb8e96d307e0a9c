"""Dubai training data: palette, entities, contours, crops (shared-data parts skip if absent)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from rs_seg2any.train.dubai import (
    classes_from_mask_rgb,
    contours_from_instances,
    entities_from_classes,
    load_pairs,
    random_crop,
)

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dubai_aerial"


def test_contours_are_inner_outlines_without_border() -> None:
    inst = np.zeros((6, 6), dtype=np.int32)
    inst[1:5, 1:5] = 1
    inst[2:4, 2:4] = 2
    c = contours_from_instances(inst)
    # entity 2 (2x2) is all outline; entity 1 ring is outline everywhere it touches 0 or 2
    assert c[2:4, 2:4].all()
    assert c[1, 1:5].all() and c[4, 1:5].all()
    assert c[0].sum() == 0 and c[:, 0].sum() == 0  # background never outlined
    full = np.ones((4, 4), dtype=np.int32)
    assert contours_from_instances(full).sum() == 0  # no outline at the array border


def test_palette_and_unknown_colours() -> None:
    rgb = np.array([[[60, 16, 152], [0, 0, 0], [1, 2, 3], [226, 169, 41]]], dtype=np.uint8)
    assert classes_from_mask_rgb(rgb).tolist() == [[1, 6, 6, 5]]


def test_entities_are_components_and_merge_beyond_budget() -> None:
    cls = np.full((9, 9), 2, dtype=np.uint8)
    cls[::2, ::2] = 1  # 25 isolated building pixels inside one land component
    inst, ent = entities_from_classes(cls, max_entities=64)
    assert len(ent) == 26 and ent[0] == 2  # largest (land) first
    inst, ent = entities_from_classes(cls, max_entities=5)
    assert len(ent) == 5 and sorted(ent) == [1, 1, 1, 1, 2]
    assert set(np.unique(inst)) == {1, 2, 3, 4, 5}
    for i, c in enumerate(ent, start=1):
        assert np.all(cls[inst == i] == c)


@pytest.mark.shared_data
@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data/dubai_aerial")
def test_random_crops_from_real_tile() -> None:
    pairs = load_pairs(DATA, [7])
    assert len(pairs) == 9
    crop = random_crop(pairs[0], 128, random.Random(0), max_entities=32)
    assert crop.image.shape == (128, 128, 3) and crop.instances.max() == len(crop.entity_classes)
    assert len(crop.entity_classes) <= 32
    assert np.array_equal(crop.contours, contours_from_instances(crop.instances))
