"""Layout-prior diagnostic: does the model use its condition where the layout is decided?

At t = 0 the input is pure noise, so the best x-prediction is ``E[x | condition]``. Comparing
its error with and without the condition (text and contours dropped) measures how much the
model has learned the layout; a gain near zero means samples will ignore the layout however
good the denoising loss looks. ``python -m rs_seg2any.train.diagnostics WEIGHTS``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from rs_seg2any.generators.tiny.text import default_encoder
from rs_seg2any.generators.tiny.weights import load_autoencoder, load_weights
from rs_seg2any.train.dubai import collate
from rs_seg2any.train.evaluate import held_out_crops


@torch.no_grad()
def layout_prior_gain(
    weights: Path, root: Path, *, n: int = 8, size: int = 128, ts: tuple[float, ...] = (0.0, 0.3)
) -> dict[str, dict[str, float]]:
    """Per t: model-space MSE of ``x_hat`` with and without the condition, and the gain."""
    torch.set_num_threads(1)
    model, ae = load_weights(weights), load_autoencoder(weights)
    x, cond = collate(held_out_crops(root, n, size, 32), default_encoder(), 32, None)
    target = ae.encode(x) if ae is not None else x
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    off = torch.ones(n, dtype=torch.bool)
    ctx_c = model.encode_context(cond)
    ctx_u = model.encode_context(replace(cond, drop_text=off, drop_cond=off))
    out: dict[str, dict[str, float]] = {}
    for t in ts:
        z = t * target + (1 - t) * noise
        tt = torch.full((n,), t)
        mc = float(((model(z, tt, ctx_c) - target) ** 2).mean())
        mu = float(((model(z, tt, ctx_u) - target) ** 2).mean())
        out[f"t={t}"] = {"cond": mc, "uncond": mu, "gain": 1 - mc / mu}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("weights", type=Path)
    ap.add_argument("--root", type=Path, default=Path("../shared/data/dubai_aerial"))
    a = ap.parse_args(argv)
    print(json.dumps(layout_prior_gain(a.weights, a.root), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
