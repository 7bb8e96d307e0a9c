"""The detector-gain bench: its small detector learns, COCOeval scores it, the pipeline runs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import small_detector as sd  # noqa: E402

SIZE = 64


def easy_set(n: int, seed: int) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Dark noisy chips with 1-3 bright rectangles each: trivially easy to detect."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, (n, 3, SIZE, SIZE)).astype(np.uint8)
    boxes = []
    for i in range(n):
        bx = []
        for _ in range(int(rng.integers(1, 4))):
            w, h = rng.integers(8, 20, 2)
            x, y = rng.integers(0, SIZE - w), rng.integers(0, SIZE - h)
            if any(x < b[2] and b[0] < x + w and y < b[3] and b[1] < y + h for b in bx):
                continue
            images[i, :, y : y + h, x : x + w] = 230
            bx.append((x, y, x + w, y + h))
        boxes.append(np.array(bx, np.float32).reshape(-1, 4))
    return images, boxes, [np.zeros(len(b), bool) for b in boxes]


def test_evaluate_scores_ground_truth_as_perfect_and_ignores_crowd() -> None:
    _, boxes, crowd = easy_set(8, 1)
    crowd[0] = np.ones(len(boxes[0]), bool)
    gt = sd.coco_ground_truth(boxes, crowd, SIZE)
    perfect = [np.c_[b, np.ones(len(b), np.float32)] for b in boxes]
    assert sd.evaluate(gt, sd.coco_results(perfect)) == {"map": 1.0, "map50": 1.0}
    shifted = [np.c_[b + 5, np.ones(len(b), np.float32)] for b in boxes]
    worse = sd.evaluate(gt, sd.coco_results(shifted))
    assert worse["map"] < 0.9


def test_augment_moves_boxes_with_the_pixels() -> None:
    images, boxes, _ = easy_set(4, 2)
    for k in range(8):
        for img, b in zip(images, boxes, strict=True):
            out, ob = sd.augment(img, b, k)
            bright = out[0] > 200
            for x0, y0, x1, y1 in ob.astype(int):
                assert bright[y0:y1, x0:x1].all()
            assert bright.sum() == sum(int((x1 - x0) * (y1 - y0)) for x0, y0, x1, y1 in ob)


def test_detector_trained_on_an_easy_set_beats_chance() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    train_img, train_box, train_crowd = easy_set(64, 3)
    test_img, test_box, test_crowd = easy_set(24, 4)
    gt = sd.coco_ground_truth(test_box, test_crowd, SIZE)
    model = sd.CenterNetLite(16)
    before = sd.evaluate(gt, sd.coco_results(sd.detect(model, test_img)))
    sd.train(model, train_img, train_box, train_crowd, steps=120, batch=8, lr=5e-3)
    dets = sd.detect(model, test_img)
    results = sd.coco_results(dets)
    for r in results:
        x, y, w, h = r["bbox"]
        assert min(x, y, w, h) >= 0 and x + w <= SIZE and y + h <= SIZE
        assert 0.0 <= r["score"] <= 1.0
    after = sd.evaluate(gt, results)
    assert after["map50"] > 0.6, after
    assert after["map50"] > before["map50"] + 0.4, (before, after)


def test_instance_segmenter_trained_on_an_easy_set_beats_chance() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    train_img, train_box, _ = easy_set(64, 5)
    test_img, test_box, test_crowd = easy_set(24, 6)
    masks = np.zeros((len(train_img), SIZE, SIZE), bool)
    for m, bx in zip(masks, train_box, strict=True):
        for x0, y0, x1, y1 in bx.astype(int):
            m[y0:y1, x0:x1] = True
    from pycocotools import mask as cmask

    rles = []
    for bx in test_box:
        chip = []
        for x0, y0, x1, y1 in bx.astype(int):
            m = np.zeros((SIZE, SIZE), np.uint8, order="F")
            m[y0:y1, x0:x1] = 1
            chip.append(cmask.encode(m))
        rles.append(chip)
    gt = sd.coco_ground_truth(test_box, test_crowd, SIZE, rles)
    model = sd.TinyUNet(16)
    before = sd.evaluate(gt, sd.instance_results(sd.segment_instances(model, test_img)), "segm")
    sd.train_seg(model, train_img, masks, steps=80, batch=8, lr=5e-3, crop=48)
    results = sd.instance_results(sd.segment_instances(model, test_img))
    box, segm = sd.evaluate(gt, results), sd.evaluate(gt, results, "segm")
    assert box["map50"] > 0.6 and segm["map50"] > 0.6, (box, segm)
    assert segm["map50"] > before["map50"] + 0.4, (before, segm)


def test_quick_bench_builds_sets_with_the_product_and_scores_each_condition(
    shared_data: Path, tmp_path: Path
) -> None:
    import bench_detector_gain as bench

    data = shared_data / "dubai_aerial"
    rows = bench.main(["--quick", "--data", str(data), "--work", str(tmp_path),
                       "--only", "real+syn filter on", "syn only filter off"])  # fmt: skip
    assert set(rows) == {"real", "real+syn filter on", "syn only filter off"}
    for runs in rows.values():
        assert len(runs) == 1 and 0.0 <= runs[0]["map50"] <= 1.0
        assert 0.0 <= runs[0]["map"] <= runs[0]["map50"]
    coco = tmp_path / "syn-exemplar" / "t2p2" / "coco" / "train.json"
    assert coco.is_file() and (coco.parent.parent / "report.json").is_file()
    real, syn = rows["real"][0]["chips"], rows["syn only filter off"][0]["chips"]
    assert real <= rows["real+syn filter on"][0]["chips"] <= real + syn
