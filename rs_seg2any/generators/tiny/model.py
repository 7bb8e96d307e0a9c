"""The tiny Seg2Any-style network: a pixel-space flow transformer with a static context stream.

Image tokens are ``patch x patch`` RGB patches (JiT-style bottleneck embedding). The context
- global caption, one text token per entity (sentence embeddings), and the non-empty contour
patches - is encoded once per tile and does not depend on the timestep or on the noisy
image, so its per-layer keys/values are computed once and reused by every sampling step and
by both classifier-free-guidance branches. Only image tokens are updated per step, which is
what makes a few-second CPU tile possible. All Seg2Any masking lives in
``rs_seg2any.conditioning``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rs_seg2any.conditioning import (
    FilteredTokens,
    condition_keep,
    context_attention_bias,
    filter_condition_tokens,
    image_attention_bias,
    patchify_ids,
)
from rs_seg2any.generators.tiny.refiner import Refiner, neighbour_mask


@dataclass(frozen=True)
class TinyConfig:
    """Architecture hyper-parameters (stored next to the weights)."""

    patch: int = 16
    channels: int = 3
    width: int = 256
    depth: int = 8
    heads: int = 4
    ctx_depth: int = 2
    mlp_ratio: float = 4.0
    bottleneck: int = 128
    text_dim: int = 384
    isolation: bool = True
    prediction: str = "x"  # "x": predict the clean image (JiT); "v": predict the velocity
    downsample: int = 1  # >1: the model works on autoencoder latents this much smaller
    token_text: bool = False  # also add each token's own entity text to its embedding
    refine: int = 0  # >0: width of the entity-masked conv refiner after the head (0 = none)
    refine_blocks: int = 2

    @property
    def cond_patch(self) -> int:
        """Pixel size of one token (condition maps stay at pixel resolution)."""
        return self.patch * self.downsample

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TinyConfig:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Condition:
    """One batch of Seg2Any conditions at pixel resolution."""

    instances: Tensor  # (B, H, W) long: entity id 1..E per pixel, 0 = none
    contours: Tensor  # (B, H, W) float 0/1 entity outlines
    texts: Tensor  # (B, E, text_dim): embedding of entity j+1's description
    text_valid: Tensor  # (B, E) bool
    caption: Tensor  # (B, text_dim) global caption embedding
    drop_text: Tensor | None = None  # (B,) bool: replace all text by the null embedding
    drop_cond: Tensor | None = None  # (B,) bool: remove all condition tokens


@dataclass
class RefineContext:
    """Per-position conditioning of the refiner, at the model's resolution."""

    text_map: Tensor  # (B, refine, h, w): the owning entity's projected description
    contours: Tensor  # (B, downsample**2, h, w): the contour patch under each position
    mask: Tensor  # (B, 1, 9, h*w): same-owner 3x3 neighbours


@dataclass
class Context:
    """Encoded, step-independent conditioning of a batch (reused across steps and CFG)."""

    tokens: Tensor  # (B, 1 + E + K, width)
    token_entity: Tensor  # (B, N)
    text_valid: Tensor  # (B, E)
    cond_valid: Tensor  # (B, K)
    own_text: Tensor | None  # (B, N, width): each image token's own entity text, or None
    grid: tuple[int, int]
    filtered: FilteredTokens
    refine: RefineContext | None = None
    kv: list[tuple[Tensor, Tensor]] = field(default_factory=list)


def sincos_2d(gh: int, gw: int, dim: int, offset: tuple[int, int] = (0, 0)) -> Tensor:
    """2-D sin-cos position embedding ``(gh * gw, dim)``; offsets let crops see far positions."""
    quarter = dim // 4
    freq = torch.exp(-math.log(10000.0) * torch.arange(quarter) / quarter)
    ys = torch.arange(gh, dtype=torch.float32) + offset[0]
    xs = torch.arange(gw, dtype=torch.float32) + offset[1]
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    ay = yy.reshape(-1, 1) * freq[None]
    ax = xx.reshape(-1, 1) * freq[None]
    return torch.cat([ay.sin(), ay.cos(), ax.sin(), ax.cos()], dim=1)


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of ``t`` in [0, 1]."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    arg = 1000.0 * t[:, None].float() * freq[None]
    return torch.cat([arg.cos(), arg.sin()], dim=1)


def patchify(x: Tensor, p: int) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, N, C * p * p)`` in raster order."""
    return F.unfold(x, kernel_size=p, stride=p).transpose(1, 2)


def unpatchify(tokens: Tensor, p: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`patchify`."""
    return F.fold(tokens.transpose(1, 2), output_size=(h, w), kernel_size=p, stride=p)


