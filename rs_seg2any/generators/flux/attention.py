"""A FLUX attention processor that adds Seg2Any's masks and cached condition tokens.

Installed with ``transformer.set_attn_processor``; the diffusers transformer and its blocks
run unchanged. Without the ``seg2any`` keyword it computes exactly what diffusers' own FLUX
processor computes, so a plain forward is unaffected. With it, it either

- records keys/values of the condition tokens (the *condition pass*: contour tokens alone,
  timestep 0, condition LoRA), or
- appends those cached keys/values to every block's joint attention and applies the
  Seg2Any bias (the *denoising steps*), with attribute isolation on a block range.

The attention itself goes through diffusers' ``dispatch_attention_fn``, so the attention
backend chosen with ``transformer.set_attention_backend`` is respected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.embeddings import apply_rotary_emb
from torch import Tensor


@dataclass
class CondPass:
    """State of the condition pass: bias among condition tokens and the per-block cache."""

    bias: Tensor | None
    cache: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)


@dataclass
class StepState:
    """State of a denoising step: cached condition keys/values and the two biases."""

    cache: dict[str, tuple[Tensor, Tensor]]
    bias_isolated: Tensor
    bias_shared: Tensor
    isolation_blocks: range
    use_condition: bool = True
    _isolated: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self._isolated = frozenset(block_key(i) for i in self.isolation_blocks)

    def bias(self, key: str) -> Tensor:
        return self.bias_isolated if key in self._isolated else self.bias_shared


def block_key(index: int) -> str:
    """Blocks are named by strings: torch.compile treats them as constants (ints may not be)."""
    return f"block{index}"


Seg2AnyState = CondPass | StepState


class Seg2AnyAttnProcessor:
    """Joint attention of ``[text, image]`` (+ cached condition tokens) with Seg2Any masks."""

    _attention_backend: Any = None
    _parallel_config: Any = None

    def __init__(self, block: int) -> None:
        self.key = block_key(block)  # global index: double blocks first, then single blocks

    def __call__(
        self,
        attn: Any,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        image_rotary_emb: tuple[Tensor, Tensor] | None = None,
        seg2any: Seg2AnyState | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        hd = attn.head_dim
        q = attn.norm_q(attn.to_q(hidden_states).unflatten(-1, (-1, hd)))
        k = attn.norm_k(attn.to_k(hidden_states).unflatten(-1, (-1, hd)))
        v = attn.to_v(hidden_states).unflatten(-1, (-1, hd))
        n_ctx = 0
        if encoder_hidden_states is not None and attn.added_kv_proj_dim is not None:
            n_ctx = encoder_hidden_states.shape[1]
            eq = attn.norm_added_q(attn.add_q_proj(encoder_hidden_states).unflatten(-1, (-1, hd)))
            ek = attn.norm_added_k(attn.add_k_proj(encoder_hidden_states).unflatten(-1, (-1, hd)))
            ev = attn.add_v_proj(encoder_hidden_states).unflatten(-1, (-1, hd))
            q, k, v = torch.cat([eq, q], 1), torch.cat([ek, k], 1), torch.cat([ev, v], 1)
        if image_rotary_emb is not None:
            rope: Any = image_rotary_emb
            q = apply_rotary_emb(q, rope, sequence_dim=1)
            k = apply_rotary_emb(k, rope, sequence_dim=1)
        mask = attention_mask
        if isinstance(seg2any, CondPass):
            seg2any.cache[self.key] = (k, v)
            mask = seg2any.bias
        elif isinstance(seg2any, StepState):
            mask = seg2any.bias(self.key)
            cached = seg2any.cache.get(self.key)
            if seg2any.use_condition and cached is not None:
                k, v = torch.cat([k, cached[0]], 1), torch.cat([v, cached[1]], 1)
            else:
                mask = mask[..., : k.shape[1]]
        out = dispatch_attention_fn(
            q, k, v, attn_mask=mask, backend=self._attention_backend,
            parallel_config=self._parallel_config,
        )  # fmt: skip
        out = out.flatten(2, 3).to(q.dtype)
        if encoder_hidden_states is None or attn.added_kv_proj_dim is None:
            return out
        ctx, img = out[:, :n_ctx], out[:, n_ctx:]
        img = attn.to_out[1](attn.to_out[0](img.contiguous()))
        return img, attn.to_add_out(ctx.contiguous())


def install_processors(transformer: Any) -> int:
    """Give every block of ``transformer`` a Seg2Any processor; returns the block count."""
    procs: dict[str, Seg2AnyAttnProcessor] = {}
    index = 0
    for prefix in ("transformer_blocks", "single_transformer_blocks"):
        for i, _ in enumerate(getattr(transformer, prefix)):
            procs[f"{prefix}.{i}.attn.processor"] = Seg2AnyAttnProcessor(index)
            index += 1
    transformer.set_attn_processor(procs)
    return index
