"""``train-lora --backend flux`` on CPU with a tiny random FLUX: trains, prints a memory
estimate, saves a peft adapter the flux backend loads with ``--lora`` (and changes output)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("diffusers")

from lora_helpers import write_labels, write_scene  # noqa: E402

from rs_seg2any.errors import InputError  # noqa: E402
from rs_seg2any.generators.base import TileCondition  # noqa: E402
from rs_seg2any.generators.flux import FluxBackend, FluxSettings  # noqa: E402
from rs_seg2any.generators.flux.testing import build_tiny_flux  # noqa: E402
from rs_seg2any.lora.params import LoraTrainParams  # noqa: E402
from rs_seg2any.lora.train import train_lora  # noqa: E402
from rs_seg2any.options import LayerOptions  # noqa: E402

torch.set_num_threads(1)
LAYER = LayerOptions(class_field="cls", taxonomy="eolearn_slovenia")
SETTINGS = FluxSettings(caption_tokens=12, regional_tokens=6, attention="cached")


class Messages:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def stage(self, name: str, total: int | None = None) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def close(self) -> None: ...

    def message(self, text: str, **fields: Any) -> None:
        self.lines.append(text)


def test_flux_lora_trains_on_cpu_and_loads_back(tmp_path: Path) -> None:
    flux = build_tiny_flux(tmp_path / "flux")
    write_scene(tmp_path, size=32)
    write_labels(tmp_path, size=32)
    p = LoraTrainParams(
        images=(str(tmp_path / "img.tif"),),
        labels=str(tmp_path / "labels.gpkg"),
        backend="flux",
        model=str(flux),
        max_steps=2,
        val_every=1,
        batch=2,
        crop=16,
        val_fraction=0.5,
        segmenter_steps=0,
        rank=4,
        alpha=8,
        lr=5e-2,
    )
    log = Messages()
    res = train_lora(p, LAYER, tmp_path / "adapter", progress=log)
    assert any(line.startswith("memory estimate:") for line in log.lines)
    card = json.loads((res.out_dir / "adapter_card.json").read_text())
    assert card["backend"] == "flux" and card["alpha_trained"] == 8
    assert res.metrics["val_loss_after"] <= res.metrics["val_loss_before"]
    inst = np.ones((16, 16), np.int64)
    inst[:, 8:] = 2
    tile = TileCondition(instances=inst, descriptions=["forest", "red roof"], caption="aerial")
    run = dict(steps=2, guidance=3.5, gamma=1.0, seeds=[3])
    base = FluxBackend(flux, device="cpu", settings=SETTINGS).sample_latents([tile], **run)
    lora = FluxBackend(flux, device="cpu", settings=SETTINGS, lora=[str(res.out_dir)])
    out = lora.sample_latents([tile], **run)
    assert not torch.equal(base, out)
    # the trained model in memory and the loaded adapter give the same latents
    mem = res.trainer.be
    mem.settings = SETTINGS
    torch.testing.assert_close(mem.sample_latents([tile], **run), out, rtol=1e-4, atol=1e-5)


def test_flux_refuses_multispectral_training(tmp_path: Path) -> None:
    flux = build_tiny_flux(tmp_path / "flux")
    write_scene(tmp_path, size=32, bands=4)
    write_labels(tmp_path, size=32)
    p = LoraTrainParams(
        images=(str(tmp_path / "img.tif"),),
        labels=str(tmp_path / "labels.gpkg"),
        backend="flux",
        model=str(flux),
        max_steps=1,
        crop=16,
        val_fraction=0.5,
    )
    with pytest.raises(InputError, match="flux backend adapts RGB imagery"):
        train_lora(p, LAYER, tmp_path / "adapter")
