"""The project's land-cover segmenter as a stable API: segment an image, score a layout.

A network separate from every generator (it never feeds a generator's loss), trained on the
Dubai aerial tiles 1, 3-6 with tile_2 for model selection and tile_7 held out (model card:
``weights/MODEL_CARD.md`` next to this module). It judges whether generated imagery shows
the classes its layout asks for, wherever that question comes up: the fidelity column of
``evaluate``, filters for generated detection sets, critics in a refine loop, checks after
a LoRA adaptation. Its classes are the ``dubai_aerial`` taxonomy's ids 1-5 (building, land,
road, vegetation, water); it is meaningful on other layouts only once their classes are
mapped onto those five.

- :func:`load_default_segmenter` -- the shipped weights (loaded once per process);
- :func:`segment` -- an RGB image -> class ids 1-5;
- :func:`per_entity_iou` -- how well each entity of a layout is recognised in a segmentation;
- :func:`fidelity` -- mIoU of generated vs real images on the same layouts, and their ratio.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from ..errors import InputError
from ..train.segmenter import (
    CLASS_NAMES,
    N_REAL,
    TinyUNet,
    check_scales,
    fidelity_ratio,
    iou_scores,
    load_segmenter,
    predict,
)

U8 = NDArray[np.uint8]
TAXONOMY = "dubai_aerial"
"""The taxonomy whose class ids the segmenter predicts."""
DEFAULT_WEIGHTS = Path(__file__).with_name("weights") / "segmenter_dubai.safetensors"
"""The shipped weights (v3: EfficientNet-Lite0 encoder from ImageNet + FPN, 3.1 M
parameters, fp16; by default averaged over 4 flips x input scales 0.75, 1, 1.25, 1.5, with
class offsets fit for that on tile_2; ``scales=(1.0,), flips=False`` is the 20x cheaper pass)."""
V2_WEIGHTS = Path(__file__).with_name("weights") / "segmenter_dubai_v2.safetensors"
"""The previous default (v2.1: from-scratch U-Net, 1.9 M parameters), kept for comparison."""

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_WEIGHTS",
    "TAXONOMY",
    "V2_WEIGHTS",
    "applies_to",
    "fidelity",
    "load",
    "load_default_segmenter",
    "per_entity_iou",
    "segment",
]


@functools.lru_cache(maxsize=4)
def _cached(path: str) -> TinyUNet:
    return load_segmenter(Path(path))


def load(weights: str | Path | TinyUNet | None = None) -> TinyUNet:
    """A segmenter from a weights file (cached per path), a loaded one as is, or the default."""
    if isinstance(weights, TinyUNet):
        return weights
    path = Path(weights) if weights is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        hint = " (the shipped weights are missing: reinstall rs_seg2any)" if weights is None else ""
        raise InputError(f"segmenter weights '{path}' not found{hint}")
    return _cached(str(path.resolve()))


def load_default_segmenter() -> TinyUNet:
    """The shipped segmenter (Dubai classes), loaded once per process."""
    return load(None)


def applies_to(taxonomy: object) -> bool:
    """Whether the default segmenter's classes are ``taxonomy``'s (a name or a Taxonomy)."""
    name = taxonomy if isinstance(taxonomy, str) else getattr(taxonomy, "name", None)
    return name == TAXONOMY


def _rgb(image: Any) -> U8:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise InputError(f"segment needs an (H, W, 3) RGB image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise InputError(f"segment needs 8-bit RGB (uint8), got {arr.dtype}")
    if min(arr.shape[:2]) < 1:
        raise InputError(f"segment got an empty image {arr.shape}")
    return np.ascontiguousarray(arr[..., :3])


def segment(
    image: Any,
    model: str | Path | TinyUNet | None = None,
    *,
    flips: bool | None = None,
    scales: Sequence[float] | None = None,
) -> U8:
    """Class ids 1-5 (``dubai_aerial``) for an ``(H, W, >=3)`` uint8 image.

    ``model``: weights path or loaded segmenter (default: the shipped one). ``flips``
    averages over the 4 flips of the image (4x the time); None (default) takes the weights'
    own choice, made on the validation tile (v2.1: off, +0.001 mIoU; v3: see the model
    card). ``scales`` averages over the image resized by each factor (time: the sum of
    their squares); None takes the weights' own choice, ``(1.0,)`` is the single fast pass.
    Per-class offsets stored with the weights (fit on the
    validation tile) set the decision; the net's probabilities are unchanged.
    """
    sc = None if scales is None else check_scales(scales)
    return predict(load(model), _rgb(image), flips=flips, scales=sc)


def per_entity_iou(
    pred: NDArray[np.integer],
    instances: NDArray[np.integer],
    labels: NDArray[np.integer],
    *,
    margin: int = 8,
) -> dict[int, float]:
    """How well each entity (instance id > 0) is recognised as its class in ``pred``.

    For entity ``e`` of class ``c`` (the majority of ``labels`` under it): IoU of ``e`` with
    the pixels predicted ``c`` inside ``e`` or spilling out of it, i.e.
    ``|e & pred==c| / (|e| + |ring & pred==c & labels!=c|)``, where ``ring`` is the band of
    ``margin`` pixels around ``e``. Predictions of ``c`` on other entities of class ``c`` or far
    away do not count against ``e``. 1.0: fully recognised, nothing spills. Entities whose
    class is not one of the segmenter's (1-5) get NaN.
    """
    p, inst, lab = np.asarray(pred), np.asarray(instances), np.asarray(labels)
    if not (p.shape == inst.shape == lab.shape) or p.ndim != 2:
        raise InputError(
            f"pred {p.shape}, instances {inst.shape} and labels {lab.shape} must be one 2-D grid"
        )
    out: dict[int, float] = {}
    if not inst.size or inst.max() <= 0:
        return out
    struct = np.ones((3, 3), dtype=bool)
    for idx, box in enumerate(ndimage.find_objects(inst.astype(np.int64)), start=1):
        if box is None:
            continue
        ys, xs = box
        y0, y1 = max(ys.start - margin, 0), min(ys.stop + margin, inst.shape[0])
        x0, x1 = max(xs.start - margin, 0), min(xs.stop + margin, inst.shape[1])
        e = inst[y0:y1, x0:x1] == idx
        lw = lab[y0:y1, x0:x1]
        c = int(np.bincount(lw[e].astype(np.int64)).argmax())
        if not 1 <= c <= N_REAL:
            out[idx] = float("nan")
            continue
        hit = p[y0:y1, x0:x1] == c
        ring = (
            ndimage.binary_dilation(e, struct, iterations=margin) & ~e
            if margin > 0
            else np.zeros_like(e)
        )
        spill = int((ring & hit & (lw != c)).sum())
        out[idx] = int((e & hit).sum()) / (int(e.sum()) + spill)
    return out


def fidelity(
    generated: Sequence[Any],
    layouts: Sequence[NDArray[np.integer]],
    real: Sequence[Any] | None = None,
    model: str | Path | TinyUNet | None = None,
    *,
    flips: bool | None = None,
    scales: Sequence[float] | None = None,
) -> dict[str, object]:
    """mIoU of ``generated`` images against their ``layouts`` (class rasters), of the
    ``real`` images of the same layouts, and ``ratio`` = generated / real (with per-class
    IoUs under ``generated`` / ``real``). Without ``real``: the generated scores only."""
    net = load(model)
    labs = [np.asarray(lab) for lab in layouts]
    gen = iou_scores([segment(im, net, flips=flips, scales=scales) for im in generated], labs)
    if real is None:
        return {"generated": gen, "generated_miou": gen["miou"]}
    ref = iou_scores([segment(im, net, flips=flips, scales=scales) for im in real], labs)
    rep = fidelity_ratio(float(gen["miou"]), float(ref["miou"]))  # type: ignore[arg-type]
    rep["generated"] = gen
    rep["real"] = ref
    return rep
