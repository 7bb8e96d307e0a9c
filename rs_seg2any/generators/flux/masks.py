"""Token-level joint attention biases for FLUX, assembled from ``rs_seg2any.conditioning``.

The conditioning module works on *slots* (one per caption, per entity text, per image token,
per condition token). FLUX sees many text tokens per caption, so slot biases are expanded to
tokens here by gathering with a token -> slot map; padding tokens get slot ``-1``: nobody
attends to them and they attend only to themselves (a finite row keeps softmax NaN-free).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ...conditioning import (
    NEG_INF,
    context_attention_bias,
    image_attention_bias,
    joint_attention_bias,
)


@dataclass(frozen=True)
class JointLayout:
    """Token layout of one batch: text tokens (slot per token), image owners, valid conds."""

    text_slots: Tensor  # (B, L) long: 0 = caption, j = entity j, -1 = padding
    token_entity: Tensor  # (B, N) long: owner entity of each image token (0 = none)
    entity_valid: Tensor  # (B, E) bool
    cond_valid: Tensor  # (B, K) bool


def step_bias(
    layout: JointLayout,
    *,
    gamma: float,
    isolation: bool,
    dtype: torch.dtype,
    text_reads_image: bool = False,
) -> Tensor:
    """Bias of queries ``[text, image]`` over keys ``[text, image, cond]``: ``(B, 1, Lq, Lk)``.

    Condition tokens are never queries during denoising: they see only each other, so their
    keys and values are computed once per tile and reused at every step.
    ``text_reads_image`` lets the caption read every image token and an entity text read its
    own entity's tokens, as Seg2Any's published mask does (the caption then links entities).
    """
    b, n = layout.token_entity.shape
    e = layout.entity_valid.shape[1]
    k = layout.cond_valid.shape[1]
    img = image_attention_bias(
        layout.token_entity, layout.entity_valid, layout.cond_valid,
        gamma=gamma, isolation=isolation,
    )  # fmt: skip  # (B, N, 1+E+N+K)
    ctx = context_attention_bias(layout.entity_valid, layout.cond_valid)  # (B, 1+E+K, 1+E+K)
    ctx_rows = torch.cat(
        [
            ctx[:, : 1 + e, : 1 + e],
            _text_to_image(layout, text_reads_image),
            ctx[:, : 1 + e, 1 + e :],
        ],
        dim=2,
    )
    slots = torch.cat([ctx_rows, img], dim=1)  # rows: 1+E+N, cols: 1+E+N+K
    text = layout.text_slots
    offs = torch.arange(n, device=text.device)[None].expand(b, n) + 1 + e
    row_idx = torch.cat([text.clamp(min=0), offs], dim=1)
    cond_idx = torch.arange(k, device=text.device)[None].expand(b, k) + 1 + e + n
    col_idx = torch.cat([row_idx, cond_idx], dim=1)
    rows = torch.gather(slots, 1, row_idx[:, :, None].expand(-1, -1, slots.shape[2]))
    full = torch.gather(rows, 2, col_idx[:, None, :].expand(-1, rows.shape[1], -1))
    full = _mask_padding(full, text < 0)
    return full.to(dtype)[:, None]


def _text_to_image(layout: JointLayout, allowed: bool) -> Tensor:
    """Bias of caption/entity-text slots over image tokens ``(B, 1 + E, N)``."""
    b, n = layout.token_entity.shape
    e = layout.entity_valid.shape[1]
    dev = layout.token_entity.device
    if not allowed:
        return torch.full((b, 1 + e, n), NEG_INF, device=dev)
    slot = torch.arange(1 + e, device=dev)[None, :, None]
    own = (layout.token_entity[:, None, :] == slot) | (slot == 0)
    return torch.zeros(b, 1 + e, n, device=dev).masked_fill(~own, NEG_INF)


def _mask_padding(bias: Tensor, pad: Tensor) -> Tensor:
    """Padding text tokens: columns masked, rows see only themselves."""
    b, lt = pad.shape
    lq, lk = bias.shape[1], bias.shape[2]
    col_pad = torch.zeros(b, lk, dtype=torch.bool, device=bias.device)
    col_pad[:, :lt] = pad
    row_pad = torch.zeros(b, lq, dtype=torch.bool, device=bias.device)
    row_pad[:, :lt] = pad
    bias = bias.masked_fill(col_pad[:, None, :] | row_pad[:, :, None], NEG_INF)
    diag = torch.arange(lt, device=bias.device)
    own = bias[:, diag, diag]
    bias[:, diag, diag] = torch.where(pad, torch.zeros_like(own), own)
    return bias


def cond_bias(cond_valid: Tensor, dtype: torch.dtype) -> Tensor | None:
    """Condition-to-condition bias ``(B, 1, K, K)``, or None when every token is valid."""
    if bool(cond_valid.all()):
        return None
    empty = torch.zeros(cond_valid.shape[0], 0, dtype=torch.bool, device=cond_valid.device)
    return context_attention_bias(empty, cond_valid)[:, 1:, 1:].to(dtype)[:, None]


def joint_bias(layout: JointLayout, *, gamma: float, isolation: bool, dtype: torch.dtype) -> Tensor:
    """Exact Seg2Any bias over ``[text, image, cond]`` queries and keys: ``(B, 1, S, S)``.

    Built from :func:`rs_seg2any.conditioning.joint_attention_bias` (slot level) expanded to
    text tokens; padding text tokens are masked as in :func:`step_bias`.
    """
    b, n = layout.token_entity.shape
    e = layout.entity_valid.shape[1]
    k = layout.cond_valid.shape[1]
    slots = joint_attention_bias(
        layout.token_entity, layout.entity_valid, layout.cond_valid,
        gamma=gamma, isolation=isolation,
    )  # fmt: skip
    text = layout.text_slots
    dev = text.device
    img_idx = torch.arange(n, device=dev)[None].expand(b, n) + 1 + e
    cond_idx = torch.arange(k, device=dev)[None].expand(b, k) + 1 + e + n
    idx = torch.cat([text.clamp(min=0), img_idx, cond_idx], dim=1)
    rows = torch.gather(slots, 1, idx[:, :, None].expand(-1, -1, slots.shape[2]))
    full = torch.gather(rows, 2, idx[:, None, :].expand(-1, rows.shape[1], -1))
    full = _mask_padding(full, text < 0)
    return full.to(dtype)[:, None]
