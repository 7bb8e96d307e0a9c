"""A cheap but real :class:`~rs_seg2any.generators.base.Generator` for memory benches.

Each entity of a tile is painted one flat colour derived from its description (CRC-32), so
the output depends on the layout exactly as a model's does (which entity covers which pixel,
which text it has) but a tile costs microseconds instead of a diffusion sampler's seconds.
It holds no weights: its own memory is the few bytes of this object, which is what lets a
bench attribute the whole peak to the job around it.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rs_seg2any.generators.base import TileCondition


class FlatGenerator:
    """Flat class colours by description; inpaints (pixels outside the edit are kept)."""

    name = "flat"
    bands = 3
    supports_inpainting = True
    tile_multiple = 16

    def describe(self) -> dict[str, Any]:
        return {"backend": "flat", "colours": "crc32 of the entity description"}

    def generate(
        self, cond: TileCondition, *, steps: int, guidance: float, gamma: float, seed: int
    ) -> NDArray[np.uint8]:
        texts = ["", *cond.descriptions]
        palette = np.array(
            [list(zlib.crc32(t.encode("utf-8")).to_bytes(4, "little")[:3]) for t in texts],
            dtype=np.uint8,
        )
        inst = np.clip(np.asarray(cond.instances), 0, len(texts) - 1)
        image: NDArray[np.uint8] = palette[inst]
        if cond.known is not None and cond.edit_mask is not None:
            keep = ~np.asarray(cond.edit_mask, dtype=bool)
            image[keep] = np.asarray(cond.known)[keep][..., :3]
        return image
