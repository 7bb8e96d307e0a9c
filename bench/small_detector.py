"""A small CenterNet-style detector for the bench (CPU, from scratch, one class).

torchvision has no CPU build here, so the bench carries its own: a 4-level conv encoder with
a 2-step top-down fusion to stride 4, and three heads (centre heatmap, log box size, centre
offset), trained with the CenterNet focal loss and L1. Objects marked crowd (merged building
blocks) get no centre and their boxes are left out of the heatmap loss. Augmentation: the 8
flips / right-angle rotations (aerial chips have no up). Evaluation is pycocotools' COCOeval
on bounding boxes.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

STRIDE = 4
MAX_DETS = 100


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class CenterNetLite(nn.Module):
    """~0.2 M parameters; output maps at 1/4 of the input size."""

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        w = width
        self.c1 = _block(3, w // 2, 2)
        self.c2 = nn.Sequential(_block(w // 2, w, 2), _block(w, w))
        self.c3 = nn.Sequential(_block(w, 2 * w, 2), _block(2 * w, 2 * w))
        self.c4 = nn.Sequential(_block(2 * w, 2 * w, 2), _block(2 * w, 2 * w))
        self.f3 = nn.Sequential(nn.Conv2d(4 * w, 2 * w, 1), _block(2 * w, 2 * w))
        self.f2 = nn.Sequential(nn.Conv2d(3 * w, w, 1), _block(w, w))
        self.heat = nn.Sequential(_block(w, w), nn.Conv2d(w, 1, 1))
        self.size = nn.Sequential(_block(w, w), nn.Conv2d(w, 2, 1))
        self.offset = nn.Sequential(_block(w, w), nn.Conv2d(w, 2, 1))
        last = self.heat[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.constant_(last.bias, -2.19)  # prior 0.1, as CenterNet

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x2 = self.c2(self.c1(x))
        x3 = self.c3(x2)
        x4 = self.c4(x3)
        y3 = self.f3(torch.cat([x3, F.interpolate(x4, size=x3.shape[-2:])], 1))
        y2 = self.f2(torch.cat([x2, F.interpolate(y3, size=x2.shape[-2:])], 1))
        return self.heat(y2), self.size(y2), self.offset(y2)


def augment(img: NDArray[np.uint8], boxes: NDArray[np.float32], k: int) -> tuple[Any, Any]:
    """One of the 8 dihedral transforms (``k`` in 0..7) of a ``(3, S, S)`` chip and its
    ``(n, 4)`` boxes."""
    s = img.shape[-1]
    b = boxes.copy()
    if k & 4:  # transpose
        img = img.transpose(0, 2, 1)
        b = b[:, [1, 0, 3, 2]]
    if k & 1:  # flip x
        img = img[:, :, ::-1]
        b = np.stack([s - b[:, 2], b[:, 1], s - b[:, 0], b[:, 3]], 1)
    if k & 2:  # flip y
        img = img[:, ::-1, :]
        b = np.stack([b[:, 0], s - b[:, 3], b[:, 2], s - b[:, 1]], 1)
    return np.ascontiguousarray(img), b.reshape(-1, 4).astype(np.float32)


@dataclass
class Targets:
    heat: torch.Tensor  # (B, 1, H, W)
    weight: torch.Tensor  # (B, 1, H, W) 0 inside crowd boxes
    index: torch.Tensor  # (M,) flat index into B*H*W of each object's centre cell
    size: torch.Tensor  # (M, 2) log(w, h) in cells
    offset: torch.Tensor  # (M, 2)


def encode(boxes: Sequence[NDArray[np.float32]], crowd: Sequence[NDArray[np.bool_]],
           size: int) -> Targets:  # fmt: skip
    """CenterNet targets of a batch (elliptic Gaussians, sigma = 0.54 x side / 6)."""
    h = w = size // STRIDE
    heat = np.zeros((len(boxes), 1, h, w), np.float32)
    weight = np.ones_like(heat)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    index, sizes, offsets = [], [], []
    for i, (bx, cr) in enumerate(zip(boxes, crowd, strict=True)):
        for (x0, y0, x1, y1), is_crowd in zip(bx / STRIDE, cr, strict=True):
            if is_crowd:
                r0, c0, r1, c1 = math.floor(y0), math.floor(x0), math.ceil(y1), math.ceil(x1)
                weight[i, 0, r0:r1, c0:c1] = 0.0
                continue
            bw, bh = x1 - x0, y1 - y0
            if bw <= 0 or bh <= 0:
                continue
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            ix, iy = min(int(cx), w - 1), min(int(cy), h - 1)
            sx, sy = max(0.54 * bw / 6, 0.4), max(0.54 * bh / 6, 0.4)
            g = np.exp(-((xs - ix) ** 2) / (2 * sx * sx) - ((ys - iy) ** 2) / (2 * sy * sy))
            np.maximum(heat[i, 0], g, out=heat[i, 0])
            index.append(i * h * w + iy * w + ix)
            sizes.append((math.log(bw), math.log(bh)))
            offsets.append((cx - ix, cy - iy))
    weight = np.maximum(weight, (heat >= 1.0).astype(np.float32))
    return Targets(
        torch.from_numpy(heat), torch.from_numpy(weight), torch.tensor(index, dtype=torch.long),
        torch.tensor(sizes, dtype=torch.float32).reshape(-1, 2),
        torch.tensor(offsets, dtype=torch.float32).reshape(-1, 2),
    )  # fmt: skip


def loss(out: tuple[torch.Tensor, torch.Tensor, torch.Tensor], t: Targets) -> torch.Tensor:
    heat, size, offset = out
    p = torch.sigmoid(heat).clamp(1e-4, 1 - 1e-4)
    pos = (t.heat >= 1.0).float()
    neg_w = (1 - t.heat) ** 4
    focal = -(pos * (1 - p) ** 2 * torch.log(p) + (1 - pos) * neg_w * p**2 * torch.log(1 - p))
    n = max(float(pos.sum()), 1.0)
    total = (focal * t.weight).sum() / n
    if len(t.index):
        flat_s = size.permute(0, 2, 3, 1).reshape(-1, 2)[t.index]
        flat_o = offset.permute(0, 2, 3, 1).reshape(-1, 2)[t.index]
        total = total + 0.1 * F.l1_loss(flat_s, t.size) + F.l1_loss(flat_o, t.offset)
    return total


def _normalise(images: NDArray[np.uint8]) -> torch.Tensor:
    return (torch.from_numpy(np.ascontiguousarray(images)).float() - 110.0) / 60.0


@dataclass
class TrainLog:
    steps: int
    seconds: float
    last_loss: float


def train(model: CenterNetLite, images: NDArray[np.uint8], boxes: list[NDArray[np.float32]],
          crowd: list[NDArray[np.bool_]], *, steps: int, batch: int = 16, lr: float = 3e-3,
          seed: int = 0) -> TrainLog:  # fmt: skip
    """``steps`` Adam steps (cosine learning rate) on batches drawn uniformly from the chips."""
    import time

    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    start, value = time.perf_counter(), float("nan")
    size = images.shape[-1]
    for _ in range(steps):
        pick = rng.integers(0, len(images), batch)
        imgs, bxs, crs = [], [], []
        for i in pick:
            im, bx = augment(images[i], boxes[i], int(rng.integers(0, 8)))
            imgs.append(im)
            bxs.append(bx)
            crs.append(crowd[i])
        t = encode(bxs, crs, size)
        out = model(_normalise(np.stack(imgs)))
        lv = loss(out, t)
        opt.zero_grad()
        lv.backward()
        opt.step()
        sched.step()
        value = float(lv.detach())
    return TrainLog(steps, time.perf_counter() - start, value)


@torch.no_grad()
def detect(model: CenterNetLite, images: NDArray[np.uint8], batch: int = 64,
           min_score: float = 0.01) -> list[NDArray[np.float32]]:  # fmt: skip
    """Per chip ``(k, 5)`` x0, y0, x1, y1, score (peaks of the heatmap, top ``MAX_DETS``)."""
    model.eval()
    out = []
    size = images.shape[-1]
    for s in range(0, len(images), batch):
        heat, wh, off = model(_normalise(images[s : s + batch]))
        p = torch.sigmoid(heat)
        peaks = p * (F.max_pool2d(p, 3, 1, 1) == p).float()
        b, _, h, w = p.shape
        scores, idx = peaks.reshape(b, -1).topk(min(MAX_DETS, h * w))
        for j in range(b):
            keep = scores[j] >= min_score
            sc, ix = scores[j][keep], idx[j][keep]
            iy, ixx = (ix // w).float(), (ix % w).float()
            ox, oy = off[j, 0].reshape(-1)[ix], off[j, 1].reshape(-1)[ix]
            bw = torch.exp(wh[j, 0].reshape(-1)[ix].clamp(max=6)) * STRIDE
            bh = torch.exp(wh[j, 1].reshape(-1)[ix].clamp(max=6)) * STRIDE
            cx, cy = (ixx + ox) * STRIDE, (iy + oy) * STRIDE
            box = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
            box = box.clamp(0, size)
            out.append(torch.cat([box, sc[:, None]], 1).numpy().astype(np.float32))
    return out


def coco_ground_truth(boxes: list[NDArray[np.float32]], crowd: list[NDArray[np.bool_]],
                      size: int, rles: list[list[dict[str, Any]]] | None = None
                      ) -> dict[str, Any]:  # fmt: skip
    """A COCO ground-truth dict (one category, box area as ``area``, crowd as iscrowd; with
    ``rles``, the instance masks as ``segmentation`` for mask evaluation)."""
    images = [{"id": i + 1, "width": size, "height": size} for i in range(len(boxes))]
    anns = []
    for i, (bx, cr) in enumerate(zip(boxes, crowd, strict=True)):
        for j, ((x0, y0, x1, y1), c) in enumerate(zip(bx, cr, strict=True)):
            w, h = float(x1 - x0), float(y1 - y0)
            ann = {"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": int(c),
                   "bbox": [float(x0), float(y0), w, h], "area": w * h}  # fmt: skip
            if rles is not None:
                ann["segmentation"] = rles[i][j]
            anns.append(ann)
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "building"}]}  # fmt: skip


def coco_results(dets: list[NDArray[np.float32]]) -> list[dict[str, Any]]:
    out = []
    for i, d in enumerate(dets):
        for x0, y0, x1, y1, s in d:
            box = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
            out.append({"image_id": i + 1, "category_id": 1, "score": float(s), "bbox": box})
    return out


def evaluate(gt: dict[str, Any], results: list[dict[str, Any]], kind: str = "bbox"
             ) -> dict[str, float]:  # fmt: skip
    """mAP@0.5 and mAP@0.5:0.95 of ``results`` against ``gt``, by COCOeval (``kind`` bbox
    or segm)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        if not results:
            return {"map50": 0.0, "map": 0.0}
        dt = coco.loadRes(results)
        ev = COCOeval(coco, dt, kind)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"map": max(float(ev.stats[0]), 0.0), "map50": max(float(ev.stats[1]), 0.0)}


