"""Saving and loading tiny-model weights as safetensors, with the configs in the metadata.

A latent model ships its autoencoder in the same file (tensors prefixed ``ae.``), so one
file is always a complete generator.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from rs_seg2any.errors import InputError
from rs_seg2any.generators.tiny.autoencoder import AEConfig, TinyAE
from rs_seg2any.generators.tiny.model import TinyConfig, TinySeg2Any

AE_PREFIX = "ae."


def save_weights(
    model: TinySeg2Any | None,
    path: Path,
    dtype: torch.dtype = torch.float32,
    extra: dict[str, str] | None = None,
    ae: TinyAE | None = None,
) -> None:
    """Atomic safetensors write; half precision halves the shipped size at no visible cost."""
    tensors: dict[str, torch.Tensor] = {}
    meta = {"format": "rs_seg2any.tiny/1"}
    if model is not None:
        sd = model.state_dict()
        tensors.update({k: v.detach().to(dtype).contiguous() for k, v in sd.items()})
        meta["config"] = json.dumps(model.cfg.to_dict())
    if ae is not None:
        ae_sd = ae.state_dict()
        tensors.update({AE_PREFIX + k: v.detach().to(dtype).contiguous() for k, v in ae_sd.items()})
        meta["ae_config"] = json.dumps(ae.cfg.to_dict())
    meta.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def _metadata(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise InputError(f"weights not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def read_config(path: Path) -> TinyConfig:
    meta = _metadata(path)
    if "config" not in meta:
        raise InputError(f"{path} is not a rs_seg2any tiny-model weight file (no config)")
    return TinyConfig.from_dict(json.loads(meta["config"]))


def load_weights(path: Path) -> TinySeg2Any:
    """Model in eval mode, float32 on CPU, from a safetensors file written by save_weights."""
    model = TinySeg2Any(read_config(path))
    state = {k: v.float() for k, v in load_file(str(path)).items() if not k.startswith(AE_PREFIX)}
    model.load_state_dict(state)
    return model.eval()


def load_autoencoder(path: Path) -> TinyAE | None:
    """The autoencoder stored with a latent model (or alone), else None."""
    meta = _metadata(path)
    if "ae_config" not in meta:
        return None
    ae = TinyAE(AEConfig(**json.loads(meta["ae_config"])))
    n = len(AE_PREFIX)
    sd = {k[n:]: v.float() for k, v in load_file(str(path)).items() if k.startswith(AE_PREFIX)}
    ae.load_state_dict(sd)
    return ae.eval().requires_grad_(False)
