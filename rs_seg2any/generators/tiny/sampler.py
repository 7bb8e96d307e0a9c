"""Rectified-flow training loss and the Euler sampler with CFG and inpainting.

Convention: ``z_t = t * x + (1 - t) * noise``, ``t = 1`` is the clean image, velocity
``v = x - noise``. With x-prediction (JiT) the network outputs ``x_hat`` and the loss is taken
on the implied velocity, which keeps high-dimensional pixel patches trainable at small scale.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor

from rs_seg2any.generators.base import DEFAULT_GUIDANCE, DEFAULT_STEPS
from rs_seg2any.generators.tiny.autoencoder import TinyAE
from rs_seg2any.generators.tiny.model import Condition, Context, TinySeg2Any

T_CLAMP = 0.05


def velocity(model: TinySeg2Any, out: Tensor, z: Tensor, t: Tensor) -> Tensor:
    """Velocity implied by the network output for either prediction type."""
    if model.cfg.prediction == "v":
        return out
    return (out - z) / (1 - t).clamp_min(T_CLAMP)[:, None, None, None]


def sample_t(
    n: int, generator: torch.Generator | None = None, mean: float = -0.8, std: float = 0.8
) -> Tensor:
    """Logit-normal timesteps (default mean -0.8, std 0.8: biased toward noise, as in JiT)."""
    return torch.sigmoid(torch.randn(n, generator=generator) * std + mean)


def flow_loss(
    model: TinySeg2Any,
    x: Tensor,
    cond: Condition,
    t: Tensor,
    noise: Tensor,
    offset: tuple[int, int] = (0, 0),
    space: str = "v",
) -> Tensor:
    """MSE at the given timesteps and noise, in velocity space (``"v"``, JiT) or clean-image
    space (``"x"``). The v-loss weights x-errors by ``1 / (1 - t)^2``, which at CPU scale
    starves the noisy end, where layout and class colours are decided."""
    tt = t[:, None, None, None]
    z = tt * x + (1 - tt) * noise
    ctx = model.encode_context(cond, offset)
    out: Tensor = model(z, t, ctx, offset=offset)
    if space == "x":
        x_hat = out if model.cfg.prediction == "x" else z + (1 - tt) * out
        return ((x_hat - x) ** 2).mean()
    return ((velocity(model, out, z, t) - (x - noise)) ** 2).mean()


def _with_uncond(cond: Condition) -> Condition:
    """Stack the conditional batch with its unconditional copy (no text, no shape tokens)."""
    b = cond.instances.shape[0]
    flags = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)])
    return replace(
        cond,
        instances=cond.instances.repeat(2, 1, 1),
        contours=cond.contours.repeat(2, 1, 1),
        texts=cond.texts.repeat(2, 1, 1),
        text_valid=cond.text_valid.repeat(2, 1),
        caption=cond.caption.repeat(2, 1),
        drop_text=flags,
        drop_cond=flags,
    )


@torch.no_grad()
def sample(
    model: TinySeg2Any,
    cond: Condition,
    *,
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    gamma: float = 1.0,
    seed: int = 0,
    known: Tensor | None = None,
    edit_mask: Tensor | None = None,
    ae: TinyAE | None = None,
    filter_empty: bool = True,
    paste_known: bool = True,
) -> Tensor:
    """Generate images in [-1, 1], ``(B, C, H, W)``.

    ``known`` (B, C, H, W) and ``edit_mask`` (B, 1, H, W; 1 = generate) enable inpainting:
    outside the mask the trajectory is pinned to the known image at every step and the
    result equals ``known`` exactly there. With ``ae`` the flow runs on latents and is decoded.
    ``paste_known=False`` returns the decoded pixels everywhere (the model's own version of
    the known part, which :mod:`rs_seg2any.harmonise` compares with the known pixels).
    """
    b, h, w = cond.instances.shape
    c, ds = model.cfg.channels, model.cfg.downsample
    if ds > 1 and ae is None:
        raise ValueError("a latent tiny model needs its autoencoder")
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(b, c, h // ds, w // ds, generator=gen)
    known_z, mask_z = known, edit_mask
    if known is not None and edit_mask is not None and ae is not None:
        known_z = ae.encode_tile(known)
        mask_z = F.max_pool2d(edit_mask, ds) if ds > 1 else edit_mask
    guided = guidance != 1.0
    ctx: Context = model.encode_context(
        _with_uncond(cond) if guided else cond, filter_empty=filter_empty
    )
    ts = torch.linspace(0.0, 1.0, steps + 1)
    z = noise
    for i in range(steps):
        t0, t1 = float(ts[i]), float(ts[i + 1])
        zin = torch.cat([z, z]) if guided else z
        tin = torch.full((zin.shape[0],), t0)
        v = velocity(model, model(zin, tin, ctx, gamma=gamma), zin, tin)
        if guided:
            vc, vu = v.chunk(2)
            v = vu + guidance * (vc - vu)
        z = z + (t1 - t0) * v
        if known_z is not None and mask_z is not None:
            pinned = t1 * known_z + (1 - t1) * noise
            z = mask_z * z + (1 - mask_z) * pinned
    out = (z if ae is None else ae.decode_tile(z)).clamp(-1, 1)
    if paste_known and known is not None and edit_mask is not None:
        out = edit_mask * out + (1 - edit_mask) * known
    return out
