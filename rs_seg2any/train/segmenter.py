"""Layout-fidelity check for issue 3: a small CPU segmentation net, separate from the generator.

The segmenter is trained only on the Dubai training tiles 1-6 (tile_7 is held out) and is
used to measure how well a generated image follows its layout:
``mIoU(seg(generated), layout) / mIoU(seg(real), labels)``; the goal is >= 0.85.
It never feeds the generator's loss: separate module, separate weights file.

Classes: the net predicts the 5 real classes (building 1, land 2, road 3, vegetation 4,
water 5; output channel = id - 1). Unlabeled pixels (id 6, from the grey and black palette
colours) and id 0 carry no ground truth: they are ignored in the loss (``ignore_index``) and
excluded from the IoU counts, so a prediction there is neither rewarded nor punished.
The loss is cross-entropy with class weights ``share ** -0.5`` (normalised to mean 1) so the
rarer road/vegetation classes are not swamped by land (52 % of the pixels).

``python -m rs_seg2any.train.segmenter --root ../shared/data/dubai_aerial --out seg.safetensors
--minutes 20`` trains, then reports the tile_7 mIoU.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from rs_seg2any.atomic import atomic_output
from rs_seg2any.errors import InputError
from rs_seg2any.train.dubai import load_pairs

U8 = NDArray[np.uint8]
CLASS_NAMES: dict[int, str] = {1: "building", 2: "land", 3: "road", 4: "vegetation", 5: "water"}
N_REAL = len(CLASS_NAMES)
IGNORE = -100
FORMAT = "rs_seg2any.segmenter/1"
GOAL_RATIO = 0.85


@dataclass(frozen=True)
class SegConfig:
    width: int = 16  # channels at full resolution; x2 per level
    depth: int = 3  # number of /2 downsamplings
    n_classes: int = N_REAL


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
    """Compact U-Net (width 16, depth 3: ~0.47 M params). Input in [-1, 1], logits out."""

    def __init__(self, cfg: SegConfig) -> None:
        super().__init__()
        self.cfg = cfg
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
        return int(2**self.cfg.depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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


def save_segmenter(model: TinyUNet, path: Path, extra: dict[str, str] | None = None) -> Path:
    """Atomic safetensors write with the config (and ``extra``) in the metadata."""
    meta = {"format": FORMAT, "config": json.dumps(asdict(model.cfg))}
    meta.update(extra or {})
    tensors = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
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
    model = TinyUNet(SegConfig(**json.loads(meta["config"])))
    model.load_state_dict(load_file(str(path)))
    return model.eval()


@torch.no_grad()
def predict(model: TinyUNet, img: U8, window: int = 512, margin: int = 32) -> U8:
    """Class ids 1..5 for an (H, W, 3) uint8 image, in windows with a context margin."""
    model.eval()
    h, w = img.shape[:2]
    out = np.zeros((h, w), dtype=np.uint8)
    m = model.multiple
    for y0 in range(0, h, window):
        for x0 in range(0, w, window):
            y1, x1 = min(y0 + window, h), min(x0 + window, w)
            ya, xa = max(y0 - margin, 0), max(x0 - margin, 0)
            yb, xb = min(y1 + margin, h), min(x1 + margin, w)
            x = _to_input(img[ya:yb, xa:xb])[None]
            ph, pw = (-x.shape[2]) % m, (-x.shape[3]) % m
            if ph or pw:
                mode = "reflect" if min(x.shape[2], x.shape[3]) > max(ph, pw) else "replicate"
                x = F.pad(x, (0, pw, 0, ph), mode=mode)
            pred = model(x)[0].argmax(0).numpy().astype(np.uint8) + 1
            out[y0:y1, x0:x1] = pred[y0 - ya : y1 - ya, x0 - xa : x1 - xa]
    return out


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


def _batch(
    images: list[U8],
    labels: list[U8],
    size: int,
    n: int,
    rng: random.Random,
    n_classes: int = N_REAL,
) -> tuple[torch.Tensor, torch.Tensor]:
    weights = [lab.size for lab in labels]
    xs, ys = [], []
    for i in rng.choices(range(len(images)), weights=weights, k=n):
        img, lab = images[i], labels[i]
        s = min(size, *lab.shape)
        y, x = rng.randrange(lab.shape[0] - s + 1), rng.randrange(lab.shape[1] - s + 1)
        ci, cl = img[y : y + s, x : x + s], lab[y : y + s, x : x + s]
        k = rng.randrange(4)
        ci, cl = np.rot90(ci, k), np.rot90(cl, k)
        if rng.random() < 0.5:
            ci, cl = ci[:, ::-1], cl[:, ::-1]
        xs.append(_to_input(ci))
        ys.append(targets_from_classes(np.ascontiguousarray(cl), n_classes))
    return torch.stack(xs), torch.stack(ys)


def fit(
    images: list[U8],
    labels: list[U8],
    *,
    seconds: float | None = None,
    steps: int | None = None,
    size: int = 128,
    batch: int = 8,
    lr: float = 2e-3,
    cfg: SegConfig | None = None,
    seed: int = 0,
    log_every: int = 0,
) -> tuple[TinyUNet, int]:
    """Train on in-memory (image, class-id) pairs for a wall-clock budget or a step count."""
    if seconds is None and steps is None:
        raise ValueError("give seconds or steps")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = TinyUNet(cfg or SegConfig())
    k = model.cfg.n_classes
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(labels, k), ignore_index=IGNORE)
    t0 = time.monotonic()
    step = 0
    while True:
        frac = (
            (time.monotonic() - t0) / seconds if seconds is not None else step / max(steps or 1, 1)
        )
        if frac >= 1.0 or (steps is not None and step >= steps):
            break
        for g in opt.param_groups:  # short warm-up, then cosine decay over the budget
            g["lr"] = lr * min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * frac))
        x, y = _batch(images, labels, size, batch, rng, k)
        if bool((y == IGNORE).all()):
            step += 1
            continue
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if log_every and step % log_every == 0:
            print(f"step {step} loss {loss.item():.4f} t {time.monotonic() - t0:.0f}s", flush=True)
    return model.eval(), step


def train_segmenter(
    root: Path, out: Path, minutes: float, threads: int = 1, *, seed: int = 0
) -> Path:
    """Train on Dubai tiles 1-6 for ``minutes`` of wall clock; write safetensors to ``out``."""
    torch.set_num_threads(max(1, threads))
    pairs = load_pairs(Path(root), list(range(1, 7)))
    model, steps = fit(
        [p.image for p in pairs],
        [p.classes for p in pairs],
        seconds=minutes * 60.0,
        seed=seed,
        log_every=50,
    )
    extra = {"train_tiles": "1-6", "steps": str(steps), "minutes": str(minutes)}
    return save_segmenter(model, Path(out), extra)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--root", type=Path, default=Path("../shared/data/dubai_aerial"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-eval", action="store_true", help="skip the tile_7 mIoU afterwards")
    a = ap.parse_args(argv)
    path = train_segmenter(a.root, a.out, a.minutes, a.threads)
    print(f"wrote {path}")
    if not a.no_eval:
        held = load_pairs(a.root, [7])
        res = miou(path, [p.image for p in held], [p.classes for p in held])
        print(json.dumps({"tile_7": res}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
