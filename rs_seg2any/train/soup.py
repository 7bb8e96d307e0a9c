"""Weight averaging ("model soup") of segmenter files from one training lineage.

Why: checkpoints of one run, or a run and its continuation at a lower learning rate, sit in
one loss basin; the element-wise mean of their weights is one net of the same size that
tends to generalise better than each member, at no cost at prediction time (unlike an
ensemble, which pays one pass per member). Averaging unrelated nets does not work; this
module only checks that the files fit together (same architecture, tensor names, shapes).

BatchNorm running statistics of the mean weights are not the mean of the members'
statistics; ``bn="recompute"`` re-estimates them on training crops (the library's own
training batcher, no gradient), ``bn="average"`` keeps the mean. Decision settings
(class offsets, flips, scales) belong to one net and are dropped: calibrate the soup
afterwards (:func:`~rs_seg2any.train.segmenter.calibrate_segmenter`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from rs_seg2any.errors import InputError, SegmenterMismatchError
from rs_seg2any.train.dubai import load_pairs
from rs_seg2any.train.segmenter import (
    TRAIN_TILES,
    VERSIONS,
    TinyUNet,
    _batch,
    _parse_tiles,
    load_segmenter,
    save_segmenter,
    segmenter_metadata,
)

BN_MODES = ("average", "recompute")
ARCH_FIELDS = ("arch", "width", "depth", "n_classes", "input_scale")
"""Config fields that must agree between soup members (the rest is decision settings)."""


def _mixing(n: int, weights: Sequence[float] | None) -> list[float]:
    if weights is None:
        return [1.0 / n] * n
    w = [float(v) for v in weights]
    if len(w) != n or any(not v >= 0.0 for v in w) or sum(w) <= 0.0:
        raise InputError(f"soup weights must be {n} non-negative numbers, not all 0; got {weights}")
    return [v / sum(w) for v in w]


def _config(path: Path) -> dict[str, object]:
    """The architecture part of a segmenter file's config (the file is checked first)."""
    load_segmenter(path)  # typed errors for missing / foreign / broken files
    cfg: dict[str, object] = json.loads(segmenter_metadata(path)["config"])
    return {f: cfg.get(f) for f in ARCH_FIELDS}


def average_weights(
    paths: Sequence[Path], weights: Sequence[float] | None = None
) -> tuple[TinyUNet, dict[str, torch.Tensor]]:
    """(net with the first file's architecture, mean state dict in fp32) of ``paths``,
    weighted by ``weights`` (default uniform). Integer buffers (BatchNorm batch counts) take
    the first file's value. Raises :class:`SegmenterMismatchError` if the files differ in
    architecture, tensor names or shapes."""
    if len(paths) < 2:
        raise InputError(f"a soup needs at least 2 segmenter files, got {len(paths)}")
    mix = _mixing(len(paths), weights)
    cfgs = [_config(Path(p)) for p in paths]
    for p, cfg in zip(paths[1:], cfgs[1:], strict=True):
        diff = [f for f in ARCH_FIELDS if cfg.get(f) != cfgs[0].get(f)]
        if diff:
            raise SegmenterMismatchError(
                f"{p} has another architecture than {paths[0]} ({', '.join(diff)} differ); "
                "only files of one training lineage can be averaged"
            )
    states = [load_file(str(p)) for p in paths]
    for p, st in zip(paths[1:], states[1:], strict=True):
        if st.keys() != states[0].keys():
            odd = sorted(st.keys() ^ states[0].keys())
            raise SegmenterMismatchError(f"{p} and {paths[0]} hold other tensors: {odd[:3]}")
        bad = [k for k, v in st.items() if v.shape != states[0][k].shape]
        if bad:
            raise SegmenterMismatchError(f"{p} and {paths[0]} differ in the shape of {bad[0]}")
    mean: dict[str, torch.Tensor] = {}
    for k, first in states[0].items():
        if first.is_floating_point():
            mean[k] = sum((w * st[k].float() for w, st in zip(mix, states, strict=True)),
                          torch.zeros_like(first, dtype=torch.float32))  # fmt: skip
        else:
            mean[k] = first.clone()
    ref = load_segmenter(Path(paths[0])).cfg
    net = TinyUNet(replace(ref, class_bias=(), flips=False, scales=(1.0,)))
    net.load_state_dict(mean)
    return net.eval(), mean


