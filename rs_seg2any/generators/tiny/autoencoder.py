"""A tiny convolutional autoencoder for the latent variant of the tiny generator.

Downsamples by 4 to a few channels, so a latent flow model with patch 4 has the same token
count as the pixel model with patch 16 but the conv decoder can add local texture. Trained
with L1 on crops; latents are scaled by a measured std so the flow sees unit variance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TILE_MARGIN = 2
"""Latent pixels added around a tile before decoding (a 4x-downsampling decoder of five 3x3
convolutions sees about two latent pixels beyond its output)."""


@dataclass(frozen=True)
class AEConfig:
    latent: int = 8
    width: int = 64
    downsample: int = 4  # 2 ** number of stride-2 stages

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _act() -> nn.Module:
    return nn.GELU(approximate="tanh")


class TinyAE(nn.Module):
    """``encode``: (B,3,H,W) in [-1,1] -> (B,latent,H/4,W/4) unit-scale; ``decode`` inverts."""

    scale: Tensor

    def __init__(self, cfg: AEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w, h = cfg.width, cfg.width // 2
        self.enc = nn.Sequential(
            nn.Conv2d(3, h, 3, padding=1), _act(),
            nn.Conv2d(h, w, 4, stride=2, padding=1), _act(),
            nn.Conv2d(w, w, 3, padding=1), _act(),
            nn.Conv2d(w, w, 4, stride=2, padding=1), _act(),
            nn.Conv2d(w, cfg.latent, 3, padding=1),
        )  # fmt: skip
        self.dec = nn.Sequential(
            nn.Conv2d(cfg.latent, w, 3, padding=1), _act(),
            nn.Conv2d(w, w, 3, padding=1), _act(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(w, w, 3, padding=1), _act(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(w, h, 3, padding=1), _act(),
            nn.Conv2d(h, 3, 3, padding=1),
        )  # fmt: skip
        self.register_buffer("scale", torch.ones(()))

    def encode(self, x: Tensor) -> Tensor:
        z: Tensor = self.enc(x)
        return z / self.scale

    def decode(self, z: Tensor) -> Tensor:
        x: Tensor = self.dec(z * self.scale)
        return x

    def encode_tile(self, x: Tensor, margin: int = TILE_MARGIN) -> Tensor:
        """:meth:`encode` of a tile that continues beyond its edges: the image is extended by
        edge replication, so zero padding does not darken the latents of the tile border."""
        ds = self.cfg.downsample
        z = self.encode(F.pad(x, (margin * ds,) * 4, mode="replicate"))
        return z[..., margin:-margin, margin:-margin]

    def decode_tile(self, z: Tensor, margin: int = TILE_MARGIN) -> Tensor:
        """:meth:`decode` without the dark zero-padding frame at the tile edges, which the
        next tile inherits as known pixels and which shows as a line on every tile seam."""
        ds = self.cfg.downsample
        x = self.decode(F.pad(z, (margin,) * 4, mode="replicate"))
        return x[..., margin * ds : -margin * ds, margin * ds : -margin * ds]

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))
