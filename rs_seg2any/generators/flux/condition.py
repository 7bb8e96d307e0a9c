"""Tile inputs as FLUX tokens: latents packing, position ids, entity contours, condition tokens.

FLUX packs 2x2 latent pixels into one token, so one token covers ``patch = 2 * vae_factor``
pixels. The contour map may be encoded at a lower resolution (``cond_scale``); its position
ids are then multiplied by ``cond_scale`` so each condition token lines up with the image
tokens it covers (as Seg2Any does). The contour map itself is ``raster.contours_from_instances``
(one definition for the rasteriser, the embedded model and this backend).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor


def pack(latents: Tensor) -> Tensor:
    """``(B, C, h, w)`` latents -> ``(B, h/2 * w/2, 4C)`` tokens (row-major, FLUX order)."""
    b, c, h, w = latents.shape
    x = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: Tensor, h: int, w: int) -> Tensor:
    """Inverse of :func:`pack` for a latent grid of ``h x w``."""
    b, _n, d = tokens.shape
    c = d // 4
    x = tokens.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, h, w)


def token_ids(rows: int, cols: int, scale: int = 1, device: torch.device | None = None) -> Tensor:
    """Position ids ``(rows*cols, 3)``: ``[0, row, col]`` in image-token units."""
    r = torch.arange(rows, device=device).repeat_interleave(cols) * scale
    c = torch.arange(cols, device=device).repeat(rows) * scale
    return torch.stack([torch.zeros_like(r), r, c], dim=1).float()


def contour_image(contours: Tensor, scale: int) -> Tensor:
    """Project convention: contour masks ``(B, H, W)`` -> 3-band image in [-1, 1] at
    ``1/scale`` resolution, max-pooled so one-pixel lines stay visible and binary."""
    x = contours[:, None].float()
    if scale > 1:
        x = F.max_pool2d(x, kernel_size=scale, stride=scale)
    return (x * 2 - 1).expand(-1, 3, -1, -1).contiguous()


def reference_contour_image(contours: NDArray[np.uint8], scale: int) -> Tensor:
    """Seg2Any's convention: white-on-black contour image ``(H, W)`` resized with Pillow's
    bilinear filter to ``1/scale`` (grey levels, uint8 like the published pipeline's
    ``Resize(BILINEAR)`` on a PIL image), then ``(v / 255 - 0.5) / 0.5`` -> ``(3, h, w)``."""
    from PIL import Image

    img = Image.fromarray(np.where(np.asarray(contours) > 0, 255, 0).astype(np.uint8))
    if scale > 1:
        img = img.resize((img.width // scale, img.height // scale), Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).float() / 255
    return ((x - 0.5) / 0.5)[None].expand(3, -1, -1).contiguous()


def reference_keep(image: Tensor, patch: int) -> Tensor:
    """Seg2Any's filter: a condition token is kept when its ``patch``-px square of the
    condition image ``(B, 3, h, w)`` in [-1, 1] sums to non-zero once black (-1) counts as
    0 — any grey pixel keeps it."""
    x = torch.where(image == -1, torch.zeros_like(image), image)
    return F.pixel_unshuffle(x, patch).sum(1).flatten(1) != 0


def pixels_to_unit(pixels: NDArray[np.uint8]) -> Tensor:
    """``(h, w, 3)`` uint8 -> ``(3, h, w)`` float in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(pixels[..., :3])).permute(2, 0, 1)
    return x.float() / 127.5 - 1


def unit_to_pixels(images: Tensor) -> NDArray[np.uint8]:
    """``(B, 3, h, w)`` in [-1, 1] -> ``(B, h, w, 3)`` uint8."""
    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def latent_edit_mask(edit: Tensor, vae_factor: int) -> Tensor:
    """Pixel edit masks ``(B, H, W)`` -> packed token-channel mask ``(B, N, 4C)``-broadcastable.

    A latent pixel is regenerated when any of its pixels is to be edited, so known pixels are
    never blended into the edit area; the caller restores known pixels exactly afterwards.
    """
    m = F.max_pool2d(edit[:, None].float(), kernel_size=vae_factor, stride=vae_factor)
    return pack(m)  # (B, N, 4): broadcast over channels after repeat_interleave
