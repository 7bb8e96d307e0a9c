"""Real-vs-generated classifier two-sample test (C2ST) with one fixed protocol.

A small CNN learns to tell real crops from candidate crops; its accuracy on crops from areas
it never saw is the score: 0.5 means it cannot tell them apart, 1.0 means every crop gives
itself away. Everything that could give a crop away without being about realism is removed
the same way on both sides: both images are downsampled 2x (box filter) and re-encoded as
JPEG q85 with Pillow before any crop is taken, so resampling and compression traces match.

Spatial split: each (downsampled) scene is cut into ``block``-px squares that take four roles
in a 2 x 2 checkerboard — real-train, real-test, candidate-train, candidate-test. Crops never
straddle a block, so test crops come from areas (and layout parts) that no training crop saw,
and real and candidate crops come from equally many areas of every scene. Real-vs-real (the
candidate is the real image itself) therefore compares two disjoint sets of real areas.

The classifier is trusted only when it separates what must be separable (flat class-colour
paint, the real image blurred with sigma 4: both >= 0.95) and does not separate real from
real (<= 0.6); :func:`validity` applies that rule. Training is on CPU with one thread and
seeded, so a score is reproducible bit for bit on one machine.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

U8 = NDArray[np.uint8]

#: Block roles of the spatial split (index = 2 * (row % 2) + (col % 2)).
REAL_TRAIN, CAND_TRAIN, CAND_TEST, REAL_TEST = 0, 1, 2, 3


@dataclass(frozen=True)
class C2STProtocol:
    """The fixed protocol; change a field only to study the test itself, and say so."""

    crop: int = 64
    downsample: int = 2
    jpeg_quality: int = 85
    block: int = 128  # spatial-split squares, downsampled px (>= crop)
    steps: int = 300
    batch: int = 32  # half real, half candidate
    lr: float = 2e-3
    width: int = 16  # channels of the first of the four conv blocks
    seeds: tuple[int, ...] = (0, 1, 2)
    test_stride: int = 32  # test crops: a regular grid in the test blocks
    threads: int = 1
    valid_min_control: float = 0.95  # flat paint and blurred real must score at least this
    valid_max_real: float = 0.6  # real vs real must score at most this

    def __post_init__(self) -> None:
        if self.block < self.crop or self.crop < 16 or self.downsample < 1:
            raise ValueError("C2STProtocol: need block >= crop >= 16 and downsample >= 1")
        if not self.seeds or self.steps < 1 or self.batch < 2:
            raise ValueError("C2STProtocol: need at least one seed, one step and a batch of 2")


@dataclass(frozen=True)
class C2STResult:
    """Held-out balanced accuracy per seed, their mean and (population) std."""

    mean: float
    std: float
    accuracies: tuple[float, ...]
    train_crops: int  # per side and seed (drawn with replacement from the train blocks)
    test_crops: tuple[int, int]  # (real, candidate)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Validity:
    """Whether the classifier is sharp enough (controls) and fair enough (real vs real)."""

    valid: bool
    flat: float | None
    blurred: float | None
    real_vs_real: float | None
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validity(
    flat: C2STResult | None,
    blurred: C2STResult | None,
    real_vs_real: C2STResult | None,
    protocol: C2STProtocol | None = None,
) -> Validity:
    """The issue's rule: flat and blurred >= 0.95, real vs real <= 0.6; a missing control
    makes the test invalid (a score nobody checked the classifier for)."""
    p = protocol or C2STProtocol()
    reasons: list[str] = []
    for name, res in (("flat paint", flat), ("blurred real", blurred)):
        if res is None:
            reasons.append(f"{name} control not run")
        elif res.mean < p.valid_min_control:
            reasons.append(f"{name} scored {res.mean:.3f} < {p.valid_min_control}")
    if real_vs_real is None:
        reasons.append("real-vs-real control not run")
    elif real_vs_real.mean > p.valid_max_real:
        reasons.append(f"real vs real scored {real_vs_real.mean:.3f} > {p.valid_max_real}")
    return Validity(
        valid=not reasons,
        flat=flat.mean if flat else None,
        blurred=blurred.mean if blurred else None,
        real_vs_real=real_vs_real.mean if real_vs_real else None,
        reasons=tuple(reasons),
    )


def prepare(image: U8, protocol: C2STProtocol) -> U8:
    """Downsample (box filter, crop to a multiple first) and re-encode as JPEG."""
    img = np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3])
    f = protocol.downsample
    h, w = img.shape[0] - img.shape[0] % f, img.shape[1] - img.shape[1] % f
    pil = Image.fromarray(img[:h, :w])
    if f > 1:
        pil = pil.reduce(f)
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=protocol.jpeg_quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def block_role(row: int, col: int) -> int:
    """Role of block (row, col) in the 2 x 2 checkerboard: train and test blocks of one side
    touch only at corners."""
    return 2 * (row % 2) + (col % 2)


def _positions(shape: tuple[int, int], role: int, p: C2STProtocol, stride: int) -> NDArray[Any]:
    """Top-left corners (y, x) of every crop fully inside a block of ``role``."""
    h, w = shape
    out: list[tuple[int, int]] = []
    for by in range(math.ceil(h / p.block)):
        for bx in range(math.ceil(w / p.block)):
            if block_role(by, bx) != role:
                continue
            y1, x1 = min((by + 1) * p.block, h), min((bx + 1) * p.block, w)
            ys = range(by * p.block, y1 - p.crop + 1, stride)
            xs = range(bx * p.block, x1 - p.crop + 1, stride)
            out.extend((y, x) for y in ys for x in xs)
    return np.array(out, dtype=np.int64).reshape(-1, 2)


class _CropSource:
    """Every crop position of one role over a list of images; crops are cut on demand."""

    def __init__(self, images: Sequence[U8], role: int, p: C2STProtocol, stride: int) -> None:
        self.images = images
        self.size = p.crop
        where = [
            np.column_stack([np.full(len(pos), i), pos])
            for i, img in enumerate(images)
            if len(pos := _positions(img.shape[:2], role, p, stride))
        ]
        self.where = np.concatenate(where) if where else np.zeros((0, 3), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.where)

    def take(self, index: NDArray[np.integer]) -> U8:
        s = self.size
        out = [self.images[i][y : y + s, x : x + s] for i, y, x in self.where[index]]
        return np.stack(out) if out else np.zeros((0, s, s, 3), dtype=np.uint8)

    def all(self) -> U8:
        return self.take(np.arange(len(self)))


def check_pairs(real: Sequence[U8], candidate: Sequence[U8]) -> None:
    """Same number of scenes and the same shape per scene (a candidate renders the real
    scene's layout); raises ValueError otherwise (callers map it to their typed error)."""
    if len(real) != len(candidate) or not real:
        raise ValueError(f"{len(real)} real scenes but {len(candidate)} candidate scenes")
    for i, (r, c) in enumerate(zip(real, candidate, strict=True)):
        if r.shape[:2] != c.shape[:2]:
            raise ValueError(f"scene {i}: real {r.shape[:2]} and candidate {c.shape[:2]} differ")


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _classifier(width: int) -> Any:
    """Four conv blocks (conv 3x3, batch norm, ReLU, max-pool 2), global mean, one logit."""
    from torch import nn

    chans = (width, 2 * width, 2 * width, 4 * width)
    layers: list[nn.Module] = []
    cin = 3
    for cout in chans:
        layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                   nn.ReLU(inplace=True), nn.MaxPool2d(2)]  # fmt: skip
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1)]
    return nn.Sequential(*layers)


