"""The segmenter API (rs_seg2any.quality.segmenter): v2 net and recipe, v1 files still load,
per-entity IoU by hand, input errors, the shipped weights on a real non-held-out crop, and
evaluate's default fidelity column for Dubai labels."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from scipy import ndimage

from rs_seg2any.errors import InputError
from rs_seg2any.quality import segmenter as seg
from rs_seg2any.train.dubai import load_pairs
from rs_seg2any.train.segmenter import (
    IGNORE,
    Recipe,
    SegConfig,
    TinyUNet,
    _zoom,
    dice_loss,
    fit,
    iou_scores,
    load_segmenter,
    predict,
    save_segmenter,
    segmenter_metadata,
    train_segmenter,
)

COLOURS = np.array(
    [(0, 0, 0), (200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 30), (30, 220, 220)],
    dtype=np.float32,
)
# floor for the shipped weights on a real tile_2 crop (validation tile, never held out)
REAL_FLOOR = 0.40


def _synthetic(n: int, size: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(n):
        lab = np.kron(rng.integers(1, 6, (size // 16, size // 16)), np.ones((16, 16), int))
        img = COLOURS[lab] + rng.normal(0, 8, (size, size, 3))
        images.append(np.clip(img, 0, 255).astype(np.uint8))
        labels.append(lab.astype(np.uint8))
    return images, labels


def test_v2_half_scale_net_learns_and_roundtrips_in_fp16(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    images, labels = _synthetic(4, 96, 0)
    cfg = SegConfig(width=8, depth=2, input_scale=0.5)
    recipe = Recipe(size=64, batch=6, lr=1e-2, scale=(0.8, 1.25), colour=0.0, dice=0.5)
    model, steps = fit(images, labels, steps=70, cfg=cfg, recipe=recipe)
    assert steps == 70 and model.multiple == 8
    test_img, test_lab = _synthetic(1, 80, 1)
    img = test_img[0][:75, :61]  # odd sides: padded, then cropped back
    pred = predict(model, img, window=48, margin=8, flips=True)
    assert pred.shape == (75, 61)
    assert iou_scores([pred], [test_lab[0][:75, :61]])["miou"] > 0.8  # type: ignore[operator]
    path = save_segmenter(model, tmp_path / "v2.safetensors", {"steps": "70"}, half=True)
    assert {t.dtype for t in load_file(str(path)).values()} == {torch.float16}
    back = load_segmenter(path)
    assert back.cfg == cfg
    assert (predict(back, img) == predict(model, img)).mean() > 0.99


def test_v1_weight_file_without_new_config_fields_still_loads(tmp_path: Path) -> None:
    """A file written before input_scale existed (its metadata names 3 fields) loads as v1."""
    torch.manual_seed(0)
    model = TinyUNet(SegConfig(width=8, depth=2)).eval()
    old = {"width": 8, "depth": 2, "n_classes": 5}
    path = tmp_path / "v1.safetensors"
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"format": "rs_seg2any.segmenter/1",
                                            "config": json.dumps(old)})  # fmt: skip
    loaded = load_segmenter(path)
    assert loaded.cfg.input_scale == 1.0 and loaded.multiple == 4
    img = _synthetic(1, 32, 2)[0][0]
    assert np.array_equal(predict(loaded, img), predict(model, img))


def test_zoom_keeps_labels_on_their_pixels() -> None:
    lab = np.kron(np.arange(16).reshape(4, 4) % 5 + 1, np.ones((32, 32), int)).astype(np.uint8)
    img = np.repeat((lab * 40)[..., None], 3, axis=2).astype(np.uint8)
    for s in (0.5, 1.0, 2.0):
        ci, cl = _zoom(img, lab, 64, s, random.Random(1))
        assert ci.shape == (64, 64, 3) and cl.shape == (64, 64)
        agree = np.abs(ci[..., 0].astype(int) - cl.astype(int) * 40) < 3
        inner = ndimage.maximum_filter(cl, 5) == ndimage.minimum_filter(cl, 5)
        assert inner.mean() > 0.5 and agree[inner].all(), s  # only blended block edges differ


def test_dice_loss_zero_when_right_and_ignores_unlabeled() -> None:
    target = torch.tensor([[[0, 1], [2, IGNORE]]])
    right = torch.nn.functional.one_hot(target.clamp(min=0), 5).permute(0, 3, 1, 2) * 50.0
    wrong_on_ignored = right.clone()
    wrong_on_ignored[0, :, 1, 1] = torch.tensor([0.0, 0.0, 0.0, 0.0, 50.0])
    assert float(dice_loss(right.float(), target)) < 0.01
    assert float(dice_loss(wrong_on_ignored.float(), target)) < 0.01
    assert float(dice_loss(right.roll(1, dims=1).float(), target)) > 0.3  # all wrong


def test_per_entity_iou_by_hand() -> None:
    labels = np.array([[1, 1, 2, 2, 2, 2]] * 2, dtype=np.uint8)
    inst = np.array([[1, 1, 2, 2, 3, 3]] * 2, dtype=np.int32)
    pred = np.array([[1, 2, 1, 2, 2, 2]] * 2, dtype=np.uint8)
    res = seg.per_entity_iou(pred, inst, labels, margin=1)
    # entity 1 (building): 2 of 4 pixels hit, 2 building pixels spill into its 1-px ring
    assert res[1] == pytest.approx(2 / (4 + 2))
    # entity 2 (land): 2 of 4 hit; land predicted on building entity 1 next to it spills,
    # land predicted on land entity 3 does not
    assert res[2] == pytest.approx(2 / (4 + 2))
    assert res[3] == pytest.approx(1.0)
    far = seg.per_entity_iou(pred, inst, labels, margin=0)  # no ring: recall inside the entity
    assert far == pytest.approx({1: 0.5, 2: 0.5, 3: 1.0})
    unl = seg.per_entity_iou(pred, inst, np.full_like(labels, 6), margin=0)
    assert all(math.isnan(v) for v in unl.values())
    with pytest.raises(InputError):
        seg.per_entity_iou(pred, inst[:, :3], labels)


def test_segment_refuses_non_rgb_and_missing_weights(tmp_path: Path) -> None:
    model = TinyUNet(SegConfig(width=4, depth=1))
    with pytest.raises(InputError, match="uint8"):
        seg.segment(np.zeros((8, 8, 3), np.float32), model)
    with pytest.raises(InputError, match="RGB"):
        seg.segment(np.zeros((8, 8), np.uint8), model)
    with pytest.raises(InputError, match="not found"):
        seg.load(tmp_path / "nope.safetensors")
    assert seg.segment(np.zeros((9, 7, 4), np.uint8), model, flips=False).shape == (9, 7)


def test_training_refuses_the_held_out_tile(tmp_path: Path) -> None:
    from rs_seg2any.train.__main__ import main
    from rs_seg2any.train.segmenter import _parse_tiles

    assert _parse_tiles("1,3-6") == [1, 3, 4, 5, 6]
    with pytest.raises(InputError, match="held-out"):
        train_segmenter(tmp_path, tmp_path / "x.safetensors", 0.01, tiles=[1, 7])
    with pytest.raises(InputError, match="held-out"):  # the training entry routes to it
        main(["segmenter", "--root", str(tmp_path), "--out", str(tmp_path / "x.safetensors"),
              "--tiles", "5-7", "--minutes", "0.01"])  # fmt: skip
    assert not (tmp_path / "x.safetensors").exists()


def test_shipped_weights_segment_a_real_validation_crop(shared_data: Path) -> None:
    """The shipped segmenter on a 512-px crop of tile_2 (not trained on, not held out)."""
    torch.set_num_threads(1)
    assert seg.DEFAULT_WEIGHTS.is_file()
    assert seg.DEFAULT_WEIGHTS.stat().st_size < 8_500_000
    with safe_open(str(seg.DEFAULT_WEIGHTS), framework="pt") as f:
        meta = dict(f.metadata() or {})
    assert "7" not in meta["train_tiles"].split(",") and "2" not in meta["train_tiles"]
    # decision offsets fit on the validation tile, stored as JSON data
    assert meta["class_bias_fit_on"] == "tile_2"
    assert len(json.loads(meta["config"])["class_bias"]) == 5
    # v3: the ImageNet encoder's source and licence travel with the weights
    assert json.loads(meta["config"])["arch"] == "lite0"
    assert json.loads(meta["config"])["flips"] is True and meta["flips_chosen_on"] == "tile_2"
    assert "Apache-2.0" in meta["encoder_init"] and "ImageNet" in meta["encoder_init"]
    pair = load_pairs(shared_data / "dubai_aerial", [2])[4]  # v2: 0.443, v1 recipe: 0.326
    img, lab = pair.image[:512, :512], pair.classes[:512, :512]
    pred = seg.segment(img, flips=False)
    assert set(np.unique(pred)) <= {1, 2, 3, 4, 5}
    assert iou_scores([pred], [lab])["miou"] > REAL_FLOOR  # type: ignore[operator]
    assert seg.load_default_segmenter() is seg.load_default_segmenter()  # loaded once


def test_previous_v2_weights_still_load_and_segment(shared_data: Path) -> None:
    """v2.1 (from-scratch U-Net, no ``arch`` in its config) stays loadable beside v3."""
    torch.set_num_threads(1)
    model = seg.load(seg.V2_WEIGHTS)
    assert model.cfg.arch == "unet" and model.cfg.depth == 4 and len(model.cfg.class_bias) == 5
    assert "arch" not in json.loads(segmenter_metadata(seg.V2_WEIGHTS)["config"])
    pair = load_pairs(shared_data / "dubai_aerial", [2])[4]
    img, lab = pair.image[:512, :512], pair.classes[:512, :512]
    assert iou_scores([seg.segment(img, model)], [lab])["miou"] > REAL_FLOOR  # type: ignore[operator]


def test_evaluate_scores_fidelity_with_the_shipped_segmenter_for_dubai_labels(
    shared_data: Path,
) -> None:
    from rs_seg2any.quality.baselines import FlatPainter
    from rs_seg2any.quality.evaluate import FLAT, REAL, evaluate

    torch.set_num_threads(1)
    pair = load_pairs(shared_data / "dubai_aerial", [2])[1]
    real, lab = pair.image[:256, :256], pair.classes[:256, :256]
    flat = FlatPainter.from_pairs([real], [lab])
    rep = evaluate({"real copy": [real.copy()]}, real, lab, taxonomy="dubai_aerial",
                   classifier=False, flat_painter=flat)  # fmt: skip
    assert rep.fidelity is not None and rep.fidelity["segmenter"] == str(seg.DEFAULT_WEIGHTS)
    assert rep.fidelity["ratio"]["real copy"] == pytest.approx(1.0)
    assert rep.fidelity["ratio"][REAL] == pytest.approx(1.0)
    assert rep.fidelity["flat_ratio"] == rep.rows[FLAT].fidelity["ratio"]  # type: ignore[index]
    assert "flat paint scores" in rep.table()
    off = evaluate({"real copy": [real]}, real, lab, taxonomy="dubai_aerial",
                   classifier=False, segmenter=False)  # fmt: skip
    assert off.fidelity is None and off.rows["real copy"].fidelity is None
    with pytest.raises(InputError, match="not found"):
        evaluate({"x": [real]}, real, lab, classifier=False, segmenter="missing.safetensors")


def _fake_dubai(root: Path, tiles: list[int], size: int = 64) -> Path:
    """A data set laid out like the Dubai one (jpg images, palette png masks), tiny."""
    from PIL import Image

    from rs_seg2any.train.dubai import PALETTE

    colour = {cid: rgb for rgb, cid in PALETTE.items()}
    for t in tiles:
        images, labels = _synthetic(1, size, t)
        for sub in ("images", "masks"):
            (root / f"tile_{t}" / sub).mkdir(parents=True)
        Image.fromarray(images[0]).save(root / f"tile_{t}" / "images" / "image_part_001.jpg")
        mask = np.array([colour[int(c)] for c in labels[0].ravel()], np.uint8)
        Image.fromarray(mask.reshape(size, size, 3)).save(
            root / f"tile_{t}" / "masks" / "image_part_001.png"
        )
    return root


def test_training_resumes_from_weights_and_leaves_scored_checkpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``init`` continues from a file (steps add up, its config wins); ``checkpoint_minutes``
    writes ``<out>.step<N>.safetensors`` files, each scored on the validation tile."""
    torch.set_num_threads(1)
    root = _fake_dubai(tmp_path / "data", [1, 2])
    first = train_segmenter(root, tmp_path / "a.safetensors", 0.03, tiles=[1])
    steps_a = int(segmenter_metadata(first)["steps"])
    assert steps_a > 0
    out = tmp_path / "b.safetensors"
    second = train_segmenter(root, out, 0.05, tiles=[1], init=first, checkpoint_minutes=0.01)
    meta = segmenter_metadata(second)
    assert int(meta["steps"]) > steps_a and meta["train_tiles"] == "1"
    ckpts = sorted(tmp_path.glob("b.step*.safetensors"))
    assert ckpts, "no checkpoint written"
    logged = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"checkpoint"' in x]
    assert {Path(r["checkpoint"]).name for r in logged} == {p.name for p in ckpts}
    assert all(r["val_tile"] == 2 and 0.0 <= r["miou"] <= 1.0 for r in logged)
    for p in ckpts:  # each checkpoint is a loadable segmenter past the initial steps
        assert load_segmenter(p).cfg == load_segmenter(first).cfg
        assert int(segmenter_metadata(p)["steps"]) >= steps_a
    # resuming really starts from the given weights: zero new steps keep them bit for bit
    same, n = fit(*_synthetic(1, 64, 5), steps=0, init=load_segmenter(first))
    ref = load_segmenter(first).state_dict()
    assert n == 0 and all(torch.equal(v, ref[k]) for k, v in same.state_dict().items())