class Attention(nn.Module):
    """Multi-head attention with QK-RMSNorm and optional extra keys/values."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.q_norm = nn.RMSNorm(width // heads)
        self.k_norm = nn.RMSNorm(width // heads)
        self.out = nn.Linear(width, width)

    def split(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    def context_kv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Keys/values of tokens that are not queried (the cached context)."""
        _, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.k_norm(self.split(k)), self.split(v)

    def forward(
        self, x: Tensor, bias: Tensor, extra: tuple[Tensor, Tensor] | None = None, split: int = 0
    ) -> Tensor:
        """``extra`` keys are inserted so that key order is extra[:split], x, extra[split:]."""
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = self.q_norm(self.split(q)), self.k_norm(self.split(k)), self.split(v)
        if extra is not None:
            ek, ev = extra
            k = torch.cat([ek[:, :, :split], k, ek[:, :, split:]], dim=2)
            v = torch.cat([ev[:, :, :split], v, ev[:, :, split:]], dim=2)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[:, None].to(q.dtype))
        b, h, n, dh = o.shape
        out: Tensor = self.out(o.transpose(1, 2).reshape(b, n, h * dh))
        return out


class Mlp(nn.Sequential):
    def __init__(self, width: int, ratio: float) -> None:
        hidden = int(width * ratio)
        super().__init__(
            nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width)
        )


class ContextBlock(nn.Module):
    """Pre-norm transformer block for the (timestep-free) context stream."""

    def __init__(self, width: int, heads: int, ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = Mlp(width, ratio)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x), bias)
        y: Tensor = x + self.mlp(self.norm2(x))
        return y


class ImageBlock(nn.Module):
    """adaLN-single block: image tokens attend to themselves and to the cached context."""

    def __init__(self, width: int, heads: int, ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False)
        self.mlp = Mlp(width, ratio)
        self.ctx_norm = nn.LayerNorm(width)
        self.mod = nn.Parameter(torch.zeros(6, width))

    def context_kv(self, ctx: Tensor) -> tuple[Tensor, Tensor]:
        return self.attn.context_kv(self.ctx_norm(ctx))

    def forward(
        self, x: Tensor, tmod: Tensor, bias: Tensor, kv: tuple[Tensor, Tensor], split: int
    ) -> Tensor:
        sh1, sc1, g1, sh2, sc2, g2 = (tmod + self.mod[None]).unbind(1)
        h = self.norm1(x) * (1 + sc1[:, None]) + sh1[:, None]
        x = x + g1[:, None] * self.attn(h, bias, kv, split)
        h = self.norm2(x) * (1 + sc2[:, None]) + sh2[:, None]
        y: Tensor = x + g2[:, None] * self.mlp(h)
        return y


