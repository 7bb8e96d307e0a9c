"""Training of the tiny autoencoder (latent variant): L1 on augmented crops, time-budgeted.

``python -m rs_seg2any.train.autoencoder --out DIR --minutes 8``; the latent scale is
measured at the end so the latent flow model sees unit-variance inputs.
"""

from __future__ import annotations

import argparse
import csv
import random
import time
from pathlib import Path

import torch

from rs_seg2any.generators.tiny.autoencoder import AEConfig, TinyAE
from rs_seg2any.generators.tiny.weights import save_weights
from rs_seg2any.train.dubai import Pair, load_pairs, random_crop


def _images(pairs: list[Pair], n: int, size: int, rng: random.Random) -> torch.Tensor:
    w = [p.classes.size for p in pairs]
    crops = [random_crop(p, size, rng, 1) for p in rng.choices(pairs, weights=w, k=n)]
    x = torch.stack([torch.from_numpy(c.image.copy()) for c in crops]).permute(0, 3, 1, 2)
    return x.float() / 127.5 - 1


def train_ae(
    root: Path, out: Path, minutes: float, cfg: AEConfig, batch: int = 16, size: int = 128
) -> Path:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = random.Random(0)
    train, val = load_pairs(root, [1, 2, 3, 4, 5, 6]), load_pairs(root, [7])
    xv = _images(val, 32, size, random.Random(7))
    ae = TinyAE(cfg)
    opt = torch.optim.AdamW(ae.parameters(), lr=1e-3)
    out.mkdir(parents=True, exist_ok=True)
    log = csv.writer((out / "ae_loss.csv").open("w", newline=""))
    log.writerow(["step", "elapsed_s", "l1", "val_l1", "val_psnr"])
    start, step = time.perf_counter(), 0
    while time.perf_counter() - start < minutes * 60:
        x = _images(train, batch, size, rng)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = (ae(x).float() - x).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 100 == 0:
            with torch.no_grad():
                rec = ae(xv)
            l1 = float((rec - xv).abs().mean())
            psnr = float(10 * torch.log10(4 / ((rec - xv) ** 2).mean()))
            log.writerow([step, f"{time.perf_counter() - start:.1f}", f"{float(loss):.4f}",
                          f"{l1:.4f}", f"{psnr:.2f}"])  # fmt: skip
    with torch.no_grad():
        ae.scale.fill_(float(ae.enc(_images(train, 64, size, rng)).std()))
    path = out / "ae.safetensors"
    save_weights(None, path, ae=ae)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=Path("../shared/data/dubai_aerial"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--latent", type=int, default=8)
    a = ap.parse_args(argv)
    print(train_ae(a.root, a.out, a.minutes, AEConfig(latent=a.latent)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
