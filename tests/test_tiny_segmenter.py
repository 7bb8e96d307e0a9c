"""Layout-fidelity segmenter: learns trivial colour-coded data, ignores unlabeled, ratio maths."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rs_seg2any.errors import InputError
from rs_seg2any.train.segmenter import (
    IGNORE,
    SegConfig,
    class_weights,
    fidelity_ratio,
    fidelity_report,
    fit,
    iou_scores,
    load_segmenter,
    miou,
    predict,
    save_segmenter,
    targets_from_classes,
)

COLOURS = {
    1: (200, 30, 30),
    2: (30, 200, 30),
    3: (30, 30, 200),
    4: (220, 220, 30),
    5: (30, 220, 220),
    6: (128, 128, 128),
}


def _synthetic(n: int, size: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Blocky class maps (classes 1..6) and images whose colour encodes the class (+ noise)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(n):
        coarse = rng.integers(1, 7, size=(size // 8, size // 8))
        lab = np.kron(coarse, np.ones((8, 8), dtype=np.int64)).astype(np.uint8)
        pal = np.array([(0, 0, 0), *COLOURS.values()], dtype=np.float32)
        img = pal[lab] + rng.normal(0, 8, size=(size, size, 3))
        images.append(np.clip(img, 0, 255).astype(np.uint8))
        labels.append(lab)
    return images, labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    images, labels = _synthetic(4, 64, 0)
    model, steps = fit(
        images, labels, steps=60, size=32, batch=8, lr=1e-2, cfg=SegConfig(width=8, depth=2)
    )
    assert steps == 60
    return save_segmenter(model, tmp_path_factory.mktemp("seg") / "seg.safetensors")


def test_learns_colour_coded_classes(trained: Path) -> None:
    images, labels = _synthetic(2, 48, 1)  # odd-free but not a multiple of the window
    res = miou(trained, images, labels)
    assert res["miou"] > 0.9, res
    per = res["per_class"]
    assert isinstance(per, dict) and set(per) == {
        "building",
        "land",
        "road",
        "vegetation",
        "water",
    }


def test_weights_roundtrip_and_metadata(trained: Path, tmp_path: Path) -> None:
    model = load_segmenter(trained)
    assert model.cfg == SegConfig(width=8, depth=2)
    img = _synthetic(1, 40, 2)[0][0]  # 40 is not a multiple of 4: padded then cropped
    assert predict(model, img).shape == (40, 40)
    assert set(np.unique(predict(model, img, window=16, margin=4))) <= {1, 2, 3, 4, 5}
    with pytest.raises(InputError):
        load_segmenter(tmp_path / "missing.safetensors")
    assert not list(trained.parent.glob(".*.tmp"))


def test_unlabeled_is_ignored_in_loss_and_score() -> None:
    cls = np.array([[0, 1, 2], [5, 6, 7]], dtype=np.uint8)
    t = targets_from_classes(cls)
    assert t.tolist() == [[IGNORE, 0, 1], [4, IGNORE, IGNORE]]
    # scores: predictions on unlabeled pixels do not count either way
    lab = np.array([[1, 1, 6, 6]], dtype=np.uint8)
    pred = np.array([[1, 1, 2, 3]], dtype=np.uint8)
    res = iou_scores([pred], [lab])
    assert res["miou"] == 1.0 and res["pixels"] == 2
    per = res["per_class"]
    assert isinstance(per, dict) and math.isnan(per["road"])
    # class weights: unlabeled pixels do not enter the shares
    w = class_weights([np.array([1, 1, 1, 2, 6, 6, 6, 6], dtype=np.uint8)])
    assert w[0] < w[1] and w[2:].tolist() == [1.0, 1.0, 1.0]


def test_iou_arithmetic_by_hand() -> None:
    lab = np.array([[1, 1, 2, 2]], dtype=np.uint8)
    pred = np.array([[1, 2, 2, 2]], dtype=np.uint8)
    res = iou_scores([pred], [lab])
    per = res["per_class"]
    assert isinstance(per, dict)
    assert per["building"] == pytest.approx(1 / 2) and per["land"] == pytest.approx(2 / 3)
    assert res["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    with pytest.raises(InputError):
        iou_scores([pred], [lab[:, :3]])


def test_fidelity_ratio_arithmetic() -> None:
    r = fidelity_ratio(0.51, 0.6)
    assert r["ratio"] == pytest.approx(0.85) and r["passes"] is True
    r = fidelity_ratio(0.5, 0.6)
    assert r["ratio"] == pytest.approx(5 / 6) and r["passes"] is False
    assert math.isnan(float(fidelity_ratio(0.5, 0.0)["ratio"]))  # type: ignore[arg-type]


def test_fidelity_report_generated_vs_real(trained: Path) -> None:
    real, layouts = _synthetic(2, 32, 3)
    # "generator" that paints the wrong colour everywhere: fidelity collapses
    bad = [np.full_like(im, 0) + np.array(COLOURS[2], dtype=np.uint8) for im in real]
    rep = fidelity_report(trained, bad, layouts, real)
    assert float(rep["real_miou"]) > 0.9  # type: ignore[arg-type]
    assert float(rep["ratio"]) < 0.5 and rep["passes"] is False  # type: ignore[arg-type]
    rep = fidelity_report(trained, real, layouts, real)
    assert rep["ratio"] == pytest.approx(1.0) and rep["passes"] is True
