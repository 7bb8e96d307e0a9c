"""Checks that weights are what they claim to be, and that generated pixels are real numbers.

A corrupt weights file must fail at load with one line that names the file, not with a torch
traceback or — worse — by running to the end and writing an all-black image. Safetensors
stores no checksum, so corrupted tensor bytes are caught by (1) a digest of the tensor bytes
that :func:`rs_seg2any.generators.tiny.weights.save_weights` stores in the file's metadata,
(2) the recorded sha256 of the shipped weights, and, for files that carry neither,
(3) finiteness and a magnitude bound on every tensor. Generators refuse non-finite outputs
(:func:`check_finite_output`) as the last line of defence.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import GenerationError, WeightsError, one_line

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
MAX_ABS_WEIGHT = 1e4
"""Trained weights of the embedded model stay below ~2 in magnitude; random or flipped bytes
of a float16/32 file give huge exponents, which this bound catches when no digest exists."""


def read_tensors(path: Path, what: str = "weights") -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file, or a :class:`WeightsError` saying why not."""
    if not path.is_file():
        raise WeightsError(f"{what} not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(
            f"{what} file {path} is not a readable safetensors file (truncated, corrupt or of "
            f"another format: {one_line(exc, 160)}); re-download or re-train it"
        ) from exc


def check_tensors(
    tensors: Mapping[str, torch.Tensor], source: str, *, max_abs: float | None = None
) -> None:
    """Every tensor floating point and finite (and within ``max_abs`` when given)."""
    for name, value in tensors.items():
        if value.dtype not in FLOAT_DTYPES:
            raise WeightsError(
                f"{source}: tensor '{name}' has dtype {str(value.dtype).removeprefix('torch.')}"
                ", expected float16, bfloat16 or float32; the file is not model weights"
            )
        if not bool(torch.isfinite(value).all()):
            raise WeightsError(
                f"{source}: tensor '{name}' contains NaN or Inf values; the file is corrupt "
                "(re-download it) or came from a diverged training run"
            )
        if max_abs is not None and value.numel() and float(value.abs().max()) > max_abs:
            raise WeightsError(
                f"{source}: tensor '{name}' has values beyond {max_abs:g}; the file's bytes "
                "are corrupt (re-download or re-train it)"
            )


def check_state(
    expected: Mapping[str, torch.Tensor], loaded: Mapping[str, torch.Tensor], source: str
) -> None:
    """The loaded tensors are exactly the model's: same names, same shapes."""
    problems = [f"missing '{k}'" for k in expected if k not in loaded]
    problems += [f"unexpected '{k}'" for k in loaded if k not in expected]
    problems += [
        f"'{k}' is {tuple(v.shape)}, expected {tuple(expected[k].shape)}"
        for k, v in loaded.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if problems:
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise WeightsError(
            f"{source} does not fit its model configuration: {'; '.join(problems[:3])}{more}"
            " — the file is corrupt or was written for another model"
        )


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of the tensors (order-independent)."""
    sha = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        sha.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        sha.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return sha.hexdigest()


def check_finite_output(x: torch.Tensor, backend: str) -> None:
    """Refuse NaN/Inf pixels: converted to uint8 they silently become a black image."""
    if not bool(torch.isfinite(x).all()):
        raise GenerationError(
            f"the {backend} generator produced NaN/Inf pixels; its weights are corrupt or "
            "numerically unstable in this dtype (try other weights or --dtype fp32)"
        )
