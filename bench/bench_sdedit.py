"""Does harmonising the exemplar composite with the tiny model (SDEdit) help? Tile-level check.

Takes the exemplar backend's whole-scene renders of held-out tile_7 made by
``bench/bench_realism.py`` (``--out`` folder of that run), cuts 256-px tiles, and runs the
tiny model's partial denoising from each (encode, noise to ``t = 1 - strength``, the remaining
flow steps with the tile's layout and texts, decode) at a few strengths. Scores colour,
saturation and texture against the real tiles (no classifier: too few pixels), next to the
plain composite and v1's tiles from the same run.

    python bench/bench_sdedit.py --run /tmp/realism [--strengths 0.25 0.5]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import rasterio
import torch

from rs_seg2any.generators.base import DEFAULT_GUIDANCE, DEFAULT_STEPS, with_background
from rs_seg2any.generators.registry import shipped_weights
from rs_seg2any.generators.tiny.generator import TinyGenerator
from rs_seg2any.generators.tiny.sampler import _with_uncond, velocity
from rs_seg2any.quality.colour import colour_scores
from rs_seg2any.quality.texture import texture_scores
from rs_seg2any.taxonomy import load_taxonomy
from rs_seg2any.train.dubai import load_pairs

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dubai_aerial"


@torch.no_grad()
def sdedit(tg: TinyGenerator, img: np.ndarray, lab: np.ndarray, strength: float,
           seed: int) -> np.ndarray:  # fmt: skip
    """The tiny model's partial denoising of ``img`` under the layout ``lab`` (one entity per
    class, the taxonomy's class description as its text)."""
    names = load_taxonomy("dubai_aerial")
    desc = {c.id: c.description for c in names.classes}
    ids = [int(c) for c in np.unique(lab)]
    inst = (np.searchsorted(ids, lab) + 1).astype(np.int64)
    inst, texts = with_background(inst, [desc.get(c, "") for c in ids], tg.tile_multiple)
    cond = tg.condition(inst, texts, "aerial image")
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
    z_clean = tg.ae.encode_tile(x) if tg.ae is not None else x
    noise = torch.randn(z_clean.shape, generator=torch.Generator().manual_seed(seed))
    t0 = 1.0 - strength
    n = max(1, round(DEFAULT_STEPS * strength))
    ctx = tg.model.encode_context(_with_uncond(cond))
    ts = torch.linspace(t0, 1.0, n + 1)
    z = t0 * z_clean + (1 - t0) * noise
    for i in range(n):
        a, b = float(ts[i]), float(ts[i + 1])
        zin = torch.cat([z, z])
        tin = torch.full((2,), a)
        vc, vu = velocity(tg.model, tg.model(zin, tin, ctx), zin, tin).chunk(2)
        z = z + (b - a) * (vu + DEFAULT_GUIDANCE * (vc - vu))
    out = (tg.ae.decode_tile(z) if tg.ae is not None else z).clamp(-1, 1)
    return ((out[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--run", type=Path, required=True, help="bench_realism.py --out folder")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--strengths", type=float, nargs="+", default=[0.25, 0.5])
    ap.add_argument("--scene-size", type=int, default=1024)
    a = ap.parse_args()
    torch.set_num_threads(1)
    tg = TinyGenerator.from_file(shipped_weights())
    pairs = load_pairs(a.data, [7])
    picks = [pairs[round(i * (len(pairs) - 1) / 3)] for i in range(4)]
    reals, labels, comp, v1 = [], [], [], []
    for i, p in enumerate(picks):
        h, w = p.classes.shape
        y0, x0 = (h - a.scene_size) // 2, (w - a.scene_size) // 2
        images = {}
        for k in ("exemplar", "tiny_v1__shipped"):
            with rasterio.open(a.run / "render" / k / f"scene_{i:03d}" / "image.tif") as src:
                images[k] = src.read().transpose(1, 2, 0)
        for ty, tx in ((0, 0), (512, 512)):
            sl = (slice(ty, ty + 256), slice(tx, tx + 256))
            reals.append(p.image[y0 : y0 + a.scene_size, x0 : x0 + a.scene_size][sl])
            labels.append(p.classes[y0 : y0 + a.scene_size, x0 : x0 + a.scene_size][sl])
            comp.append(np.ascontiguousarray(images["exemplar"][sl]))
            v1.append(np.ascontiguousarray(images["tiny_v1__shipped"][sl]))
    rows = {"exemplar (composite)": comp, "tiny v1": v1}
    for s in a.strengths:
        rows[f"exemplar + SDEdit {s}"] = [sdedit(tg, c, lb, s, k) for k, (c, lb) in
                                          enumerate(zip(comp, labels, strict=True))]  # fmt: skip
    print(f"{len(reals)} tiles of 256 px; {'candidate':24s} {'dE':>6s} {'sat/real':>8s} "
          f"{'texture':>8s} {'sharp':>6s}")  # fmt: skip
    for k, imgs in rows.items():
        c, t = colour_scores(imgs, reals, labels), texture_scores(imgs, reals, labels)
        print(f"{k:24s} {c.mean_delta_e:6.2f} {c.saturation_ratio:8.3f} {t.mean_distance:8.4f} "
              f"{t.mean_sharpness:6.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
