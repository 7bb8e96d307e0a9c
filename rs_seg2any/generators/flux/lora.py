"""LoRA adapters through peft, in the published Seg2Any checkpoint layout.

A Seg2Any checkpoint folder holds two diffusers-format LoRA files (keys
``transformer.<module>.lora_A.weight`` / ``lora_B.weight``, alpha = rank):

    checkpoint-N/default/pytorch_lora_weights.safetensors   text + noisy-image branch
    checkpoint-N/cond/pytorch_lora_weights.safetensors      condition branch (optional)

A plain LoRA file or folder is an extra text/image-branch adapter (e.g. a remote-sensing or
season LoRA). Condition adapters are active only in the condition pass, the others only in
the denoising steps, which is Seg2Any's per-branch switching done with peft's
``set_adapters`` once per pass instead of once per layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import save_file

from ...atomic import atomic_output
from ...deps import require
from ..base import weights_digest
from ..integrity import check_tensors, read_tensors
from .errors import LoraMismatchError

WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
PEFT_WEIGHTS_NAME = "adapter_model.safetensors"
Role = Literal["image", "cond"]
_PREFIXES = ("transformer.", "base_model.model.")


@dataclass(frozen=True)
class LoraSpec:
    """``PATH[:WEIGHT]`` from the command line."""

    path: Path
    weight: float = 1.0

    @classmethod
    def parse(cls, text: str) -> LoraSpec:
        head, sep, tail = text.rpartition(":")
        if sep and head and not Path(text).exists():
            try:
                return cls(Path(head), float(tail))
            except ValueError:
                pass
        return cls(Path(text))


@dataclass
class Adapters:
    """Loaded adapters with their branch role and weight."""

    roles: dict[str, Role] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def names(self, role: Role) -> list[str]:
        return [n for n, r in self.roles.items() if r == role]

    def activate(self, transformer: Any, role: Role) -> None:
        """Make only the adapters of ``role`` active (no adapter: base weights)."""
        if not self.roles:
            return
        names = self.names(role)
        if not names:
            transformer.disable_lora()
            return
        transformer.enable_lora()
        transformer.set_adapters(names, [self.weights[n] for n in names])

    @contextlib.contextmanager
    def scoped(self, module: Any, role: Role) -> Iterator[None]:
        """Only inside the block: the LoRA layers of ``module`` run the adapters of ``role``.

        Seg2Any's per-token-group switching (condition tokens through the condition LoRA,
        text/image tokens through the others) on the few layers one call uses; adapter
        scales are the ones set by :meth:`activate`.
        """
        from peft.tuners.tuners_utils import BaseTunerLayer

        layers = [m for m in module.modules() if isinstance(m, BaseTunerLayer)]
        if not self.roles or not layers:
            yield
            return
        names = self.names(role)
        saved = [(m, list(m.active_adapters), bool(m.disable_adapters)) for m in layers]
        for m in layers:
            if names:
                m.set_adapter(names, inference_mode=True)
            m._disable_adapters = not names
        try:
            yield
        finally:
            for m, active, disabled in saved:
                m.set_adapter(active, inference_mode=True)
                m._disable_adapters = disabled


def discover(path: Path) -> list[tuple[Path, Role]]:
    """LoRA files under ``path`` and their roles (Seg2Any folder, LoRA folder or file)."""
    if path.is_file():
        return [(path, "image")]
    if not path.is_dir():
        raise LoraMismatchError(f"LoRA '{path}' does not exist")
    found: list[tuple[Path, Role]] = []
    for sub, role in (("default", "image"), ("cond", "cond")):
        if (path / sub / WEIGHTS_NAME).is_file():
            found.append((path / sub / WEIGHTS_NAME, role))  # type: ignore[arg-type]
    if not found and (path / WEIGHTS_NAME).is_file():
        found.append((path / WEIGHTS_NAME, "image"))
    if not found and (path / PEFT_WEIGHTS_NAME).is_file():  # peft's layout (train-lora)
        found.append((path / PEFT_WEIGHTS_NAME, "image"))
    if not found:
        raise LoraMismatchError(
            f"no LoRA weights in '{path}': expected {WEIGHTS_NAME}, or default/{WEIGHTS_NAME} "
            f"(+ cond/{WEIGHTS_NAME}) as in a Seg2Any checkpoint"
        )
    return found


def transformer_state(raw: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Keys relative to the transformer (``<module>.lora_A.weight``)."""
    out = {}
    for key, value in raw.items():
        for p in _PREFIXES:
            if key.startswith(p):
                key = key[len(p) :]
                break
        if ".lora_" in key:
            out[key.replace(".default.", ".")] = value
    if not out:
        raise LoraMismatchError(f"LoRA '{source}' has no transformer LoRA weights (keys: "
                                f"{', '.join(list(raw)[:3])}...)")  # fmt: skip
    return out


