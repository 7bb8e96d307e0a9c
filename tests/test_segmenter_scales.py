"""Multi-scale test-time averaging of the segmenter: ``scales=(1.0,)`` is the plain pass
exactly, several scales average the probabilities of independent passes, the choice travels
with the weights (and is fit together with the class offsets), and bad scales are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rs_seg2any.errors import InputError
from rs_seg2any.quality import segmenter as seg
from rs_seg2any.train.dubai import PALETTE, load_pairs
from rs_seg2any.train.segmenter import (
    SegConfig,
    TinyUNet,
    calibrate_segmenter,
    iou_scores,
    load_segmenter,
    log_probs,
    predict,
    save_segmenter,
    segmenter_metadata,
)

BIAS = (0.3, -0.2, 0.1, 0.0, -0.4)


def _net(**cfg: object) -> TinyUNet:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    return TinyUNet(SegConfig(width=8, depth=2, input_scale=0.5, **cfg)).eval()  # type: ignore[arg-type]


def _image(h: int = 45, w: int = 58, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3))
    img = np.kron(blocks, np.ones((8, 8, 1)))[:h, :w] + rng.normal(0, 10, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _plain_probs(model: TinyUNet, img: np.ndarray) -> torch.Tensor:
    """One pass of the net on the whole image padded by reflection: the pre-scales path."""
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    m = model.multiple
    x = F.pad(x, (0, (-x.shape[3]) % m, 0, (-x.shape[2]) % m), mode="reflect")
    with torch.no_grad():
        return torch.softmax(model(x), dim=1)[0, :, : img.shape[0], : img.shape[1]]


def test_scale_one_is_the_plain_pass_bit_for_bit() -> None:
    model = _net(class_bias=BIAS)
    img = _image()
    ref = _plain_probs(model, img)
    want = (torch.log(ref.clamp_min(1e-12)) + torch.tensor(BIAS)[:, None, None]).argmax(0)
    got = predict(model, img, flips=False, scales=(1.0,))
    assert np.array_equal(got, want.numpy().astype(np.uint8) + 1)
    assert np.array_equal(
        log_probs(model, img, flips=False, scales=(1.0,)),
        torch.log(ref.clamp_min(1e-12)).numpy(),
    )
    assert np.array_equal(predict(model, img, flips=False), got)  # (1.0,) is the default


def test_several_scales_average_the_probabilities_of_single_scale_passes() -> None:
    model = _net()
    img = _image(61, 50, seed=1)
    singles = {s: np.exp(log_probs(model, img, flips=True, scales=(s,))) for s in (0.5, 1.0, 1.5)}
    both = np.exp(log_probs(model, img, flips=True, scales=(0.5, 1.0, 1.5)))
    assert both.shape == (5, 61, 50)
    np.testing.assert_allclose(both, (singles[0.5] + singles[1.0] + singles[1.5]) / 3, atol=1e-5)
    np.testing.assert_allclose(both.sum(0), 1.0, atol=1e-5)
    # each scale is its own view of the image, not the plain pass again
    assert np.abs(singles[0.5] - singles[1.0]).max() > 1e-3
    assert np.abs(singles[1.5] - singles[1.0]).max() > 1e-3
    pred = predict(model, img, scales=(0.5, 1.0, 1.5))
    assert pred.shape == (61, 50) and set(np.unique(pred)) <= {1, 2, 3, 4, 5}
    # windowed like the plain pass: a window smaller than the image gives the same sizes
    assert predict(model, img, window=32, margin=8, scales=(0.75, 1.25)).shape == (61, 50)


def test_the_weights_carry_their_scales_and_the_api_can_override_them(tmp_path: Path) -> None:
    model = _net(scales=(0.75, 1.0, 1.25))
    path = save_segmenter(model, tmp_path / "ms.safetensors", half=True)
    assert json.loads(segmenter_metadata(path)["config"])["scales"] == [0.75, 1.0, 1.25]
    back = seg.load(path)
    assert back.cfg.scales == (0.75, 1.0, 1.25)
    img = _image(40, 40, seed=2)
    own = log_probs(back, img)
    np.testing.assert_array_equal(own, log_probs(back, img, scales=(0.75, 1.0, 1.25)))
    assert np.abs(own - log_probs(back, img, scales=[1.0])).max() > 1e-3  # type: ignore[arg-type]
    assert np.array_equal(seg.segment(img, back, scales=[1.0]), predict(back, img, scales=(1.0,)))
    # a file written before scales existed reads as the single plain pass
    old = json.loads(segmenter_metadata(path)["config"])
    del old["scales"]
    from safetensors.torch import load_file, save_file

    legacy = tmp_path / "legacy.safetensors"
    meta = {"format": "rs_seg2any.segmenter/1", "config": json.dumps(old)}
    save_file(load_file(str(path)), str(legacy), metadata=meta)
    assert load_segmenter(legacy).cfg.scales == (1.0,)


@pytest.mark.parametrize("bad", [(), (0.0,), (-1.0, 1.0), (1.0, 9.0), ("x",), 1.0])
def test_bad_scales_are_refused(bad: object) -> None:
    with pytest.raises(InputError, match="scales"):
        seg.segment(_image(16, 16), _net(), scales=bad)  # type: ignore[arg-type]


def test_calibration_fits_the_offsets_for_the_chosen_scales(tmp_path: Path) -> None:
    """The offsets are fit on the multi-scale probabilities and stored with the scales."""
    from PIL import Image

    colour = {cid: rgb for rgb, cid in PALETTE.items()}
    rng = np.random.default_rng(3)
    lab = np.kron(rng.integers(1, 6, (6, 6)), np.ones((12, 12), int)).astype(np.uint8)
    for sub in ("images", "masks"):
        (tmp_path / "tile_2" / sub).mkdir(parents=True)
    Image.fromarray(_image(72, 72, seed=3)).save(tmp_path / "tile_2/images/a.jpg")
    mask = np.array([colour[int(c)] for c in lab.ravel()], np.uint8).reshape(72, 72, 3)
    Image.fromarray(mask).save(tmp_path / "tile_2/masks/a.png")
    plain = save_segmenter(_net(), tmp_path / "plain.safetensors")
    rep = calibrate_segmenter(plain, tmp_path, tmp_path / "ms.safetensors", scales=(0.5, 1.0))
    meta = segmenter_metadata(tmp_path / "ms.safetensors")
    assert meta["scales_chosen_on"] == "tile_2"
    cal = load_segmenter(tmp_path / "ms.safetensors")
    assert cal.cfg.scales == (0.5, 1.0) and cal.cfg.class_bias == tuple(rep["class_bias"])  # type: ignore[arg-type]
    pair = load_pairs(tmp_path, [2])[0]
    got = iou_scores([predict(cal, pair.image)], [pair.classes])["miou"]
    assert got == pytest.approx(rep["val_miou_after"])


SHIPPED_SCALES = (0.75, 1.0, 1.25, 1.5)


def test_shipped_weights_average_four_scales_by_default_and_keep_the_fast_pass(
    shared_data: Path,
) -> None:
    """The shipped file's default is 4 scales x 4 flips (chosen on tile_2, with offsets fit
    for it); ``scales=(1.0,), flips=False`` is one plain pass of the same net, bit for bit."""
    meta = segmenter_metadata(seg.DEFAULT_WEIGHTS)
    cfg = json.loads(meta["config"])
    assert tuple(cfg["scales"]) == SHIPPED_SCALES and cfg["flips"] is True
    assert meta["scales_chosen_on"] == "tile_2" and meta["class_bias_fit_on"] == "tile_2"
    net = seg.load_default_segmenter()
    pair = load_pairs(shared_data / "dubai_aerial", [2])[4]
    img, lab = pair.image[:512, :512], pair.classes[:512, :512]
    ref = _plain_probs(net, img)
    bias = torch.tensor(net.cfg.class_bias)[:, None, None]
    want = (torch.log(ref.clamp_min(1e-12)) + bias).argmax(0).numpy().astype(np.uint8) + 1
    fast = seg.segment(img, flips=False, scales=(1.0,))
    assert np.array_equal(fast, want)
    full = seg.segment(img)
    assert full.shape == img.shape[:2] and set(np.unique(full)) <= {1, 2, 3, 4, 5}
    assert np.array_equal(full, seg.segment(img, net, flips=True, scales=SHIPPED_SCALES))
    assert (full != fast).mean() > 0.005  # the averaging changes decisions
    got = {k: float(iou_scores([v], [lab])["miou"]) for k, v in (("full", full), ("fast", fast))}  # type: ignore[arg-type]
    assert got["full"] > max(got["fast"], 0.40)  # 0.570 vs 0.533 on this crop
