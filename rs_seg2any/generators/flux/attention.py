"""A FLUX attention processor that adds Seg2Any's masks and cached condition tokens.

Installed with ``transformer.set_attn_processor``; the diffusers transformer and its blocks
run unchanged. Without the ``seg2any`` keyword it computes exactly what diffusers' own FLUX
processor computes, so a plain forward is unaffected. With it, it either

- records keys/values of the condition tokens (the *condition pass*: contour tokens alone,
  timestep 0, condition LoRA), or
- appends those cached keys/values to every block's joint attention and applies the
  Seg2Any bias (the *denoising steps*), with attribute isolation on a block range, or
- (exact Seg2Any, :class:`JointState`) carries the condition tokens as a third stream
  through every block at every step: condition tokens are queries too and read the image
  tokens, with their own timestep-0 modulation and the condition LoRA, exactly the pattern
  the published Seg2Any checkpoints were trained with. The processor runs the condition
  stream through its block's own modules (norms, feed-forward) around the joint attention.

The attention itself goes through diffusers' ``dispatch_attention_fn``, so the attention
backend chosen with ``transformer.set_attention_backend`` is respected.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
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


@dataclass
class JointState:
    """Exact Seg2Any: condition tokens join every block's attention as queries and keys.

    ``hidden0`` are the embedded condition tokens (``None``: no condition), ``temb`` their
    timestep-0 embedding, ``rope`` their per-tile rotary tables ``(B, K, d)``; ``scope``
    makes a module run the condition LoRA. ``hidden`` is the condition stream while a
    forward runs; :meth:`reset` starts a new step.
    """

    hidden0: Tensor | None
    temb: Tensor | None
    rope: tuple[Tensor, Tensor] | None
    bias_isolated: Tensor
    bias_shared: Tensor
    isolation_blocks: range
    scope: Callable[[Any], AbstractContextManager[None]]
    hidden: Tensor | None = None
    _isolated: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self._isolated = frozenset(block_key(i) for i in self.isolation_blocks)
        self.reset()

    def reset(self) -> None:
        self.hidden = self.hidden0

    def bias(self, key: str) -> Tensor:
        return self.bias_isolated if key in self._isolated else self.bias_shared


Seg2AnyState = CondPass | StepState | JointState


class Seg2AnyAttnProcessor:
    """Joint attention of ``[text, image]`` (+ cached condition tokens) with Seg2Any masks."""

    _attention_backend: Any = None
    _parallel_config: Any = None

    def __init__(self, block: int, module: Any = None) -> None:
        self.key = block_key(block)  # global index: double blocks first, then single blocks
        self.module = module  # the transformer block (needed by the exact Seg2Any mode)

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
        if isinstance(seg2any, JointState):
            out = self._joint(attn, seg2any, q, k, v, double=_is_double(attn))
        else:
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
            out = self._attend(q, k, v, mask)
        if encoder_hidden_states is None or attn.added_kv_proj_dim is None:
            return out
        ctx, img = out[:, :n_ctx], out[:, n_ctx:]
        img = attn.to_out[1](attn.to_out[0](img.contiguous()))
        return img, attn.to_add_out(ctx.contiguous())

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        out = dispatch_attention_fn(
            q, k, v, attn_mask=mask, backend=self._attention_backend,
            parallel_config=self._parallel_config,
        )  # fmt: skip
        return out.flatten(2, 3).to(q.dtype)  # type: ignore[no-any-return]

    def _joint(
        self, attn: Any, st: JointState, q: Tensor, k: Tensor, v: Tensor, *, double: bool
    ) -> Tensor:
        """Attention of ``[text, image, cond]``; advances the condition stream one block.

        Returns the ``[text, image]`` rows; the condition rows go through the rest of this
        block (output projection, gates, feed-forward) with the condition LoRA.
        """
        n = q.shape[1]
        mask = st.bias(self.key)
        blk, c = self.module, st.hidden
        if c is None or blk is None or st.rope is None:
            return self._attend(q, k, v, mask[..., :n, :n])
        with st.scope(blk):
            if double:
                nc, g_msa, shift, scale, g_mlp = blk.norm1(c, emb=st.temb)
            else:
                nc, gate = blk.norm(c, emb=st.temb)
                mlp = blk.act_mlp(blk.proj_mlp(nc))
            cq, ck, cv = _qkv(attn, nc)
        cq, ck = _rope_rows(cq, st.rope), _rope_rows(ck, st.rope)
        out = self._attend(
            torch.cat([q, cq], 1), torch.cat([k, ck], 1), torch.cat([v, cv], 1), mask
        )
        co = out[:, n:]
        with st.scope(blk):
            if double:
                co = attn.to_out[1](attn.to_out[0](co.contiguous()))
                c = c + g_msa[:, None] * co
                nc = blk.norm2(c) * (1 + scale[:, None]) + shift[:, None]
                c = c + g_mlp[:, None] * blk.ff(nc)
            else:
                c = c + gate[:, None] * blk.proj_out(torch.cat([co, mlp], dim=2))
        st.hidden = c
        return out[:, :n]


def _is_double(attn: Any) -> bool:
    return attn.added_kv_proj_dim is not None


def _qkv(attn: Any, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    hd = attn.head_dim
    q = attn.norm_q(attn.to_q(x).unflatten(-1, (-1, hd)))
    k = attn.norm_k(attn.to_k(x).unflatten(-1, (-1, hd)))
    return q, k, attn.to_v(x).unflatten(-1, (-1, hd))


def _rope_rows(x: Tensor, rope: tuple[Tensor, Tensor]) -> Tensor:
    """Rotary embedding with one table per batch row (filtered tokens differ per tile)."""
    cos, sin = rope
    rows: list[Tensor] = []
    for i in range(x.shape[0]):
        table: Any = (cos[i], sin[i])
        row: Any = apply_rotary_emb(x[i : i + 1], table, sequence_dim=1)
        rows.append(row)
    return torch.cat(rows)


def install_processors(transformer: Any) -> int:
    """Give every block of ``transformer`` a Seg2Any processor; returns the block count."""
    procs: dict[str, Seg2AnyAttnProcessor] = {}
    index = 0
    for prefix in ("transformer_blocks", "single_transformer_blocks"):
        for i, block in enumerate(getattr(transformer, prefix)):
            procs[f"{prefix}.{i}.attn.processor"] = Seg2AnyAttnProcessor(index, block)
            index += 1
    transformer.set_attn_processor(procs)
    return index
