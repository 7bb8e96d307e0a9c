"""Tile-level API of the tiny generator: numpy layout in, uint8 RGB out.

The backend-neutral ``Generator`` protocol of the package can wrap this directly: it takes
an instance map plus one free-text description per entity, embeds the texts with the real
sentence encoder, and runs the flow sampler (CFG, shape strength, inpainting).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from rs_seg2any.generators.base import DEFAULT_GUIDANCE, DEFAULT_STEPS, with_background
from rs_seg2any.generators.integrity import check_finite_output
from rs_seg2any.generators.tiny.autoencoder import TinyAE
from rs_seg2any.generators.tiny.model import Condition, TinySeg2Any
from rs_seg2any.generators.tiny.sampler import sample
from rs_seg2any.generators.tiny.text import TEXT_DIM, TextEncoder, default_encoder
from rs_seg2any.generators.tiny.weights import load_generator_parts
from rs_seg2any.harmonise import harmonise
from rs_seg2any.raster import contours_from_instances


def fill_unknown(known: NDArray[np.uint8], edit_mask: NDArray[np.bool_]) -> NDArray[np.uint8]:
    """Known pixels with the area to generate filled by the nearest known pixel.

    The latent model encodes the known image with a convolutional autoencoder; zeros left in
    the area to generate would bleed into the latents of the known border and print a dark
    line along every tile seam (worst on flat ground, e.g. tiles without polygons).
    """
    if not edit_mask.any() or edit_mask.all():
        return known
    from scipy.ndimage import distance_transform_edt

    _, (rows, cols) = distance_transform_edt(edit_mask, return_indices=True)
    filled: NDArray[np.uint8] = known[rows, cols]
    return filled


@dataclass
class TinyGenerator:
    """A loaded tiny model (and its autoencoder for the latent variant)."""

    model: TinySeg2Any
    ae: TinyAE | None = None
    encoder: TextEncoder | None = None
    bf16: bool = False  # fp32: emulated bf16 is ~15x slower on CPUs without AVX512-BF16/AMX
    supports_inpainting: bool = True
    bands: int = 3

    @classmethod
    def from_file(cls, path: Path) -> TinyGenerator:
        return cls(*load_generator_parts(path))

    @property
    def tile_multiple(self) -> int:
        """Tile sides must be multiples of this many pixels (one token)."""
        return self.model.cfg.cond_patch

    def condition(
        self, instances: NDArray[np.integer], descriptions: Sequence[str], caption: str
    ) -> Condition:
        """The model's condition of one tile: instance ids, their contours and embeddings."""
        enc = self.encoder or default_encoder()
        e = len(descriptions)
        return Condition(
            instances=torch.from_numpy(instances.astype(np.int64))[None],
            contours=torch.from_numpy(contours_from_instances(instances)).float()[None],
            texts=enc.encode(list(descriptions)).reshape(1, e, TEXT_DIM),
            text_valid=torch.ones(1, e, dtype=torch.bool),
            caption=enc.encode([caption]),
        )

    def generate(
        self,
        instances: NDArray[np.integer],
        descriptions: Sequence[str],
        caption: str,
        *,
        steps: int = DEFAULT_STEPS,
        guidance: float = DEFAULT_GUIDANCE,
        gamma: float = 1.0,
        seed: int = 0,
        known: NDArray[np.uint8] | None = None,
        edit_mask: NDArray[np.bool_] | None = None,
        feather: int = 0,
    ) -> NDArray[np.uint8]:
        """RGB ``(H, W, 3)`` for an instance map (ids 1..E, 0 = none); ``descriptions[j]``
        describes entity ``j + 1``. ``known`` + ``edit_mask`` (True = generate) inpaint."""
        h, w = instances.shape
        m = self.tile_multiple
        if h % m or w % m:
            raise ValueError(f"tile {h}x{w} must be a multiple of {m} px")
        # trained on fully labelled crops (unknown = "unlabeled"): id 0 is never seen, so
        # uncovered pixels are always the implicit background entity
        instances, descriptions = with_background(instances, descriptions, m, always=True)
        cond = self.condition(instances, descriptions, caption)
        kx = km = None
        if known is not None and edit_mask is not None:
            filled = fill_unknown(known, edit_mask)
            kx = torch.from_numpy(filled).permute(2, 0, 1)[None].float() / 127.5 - 1
            km = torch.from_numpy(edit_mask.astype(np.float32))[None, None]
        with (
            torch.inference_mode(),
            torch.autocast("cpu", torch.bfloat16, enabled=self.bf16),
            warnings.catch_warnings(),
        ):
            # bf16 activations with fp32 RMSNorm weights: a benign "Mismatch dtype" notice
            warnings.filterwarnings("ignore", message="Mismatch dtype", category=UserWarning)
            x = sample(self.model, cond, steps=steps, guidance=guidance, gamma=gamma, seed=seed,
                       known=kx, edit_mask=km, ae=self.ae, paste_known=False)  # fmt: skip
        check_finite_output(x, "tiny")
        img = ((x[0].float().permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255)
        out: NDArray[np.uint8] = img.astype(np.uint8)
        if known is not None and edit_mask is not None:
            # known pixels exact; the generated ones meet them without a seam line
            out = harmonise(out, known, edit_mask, feather=feather)
        return out
