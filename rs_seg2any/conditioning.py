"""Seg2Any conditioning at token resolution: attention masks, shape strength, token filtering.

Backend-agnostic (pure torch, no model code) so the tiny CPU generator and a FLUX backend
build exactly the same masks. Key order of the joint attention used everywhere:

    [global caption (1), entity texts (E), image tokens (N), condition tokens (K)]

Rules (Seg2Any):
- semantic alignment: an image token sees the caption and only the text of its own entity;
- attribute isolation: an image token sees only image tokens of its own entity, so one
  entity's description cannot leak into another entity's pixels;
- shape strength ``gamma``: ``log(gamma)`` is added to image->condition logits, so
  ``gamma == 0`` removes the shape condition exactly and ``gamma > 1`` strengthens it;
- condition-token filtering: contour patches with no contour pixel carry no information and
  are dropped before attention (the saving is ``kept / total``).

A token belongs to the entity that covers most of its patch (ties: the smaller id), which
makes isolation exact at token level: pixels of a token owned by entity j never depend on
entity i's text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

NEG_INF = float("-inf")


def patchify_ids(inst: Tensor, patch: int) -> Tensor:
    """Per-patch majority entity id of an instance map ``(B, H, W)`` -> ``(B, N)`` (row-major).

    Majority (not "any pixel") membership gives every token exactly one owner, which is what
    makes attribute isolation exact instead of leaking through boundary tokens.
    """
    _b, h, w = inst.shape
    if h % patch or w % patch:
        raise ValueError(f"instance map {h}x{w} is not a multiple of the patch size {patch}")
    cols = F.unfold(inst[:, None].double(), kernel_size=patch, stride=patch)  # (B, p*p, N)
    return torch.mode(cols.long(), dim=1).values


def condition_keep(contours: Tensor, patch: int) -> Tensor:
    """Which contour patches are non-empty: ``(B, H, W)`` -> bool ``(B, N)``."""
    pooled = F.max_pool2d(contours[:, None].float(), kernel_size=patch, stride=patch)
    return pooled.flatten(1) > 0


@dataclass(frozen=True)
class FilteredTokens:
    """Condition tokens kept after filtering, padded to the batch maximum."""

    index: Tensor  # (B, K) long: patch index of each kept token (0 where padded)
    valid: Tensor  # (B, K) bool: False on padding
    kept: int  # number of real tokens kept over the batch
    total: int  # number of condition patches before filtering

    @property
    def ratio(self) -> float:
        """Kept fraction; the attention saving is ``1 - ratio`` of the condition keys."""
        return self.kept / max(self.total, 1)


def filter_condition_tokens(keep: Tensor) -> FilteredTokens:
    """Indices of kept condition patches, left-packed and padded (at least one slot)."""
    b, n = keep.shape
    counts = keep.sum(1)
    k = max(int(counts.max().item()) if b else 0, 1)
    # stable sort puts kept patches first, in raster order
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :k]
    valid = torch.arange(k, device=keep.device)[None, :] < counts[:, None]
    index = torch.where(valid, order, torch.zeros_like(order))
    return FilteredTokens(index=index, valid=valid, kept=int(counts.sum()), total=b * n)


def gamma_bias(gamma: float) -> float:
    """Additive logit bias of image->condition attention for shape strength ``gamma >= 0``."""
    if gamma < 0:
        raise ValueError(f"shape strength gamma must be >= 0, got {gamma}")
    return NEG_INF if gamma == 0 else math.log(gamma)


def image_attention_bias(
    token_entity: Tensor,
    entity_valid: Tensor,
    cond_valid: Tensor,
    *,
    gamma: float = 1.0,
    isolation: bool = True,
) -> Tensor:
    """Additive bias for image-token queries over all keys: ``(B, N, 1 + E + N + K)``.

    ``token_entity`` (B, N): owner entity of each image token, ``1..E`` (0 = no entity);
    text slot ``j`` describes entity ``j + 1``. ``entity_valid`` (B, E) marks real texts,
    ``cond_valid`` (B, K) the condition tokens that survived filtering (and were not dropped).
    Masked pairs get ``-inf`` so their softmax weight is exactly zero; every row keeps at least
    its own token, so no row is fully masked.
    """
    b, n = token_entity.shape
    e = entity_valid.shape[1]
    dev = token_entity.device
    ones = torch.ones(b, n, 1, dtype=torch.bool, device=dev)
    slot = torch.arange(1, e + 1, device=dev)
    sem = (token_entity[:, :, None] == slot[None, None, :]) & entity_valid[:, None, :]
    if isolation:
        img = token_entity[:, :, None] == token_entity[:, None, :]
    else:
        img = torch.ones(b, n, n, dtype=torch.bool, device=dev)
    allowed = torch.cat([ones, sem, img], dim=2)
    bias = torch.zeros(allowed.shape, dtype=torch.float32, device=dev)
    bias = bias.masked_fill(~allowed, NEG_INF)
    cond = torch.full((b, n, cond_valid.shape[1]), gamma_bias(gamma), device=dev)
    cond = cond.masked_fill(~cond_valid[:, None, :], NEG_INF)
    return torch.cat([bias, cond], dim=2)


def context_attention_bias(entity_valid: Tensor, cond_valid: Tensor) -> Tensor:
    """Bias for the context tokens ``[caption, texts, cond]`` among themselves.

    Texts see only themselves (no description mixes with another); condition tokens see
    the other valid condition tokens (shape context), never text. Padded condition tokens see
    only themselves so no row is empty. Shape ``(B, 1 + E + K, 1 + E + K)``.
    """
    b, e = entity_valid.shape
    k = cond_valid.shape[1]
    t = 1 + e + k
    dev = entity_valid.device
    eye = torch.eye(t, dtype=torch.bool, device=dev)[None].expand(b, t, t)
    is_cond = torch.zeros(b, t, dtype=torch.bool, device=dev)
    is_cond[:, 1 + e :] = cond_valid
    allowed = eye | (is_cond[:, :, None] & is_cond[:, None, :])
    bias = torch.zeros(b, t, t, device=dev)
    return bias.masked_fill(~allowed, NEG_INF)


def attention_weights(q: Tensor, k: Tensor, bias: Tensor) -> Tensor:
    """Reference softmax attention weights (for tests and inspection)."""
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias
    return torch.softmax(logits, dim=-1)
