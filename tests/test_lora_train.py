"""LoRA training mechanics: resume equals uninterrupted, masked pixels have no effect,
early stopping, checkpoints of another run refused (tiny random weights)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from lora_helpers import write_labels, write_mask, write_scene  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from rs_seg2any.errors import JobError  # noqa: E402
from rs_seg2any.lora.data import load_training_data  # noqa: E402
from rs_seg2any.lora.params import LoraTrainParams  # noqa: E402
from rs_seg2any.lora.tiny import TinyLoraTrainer  # noqa: E402
from rs_seg2any.lora.train import train_lora  # noqa: E402
from rs_seg2any.options import LayerOptions  # noqa: E402

torch.set_num_threads(1)
LAYER = LayerOptions(class_field="cls", taxonomy="eolearn_slovenia")
CLOUD = (slice(8, 40), slice(4, 30))  # inside the training (west) area


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scene")
    write_scene(folder)
    write_labels(folder)
    return folder


def params(folder: Path, weights: Path, image: str = "img.tif", **kw: Any) -> LoraTrainParams:
    base: dict[str, Any] = dict(
        images=(str(folder / image),),
        labels=str(folder / "labels.gpkg"),
        model=str(weights),
        max_steps=4,
        val_every=2,
        ckpt_every=1,
        batch=2,
        crop=32,
        segmenter_steps=0,
        lr=5e-3,
    )
    return LoraTrainParams(**{**base, **kw})


def test_resume_ends_with_the_tensors_of_an_uninterrupted_run(
    scene: Path, tiny_random_weights: Path, tmp_path: Path
) -> None:
    import rs_seg2any as rs
    from rs_seg2any.cli import main

    # uninterrupted: a job file (``command: train-lora``) run by the CLI
    p = params(scene, tiny_random_weights)
    job = tmp_path / "job.yaml"
    job.write_text(
        "command: train-lora\n"
        f"images: [{p.images[0]}]\nlabels: {p.labels}\nclass_field: cls\n"
        f"taxonomy: eolearn_slovenia\nmodel: {p.model}\nmax_steps: 4\nval_every: 2\n"
        f"ckpt_every: 1\nbatch: 2\ncrop: 32\nsegmenter_steps: 0\nlr: 0.005\n"
        f"out: {tmp_path / 'straight'}\nprogress: none\n"
    )
    assert main(["run", str(job)]) == 0
    # interrupted after 2 steps, then resumed to 4 (through the API verb)
    train_lora(params(scene, tiny_random_weights, max_steps=2), LAYER, tmp_path / "resumed")
    kw = {k: v for k, v in vars(p).items() if k != "images"}
    res = rs.train_lora(tmp_path / "resumed", images=list(p.images), class_field="cls",
                        taxonomy="eolearn_slovenia", **kw)  # fmt: skip
    a = load_file(str(tmp_path / "straight" / "adapter_model.safetensors"))
    b = load_file(str(res.outputs["adapter"]))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    m1 = json.loads((tmp_path / "straight" / "metrics.json").read_text())["metrics"]
    m2 = json.loads((tmp_path / "resumed" / "metrics.json").read_text())["metrics"]
    assert m1["val_loss_after"] == m2["val_loss_after"]
    assert any(float(v.abs().max()) > 0 for k, v in a.items() if "lora_B" in k)  # it trained
    with pytest.raises(JobError, match="checkpoint of another LoRA run"):
        train_lora(params(scene, tiny_random_weights, rank=4), LAYER, tmp_path / "resumed")


def _loss_and_grads(folder: Path, weights: Path, image: str) -> tuple[Any, list[Any]]:
    p = params(folder, weights, image, ignore_mask=(str(folder / "clouds.tif"),), val_fraction=0.5)
    data = load_training_data(p, LAYER, multiple=8)
    tr = TinyLoraTrainer(p, data, folder / "unused")
    for prm in tr.model.parameters():  # every weight: gradients reach the whole model
        prm.requires_grad_(True)
    loss, total = tr.losses(0)
    total.backward()
    return loss.detach(), [prm.grad.clone() for prm in tr.model.parameters()]


def test_masked_pixels_have_no_effect_on_loss_or_gradients(
    tiny_random_weights: Path, tmp_path: Path
) -> None:
    write_labels(tmp_path)
    write_mask(tmp_path, CLOUD)
    write_scene(tmp_path, name="a.tif", under_mask=250, mask=CLOUD)
    write_scene(tmp_path, name="b.tif", under_mask=7, mask=CLOUD)  # other cloud pixels
    write_scene(tmp_path, name="c.tif", under_mask=250, mask=(slice(40, 50), slice(4, 30)))
    loss_a, grads_a = _loss_and_grads(tmp_path, tiny_random_weights, "a.tif")
    loss_b, grads_b = _loss_and_grads(tmp_path, tiny_random_weights, "b.tif")
    assert torch.equal(loss_a, loss_b)
    assert all(torch.equal(x, y) for x, y in zip(grads_a, grads_b, strict=True))
    # the control: the same change to pixels that are NOT masked does change the loss
    loss_c, _ = _loss_and_grads(tmp_path, tiny_random_weights, "c.tif")
    assert not torch.equal(loss_a, loss_c)


def test_early_stopping_keeps_the_best_validation(
    scene: Path, tiny_random_weights: Path, tmp_path: Path
) -> None:
    # a learning rate far too high: validation worsens, patience 1 stops the run
    res = train_lora(
        params(scene, tiny_random_weights, lr=0.9, max_steps=40, val_every=1, patience=1),
        LAYER,
        tmp_path / "es",
    )
    tr = res.trainer
    assert tr.hist.stopped_early and tr.hist.step < 40
    assert res.metrics["val_loss_after"] == min(v for _, v in tr.hist.val)
