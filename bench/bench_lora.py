"""LoRA training of the embedded model on this CPU, and what it does on real 10 m imagery.

``speed``: training steps per second and peak memory (ru_maxrss of a child process per mode)
of a LoRA step against full fine-tuning of the same model on the same batches, in the same
run (ratios printed). ``slovenia``: the eo-learn Sentinel-2 patch (10 m, 13 bands) with its
land-use polygons, trained on the west half and evaluated on the east half: held-out
denoising loss and per-class colour (Delta E) and texture (gradient Wasserstein) distances of
generated vs real east-half pixels, before vs after; then a 13-band run (band adapter) with
per-band statistics of generated vs real held-out pixels.

Run (single-threaded):
``OMP_NUM_THREADS=1 python bench/bench_lora.py speed`` and
``OMP_NUM_THREADS=1 python bench/bench_lora.py slovenia --minutes 7 --out /tmp/lora_bench``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "eolearn_slovenia"
S2_BANDS = [
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B10",
    "B11",
    "B12",
]


SCENE = 4  # of the five: 0 is hazy (B02-B04 ~0.28), 1 thin haze, 2-4 clear summer scenes


def write_scene(data: Path, dest: Path, scene: int = SCENE) -> Path:
    """The patch's Sentinel-2 scene as a 13-band float32 GeoTIFF on its real grid."""
    import rasterio
    from rasterio.transform import from_bounds

    arr = np.load(data / "REFERENCE_SCENES.npy")[scene]  # (101, 100, 13)
    h, w, n = arr.shape
    tr = from_bounds(
        465181.0522318204, 5079244.8912012065, 466180.53145382757, 5080254.63349641, w, h
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        dest,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=n,
        dtype="float32",
        crs="EPSG:32633",
        transform=tr,
    ) as dst:
        dst.write(np.moveaxis(arr, -1, 0))
        for i, name in enumerate(S2_BANDS):
            dst.set_band_description(i + 1, name)
    return dest


# --- speed ---------------------------------------------------------------------------------


