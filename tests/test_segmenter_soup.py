"""Weight averaging of segmenter files (rs_seg2any.train.soup): the soup is the element-wise
(weighted) mean, files of another architecture or with other tensors are refused with a typed
error, BatchNorm statistics are recomputed as a plain mean over training batches, and the
written file loads and predicts (also through ``python -m rs_seg2any.train segmenter-soup``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from rs_seg2any.errors import InputError, SegmenterMismatchError, WeightsError
from rs_seg2any.train.__main__ import main as train_main
from rs_seg2any.train.dubai import PALETTE
from rs_seg2any.train.segmenter import (
    SegConfig,
    TinyUNet,
    load_segmenter,
    predict,
    save_segmenter,
    segmenter_metadata,
)
from rs_seg2any.train.soup import average_weights, recompute_bn, soup_segmenters


def _file(tmp: Path, name: str, seed: int, **cfg: object) -> Path:
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    fields: dict[str, object] = {"width": 8, "depth": 2, "input_scale": 0.5, **cfg}
    net = TinyUNet(SegConfig(**fields))  # type: ignore[arg-type]
    return save_segmenter(net, tmp / name, {"steps": str(seed)})


def _image(size: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_soup_of_two_nets_is_the_elementwise_mean_and_predicts(tmp_path: Path) -> None:
    a = _file(tmp_path, "a.safetensors", 1, class_bias=(1.0, 0, 0, 0, -1.0), flips=True)
    b = _file(tmp_path, "b.safetensors", 2)
    sa, sb = load_file(str(a)), load_file(str(b))
    out = soup_segmenters([a, b], tmp_path / "soup.safetensors")
    got = load_file(str(out))
    assert got.keys() == sa.keys()
    for k, v in got.items():
        assert torch.allclose(v, (sa[k] + sb[k]) / 2, atol=1e-6), k
    assert not torch.allclose(got["head.weight"], sa["head.weight"])
    weighted = load_file(str(soup_segmenters([a, b], tmp_path / "w.safetensors", weights=[1, 3])))
    assert torch.allclose(
        weighted["head.weight"], 0.25 * sa["head.weight"] + 0.75 * sb["head.weight"]
    )
    meta = segmenter_metadata(out)
    assert json.loads(meta["soup_members"]) == ["a.safetensors", "b.safetensors"]
    assert json.loads(meta["soup_weights"]) == [0.5, 0.5] and meta["soup_bn"] == "averaged"
    soup = load_segmenter(out)  # the first member's offsets / flips do not carry over
    assert soup.cfg.class_bias == () and soup.cfg.flips is False and soup.cfg.width == 8
    ref = TinyUNet(soup.cfg).eval()
    ref.load_state_dict({k: (sa[k] + sb[k]) / 2 for k in sa})
    img = _image()
    pred = predict(soup, img)
    assert pred.shape == img.shape[:2] and set(np.unique(pred)) <= {1, 2, 3, 4, 5}
    assert np.array_equal(pred, predict(ref, img))


def test_files_that_do_not_fit_together_are_refused(tmp_path: Path) -> None:
    a = _file(tmp_path, "a.safetensors", 1)
    wide = _file(tmp_path, "wide.safetensors", 2, width=16)
    with pytest.raises(SegmenterMismatchError, match="width"):
        average_weights([a, wide])
    lite = _file(tmp_path, "lite.safetensors", 3, arch="lite0", width=8, depth=3)
    with pytest.raises(SegmenterMismatchError, match="arch"):
        average_weights([a, lite])
    state = load_file(str(a))  # same config, one tensor missing
    state.pop("head.bias")
    cut = tmp_path / "cut.safetensors"
    meta = segmenter_metadata(a)
    save_file(state, str(cut), metadata=meta)
    with pytest.raises(WeightsError):
        average_weights([a, cut])
    assert issubclass(SegmenterMismatchError, WeightsError)
    out = tmp_path / "never.safetensors"
    with pytest.raises(InputError, match="at least 2"):
        soup_segmenters([a], out)
    with pytest.raises(InputError, match="non-negative"):
        soup_segmenters([a, a], out, weights=[1.0, -1.0])
    with pytest.raises(InputError, match="bn must be"):
        soup_segmenters([a, a], out, bn="median")
    with pytest.raises(InputError, match="root"):
        soup_segmenters([a, a], out, bn="recompute")
    with pytest.raises(SegmenterMismatchError):
        soup_segmenters([a, wide], out)
    assert not out.exists()


def _fake_dubai(root: Path, tile: int, size: int = 64) -> Path:
    colour = {cid: rgb for rgb, cid in PALETTE.items()}
    rng = np.random.default_rng(tile)
    lab = np.kron(rng.integers(1, 6, (size // 16, size // 16)), np.ones((16, 16), int))
    for sub in ("images", "masks"):
        (root / f"tile_{tile}" / sub).mkdir(parents=True)
    Image.fromarray(_image(size, tile)).save(
        root / f"tile_{tile}" / "images" / "image_part_001.jpg"
    )
    mask = np.array([colour[int(c)] for c in lab.ravel()], np.uint8).reshape(size, size, 3)
    Image.fromarray(mask).save(root / f"tile_{tile}" / "masks" / "image_part_001.png")
    return root


def test_recomputed_batchnorm_statistics_are_the_mean_over_training_batches(
    tmp_path: Path,
) -> None:
    root = _fake_dubai(tmp_path / "data", 1)
    a = _file(tmp_path, "a.safetensors", 1, arch="lite0", depth=3)
    b = _file(tmp_path, "b.safetensors", 2, arch="lite0", depth=3)
    net, mean = average_weights([a, b])
    bn = next(m for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    seen: list[torch.Tensor] = []
    bn.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0].detach().mean(dim=(0, 2, 3))))
    assert recompute_bn(net, root, [1], batches=3, seed=0) > 10
    assert len(seen) == 3 and not net.training
    assert torch.allclose(bn.running_mean, torch.stack(seen).mean(0), atol=1e-5)
    assert not torch.allclose(bn.running_mean, mean["body.encoder._bn0.running_mean"])
    assert recompute_bn(load_segmenter(_file(tmp_path, "u.safetensors", 4)), root, [1]) == 0
    out = tmp_path / "cli.safetensors"
    argv = ["segmenter-soup", str(a), str(b), "--out", str(out), "--bn", "recompute",
            "--root", str(root), "--tiles", "1", "--batches", "2", "--mix", "1,1"]  # fmt: skip
    assert train_main(argv) == 0
    assert "recomputed on tiles 1: 2 training batches" in segmenter_metadata(out)["soup_bn"]
    pred = predict(load_segmenter(out), _image(64))
    assert pred.shape == (64, 64) and pred.min() >= 1 and pred.max() <= 5