def _tensor(crops: U8) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 127.5 - 1


def _augment(crops: U8, rng: np.random.Generator) -> U8:
    """Random 90-degree turns and flips (overhead imagery has no up)."""
    out = np.empty_like(crops)
    for i, c in enumerate(crops):
        c = np.rot90(c, int(rng.integers(4)))
        out[i] = c[:, ::-1] if rng.random() < 0.5 else c
    return out


def _run_seed(
    train_real: _CropSource,
    train_cand: _CropSource,
    test_real: U8,
    test_cand: U8,
    seed: int,
    p: C2STProtocol,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Train one classifier; its logits on the real and candidate test crops."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = _classifier(p.width)
    opt = torch.optim.Adam(net.parameters(), lr=p.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    half = p.batch // 2
    target = torch.cat([torch.zeros(half), torch.ones(half)])[:, None]
    net.train()
    for step in range(p.steps):
        for g in opt.param_groups:  # cosine decay: the same schedule for every comparison
            g["lr"] = p.lr * 0.5 * (1 + math.cos(math.pi * step / p.steps))
        a = train_real.take(rng.integers(len(train_real), size=half))
        b = train_cand.take(rng.integers(len(train_cand), size=half))
        x = _tensor(_augment(np.concatenate([a, b]), rng))
        loss = loss_fn(net(x), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        return _logits(net, test_real), _logits(net, test_cand)


def _accuracy(real_logits: NDArray[np.float32], cand_logits: NDArray[np.float32]) -> float:
    """Balanced accuracy: real crops called real (logit < 0), generated ones caught."""
    return 0.5 * (float((real_logits < 0).mean()) + float((cand_logits >= 0).mean()))


def _logits(net: Any, crops: U8, chunk: int = 256) -> NDArray[np.float32]:
    parts = [net(_tensor(crops[i : i + chunk]))[:, 0].numpy() for i in range(0, len(crops), chunk)]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


Logits = list[tuple[NDArray[np.float32], NDArray[np.float32]]]


def _classify(
    real: Sequence[U8], candidate: Sequence[U8], p: C2STProtocol
) -> tuple[tuple[_CropSource, U8], tuple[_CropSource, U8], Logits]:
    """The protocol's test: the test crops, real and candidate (each its source and the crops
    cut once), and per classifier seed the logits on them."""
    check_pairs(real, candidate)
    real_p = [prepare(r, p) for r in real]
    cand_p = [prepare(c, p) for c in candidate]
    train_real = _CropSource(real_p, REAL_TRAIN, p, 1)
    train_cand = _CropSource(cand_p, CAND_TRAIN, p, 1)
    test_real = _CropSource(real_p, REAL_TEST, p, p.test_stride)
    test_cand = _CropSource(cand_p, CAND_TEST, p, p.test_stride)
    if min(len(train_real), len(train_cand), len(test_real), len(test_cand)) == 0:
        side = 2 * p.block * p.downsample
        raise ValueError(f"scenes too small for the classifier test: need >= {side} px a side")
    tr, tc = test_real.all(), test_cand.all()
    with _torch_threads(p.threads):
        logits = [_run_seed(train_real, train_cand, tr, tc, s, p) for s in p.seeds]
    return (test_real, tr), (test_cand, tc), logits


def c2st(
    real: Sequence[U8], candidate: Sequence[U8], protocol: C2STProtocol | None = None
) -> C2STResult:
    """Score ``candidate`` images against the ``real`` images of the same scenes.

    Scene ``i`` of both lists must have the same shape. Pass the real images as the candidate
    for the real-vs-real control. Raises ValueError when the scenes give no crop of a role
    (scenes smaller than two blocks on a side).
    """
    p = protocol or C2STProtocol()
    (_, test_real), (_, test_cand), logits = _classify(real, candidate, p)
    accs = tuple(_accuracy(r, c) for r, c in logits)
    return C2STResult(
        mean=float(np.mean(accs)),
        std=float(np.std(accs)),
        accuracies=accs,
        train_crops=p.steps * (p.batch // 2),
        test_crops=(len(test_real), len(test_cand)),
    )


@dataclass(frozen=True)
class CropScores:
    """Where the classifier test catches the candidate: every test crop with its mean logit
    over the classifier seeds (> 0: called generated). ``*_where`` rows are (scene, y, x) in
    full-resolution pixels of the input scenes; ``*_crops`` are the crops as the classifier
    saw them (downsampled, JPEG)."""

    accuracy: float  # balanced, of the mean logits (close to, not equal to, the C2ST mean)
    real_where: NDArray[np.int64]
    real_logit: NDArray[np.float32]
    real_crops: U8
    cand_where: NDArray[np.int64]
    cand_logit: NDArray[np.float32]
    cand_crops: U8

    def caught(self) -> NDArray[np.bool_]:
        """Candidate crops the classifier calls generated."""
        return self.cand_logit >= 0


def crop_scores(
    real: Sequence[U8], candidate: Sequence[U8], protocol: C2STProtocol | None = None
) -> CropScores:
    """The classifier test of :func:`c2st`, kept per test crop: which content gives the
    candidate away (a class, a tile, a colour), to read next to the single accuracy."""
    p = protocol or C2STProtocol()
    (real_src, real_crops), (cand_src, cand_crops), logits = _classify(real, candidate, p)
    real_logit = np.mean([r for r, _ in logits], axis=0).astype(np.float32)
    cand_logit = np.mean([c for _, c in logits], axis=0).astype(np.float32)
    scale = np.array([1, p.downsample, p.downsample], np.int64)
    return CropScores(
        accuracy=_accuracy(real_logit, cand_logit),
        real_where=real_src.where * scale,
        real_logit=real_logit,
        real_crops=real_crops,
        cand_where=cand_src.where * scale,
        cand_logit=cand_logit,
        cand_crops=cand_crops,
    )
