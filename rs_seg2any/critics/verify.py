"""Edit verification for the edit scenarios: the edit recovered from the pixels, as a mask.

After a scenario edits ``base`` into ``edited`` inside ``edit_mask.tif``, this writes
``recovered_edit_mask.tif`` (where the pixels really changed, :mod:`.edit`'s robust
threshold) and ``edit_check.json`` (its IoU with the intended mask, and any change outside
it), next to the outputs. Two passes over windows: memory does not grow with the area.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.windows import Window

from ..atomic import write_json
from .edit import otsu_log

BINS = 256


def _diff(base: Any, edited: Any, window: Window) -> np.ndarray:
    a = base.read(window=window).astype(np.float64)
    b = edited.read(window=window).astype(np.float64)
    out: np.ndarray = np.abs(a - b).max(axis=0)
    return out


def _write_mask(path: Path, reader: Any, grid: GeoBox) -> Path:
    """uint8 0/1 GeoTIFF on ``grid``, window by window, styled like the scenarios' masks."""
    from ..geoio import GridRasterWriter
    from ..scenarios.masks import write_windows

    with GridRasterWriter(path, grid, dtype="uint8") as writer:
        write_windows(writer, reader, grid, lambda m: m.astype(np.uint8))
        out: Path = writer.finalize(
            categorical=True,
            tags={"RS_SEG2ANY_ROLE": "recovered edit mask"},
            category_names=["unchanged", "recovered edit"],
            colormap={0: (0, 0, 0, 255), 1: (255, 0, 255, 255)},
            band_descriptions=["recovered edit"],
        )
    return out


def verify_edit(
    out: Path, base_image: Path, edited_image: Path, mask_path: Path, grid: GeoBox
) -> dict[str, Path]:
    """Write the recovered edit mask and its check against ``mask_path``; return both paths."""
    from ..scenarios.masks import windows

    with rasterio.open(base_image) as base, rasterio.open(edited_image) as edited:
        top = float(np.iinfo(base.dtypes[0]).max) if base.dtypes[0].startswith("uint") else 1e6
        edges = np.linspace(0.0, float(np.log1p(top)), BINS + 1)
        hist = np.zeros(BINS, dtype=np.int64)
        for w in windows(grid):
            h, _ = np.histogram(np.log1p(_diff(base, edited, w)), bins=edges)
            hist += h
        t = otsu_log(hist, edges)
        counts = {"inter": 0, "union": 0, "intended": 0, "recovered": 0, "leaked": 0, "outside": 0}
        worst = [0.0]
        with rasterio.open(mask_path) as intended_src:

            def recovered(w: Window) -> np.ndarray:
                d = _diff(base, edited, w)
                rec = d > t
                want = intended_src.read(1, window=w) != 0
                counts["inter"] += int((rec & want).sum())
                counts["union"] += int((rec | want).sum())
                counts["intended"] += int(want.sum())
                counts["recovered"] += int(rec.sum())
                counts["leaked"] += int(((d > 0) & ~want).sum())
                counts["outside"] += int((~want).sum())
                if (~want).any():
                    worst[0] = max(worst[0], float(d[~want].max()))
                return rec

            rec_path = _write_mask(Path(out) / "recovered_edit_mask.tif", recovered, grid)
    check = {
        "iou": counts["inter"] / counts["union"] if counts["union"] else 1.0,
        "intended_pixels": counts["intended"],
        "recovered_pixels": counts["recovered"],
        "leaked_pixels": counts["leaked"],
        "leakage": counts["leaked"] / counts["outside"] if counts["outside"] else 0.0,
        "max_change_outside": worst[0],
        "threshold": t,
        "base": str(base_image),
        "intended_mask": Path(mask_path).name,
        "recovered_mask": rec_path.name,
    }
    return {
        "recovered_edit_mask": rec_path,
        "edit_check": write_json(Path(out) / "edit_check.json", check),
    }
