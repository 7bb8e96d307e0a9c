"""Held-out (tile_7) evaluation of a tiny-model checkpoint: speed, realism proxy, a figure.

``python -m rs_seg2any.train.evaluate WEIGHTS --out DIR`` writes ``metrics.json`` and
``samples.png`` (layout | real | generated | flat painter). Used by the formulation
experiments in docs/dev/issue3_experiments.md.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rs_seg2any.atomic import atomic_output, write_json
from rs_seg2any.conditioning import condition_keep
from rs_seg2any.generators.base import DEFAULT_GUIDANCE, DEFAULT_STEPS
from rs_seg2any.generators.tiny.sampler import sample
from rs_seg2any.generators.tiny.text import default_encoder
from rs_seg2any.generators.tiny.weights import load_autoencoder, load_weights
from rs_seg2any.train import realism
from rs_seg2any.train.dubai import PALETTE, Crop, collate, load_pairs, random_crop

LAYOUT_RGB = {cid: rgb for rgb, cid in PALETTE.items() if rgb != (0, 0, 0)}


def _layout_rgb(cls: np.ndarray) -> np.ndarray:
    out = np.zeros((*cls.shape, 3), dtype=np.uint8)
    for c, rgb in LAYOUT_RGB.items():
        out[cls == c] = rgb
    return out


def held_out_crops(root: Path, n: int, size: int, max_entities: int, seed: int = 7) -> list[Crop]:
    """Deterministic, un-augmented tile_7 crops."""
    pairs = load_pairs(root, [7])
    rng = random.Random(seed)
    weights = [p.classes.size for p in pairs]
    return [
        random_crop(p, size, rng, max_entities, augment=False)
        for p in rng.choices(pairs, weights=weights, k=n)
    ]


def evaluate(
    weights: Path,
    out: Path,
    root: Path,
    *,
    n: int = 16,
    size: int = 256,
    steps: int = 10,
    guidance: float = DEFAULT_GUIDANCE,
    gamma: float = 1.0,
    bf16: bool = True,
    train_tiles: int = 6,
    seg: Path | None = None,
    crop_seed: int = 7,
) -> dict[str, object]:
    torch.set_num_threads(1)
    model = load_weights(weights)
    ae = load_autoencoder(weights)
    enc = default_encoder()
    crops = held_out_crops(root, n, size, 32, seed=crop_seed)
    gen: list[np.ndarray] = []
    times: list[float] = []
    kept: list[float] = []
    for i, cr in enumerate(crops):
        _, cond = collate([cr], enc, 32, None)
        kept.append(float(condition_keep(cond.contours, model.cfg.cond_patch).float().mean()))
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            x = sample(model, cond, steps=steps, guidance=guidance, gamma=gamma, seed=i, ae=ae)
        times.append(time.perf_counter() - t0)
        img = ((x[0].float().permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255)
        gen.append(img.astype(np.uint8))
    real = [c.image for c in crops]
    cls = [c.classes for c in crops]
    train = load_pairs(root, list(range(1, train_tiles + 1)))
    colours = realism.class_colours([p.image for p in train], [p.classes for p in train])
    flat = [realism.flat_painter(c, colours) for c in cls]
    blur = [realism.blurred(r) for r in real]
    res: dict[str, object] = {
        "weights": str(weights),
        "steps": steps,
        "guidance": guidance,
        "gamma": gamma,
        "crop_seed": crop_seed,
        "n": n,
        "size": size,
        "s_per_tile_1thread": float(np.median(times[1:] or times)),
        "cond_tokens_kept": float(np.mean(kept)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    for name, imgs in (("model", gen), ("flat", flat), ("blur", blur)):
        d = realism.class_distances(imgs, real, cls)
        res[name] = {
            "texture": realism.mean_distance(d, "texture"),
            "colour": realism.mean_distance(d, "colour"),
            "per_class": {str(k): v for k, v in d.items()},
        }
    if seg is not None:  # layout fidelity on the very same crops and sampler settings
        from rs_seg2any.train.segmenter import fidelity_report

        res["fidelity"] = fidelity_report(seg, gen, list(cls), real)  # type: ignore[arg-type]
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", res, indent=1, sort_keys=False)
    rows = [
        np.concatenate([_layout_rgb(c), r, g, f], axis=1)
        for c, r, g, f in zip(cls[:4], real[:4], gen[:4], flat[:4], strict=True)
    ]
    with atomic_output(out / "samples.png") as tmp:
        Image.fromarray(np.concatenate(rows, axis=0)).resize(
            (4 * size // 2, len(rows) * size // 2), Image.Resampling.BILINEAR
        ).save(tmp)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("weights", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--root", type=Path, default=Path("../shared/data/dubai_aerial"))
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    ap.add_argument("--gamma", type=float, default=1.0)
    ap.add_argument("--fp32", action="store_true")
    ap.add_argument("--seg", type=Path, help="segmenter weights: also report layout fidelity")
    ap.add_argument("--crop-seed", type=int, default=7, help="which held-out crops (tile_7)")
    a = ap.parse_args(argv)
    res = evaluate(
        a.weights,
        a.out,
        a.root,
        n=a.n,
        steps=a.steps,
        guidance=a.guidance,
        gamma=a.gamma,
        bf16=not a.fp32,
        seg=a.seg,
        crop_seed=a.crop_seed,
    )
    print(
        json.dumps(
            {
                k: (
                    v
                    if not isinstance(v, dict)
                    else {kk: vv for kk, vv in v.items() if kk != "per_class"}
                )
                for k, v in res.items()
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