def test_class_bias_fit_on_validation_tile_is_stored_as_data_and_applied(tmp_path: Path) -> None:
    """A net skewed towards class 1 gets a negative offset for it; the offsets travel in the
    file's JSON config (no code), load back, and predict applies them."""
    from rs_seg2any.train.segmenter import calibrate_segmenter, fit_class_bias, log_probs

    torch.set_num_threads(1)
    images, labels = _synthetic(3, 64, 3)
    cfg = SegConfig(width=8, depth=2, input_scale=0.5)
    recipe = Recipe(size=64, batch=6, lr=1e-2, dice=0.5)
    model, _ = fit(images, labels, steps=60, cfg=cfg, recipe=recipe)
    with torch.no_grad():
        model.head.bias[0] += 6.0  # over-calls building everywhere
    bias, before, after = fit_class_bias(model, images, labels)
    assert bias[0] < 0 and after > before + 0.1
    root = _fake_dubai(tmp_path / "data", [2])
    plain = save_segmenter(model, tmp_path / "plain.safetensors", {"steps": "60"})
    rep = calibrate_segmenter(plain, root, tmp_path / "cal.safetensors")
    meta = segmenter_metadata(tmp_path / "cal.safetensors")
    assert json.loads(meta["config"])["class_bias"] == rep["class_bias"]
    assert meta["steps"] == "60" and meta["class_bias_fit_on"] == "tile_2"
    cal = load_segmenter(tmp_path / "cal.safetensors")
    assert cal.cfg.class_bias == tuple(rep["class_bias"])  # type: ignore[arg-type]
    pair = load_pairs(root, [2])[0]
    want = (log_probs(cal, pair.image) + np.array(cal.cfg.class_bias)[:, None, None]).argmax(0)
    assert np.array_equal(predict(cal, pair.image), want.astype(np.uint8) + 1)
    got = iou_scores([predict(cal, pair.image)], [pair.classes])["miou"]
    assert got == pytest.approx(rep["val_miou_after"])
    assert got > iou_scores([predict(model, pair.image)], [pair.classes])["miou"]  # type: ignore[operator]


def test_continued_run_drops_the_old_decision_offsets_and_records_its_start(
    tmp_path: Path,
) -> None:
    """``init`` from a calibrated file: the old offsets and flip choice belong to the old net
    (checkpoints must be scored raw; calibration is redone afterwards), so they are dropped;
    steps and minutes add up; the start file and the seed are in the metadata."""
    torch.set_num_threads(1)
    root = _fake_dubai(tmp_path / "data", [1])
    old = TinyUNet(SegConfig(width=8, depth=2, class_bias=(1.0, 0, 0, 0, -1.0), flips=True))
    first = save_segmenter(old, tmp_path / "old.safetensors", {"steps": "40", "minutes": "2.0"})
    out = train_segmenter(root, tmp_path / "next.safetensors", 0.02, tiles=[1], init=first, seed=3)
    meta = segmenter_metadata(out)
    cfg = load_segmenter(out).cfg
    assert cfg.class_bias == () and cfg.flips is False and cfg.width == 8 and cfg.depth == 2
    assert int(meta["steps"]) > 40 and float(meta["minutes"]) >= 2.0
    assert meta["init"] == "old.safetensors" and meta["seed"] == "3"