@torch.no_grad()
def recompute_bn(
    model: TinyUNet, root: Path, tiles: Sequence[int], *, batches: int = 40, seed: int = 0
) -> int:
    """Re-estimate the BatchNorm running statistics of ``model`` on ``batches`` training
    batches (v3 recipe crops and augmentation, cumulative average); returns the number of
    BatchNorm layers (0: nothing to do)."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        return 0
    pairs = load_pairs(Path(root), list(tiles))
    recipe = VERSIONS["v3"][1]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative mean over the batches
    rng = random.Random(seed)
    model.train()
    for _ in range(batches):
        x, _ = _batch([p.image for p in pairs], [p.classes for p in pairs], recipe, rng)
        model(x)
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
    model.eval()
    return len(bns)


def soup_segmenters(
    paths: Sequence[Path],
    out: Path,
    *,
    weights: Sequence[float] | None = None,
    bn: str = "average",
    root: Path | None = None,
    tiles: Sequence[int] = TRAIN_TILES,
    batches: int = 40,
    seed: int = 0,
) -> Path:
    """Average the segmenter files ``paths`` (see :func:`average_weights`) into ``out``
    (fp16 if every member is fp16); ``bn="recompute"`` re-estimates BatchNorm statistics on
    the Dubai ``tiles`` under ``root``. The metadata records the members, their weights and
    the BatchNorm treatment; the soup carries no class offsets (calibrate it)."""
    if bn not in BN_MODES:
        raise InputError(f"bn must be one of {', '.join(BN_MODES)}, got {bn!r}")
    if bn == "recompute" and root is None:
        raise InputError("bn='recompute' needs the training data folder (root)")
    mix = _mixing(len(paths), weights)
    net, _ = average_weights(paths, mix)
    n_bn = 0
    if bn == "recompute" and root is not None:
        n_bn = recompute_bn(net, Path(root), tiles, batches=batches, seed=seed)
    first = segmenter_metadata(Path(paths[0]))
    keep = ("train_tiles", "data", "encoder_init", "recipe")
    extra = {k: first[k] for k in keep if k in first}
    extra["soup_members"] = json.dumps([Path(p).name for p in paths])
    extra["soup_weights"] = json.dumps([round(w, 6) for w in mix])
    extra["soup_members_steps"] = json.dumps(
        [segmenter_metadata(Path(p)).get("steps", "") for p in paths]
    )
    extra["soup_bn"] = (
        f"recomputed on tiles {','.join(map(str, tiles))}: {batches} training batches, seed {seed}"
        if n_bn
        else "averaged"
    )
    half = all(
        t.dtype == torch.float16 for p in paths for t in load_file(str(p)).values()
        if t.is_floating_point()
    )  # fmt: skip
    return save_segmenter(net, Path(out), extra, half=half)


def main(argv: list[str] | None = None) -> int:
    """``python -m rs_seg2any.train segmenter-soup A B ... --out F [--bn recompute --root D]``."""
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m rs_seg2any.train segmenter-soup",
        description="average segmenter weight files of one training lineage into one file",
    )
    ap.add_argument("weights", type=Path, nargs="+", help="segmenter .safetensors files")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--mix", default=None, help="comma-separated member weights (default equal)")
    ap.add_argument("--bn", choices=BN_MODES, default="average", help="BatchNorm statistics")
    ap.add_argument("--root", type=Path, default=None, help="Dubai data folder (--bn recompute)")
    ap.add_argument("--tiles", default=",".join(map(str, TRAIN_TILES)), help="e.g. 1,3-6")
    ap.add_argument("--batches", type=int, default=40, help="training batches for --bn recompute")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    try:
        mix = [float(v) for v in a.mix.split(",")] if a.mix else None
    except ValueError:
        raise InputError(f"--mix must be comma-separated numbers, got {a.mix!r}") from None
    path = soup_segmenters(a.weights, a.out, weights=mix, bn=a.bn, root=a.root,
                           tiles=_parse_tiles(a.tiles), batches=a.batches, seed=a.seed)  # fmt: skip
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
