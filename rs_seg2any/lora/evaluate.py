"""What a LoRA changed, on the validation area: pictures and scores, before vs after.

Layout fidelity is scored by a small segmenter (:mod:`rs_seg2any.train.segmenter`) trained on
the user's own *training* area and applied to the validation area: ``mIoU(seg(generated),
layout) / mIoU(seg(real), labels)``. Colour and texture distances per class come from
:mod:`rs_seg2any.quality`. All images here are the model's RGB view.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from ..atomic import atomic_output
from ..generators.base import DEFAULT_GUIDANCE, DEFAULT_STEPS
from ..generators.tiny.sampler import sample
from .data import Crop, TrainingData
from .tiny import TinyLoraTrainer, collate

U8 = NDArray[np.uint8]


def to_u8(x: torch.Tensor) -> list[U8]:
    """(B, 3, H, W) in [-1, 1] -> uint8 RGB images."""
    arr = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()
    return [a.astype(np.uint8) for a in arr]


def set_lora(model: torch.nn.Module, enabled: bool) -> None:
    from peft.tuners.tuners_utils import BaseTunerLayer

    for m in model.modules():
        if isinstance(m, BaseTunerLayer):
            m.enable_adapters(enabled)


@torch.no_grad()
def render(
    tr: TinyLoraTrainer,
    crops: list[Crop],
    *,
    adapted: bool,
    seed: int = 0,
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
) -> list[U8]:
    """Generated RGB of each crop's layout, with or without the adapter."""
    set_lora(tr.model, adapted)
    try:
        out: list[U8] = []
        for i in range(0, len(crops), 8):
            _x, _v, cond = collate(crops[i : i + 8], tr.encoder, tr.data)
            y = sample(tr.model, cond, steps=steps, guidance=guidance, seed=seed + i, ae=tr.ae)
            out += to_u8(y)
        return out
    finally:
        set_lora(tr.model, True)


@torch.no_grad()
def real_rgb(tr: Any, crops: list[Crop]) -> list[U8]:
    x = torch.from_numpy(np.stack([c.image for c in crops])).permute(0, 3, 1, 2).float()
    return to_u8(tr.to_model(x))


def class_index(data: TrainingData, labels: NDArray[np.integer], valid: Any = None) -> U8:
    """Class ids -> 1..K in the order of ``data.classes``; others (and invalid pixels) -> 0."""
    lut = np.zeros(256, np.uint8)
    for i, c in enumerate(data.classes):
        lut[c] = i + 1
    out: U8 = lut[np.asarray(labels, np.uint8)]
    if valid is not None:
        out = np.where(valid, out, 0).astype(np.uint8)
    return out


def train_segmenter(tr: Any, steps: int, seed: int) -> Any:
    from ..train.segmenter import SegConfig, fit

    images, labels = [], []
    for r in tr.data.train:
        x = torch.from_numpy(r.image).permute(2, 0, 1)[None].float()
        images.append(real_rgb_tensor(tr, x))
        labels.append(class_index(tr.data, r.labels, r.valid))
    model, _ = fit(
        images,
        labels,
        steps=steps,
        size=tr.data.crop,
        batch=8,
        cfg=SegConfig(n_classes=len(tr.data.classes)),
        seed=seed,
    )
    return model


def real_rgb_tensor(tr: Any, x: torch.Tensor) -> U8:
    with torch.no_grad():
        return to_u8(tr.to_model(x))[0]


def scores(
    tr: Any, crops: list[Crop], real: list[U8], generated: list[U8], seg: Any
) -> dict[str, float]:
    """Fidelity ratio (when a segmenter exists), per-class colour and texture distances."""
    from ..quality.colour import colour_scores
    from ..quality.texture import texture_scores
    from ..train.segmenter import iou_scores, predict

    labels = [class_index(tr.data, c.labels, c.valid) for c in crops]
    out: dict[str, float] = {}
    col = colour_scores(generated, real, labels, min_pixels=16, erode=1)
    tex = texture_scores(generated, real, labels, min_pixels=16, erode=1)
    out["colour_delta_e"] = col.mean_delta_e
    out["texture_distance"] = tex.mean_distance
    if seg is not None:
        names = {i + 1: str(c) for i, c in enumerate(tr.data.classes)}
        real_iou = float(iou_scores([predict(seg, im) for im in real], labels, names)["miou"])  # type: ignore[arg-type]
        gen_iou = float(iou_scores([predict(seg, im) for im in generated], labels, names)["miou"])  # type: ignore[arg-type]
        out["miou_real"] = real_iou
        out["miou_generated"] = gen_iou
        out["layout_fidelity"] = gen_iou / real_iou if real_iou > 0 else float("nan")
    return out


def picture_grid(
    path: Path, data: TrainingData, crops: list[Crop], columns: dict[str, list[U8]], rows: int = 4
) -> Path:
    """PNG: one validation crop per row; label colours, then each column (real, base, LoRA)."""
    from PIL import Image, ImageDraw

    colours = data.taxonomy.colours_by_id()
    n = min(rows, len(crops))
    s = crops[0].labels.shape[0]
    scale = max(1, 128 // s)
    size = s * scale
    names = ["layout", *columns]
    canvas = Image.new("RGB", (size * len(names), 14 + size * n), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for j, name in enumerate(names):
        draw.text((j * size + 3, 2), name, fill=(0, 0, 0))
    for i in range(n):
        lab = np.zeros((s, s, 3), np.uint8)
        for cid, col in colours.items():
            lab[crops[i].labels == cid] = col
        tiles = [lab, *(columns[k][i] for k in columns)]
        for j, t in enumerate(tiles):
            im = Image.fromarray(np.ascontiguousarray(t)).resize(
                (size, size), Image.Resampling.NEAREST
            )
            canvas.paste(im, (j * size, 14 + i * size))
    with atomic_output(path) as tmp:
        canvas.save(tmp, format="PNG")
    return path
