"""Saving and loading tiny-model weights as safetensors, with the configs in the metadata.

A latent model ships its autoencoder in the same file (tensors prefixed ``ae.``), so one
file is always a complete generator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from rs_seg2any.atomic import atomic_output
from rs_seg2any.digest import file_sha256
from rs_seg2any.errors import WeightsError
from rs_seg2any.generators.integrity import (
    MAX_ABS_WEIGHT,
    check_state,
    check_tensors,
    read_tensors,
    tensors_digest,
)
from rs_seg2any.generators.tiny.autoencoder import AEConfig, TinyAE
from rs_seg2any.generators.tiny.model import TinyConfig, TinySeg2Any

AE_PREFIX = "ae."
M = TypeVar("M", bound=nn.Module)


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
    meta[DIGEST_KEY] = tensors_digest(tensors)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


SHIPPED_NAME = "tiny_base.safetensors"
SHIPPED_SHA256 = "aee543691520c42e94d08bc958f55d419ecd74b2c6671b2dd31dde27752fb9e1"
"""sha256 of the shipped ``weights/tiny_base.safetensors``: verified whenever it (or a copy
with its exact header) is loaded, so corrupted bytes fail at load instead of rendering black.
Update it together with the file when new weights are shipped (tests check it)."""

DIGEST_KEY = "tensors_sha256"


def _metadata(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise WeightsError(f"weights not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(
            f"weights file {path} is not a readable safetensors file (truncated, corrupt or "
            "of another format); re-download or re-train it"
        ) from exc


def _config(meta: dict[str, str], key: str, path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(meta[key])
    except (json.JSONDecodeError, TypeError) as exc:
        raise WeightsError(f"{path}: the '{key}' metadata is not valid JSON; corrupt file") from exc
    if not isinstance(raw, dict):
        raise WeightsError(f"{path}: the '{key}' metadata is not a JSON object; corrupt file")
    return raw


def read_config(path: Path) -> TinyConfig:
    meta = _metadata(path)
    if "config" not in meta:
        raise WeightsError(f"{path} is not a rs_seg2any tiny-model weight file (no config)")
    try:
        return TinyConfig.from_dict(_config(meta, "config", path))
    except TypeError as exc:
        raise WeightsError(f"{path}: invalid model config in its metadata ({exc})") from exc


def _header(path: Path) -> bytes:
    """The safetensors header (names, dtypes, shapes, offsets, metadata) of a file."""
    with path.open("rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        return fh.read(min(size, 1 << 24))


def shipped_path() -> Path:
    return Path(__file__).parent / "weights" / SHIPPED_NAME


def verify_digest(path: Path, meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> None:
    """Corrupted tensor bytes fail here: the shipped file (or a copy with its header) must
    match ``SHIPPED_SHA256``; files written by :func:`save_weights` their stored digest."""
    shipped = shipped_path()
    if path.resolve() == shipped.resolve() or (
        shipped.is_file() and _header(path) == _header(shipped)
    ):
        if file_sha256(path) != SHIPPED_SHA256:
            raise WeightsError(
                f"{path} does not match the sha256 recorded for the shipped {SHIPPED_NAME}: the "
                "file is corrupt; reinstall rs_seg2any (or restore the file)"
            )
        return
    if DIGEST_KEY in meta and tensors_digest(tensors) != meta[DIGEST_KEY]:
        raise WeightsError(
            f"{path}: tensor bytes do not match the digest stored in the file; it is corrupt "
            "(re-download or re-train it)"
        )


def load_checked(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Metadata and tensors of a weights file, verified (digest, dtypes, finiteness)."""
    meta = _metadata(path)
    tensors = read_tensors(path)
    verify_digest(path, meta, tensors)
    check_tensors(tensors, str(path), max_abs=MAX_ABS_WEIGHT)
    return meta, tensors


def _fit(module: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    check_state(module.state_dict(), state, str(path))
    module.load_state_dict(state)


def load_weights(path: Path) -> TinySeg2Any:
    """Model in eval mode, float32 on CPU, from a safetensors file written by save_weights."""
    return _model(path, *load_checked(path))


def load_autoencoder(path: Path) -> TinyAE | None:
    """The autoencoder stored with a latent model (or alone), else None."""
    return _autoencoder(path, *load_checked(path))


def load_generator_parts(path: Path) -> tuple[TinySeg2Any, TinyAE | None]:
    """Model and autoencoder from one verified read of the file."""
    meta, tensors = load_checked(path)
    return _model(path, meta, tensors), _autoencoder(path, meta, tensors)


def _model(path: Path, meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> TinySeg2Any:
    if "config" not in meta:
        raise WeightsError(f"{path} is not a rs_seg2any tiny-model weight file (no config)")
    raw = _config(meta, "config", path)
    model = _build(lambda: TinySeg2Any(TinyConfig.from_dict(raw)), path)
    state = {k: v.float() for k, v in tensors.items() if not k.startswith(AE_PREFIX)}
    _fit(model, state, path)
    return model.eval()


def _autoencoder(
    path: Path, meta: dict[str, str], tensors: dict[str, torch.Tensor]
) -> TinyAE | None:
    if "ae_config" not in meta:
        return None
    raw = _config(meta, "ae_config", path)
    ae = _build(lambda: TinyAE(AEConfig(**raw)), path)
    n = len(AE_PREFIX)
    sd = {k[n:]: v.float() for k, v in tensors.items() if k.startswith(AE_PREFIX)}
    _fit(ae, sd, path)
    return ae.eval().requires_grad_(False)


def _build(make: Callable[[], M], path: Path) -> M:
    """A module from a config read out of a file: a nonsensical config is a WeightsError."""
    try:
        return make()
    except (TypeError, ValueError, RuntimeError, AssertionError, ZeroDivisionError) as exc:
        raise WeightsError(f"{path}: invalid model config in its metadata ({exc})") from exc
