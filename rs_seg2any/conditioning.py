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
entity i's text. (The FLUX backend's ``reference`` conditioning uses :func:`sample_ids`
instead, the published Seg2Any checkpoints' rule.)
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


def sample_ids(inst: Tensor, patch: int) -> Tensor:
    """Entity id of one pixel per patch, ``(B, H, W)`` -> ``(B, N)`` (row-major).

    Seg2Any's published ownership rule: entity masks resized to the token grid with
    nearest-exact interpolation, which samples pixel ``(patch*i + patch//2, patch*j +
    patch//2)`` of each patch. A thin line or a tiny entity owns the tokens whose sampled pixel
    it covers (possibly none); used by the FLUX backend's ``reference`` conditioning.
    """
    _b, h, w = inst.shape
    if h % patch or w % patch:
        raise ValueError(f"instance map {h}x{w} is not a multiple of the patch size {patch}")
    c = patch // 2
    return inst[:, c::patch, c::patch].flatten(1).long()


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


def joint_attention_bias(
    token_entity: Tensor,
    entity_valid: Tensor,
    cond_valid: Tensor,
    *,
    gamma: float = 1.0,
    isolation: bool = True,
) -> Tensor:
    """Seg2Any's published mask over ``[caption, texts, image, cond]`` as queries *and* keys.

    ``(B, S, S)`` with ``S = 1 + E + N + K``; condition tokens are queries too (they read the
    image tokens at every step), which is the pattern the Seg2Any LoRA checkpoints were
    trained with. Rules (Seg2Any's ``prepare_attention_mask``, method "hard"):

    - caption <-> caption, caption <-> all image tokens; captions never see condition tokens;
    - entity text ``j`` <-> itself and <-> image tokens of entity ``j``;
    - image <-> image everywhere, image <-> condition with ``log(gamma)`` in both directions,
      condition <-> condition; condition tokens never see text;
    - with ``isolation``: an entity's image token sees only its own entity's image tokens and
      its own text (not the caption); a background token sees the caption and every image
      token. Entities without a valid text count as background.

    Invalid condition tokens and entity texts see only themselves; nobody sees them.
    """
    b, n = token_entity.shape
    e = entity_valid.shape[1]
    k = cond_valid.shape[1]
    s = 1 + e + n + k
    dev = token_entity.device
    ent = torch.arange(1, e + 1, device=dev)
    owner_ok = torch.gather(
        torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=dev), entity_valid], 1),
        1, token_entity.clamp(0, e),
    ) & (token_entity <= e)  # fmt: skip
    owner = torch.where(owner_ok, token_entity, torch.zeros_like(token_entity))  # 0: background
    fg = owner > 0
    txt_img = owner[:, None, :] == ent[None, :, None]  # (B, E, N)
    if isolation:
        img_img = (owner[:, :, None] == owner[:, None, :]) | ~fg[:, :, None]
        img_cap = ~fg
    else:
        img_img = torch.ones(b, n, n, dtype=torch.bool, device=dev)
        img_cap = torch.ones(b, n, dtype=torch.bool, device=dev)
    allowed = torch.zeros(b, s, s, dtype=torch.bool, device=dev)
    i0, c0 = 1 + e, 1 + e + n
    allowed[:, 0, 0] = True
    allowed[:, 0, i0:c0] = True
    allowed[:, 1:i0, i0:c0] = txt_img
    allowed[:, i0:c0, 0] = img_cap
    allowed[:, i0:c0, 1:i0] = txt_img.transpose(1, 2)
    allowed[:, i0:c0, i0:c0] = img_img
    pair = cond_valid[:, :, None] & cond_valid[:, None, :]
    allowed[:, c0:, c0:] = pair
    allowed[:, i0:c0, c0:] = cond_valid[:, None, :].expand(b, n, k)
    allowed[:, c0:, i0:c0] = cond_valid[:, :, None].expand(b, k, n)
    allowed |= torch.eye(s, dtype=torch.bool, device=dev)[None]
    bias = torch.zeros(b, s, s, device=dev).masked_fill(~allowed, NEG_INF)
    g = gamma_bias(gamma)
    bias[:, i0:c0, c0:] += g
    bias[:, c0:, i0:c0] += g
    return bias