def check_fits(transformer: Any, state: dict[str, torch.Tensor], source: str) -> None:
    """Every LoRA pair must target an existing Linear with matching in/out features."""
    modules = dict(transformer.named_modules())
    problems: list[str] = []
    for key, value in state.items():
        if value.ndim != 2:
            problems.append(f"{key} (a {value.ndim}-d tensor, LoRA weights are 2-d)")
            continue
        name, _, kind = key.partition(".lora_")
        mod = modules.get(name)
        base = getattr(mod, "base_layer", mod)
        if not isinstance(base, torch.nn.Linear):
            problems.append(f"{name} (no such linear layer)")
        elif kind.startswith("A.weight") and value.shape[1] != base.in_features:
            problems.append(f"{name} (in {value.shape[1]} != {base.in_features})")
        elif kind.startswith("B.weight") and value.shape[0] != base.out_features:
            problems.append(f"{name} (out {value.shape[0]} != {base.out_features})")
        elif kind.startswith("B.weight"):
            a = state.get(f"{name}.lora_A.weight")
            if a is not None and a.ndim == 2 and a.shape[0] != value.shape[1]:
                problems.append(f"{name} (rank of A {a.shape[0]} != rank of B {value.shape[1]})")
    if problems:
        more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise LoraMismatchError(
            f"LoRA '{source}' does not match this FLUX transformer: {'; '.join(problems[:5])}"
            f"{more} — was it trained for another base model?"
        )


def load_adapters(transformer: Any, specs: list[LoraSpec]) -> Adapters:
    """Load every spec as peft adapters on ``transformer``; checks fit before touching it."""
    if specs:
        require("peft", "flux", user="LoRA adapters")
    adapters = Adapters()
    for i, spec in enumerate(specs):
        for file, role in discover(spec.path):
            state = transformer_state(read_tensors(file, "LoRA"), str(file))
            check_tensors(state, f"LoRA '{file}'")
            check_fits(transformer, state, str(file))
            name = f"lora{i}_{role}"
            prefixed = {f"transformer.{k}": v for k, v in state.items()}
            transformer.load_lora_adapter(prefixed, adapter_name=name, prefix="transformer")
            adapters.roles[name] = role
            adapters.weights[name] = spec.weight
            adapters.sources[name] = {
                "file": file.name,
                "folder": file.parent.name,
                "sha256": weights_digest(file),
                "weight": spec.weight,
                "role": role,
            }
    return adapters


def save_adapters(transformer: Any, folder: Path, names: dict[str, str]) -> Path:
    """Save adapters as ``folder/<subdir>/pytorch_lora_weights.safetensors``.

    ``names`` maps adapter name -> subdir; ``{"x": "default", "y": "cond"}`` writes a
    Seg2Any-layout checkpoint that :func:`load_adapters` (and Seg2Any's own loader) read.
    """
    require("peft", "flux", user="LoRA adapters")
    from peft.utils import get_peft_model_state_dict

    for name, sub in names.items():
        state = get_peft_model_state_dict(transformer, adapter_name=name)
        state = {f"transformer.{k}": v.detach().contiguous().cpu() for k, v in state.items()}
        (folder / sub).mkdir(parents=True, exist_ok=True)
        with atomic_output(folder / sub / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
    return folder
