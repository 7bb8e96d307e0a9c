"""Loading a FLUX model folder (or hub id) into components, with clear errors.

Components are loaded one by one (no pipeline object): the backend drives them itself and
moves each to the accelerator only while it is used when offloading is on.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from ...errors import WeightsError, one_line
from .errors import DeviceError, ModelFolderError

# part -> files of which at least one must exist
REQUIRED_PARTS: dict[str, tuple[str, ...]] = {
    "transformer": ("config.json",),
    "vae": ("config.json",),
    "text_encoder": ("config.json",),
    "text_encoder_2": ("config.json",),
    "tokenizer": ("tokenizer.json", "vocab.json", "tokenizer_config.json"),
    "tokenizer_2": ("tokenizer.json", "spiece.model", "tokenizer_config.json"),
    "scheduler": ("scheduler_config.json",),
}


@dataclass
class Components:
    """The FLUX parts the backend uses."""

    transformer: Any
    vae: Any
    text_encoder: Any
    text_encoder_2: Any
    tokenizer: Any
    tokenizer_2: Any
    scheduler_config: dict[str, Any]
    identity: str  # short hash of the configs, for provenance


def missing_parts(folder: Path) -> list[str]:
    """Parts (``transformer/config.json`` ...) a local model folder lacks."""
    missing = []
    for part, files in REQUIRED_PARTS.items():
        if not any((folder / part / f).is_file() for f in files):
            missing.append(f"{part}/{files[0]}")
    return missing


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is a typed error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"--device {device}: no CUDA GPU is available here; use --device cpu (slow) or run "
            "on a machine with a GPU"
        )
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: bfloat16 on a GPU, float32 on the CPU."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    table = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
             "float16": torch.float16, "fp32": torch.float32, "float32": torch.float32}  # fmt: skip
    if dtype not in table:
        raise ModelFolderError(f"--dtype {dtype!r}: choose one of auto, {', '.join(table)}")
    return table[dtype]


def load_components(model: str | Path, dtype: torch.dtype) -> Components:
    """Load every part of a FLUX folder (or hub id); list missing parts before loading."""
    from transformers import AutoTokenizer, CLIPTextModel, T5EncoderModel

    dm: Any = importlib.import_module("diffusers")  # untyped library
    dlog: Any = importlib.import_module("diffusers.utils.logging")
    tlog: Any = importlib.import_module("transformers.utils.logging")

    # loading bars on stderr would break the CLI's JSON-lines progress stream
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()

    src = Path(model)
    local = src.exists()
    if local:
        missing = missing_parts(src)
        if missing:
            raise ModelFolderError(
                f"FLUX model folder '{src}' is missing: {', '.join(missing)} (expected a "
                "diffusers folder such as a download of black-forest-labs/FLUX.1-dev)"
            )
    elif Path(str(model)).is_absolute() or str(model).startswith("."):
        raise ModelFolderError(f"FLUX model folder '{model}' does not exist")
    name = str(model)
    try:
        transformer = dm.FluxTransformer2DModel.from_pretrained(
            name, subfolder="transformer", torch_dtype=dtype
        )
        vae = dm.AutoencoderKL.from_pretrained(name, subfolder="vae", torch_dtype=dtype)
        te = CLIPTextModel.from_pretrained(name, subfolder="text_encoder", dtype=dtype)
        te2 = T5EncoderModel.from_pretrained(name, subfolder="text_encoder_2", dtype=dtype)
        tok = AutoTokenizer.from_pretrained(name, subfolder="tokenizer")
        tok2 = AutoTokenizer.from_pretrained(name, subfolder="tokenizer_2")
        sched = _scheduler_config(src if local else None, name)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise ModelFolderError(
            f"cannot load the FLUX model '{name}' (a file is missing, truncated or corrupt: "
            f"{one_line(exc, 160)})"
        ) from exc
    parts = {"transformer": transformer, "vae": vae, "text_encoder": te, "text_encoder_2": te2}
    for part, m in parts.items():
        m.eval().requires_grad_(False)
        check_module_finite(m, f"FLUX model '{name}' {part}")
    ident = hashlib.sha256(
        json.dumps(
            [dict(transformer.config), dict(vae.config), sched], sort_keys=True, default=str
        ).encode()
    ).hexdigest()[:16]
    return Components(transformer, vae, te, te2, tok, tok2, sched, ident)


def check_module_finite(module: Any, source: str) -> None:
    """Every parameter and float buffer finite: NaN/Inf weights would decode to black tiles."""
    for pname, value in [*module.named_parameters(), *module.named_buffers()]:
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise WeightsError(
                f"{source}: weights '{pname}' contain NaN or Inf values; the file is corrupt "
                "(re-download it)"
            )


def _scheduler_config(folder: Path | None, name: str) -> dict[str, Any]:
    if folder is not None:
        path = folder / "scheduler" / "scheduler_config.json"
        cfg: dict[str, Any] = json.loads(path.read_text())
        return cfg
    dm: Any = importlib.import_module("diffusers")
    return dict(dm.FlowMatchEulerDiscreteScheduler.load_config(name, subfolder="scheduler"))