# --- the instance segmenter: building pixels, instances by connected components ----------


Instance = tuple[tuple[int, int, int, int], float, NDArray[np.bool_]]
"""A predicted instance: box (x0, y0, x1, y1), score, mask."""


class TinyUNet(nn.Module):
    """The same encoder as :class:`CenterNetLite` with a decoder to 1/2 of the input size:
    one logit per pixel (building or not), upsampled to the input size."""

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        w = width
        self.c1 = _block(3, w // 2, 2)
        self.c2 = nn.Sequential(_block(w // 2, w, 2), _block(w, w))
        self.c3 = nn.Sequential(_block(w, 2 * w, 2), _block(2 * w, 2 * w))
        self.c4 = nn.Sequential(_block(2 * w, 2 * w, 2), _block(2 * w, 2 * w))
        self.f3 = nn.Sequential(nn.Conv2d(4 * w, 2 * w, 1), _block(2 * w, 2 * w))
        self.f2 = nn.Sequential(nn.Conv2d(3 * w, w, 1), _block(w, w))
        self.f1 = nn.Sequential(nn.Conv2d(w + w // 2, w // 2, 1), _block(w // 2, w // 2))
        self.head = nn.Conv2d(w // 2, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.c1(x)
        x2 = self.c2(x1)
        x3 = self.c3(x2)
        x4 = self.c4(x3)
        y = self.f3(torch.cat([x3, F.interpolate(x4, size=x3.shape[-2:])], 1))
        y = self.f2(torch.cat([x2, F.interpolate(y, size=x2.shape[-2:])], 1))
        y = self.f1(torch.cat([x1, F.interpolate(y, size=x1.shape[-2:])], 1))
        return F.interpolate(self.head(y), size=x.shape[-2:], mode="bilinear")


def _augment_pair(img: NDArray[np.uint8], mask: NDArray[np.bool_], k: int) -> tuple[Any, Any]:
    if k & 4:
        img, mask = img.transpose(0, 2, 1), mask.T
    if k & 1:
        img, mask = img[:, :, ::-1], mask[:, ::-1]
    if k & 2:
        img, mask = img[:, ::-1, :], mask[::-1, :]
    return np.ascontiguousarray(img), np.ascontiguousarray(mask)


def train_seg(model: TinyUNet, images: NDArray[np.uint8], masks: NDArray[np.bool_], *,
              steps: int, batch: int = 12, lr: float = 3e-3, seed: int = 0,
              crop: int | None = None) -> TrainLog:  # fmt: skip
    """``steps`` AdamW steps (one-cycle learning rate) of BCE + soft Dice on building pixels,
    batches drawn uniformly from the chips, dihedral augmentation, random ``crop`` x ``crop``
    windows of the chips (cheaper steps, so more of them in the same time)."""
    import time

    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    start, value = time.perf_counter(), float("nan")
    for _ in range(steps):
        size = images.shape[-1]
        c = min(crop or size, size)
        pairs = []
        for i in rng.integers(0, len(images), batch):
            r, q = rng.integers(0, size - c + 1, 2)
            k = int(rng.integers(0, 8))
            pairs.append(_augment_pair(images[i, :, r : r + c, q : q + c],
                                       masks[i, r : r + c, q : q + c], k))  # fmt: skip
        x = _normalise(np.stack([p[0] for p in pairs]))
        y = torch.from_numpy(np.stack([p[1] for p in pairs])[:, None].astype(np.float32))
        logit = model(x)
        p = torch.sigmoid(logit)
        dice = 1 - (2 * (p * y).sum() + 1) / (p.sum() + y.sum() + 1)
        lv = F.binary_cross_entropy_with_logits(logit, y) + dice
        opt.zero_grad()
        lv.backward()
        opt.step()
        sched.step()
        value = float(lv.detach())
    return TrainLog(steps, time.perf_counter() - start, value)


@torch.no_grad()
def segment_instances(
    model: TinyUNet, images: NDArray[np.uint8], threshold: float = 0.5, min_area: int = 4
) -> list[list[Instance]]:
    """Per chip, the predicted instances: 4-connected components of the pixels over
    ``threshold`` (at least ``min_area`` px), each ``(box x0 y0 x1 y1, score, mask)``, the
    score the mean probability inside the component."""
    from scipy import ndimage

    model.eval()
    out: list[list[Instance]] = []
    for s in range(0, len(images), 64):
        prob = torch.sigmoid(model(_normalise(images[s : s + 64])))[:, 0].numpy()
        for p in prob:
            lab = ndimage.label(p > threshold)[0]
            found = []
            for i, sl in enumerate(ndimage.find_objects(lab), start=1):
                if sl is None:
                    continue
                m = lab == i
                area = int(m.sum())
                if area < min_area:
                    continue
                box = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
                found.append((box, float(p[m].mean()), m))
            out.append(found)
    return out


def instance_results(found: list[list[Instance]]) -> list[dict[str, Any]]:
    """COCO results (bbox and RLE segmentation) of :func:`segment_instances`."""
    from pycocotools import mask as cmask

    out = []
    for i, insts in enumerate(found):
        for (x0, y0, x1, y1), score, m in insts:
            rle = cmask.encode(np.asfortranarray(m.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode()
            out.append({"image_id": i + 1, "category_id": 1, "score": score,
                        "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                        "segmentation": rle})  # fmt: skip
    return out
