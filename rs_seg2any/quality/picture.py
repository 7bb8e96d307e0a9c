"""The picture that goes with a report: one row per scene, layout | real | each candidate.

Numbers without pictures mislead (a tint or a blotchy fill can score well on one measure); the
grid puts every candidate next to the real image of the same layout at the same zoom.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from ..geoio import atomic_output

U8 = NDArray[np.uint8]
HEADER = 18  # px of column titles


def label_rgb(labels: NDArray[np.integer], colours: Mapping[int, tuple[int, int, int]]) -> U8:
    """Class ids as colours; ids without a colour get a fixed pseudo-random one."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    rng = np.random.default_rng(12345)
    lut[1:] = rng.integers(40, 230, size=(255, 3))
    for k, rgb in colours.items():
        if 0 <= k < 256:
            lut[k] = rgb
    out: U8 = lut[np.clip(np.asarray(labels), 0, 255).astype(np.intp)]
    return out


def _panel(image: NDArray[np.generic], crop: int, panel: int, nearest: bool) -> Image.Image:
    """The central ``crop``-px square (or the whole image if smaller), resized to ``panel``."""
    img = np.asarray(image)[..., :3] if np.asarray(image).ndim == 3 else np.asarray(image)
    h, w = img.shape[:2]
    c = min(crop, h, w)
    y, x = (h - c) // 2, (w - c) // 2
    pil = Image.fromarray(np.ascontiguousarray(img[y : y + c, x : x + c]).astype(np.uint8))
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BOX
    return pil.resize((panel, panel), resample)


def picture_grid(
    layouts: Sequence[U8],
    columns: Mapping[str, Sequence[NDArray[np.generic]]],
    *,
    crop: int = 512,
    panel: int = 256,
    max_rows: int | None = None,
) -> Image.Image:
    """Rows = scenes (at most ``max_rows``), columns = "layout" then each entry of
    ``columns`` (first the real images); each panel is the scene's central ``crop`` px."""
    rows = len(layouts) if max_rows is None else min(len(layouts), max_rows)
    names = ["layout", *columns]
    sheet = Image.new("RGB", (panel * len(names), HEADER + panel * rows), "white")
    draw = ImageDraw.Draw(sheet)
    for j, name in enumerate(names):
        draw.text((j * panel + 4, 3), name[: panel // 6], fill="black")
    for i in range(rows):
        sheet.paste(_panel(layouts[i], crop, panel, True), (0, HEADER + i * panel))
        for j, images in enumerate(columns.values(), start=1):
            sheet.paste(_panel(images[i], crop, panel, False), (j * panel, HEADER + i * panel))
    return sheet


def save_png(picture: Image.Image, dest: Path) -> Path:
    """Write atomically (a failed write leaves no partial file)."""
    with atomic_output(dest) as tmp:
        picture.save(tmp, format="PNG", optimize=True)
    return Path(dest)
