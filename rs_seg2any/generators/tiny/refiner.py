"""Entity-masked convolutional refiner: sharp region edges without breaking attribute isolation.

The transformer works on 16-px tokens, so alone it draws layouts in blocks. The refiner runs
at the model's own resolution (pixels or latents) after the transformer head and adds a
correction computed from the transformer's prediction, the noisy input, the contour patch of
each position and the description of the entity that owns it. Every 3x3 convolution is
*entity-masked*: a position only reads neighbours owned by the same entity (a partial
convolution, renormalised over the neighbours it may read), and normalisation is per
position. So no information ever crosses from one entity to another here, and the Seg2Any
guarantees of the attention masks (semantic alignment, attribute isolation) still hold
exactly for token-aligned regions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def neighbour_mask(owner: Tensor) -> Tensor:
    """``(B, H, W)`` owner ids -> ``(B, 1, 9, H*W)`` float mask of same-owner 3x3 neighbours.

    Ids are shifted by one so that zero padding never matches a real owner (id 0 included).
    """
    ids = (owner + 1).to(torch.float64)[:, None]
    cols = F.unfold(ids, kernel_size=3, padding=1)  # (B, 9, H*W)
    centre = ids.flatten(2)
    return (cols == centre).to(torch.float32)[:, None]


class MaskedConv(nn.Module):
    """3x3 convolution that only mixes positions owned by the same entity."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin * 9))
        self.bias = nn.Parameter(torch.zeros(cout))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        b, c, h, w = x.shape
        cols = F.unfold(x, kernel_size=3, padding=1).view(b, c, 9, h * w)
        m = mask.to(x.dtype)
        scale = 9.0 / m.sum(dim=2, keepdim=True).clamp_min(1.0)  # partial-conv renormalisation
        cols = (cols * (m * scale)).view(b, c * 9, h * w)
        out: Tensor = torch.einsum("ok,bkn->bon", self.weight.to(x.dtype), cols)
        return (out + self.bias.to(x.dtype)[None, :, None]).view(b, -1, h, w)


class ChannelNorm(nn.Module):
    """LayerNorm over channels at each position (no statistics shared between positions)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, elementwise_affine=False)

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return y


class RefineBlock(nn.Module):
    """Residual block: norm, timestep scale/shift, SiLU, masked conv, twice."""

    def __init__(self, channels: int, temb: int) -> None:
        super().__init__()
        self.norm1 = ChannelNorm(channels)
        self.conv1 = MaskedConv(channels, channels)
        self.norm2 = ChannelNorm(channels)
        self.conv2 = MaskedConv(channels, channels)
        self.mod = nn.Linear(temb, 2 * channels)
        nn.init.zeros_(self.mod.weight)
        nn.init.zeros_(self.mod.bias)
        nn.init.zeros_(self.conv2.weight)

    def forward(self, x: Tensor, temb: Tensor, mask: Tensor) -> Tensor:
        scale, shift = self.mod(F.silu(temb)).chunk(2, dim=-1)
        h = self.norm1(x) * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        h = self.conv1(F.silu(h), mask)
        h = self.conv2(F.silu(self.norm2(h)), mask)
        out: Tensor = x + h
        return out


class Refiner(nn.Module):
    """``delta = refiner(prediction, z_t, entity text map, contour patches, t)``."""

    def __init__(
        self, channels: int, width: int, blocks: int, text_dim: int, cond_dim: int, temb: int
    ) -> None:
        super().__init__()
        self.text = nn.Linear(text_dim, width)
        self.inp = nn.Linear(2 * channels + cond_dim, width)
        self.blocks = nn.ModuleList([RefineBlock(width, temb) for _ in range(blocks)])
        self.out_norm = ChannelNorm(width)
        self.out = nn.Linear(width, channels)
        nn.init.zeros_(self.out.weight)  # a fresh refiner leaves the transformer's output as is
        nn.init.zeros_(self.out.bias)

    def text_map(self, texts: Tensor, owner: Tensor) -> Tensor:
        """Each position gets its own entity's projected description: ``(B, width, H, W)``.

        ``texts`` is ``(B, 1 + E, d)`` (slot 0 is used for positions owned by no entity).
        """
        proj = self.text(texts)
        b, h, w = owner.shape
        idx = owner.reshape(b, h * w, 1).expand(-1, -1, proj.shape[-1])
        return torch.gather(proj, 1, idx).transpose(1, 2).reshape(b, -1, h, w)

    def forward(
        self, pred: Tensor, z: Tensor, text_map: Tensor, cond: Tensor, temb: Tensor, mask: Tensor
    ) -> Tensor:
        x = torch.cat([pred, z, cond], dim=1).permute(0, 2, 3, 1)
        h = self.inp(x).permute(0, 3, 1, 2) + text_map.to(x.dtype)
        for blk in self.blocks:
            h = blk(h, temb, mask)
        out: Tensor = self.out(self.out_norm(h).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return out
