"""Quick-look PNGs: label masks coloured by the taxonomy, images as 8-bit RGB (2-98 % stretch),
downsampled so the long side fits ``max_size``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..atomic import (
    atomic_output,
)
from ..taxonomy import Taxonomy

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage


def _preview_size(height: int, width: int, max_size: int) -> tuple[int, int]:
    """(width, height) with the long side <= max_size, aspect kept (PIL order)."""
    scale = min(1.0, max_size / max(height, width))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _label_preview(labels: np.ndarray, taxonomy: Taxonomy, max_size: int) -> PILImage:
    from PIL import Image

    if labels.dtype != np.uint8:
        raise ValueError(f"a label mask must be uint8, got {labels.dtype}")
    lut = np.zeros((256, 3), dtype=np.uint8)
    for c in taxonomy.classes:
        lut[c.id] = c.colour
    small = Image.fromarray(labels).resize(
        _preview_size(labels.shape[0], labels.shape[1], max_size), Image.Resampling.NEAREST
    )
    return Image.fromarray(lut[np.asarray(small)])


def _stretch(band: np.ndarray) -> np.ndarray:
    """2-98 % percentile stretch to uint8; NaN (no data) becomes 0."""
    finite = band[np.isfinite(band)]
    if finite.size == 0:
        return np.zeros(band.shape, dtype=np.uint8)
    lo, hi = np.percentile(finite, [2, 98])
    span = hi - lo if hi > lo else 1.0
    scaled = np.clip((band - lo) / span * 255.0, 0, 255)
    out: np.ndarray = np.nan_to_num(scaled, nan=0.0).round().astype(np.uint8)
    return out


def _image_preview(image: np.ndarray, max_size: int) -> PILImage:
    from PIL import Image

    bands = image[:3] if image.shape[0] >= 3 else image[:1].repeat(3, axis=0)
    size = _preview_size(image.shape[1], image.shape[2], max_size)
    out = []
    for band in bands:
        if image.dtype == np.uint8:
            small = Image.fromarray(band).resize(size, Image.Resampling.BOX)
            out.append(np.asarray(small))
        else:
            small = Image.fromarray(band.astype(np.float32))
            out.append(_stretch(np.asarray(small.resize(size, Image.Resampling.BOX))))
    return Image.fromarray(np.ascontiguousarray(np.stack(out, axis=-1)))


def write_preview_png(
    dest: Path | str,
    image: np.ndarray,
    *,
    taxonomy: Taxonomy | None = None,
    max_size: int = 1024,
) -> Path:
    """A quick-look PNG (long side <= max_size): labels coloured by the taxonomy, or an image
    (bands, h, w) as 8-bit RGB with a 2-98 % stretch unless it is already uint8."""
    arr = np.asarray(image)
    if max_size < 1:
        raise ValueError(f"max_size must be >= 1, got {max_size}")
    if taxonomy is not None:
        if arr.ndim != 2:
            raise ValueError(f"a label mask preview needs (h, w); got shape {arr.shape}")
        picture = _label_preview(arr, taxonomy, max_size)
    else:
        if arr.ndim == 2:
            arr = arr[np.newaxis]
        if arr.ndim != 3 or 0 in arr.shape:
            raise ValueError(f"an image preview needs (bands, h, w); got shape {arr.shape}")
        picture = _image_preview(arr, max_size)
    dest = Path(dest)
    with atomic_output(dest) as tmp:
        picture.save(tmp, format="PNG")
    return dest
