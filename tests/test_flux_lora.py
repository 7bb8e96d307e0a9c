"""Seg2Any's two LoRA adapters through peft: layout on disk, branch switching, round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from safetensors.torch import load_file, save_file  # noqa: E402

from rs_seg2any.generators.base import TileCondition  # noqa: E402
from rs_seg2any.generators.flux import FluxBackend, FluxSettings  # noqa: E402
from rs_seg2any.generators.flux.errors import LoraMismatchError  # noqa: E402
from rs_seg2any.generators.flux.lora import LoraSpec, save_adapters  # noqa: E402
from rs_seg2any.generators.flux.testing import build_tiny_flux  # noqa: E402

torch.set_num_threads(1)
SETTINGS = FluxSettings(caption_tokens=12, regional_tokens=6, attention="seg2any")
RUN: dict[str, Any] = dict(steps=2, guidance=3.5, gamma=1.0, seeds=[11])
# Seg2Any's target modules: every linear of the blocks for the text/image branch; the
# image-side layers (and x_embedder) for the condition branch
COND_TARGETS = (
    r"(x_embedder|transformer_blocks\.\d+\.(norm1\.linear|attn\.to_[qkv]|attn\.to_out\.0"
    r"|ff\.net\.0\.proj|ff\.net\.2)|single_transformer_blocks\.\d+\.(norm\.linear|proj_mlp"
    r"|proj_out|attn\.to_[qkv]))"
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_flux(tmp_path_factory.mktemp("flux") / "tiny")


def tile() -> TileCondition:
    inst = np.zeros((32, 32), np.int64)
    inst[:16, 8:] = 1
    inst[20:, :10] = 2
    return TileCondition(instances=inst, descriptions=["red roof", "forest"], caption="aerial")


def add_random_adapters(be: FluxBackend, with_cond: bool = True) -> None:
    """Adapters with random (non-zero) A and B, so each one changes the output."""
    from peft import LoraConfig

    tr = be.c.transformer
    torch.manual_seed(0)
    in_blocks = [n for n, m in tr.named_modules()
                 if "transformer_blocks." in n and isinstance(m, torch.nn.Linear)]  # fmt: skip
    targets: dict[str, Any] = {
        "default": in_blocks,
        **({"cond": COND_TARGETS} if with_cond else {}),
    }
    for name, regex in targets.items():
        cfg = LoraConfig(r=4, lora_alpha=4, target_modules=regex, init_lora_weights=False)
        tr.add_adapter(cfg, adapter_name=name)
        be.adapters.roles[name] = "image" if name == "default" else "cond"
        be.adapters.weights[name] = 1.0


def sample(be: FluxBackend) -> Any:
    return be.sample_latents([tile()], **RUN)


@pytest.mark.filterwarnings("ignore:Already found a `peft_config`:UserWarning")
def test_lora_save_load_round_trip_is_identical(folder: Path, tmp_path: Path) -> None:
    be = FluxBackend(folder, device="cpu", settings=SETTINGS)
    base = sample(be)
    add_random_adapters(be)
    ref = sample(be)
    ckpt = save_adapters(be.c.transformer, tmp_path / "checkpoint-1",
                         {"default": "default", "cond": "cond"})  # fmt: skip
    keys = load_file(str(ckpt / "default" / "pytorch_lora_weights.safetensors"))
    assert "transformer.transformer_blocks.0.attn.add_q_proj.lora_A.weight" in keys
    cond_keys = load_file(str(ckpt / "cond" / "pytorch_lora_weights.safetensors"))
    assert "transformer.x_embedder.lora_B.weight" in cond_keys
    assert not any("add_q_proj" in k for k in cond_keys)

    loaded = FluxBackend(folder, device="cpu", settings=SETTINGS, lora=[str(ckpt)])
    assert sorted(loaded.adapters.roles.items()) == [("lora0_cond", "cond"),
                                                     ("lora0_image", "image")]  # fmt: skip
    torch.testing.assert_close(sample(loaded), ref, rtol=0, atol=0)
    assert (ref - base).abs().max() > 1e-3
    # Seg2Any writes its checkpoints with diffusers' FluxPipeline.save_lora_weights: the same
    # keys, and loading such a checkpoint gives the same model
    from diffusers import FluxPipeline
    from peft.utils import get_peft_model_state_dict

    theirs = tmp_path / "written-by-diffusers"
    for name in ("default", "cond"):
        state = get_peft_model_state_dict(be.c.transformer, adapter_name=name)
        FluxPipeline.save_lora_weights(theirs / name, transformer_lora_layers=state)
        assert set(load_file(str(theirs / name / "pytorch_lora_weights.safetensors"))) == set(
            load_file(str(ckpt / name / "pytorch_lora_weights.safetensors"))
        )
    again = FluxBackend(folder, device="cpu", settings=SETTINGS, lora=[str(theirs)])
    torch.testing.assert_close(sample(again), ref, rtol=0, atol=0)
    loaded.adapters.activate(loaded.c.transformer, "cond")
    assert loaded.c.transformer.active_adapters() == ["lora0_cond"]

    # the condition adapter matters (it is active in the condition pass) ...
    only_default = FluxBackend(folder, device="cpu", settings=SETTINGS,
                               lora=[str(ckpt / "default")])  # fmt: skip
    assert (sample(only_default) - ref).abs().max() > 1e-4
    # ... and a weight scales the adapters: 0 is the base model
    zero = FluxBackend(folder, device="cpu", settings=SETTINGS, lora=[f"{ckpt}:0"])
    torch.testing.assert_close(sample(zero), base, rtol=1e-5, atol=1e-5)
    assert zero.describe()["loras"][0]["weight"] == 0.0


def test_lora_that_does_not_fit_is_a_typed_error(folder: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    save_file({
        "transformer.transformer_blocks.0.attn.to_q.lora_A.weight": torch.zeros(4, 99),
        "transformer.transformer_blocks.0.attn.to_q.lora_B.weight": torch.zeros(32, 4),
        "transformer.transformer_blocks.9.attn.to_q.lora_A.weight": torch.zeros(4, 32),
    }, str(bad))  # fmt: skip
    with pytest.raises(LoraMismatchError, match=r"to_q \(in 99 != 32\).*9\.attn\.to_q \(no such"):
        FluxBackend(folder, device="cpu", lora=[str(bad)])
    with pytest.raises(LoraMismatchError, match="no LoRA weights"):
        FluxBackend(folder, device="cpu", lora=[str(tmp_path)])


def test_lora_spec_parsing() -> None:
    assert LoraSpec.parse("a/b.safetensors:0.5") == LoraSpec(Path("a/b.safetensors"), 0.5)
    assert LoraSpec.parse("ckpt/checkpoint-20000") == LoraSpec(Path("ckpt/checkpoint-20000"))
