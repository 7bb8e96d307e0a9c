"""Flow-matching Euler sampling as FLUX is trained, with inpainting by known latents.

The sigma schedule follows the model's scheduler config (resolution-dependent shift for
FLUX.1-dev), so a tile samples the same way the diffusers pipeline would.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def sigmas(steps: int, image_tokens: int, config: dict[str, Any]) -> Tensor:
    """``steps + 1`` noise levels from 1 down to 0."""
    s = torch.linspace(1.0, 1.0 / steps, steps, dtype=torch.float64)
    if config.get("use_dynamic_shifting", False):
        x0, x1 = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
        y0, y1 = config.get("base_shift", 0.5), config.get("max_shift", 1.15)
        mu = y0 + (y1 - y0) * (image_tokens - x0) / max(x1 - x0, 1)
        s = math.exp(mu) / (math.exp(mu) + (1 / s - 1))
    else:
        shift = float(config.get("shift", 1.0))
        s = shift * s / (1 + (shift - 1) * s)
    return torch.cat([s, torch.zeros(1, dtype=torch.float64)]).float()


def euler(
    velocity: Callable[[Tensor, Tensor], Tensor],
    noise: Tensor,
    schedule: Tensor,
    *,
    known: Tensor | None = None,
    edit: Tensor | None = None,
) -> Tensor:
    """Integrate ``dx/dsigma = v`` from noise; outside ``edit`` keep the noised ``known``."""
    x = noise
    for i in range(len(schedule) - 1):
        s, s_next = schedule[i], schedule[i + 1]
        v = velocity(x, s.expand(x.shape[0]).to(x.device))
        x = (x.float() + (s_next - s) * v.float()).to(noise.dtype)
        if known is not None and edit is not None:
            ref = (1 - s_next) * known.float() + s_next * noise.float()
            x = torch.where(edit, x, ref.to(noise.dtype))
    return x