class TinySeg2Any(nn.Module):
    """Conditional flow model: ``forward(z_t, t, context) -> x_hat`` (or ``v_hat``)."""

    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, p, c = cfg.width, cfg.patch, cfg.channels
        self.embed = nn.Sequential(
            nn.Linear(c * p * p, cfg.bottleneck, bias=False), nn.Linear(cfg.bottleneck, d)
        )
        self.t_mlp = nn.Sequential(nn.Linear(256, d), nn.SiLU(), nn.Linear(d, d))
        self.t_mod = nn.Linear(d, 6 * d)
        self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.null_text = nn.Parameter(torch.zeros(d))
        self.cond_embed = nn.Linear(cfg.cond_patch**2, d)
        self.own_text = nn.Linear(d, d) if cfg.token_text else None
        self.type_embed = nn.Parameter(torch.zeros(3, d))  # caption, entity text, contour
        self.ctx_blocks = nn.ModuleList(
            [ContextBlock(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.ctx_depth)]
        )
        self.ctx_out = nn.LayerNorm(d)
        self.blocks = nn.ModuleList(
            [ImageBlock(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth)]
        )
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False)
        self.final_mod = nn.Linear(d, 2 * d)
        self.head = nn.Linear(d, c * p * p)
        self._init()
        self.refiner = (
            Refiner(c, cfg.refine, cfg.refine_blocks, d, cfg.downsample**2, d)
            if cfg.refine
            else None
        )

    def _init(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.type_embed, std=0.02)
        for lin in (self.t_mod, self.final_mod, self.head):
            nn.init.zeros_(lin.weight)
            assert lin.bias is not None
            nn.init.zeros_(lin.bias)

    def encode_context(
        self, cond: Condition, offset: tuple[int, int] = (0, 0), *, filter_empty: bool = True
    ) -> Context:
        """Encode caption, entity texts and filtered contour tokens once per batch.

        ``filter_empty=False`` keeps all-empty contour patches as tokens too (only to measure
        what condition-token filtering saves).
        """
        p, d = self.cfg.cond_patch, self.cfg.width
        _b, h, w = cond.instances.shape
        gh, gw = h // p, w // p
        token_entity = patchify_ids(cond.instances, p)
        keep = condition_keep(cond.contours, p)
        if not filter_empty:
            keep = torch.ones_like(keep)
        if cond.drop_cond is not None:
            keep = keep & ~cond.drop_cond[:, None]
        filt = filter_condition_tokens(keep)
        texts = self.text_proj(torch.cat([cond.caption[:, None], cond.texts], dim=1))
        if cond.drop_text is not None:
            texts = torch.where(cond.drop_text[:, None, None], self.null_text, texts)
        e = cond.texts.shape[1]
        own = None
        if self.own_text is not None:
            # semantic alignment by construction: a token only ever gets its own entity's text,
            # which teaches the class binding far faster than attention alone at CPU scale
            idx = (token_entity - 1).clamp_min(0)[:, :, None].expand(-1, -1, d)
            own = torch.gather(texts[:, 1:], 1, idx) * (token_entity > 0)[:, :, None]
            own = self.own_text(own)
        types = torch.cat([self.type_embed[:1], self.type_embed[1:2].expand(e, d)])
        plain_texts = texts
        texts = texts + types[None]
        patches = patchify(cond.contours[:, None].float(), p)  # (B, N, p*p)
        idx = filt.index
        gathered = torch.gather(patches, 1, idx[:, :, None].expand(-1, -1, p * p))
        pos = sincos_2d(gh, gw, d, offset).to(texts.dtype)[idx]
        ctok = self.cond_embed(gathered) + pos + self.type_embed[2]
        tokens = torch.cat([texts, ctok], dim=1)
        bias = context_attention_bias(cond.text_valid, filt.valid)
        for blk in self.ctx_blocks:
            tokens = blk(tokens, bias)
        refine = self._refine_context(cond, plain_texts) if self.refiner else None
        return Context(
            tokens=self.ctx_out(tokens),
            token_entity=token_entity,
            text_valid=cond.text_valid,
            cond_valid=filt.valid,
            own_text=own,
            grid=(gh, gw),
            filtered=filt,
            refine=refine,
        )

    def _refine_context(self, cond: Condition, texts: Tensor) -> RefineContext:
        """Owner, description and contour patch of every position of the model's grid."""
        assert self.refiner is not None
        ds = self.cfg.downsample
        b, h, w = cond.instances.shape
        owner = cond.instances if ds == 1 else patchify_ids(cond.instances, ds)
        owner = owner.reshape(b, h // ds, w // ds).clamp(0, texts.shape[1] - 1)
        contours = F.pixel_unshuffle(cond.contours[:, None].float(), ds)
        if cond.drop_cond is not None:
            contours = contours * (~cond.drop_cond).to(contours.dtype)[:, None, None, None]
        return RefineContext(
            text_map=self.refiner.text_map(texts, owner),
            contours=contours,
            mask=neighbour_mask(owner),
        )

    def context_kv(self, ctx: Context) -> list[tuple[Tensor, Tensor]]:
        """Per-layer context keys/values, computed once and cached on ``ctx``."""
        if not ctx.kv:
            ctx.kv = [cast(ImageBlock, blk).context_kv(ctx.tokens) for blk in self.blocks]
        return ctx.kv

    def forward(
        self,
        z: Tensor,
        t: Tensor,
        ctx: Context,
        *,
        gamma: float = 1.0,
        offset: tuple[int, int] = (0, 0),
    ) -> Tensor:
        p, d = self.cfg.patch, self.cfg.width
        b, _, h, w = z.shape
        gh, gw = ctx.grid
        x = self.embed(patchify(z, p)) + sincos_2d(gh, gw, d, offset).to(z.dtype)
        if ctx.own_text is not None:
            x = x + ctx.own_text.to(x.dtype)
        temb = self.t_mlp(timestep_embedding(t, 256).to(z.dtype))
        tmod = self.t_mod(F.silu(temb)).view(b, 6, d)
        bias = image_attention_bias(
            ctx.token_entity,
            ctx.text_valid,
            ctx.cond_valid,
            gamma=gamma,
            isolation=self.cfg.isolation,
        )
        split = 1 + ctx.text_valid.shape[1]
        for blk, kv in zip(self.blocks, self.context_kv(ctx), strict=True):
            x = blk(x, tmod, bias, kv, split)
        shift, scale = self.final_mod(F.silu(temb)).chunk(2, dim=-1)
        x = self.final_norm(x) * (1 + scale[:, None]) + shift[:, None]
        out = unpatchify(self.head(x), p, h, w)
        if self.refiner is not None and ctx.refine is not None:
            rc = ctx.refine
            shape = rc.contours.to(z.dtype) * min(max(gamma, 0.0), 1.0)  # gamma 0: no shape
            out = out + self.refiner(out, z, rc.text_map, shape, temb, rc.mask)
        return out


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
