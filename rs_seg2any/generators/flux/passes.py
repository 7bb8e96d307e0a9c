"""The two kinds of transformer pass, shared by the backend and the benchmark.

- condition pass: contour tokens alone at timestep 0 (one tile at a time, so filtered
  tokens need no padding inside the pass); every block's keys/values are cached;
- denoising step: diffusers' own forward, the processors appending the cached condition
  keys/values and applying the Seg2Any biases;
- exact Seg2Any (``joint_state``): no condition pass; the condition tokens run through every
  block of every step as a third stream (see ``attention.JointState``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor

from .attention import CondPass, JointState, StepState
from .masks import JointLayout, cond_bias, joint_bias, step_bias

Cache = dict[str, tuple[Tensor, Tensor]]


def condition_pass(
    transformer: Any,
    tokens: Tensor,
    keep: Tensor,
    ids: Tensor,
    pooled: Tensor,
    guidance: Tensor | None,
    *,
    filtered: bool,
    dtype: torch.dtype,
) -> tuple[Cache, Tensor]:
    """Cached condition keys/values per block ``(B, K, H, D)`` and their validity ``(B, K)``.

    ``filtered`` drops empty tokens; otherwise all are kept and masked, which is equivalent
    (tested) but costs attention over every condition patch.
    """
    dev = tokens.device
    b, n, _ = tokens.shape
    per: list[Cache] = []
    valids: list[Tensor] = []
    for i in range(b):
        if filtered:
            idx = keep[i].nonzero().flatten()
            bias, valid = None, torch.ones(len(idx), dtype=torch.bool, device=dev)
        else:
            idx = torch.arange(n, device=dev)
            bias, valid = cond_bias(keep[i : i + 1], dtype), keep[i]
        valids.append(valid)
        if len(idx) == 0:
            per.append({})
            continue
        state = CondPass(bias)
        transformer(
            hidden_states=tokens[i : i + 1, idx].to(dtype),
            encoder_hidden_states=torch.zeros(
                1, 0, transformer.config.joint_attention_dim, device=dev, dtype=dtype
            ),
            pooled_projections=pooled[i : i + 1],
            timestep=torch.zeros(1, device=dev, dtype=dtype),
            guidance=None if guidance is None else guidance[i : i + 1],
            img_ids=ids[idx], txt_ids=torch.zeros(0, 3, device=dev),
            joint_attention_kwargs={"seg2any": state}, return_dict=False,
        )  # fmt: skip
        per.append(state.cache)
    k_max = max(max(len(v) for v in valids), 1)
    cond_valid = torch.zeros(b, k_max, dtype=torch.bool, device=dev)
    for i, v in enumerate(valids):
        cond_valid[i, : len(v)] = v
    return _stack(per, b, k_max), cond_valid


def _stack(per: list[Cache], b: int, k_max: int) -> Cache:
    """Per-tile caches right-padded with zeros to ``k_max`` tokens (padding is masked)."""
    ref = next((c for c in per if c), None)
    if ref is None:
        return {}
    cache: Cache = {}
    for blk, (k0, _v0) in ref.items():
        kk = k0.new_zeros((b, k_max, *k0.shape[2:]))
        vv = k0.new_zeros((b, k_max, *k0.shape[2:]))
        for i, c in enumerate(per):
            if c:
                kk[i, : c[blk][0].shape[1]] = c[blk][0][0]
                vv[i, : c[blk][1].shape[1]] = c[blk][1][0]
        cache[blk] = (kk, vv)
    return cache


def step_state(
    layout: JointLayout,
    cache: Cache,
    *,
    gamma: float,
    isolation: range,
    use_condition: bool,
    dtype: torch.dtype,
    text_reads_image: bool = False,
) -> StepState:
    """Biases are built once per tile batch and reused at every step."""

    def bias(isolation: bool) -> Tensor:
        return step_bias(layout, gamma=gamma, isolation=isolation, dtype=dtype,
                         text_reads_image=text_reads_image)  # fmt: skip

    return StepState(
        cache=cache,
        bias_isolated=bias(True),
        bias_shared=bias(False),
        isolation_blocks=isolation,
        use_condition=use_condition,
    )


def joint_state(
    transformer: Any,
    layout: JointLayout,
    tokens: Tensor | None,
    ids: Tensor | None,
    pooled: Tensor,
    guidance: Tensor | None,
    *,
    gamma: float,
    isolation: range,
    scope: Callable[[Any], AbstractContextManager[None]],
    dtype: torch.dtype,
) -> JointState:
    """Exact Seg2Any state: condition tokens ``(B, K, C)`` with ids ``(B, K, 3)`` (or none).

    The embedded tokens, their timestep-0 embedding (same pooled text and guidance as the
    image tokens) and rotary tables do not depend on the step, so they are built once.
    """

    def bias(iso: bool) -> Tensor:
        return joint_bias(layout, gamma=gamma, isolation=iso, dtype=dtype)

    hidden = temb = rope = None
    if tokens is not None and ids is not None and tokens.shape[1] > 0:
        with scope(transformer.x_embedder):
            hidden = transformer.x_embedder(tokens.to(dtype))
        t0 = torch.zeros(tokens.shape[0], device=tokens.device, dtype=dtype)
        pooled = pooled.to(dtype)
        if guidance is None:
            temb = transformer.time_text_embed(t0, pooled)
        else:
            temb = transformer.time_text_embed(t0, guidance.to(dtype) * 1000, pooled)
        tables = [transformer.pos_embed(i) for i in ids]
        rope = (torch.stack([c for c, _ in tables]), torch.stack([s for _, s in tables]))
    return JointState(
        hidden0=hidden, temb=temb, rope=rope, bias_isolated=bias(True), bias_shared=bias(False),
        isolation_blocks=isolation, scope=scope,
    )  # fmt: skip


def denoise(
    transformer: Any,
    x: Tensor,
    t: Tensor,
    text: Tensor,
    pooled: Tensor,
    guidance: Tensor | None,
    img_ids: Tensor,
    txt_ids: Tensor,
    state: StepState | JointState | None,
) -> Tensor:
    """One velocity prediction; ``state=None`` is the plain diffusers FLUX forward."""
    if isinstance(state, JointState):
        state.reset()
    out = transformer(
        hidden_states=x, encoder_hidden_states=text, pooled_projections=pooled, timestep=t,
        guidance=guidance, img_ids=img_ids, txt_ids=txt_ids,
        joint_attention_kwargs=None if state is None else {"seg2any": state}, return_dict=False,
    )  # fmt: skip
    return out[0]  # type: ignore[no-any-return]