def _speed_child(mode: str, steps: int, image: Path) -> dict[str, Any]:
    from rs_seg2any.lora.data import load_training_data
    from rs_seg2any.lora.params import LoraTrainParams
    from rs_seg2any.lora.tiny import TinyLoraTrainer
    from rs_seg2any.options import LayerOptions

    torch.set_num_threads(1)
    p = LoraTrainParams(
        images=(str(image),),
        labels=str(DATA / "LULC.gpkg"),
        bands="4,3,2",
        val_side="east",
        val_fraction=0.5,
        batch=8,
        crop=48,
        segmenter_steps=0,
        max_steps=steps,
    )
    layer = LayerOptions(
        class_field="LULC_NAME", taxonomy="eolearn_slovenia", unknown_class="background"
    )
    data = load_training_data(p, layer, multiple=16)
    tr = TinyLoraTrainer(p, data, Path("/tmp/_lora_speed") / mode)
    if mode == "full":  # baseline: every weight of the model trains
        for prm in tr.model.parameters():
            prm.requires_grad_(True)
        tr.opt = torch.optim.AdamW(tr.trainable(), lr=1e-4)
    trainable = sum(p.numel() for p in tr.trainable())
    tr.train_step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        tr.train_step()
    dt = time.perf_counter() - t0
    return {
        "mode": mode,
        "steps_per_s": steps / dt,
        "trainable_params": trainable,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def speed(steps: int, workdir: Path) -> dict[str, Any]:
    image = write_scene(DATA, workdir / "s2.tif")
    rows = {}
    for mode in ("lora", "full"):
        out = subprocess.run(
            [sys.executable, __file__, "_child", mode, str(steps), str(image)],
            check=True,
            capture_output=True,
            text=True,
        )
        rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    lo, fu = rows["lora"], rows["full"]
    return {
        **rows,
        "speed_ratio_lora_vs_full": lo["steps_per_s"] / fu["steps_per_s"],
        "memory_ratio_lora_vs_full": lo["peak_rss_mb"] / fu["peak_rss_mb"],
        "trainable_share": lo["trainable_params"] / fu["trainable_params"],
        "batch": "8 crops of 48 px (12x12 latents)",
    }


# --- the Slovenian measurement ---------------------------------------------------------------


def _render_many(tr: Any, crops: list[Any], adapted: bool, seeds: int) -> list[np.ndarray]:
    from rs_seg2any.lora.evaluate import render

    out = []
    for s in range(seeds):
        out += render(tr, crops, adapted=adapted, seed=100 * s)
    return out


def slovenia(
    minutes: float, out: Path, bands: str, seeds: int, ms_minutes: float
) -> dict[str, Any]:
    from rs_seg2any.lora.data import grid_crops, load_training_data
    from rs_seg2any.lora.evaluate import class_index, picture_grid, real_rgb, set_lora
    from rs_seg2any.lora.params import LoraTrainParams
    from rs_seg2any.lora.tiny import TinyLoraTrainer
    from rs_seg2any.options import LayerOptions
    from rs_seg2any.quality.colour import colour_scores
    from rs_seg2any.quality.texture import texture_scores

    torch.set_num_threads(1)
    image = write_scene(DATA, out / "s2.tif")
    layer = LayerOptions(
        class_field="LULC_NAME", taxonomy="eolearn_slovenia", unknown_class="background"
    )
    report: dict[str, Any] = {}
    for run, band_list, mins in (("rgb", bands, minutes), ("13-band", None, ms_minutes)):
        if mins <= 0:
            continue
        p = LoraTrainParams(
            images=(str(image),),
            labels=str(DATA / "LULC.gpkg"),
            bands=band_list,
            rgb="4,3,2",
            val_side="east",
            val_fraction=0.5,
            batch=8,
            crop=48,
            max_steps=100_000,
            minutes=mins,
            val_every=50,
            ckpt_every=200,
            lr=2e-3,
            rank=8,
            segmenter_steps=0,
            licence="Copernicus Sentinel data (open), eo-learn example (MIT)",
        )
        data = load_training_data(p, layer, multiple=16)
        tr = TinyLoraTrainer(p, data, out / run)
        t0 = time.perf_counter()
        hist = tr.run()
        secs = time.perf_counter() - t0
        state, best, best_step = tr.final_state()
        tr.load_state(state)
        flow_after = tr.val_flow_loss()
        set_lora(tr.model, False)
        flow_before = tr.val_flow_loss()
        set_lora(tr.model, True)
        crops = grid_crops(data.val, data.crop, 64)
        real = real_rgb(tr, crops) * seeds
        labels = [class_index(data, c.labels, c.valid) for c in crops] * seeds
        row: dict[str, Any] = {
            "steps": hist.step,
            "train_s": round(secs, 1),
            "steps_per_s": hist.step / secs,
            "val_flow_loss_before": flow_before,
            "val_flow_loss_after": flow_after,
            "val_loss_before": hist.val[0][1],
            "val_loss_after": best,
            "best_step": best_step,
            "classes": {i + 1: data.class_names()[c] for i, c in enumerate(data.classes)},
        }
        columns = {"real": real_rgb(tr, crops)}
        for name, adapted in (("before", False), ("after", True)):
            gen = _render_many(tr, crops, adapted, seeds)
            columns["base" if name == "before" else "LoRA"] = gen[: len(crops)]
            col = colour_scores(gen, real, labels, erode=1, min_pixels=64)
            tex = texture_scores(gen, real, labels, erode=1, min_pixels=64)
            row[f"colour_delta_e_{name}"] = col.delta_e
            row[f"mean_delta_e_{name}"] = col.mean_delta_e
            row[f"texture_distance_{name}"] = tex.distance
            row[f"mean_texture_{name}"] = tex.mean_distance
            if tr.bands is not None:
                row[f"bands_{name}"] = band_stats(tr, crops, gen, data)
        picture_grid(out / f"{run}_grid.png", data, crops, columns, rows=6)
        report[run] = row
        print(json.dumps({run: row}, default=str), flush=True)
    return report


@torch.no_grad()
def band_stats(tr: Any, crops: list[Any], gen_rgb: list[np.ndarray], data: Any) -> dict[str, Any]:
    """Per-band mean and std (source reflectance) of generated vs real held-out valid pixels."""
    x = torch.from_numpy(np.stack([c.image for c in crops])).permute(0, 3, 1, 2).float()
    valid = np.stack([c.valid for c in crops])
    g = torch.from_numpy(np.stack(gen_rgb)).permute(0, 3, 1, 2).float() / 127.5 - 1
    gen = tr.bands.to_bands(g).clamp(-1, 1).numpy()
    reps = gen.shape[0] // x.shape[0]
    lo, hi = np.array(data.lo)[:, None], np.array(data.hi)[:, None]

    def src(a: np.ndarray, v: np.ndarray) -> np.ndarray:  # (B, N, H, W) -> (N, pixels)
        flat = np.moveaxis(a, 1, 0)[:, v]
        return (flat + 1) / 2 * (hi - lo) + lo

    r = src(x.numpy(), valid)
    q = src(gen, np.concatenate([valid] * reps))
    names = [s for s in data.scenes[0].band_names]
    return {
        n: {
            "real_mean": float(r[i].mean()),
            "gen_mean": float(q[i].mean()),
            "real_std": float(r[i].std()),
            "gen_std": float(q[i].std()),
        }
        for i, n in enumerate(names)
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        print(json.dumps(_speed_child(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("what", choices=("speed", "slovenia"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--minutes", type=float, default=7.0, help="RGB training budget")
    ap.add_argument("--ms-minutes", type=float, default=5.0, help="13-band training budget")
    ap.add_argument("--bands", default="4,3,2")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("/tmp/lora_bench"))
    a = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"needs the shared data at {DATA}")
    if a.what == "speed":
        res = speed(a.steps, a.out)
    else:
        res = slovenia(a.minutes, a.out, a.bands, a.seeds, a.ms_minutes)
    print(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
