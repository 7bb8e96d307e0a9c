"""Realism of the shipped model against the baselines, on held-out Dubai scenes, in one run.

Scenes are central windows of held-out ``tile_7`` images (never trained or tuned on; used only
as the evaluation target). Scored with ``rs_seg2any.quality.evaluate`` in the same run:

- ``tiny v1``: the embedded model (shipped weights), each scene rendered whole by the generate
  job at the default tiling (256 px tiles, 64 px overlap), so its seams are the real ones;
- ``exemplar``: the quilting backend (shipped bank from tiles 1-6), rendered like ``tiny v1``;
- ``exemplar + ref``: the same backend given one *other* tile_7 image and its labels as
  ``--reference-image``/``--reference-labels`` (``--reference-part``; never one of the
  scenes): what a user gets who has one real image of the place, without training. The colour
  of that image against the scenes (per-class Delta E, saturation) is printed too: the spread
  of real imagery within one tile, next to the colour goal (blurred real);
- ``class-patch fill``: random real patches per class from the training tiles 1-6, feathered;
- ``flat paint``: class mean colours of the training tiles 1-6 (also the classifier control);
- ``blurred real (sigma 4)`` and ``real vs real``: the other two controls.

Measures: the classifier test (C2ST, fixed protocol, 3 seeds; valid when flat paint and blurred
real >= 0.95 and real vs real <= 0.6), per-class colour distance (Delta E, CIELAB) and
saturation ratio, texture distance and sharpness ratio, line scores at the tile lines and the
16-px token period (real imagery ~1.0-1.2), copying (median RMSE of 32-px blocks to their
nearest block of the shipped exemplar bank; real tile_7 blocks are the yardstick), and layout
fidelity with the shipped segmenter (``rs_seg2any.quality.segmenter``; ``--segmenter`` for
other weights): each row's mIoU ratio generated / real, next to the flat painter's.
Then one scene again at a second tiling (``--other-tiling``), for its line scores only.

Knobs (defaults: ~14 min of CPU time on one core, 824 s measured: 100 tiles, 15 classifier fits;
the wall time is longer on a shared machine, so the summary prints both):
  --scenes N (4), --scene-size PX (1024; a multiple of 512 keeps the spatial split balanced),
  --c2st-steps (300), --seeds (0 1 2), --other-tiling TILE OVERLAP (128 32; 0 0 skips),
  --segmenter WEIGHTS (default: shipped), --no-classifier (skip C2ST: fidelity, colour,
  texture and lines only), --picture PATH (docs/images/realism_baselines.png).

    python bench/bench_realism.py [--out /tmp/realism] [--picture docs/images/...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from rs_seg2any.generators.base import DEFAULT_GUIDANCE, DEFAULT_STEPS, Generator, TileCondition
from rs_seg2any.generators.exemplar.bank import ExemplarBank
from rs_seg2any.generators.registry import load_generator
from rs_seg2any.geoio import atomic_output
from rs_seg2any.quality.baselines import ClassPatchFill, FlatPainter
from rs_seg2any.quality.c2st import C2STProtocol
from rs_seg2any.quality.colour import class_mean_lab, mean_saturation
from rs_seg2any.quality.evaluate import evaluate
from rs_seg2any.quality.scenes import (
    LOCAL_CRS,
    RenderSettings,
    layout_from_labels,
    local_grid,
    render,
)
from rs_seg2any.quality.seams import seam_scores
from rs_seg2any.taxonomy import load_taxonomy
from rs_seg2any.train.dubai import HELD_OUT_TILE, central_scenes, load_pairs

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "dubai_aerial"
TRAIN_TILES = [1, 2, 3, 4, 5, 6]


Scenes = tuple[list[np.ndarray], list[np.ndarray], list[str]]


def write_reference(out: Path, image: np.ndarray, labels: np.ndarray) -> tuple[Path, Path]:
    """One tile_7 image and its class raster as GeoTIFFs on the scenes' local 0.5 m grid."""
    import rasterio

    grid = local_grid(labels.shape)
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "reference.tif", out / "reference_labels.tif"
    for path, data in zip(paths, (image, labels[..., None]), strict=True):
        bands = np.ascontiguousarray(data.transpose(2, 0, 1))
        with atomic_output(path) as tmp, rasterio.open(
            tmp, "w", driver="GTiff", width=bands.shape[2], height=bands.shape[1],
            count=bands.shape[0], dtype="uint8", crs=LOCAL_CRS, transform=grid.affine,
        ) as dst:  # fmt: skip
            dst.write(bands)
    return paths


Part = tuple[str, np.ndarray, np.ndarray]


def reference_part(held_out: list[Any], names: list[str], wanted: str | None) -> Part:
    """A tile_7 image that is none of the scenes (default: the middle one of those left)."""
    pairs = {p.name: p for p in held_out}
    left = [n for n in sorted(pairs) if n not in names]
    name = wanted or left[len(left) // 2]
    if name in names or name not in pairs:
        raise SystemExit(f"--reference-part must be one of {left}, got {name}")
    return name, pairs[name].image, pairs[name].classes


def tile_seconds(gen: Generator, labels: np.ndarray, repeats: int = 3) -> float:
    """Median seconds of one 256-px tile (default steps and guidance, no known pixels), after
    one warm-up call (weights, text encoder and exemplar candidates are loaded once a job)."""
    lab = np.ascontiguousarray(labels[:256, :256])
    local, _ = np.unique(lab, return_inverse=True)
    inst = (np.searchsorted(local, lab) + 1).astype(np.int64)
    tax = load_taxonomy("dubai_aerial")
    names = tax.names_by_id()
    # one job: its tiles differ in seed, not in job seed (the exemplar backend draws a job's
    # source scene from the job seed, so its candidate sets are built once a job)
    cond = TileCondition(inst, [names.get(int(c), "") for c in local], "aerial image", labels=lab,
                         extra={"class_names": names, "job_seed": 0}, gsd=0.5)  # fmt: skip
    times = []
    for i in range(repeats + 1):
        t = time.perf_counter()
        gen.generate(cond, steps=DEFAULT_STEPS, guidance=DEFAULT_GUIDANCE, gamma=1.0, seed=i)
        times.append(time.perf_counter() - t)
    return float(np.median(times[1:]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--scene-size", type=int, default=1024)
    ap.add_argument("--c2st-steps", type=int, default=C2STProtocol.steps)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(C2STProtocol.seeds))
    ap.add_argument("--other-tiling", type=int, nargs=2, default=[128, 32])
    ap.add_argument("--segmenter", type=Path, default=None)
    ap.add_argument("--model", type=Path, default=None, help="tiny weights (default: shipped)")
    ap.add_argument("--picture", type=Path, default=REPO / "docs/images/realism_baselines.png")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-exemplar", action="store_true", help="skip the exemplar backend")
    ap.add_argument("--no-classifier", action="store_true", help="skip the C2ST rows")
    ap.add_argument(
        "--reference-part",
        default=None,
        help="tile_7 image used as the reference (default: the middle unused one)",
    )
    ap.add_argument("--no-reference", action="store_true", help="skip the exemplar + ref row")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = a.out or Path(tempfile.mkdtemp(prefix="realism-"))
    t0 = time.perf_counter()
    train = load_pairs(a.data, TRAIN_TILES)
    flat = FlatPainter.from_pairs([p.image for p in train], [p.classes for p in train])
    fill = ClassPatchFill.from_pairs([p.image for p in train], [p.classes for p in train])
    held_out = load_pairs(a.data, [HELD_OUT_TILE])  # read once: the scenes and the reference
    reals, labels, names = central_scenes(held_out, a.scenes, a.scene_size)
    gen = load_generator("tiny", model=a.model, threads=a.threads)
    protocol = replace(C2STProtocol(), steps=a.c2st_steps, seeds=tuple(a.seeds),
                       threads=a.threads)  # fmt: skip
    settings = RenderSettings()  # the generate job's defaults: 256 px tiles, 64 px overlap
    print(f"{len(names)} held-out scenes {a.scene_size} px: {', '.join(names)}; out {out}",
          flush=True)  # fmt: skip
    gens = {"tiny v1 (shipped)": gen}
    if not a.no_exemplar:
        gens["exemplar"] = load_generator("exemplar")
    speed = {k: tile_seconds(g, labels[0]) for k, g in gens.items()}
    ref_colour: dict[str, object] = {}
    if not a.no_exemplar and not a.no_reference:
        ref_name, ref_rgb, ref_lab = reference_part(held_out, names, a.reference_part)
        ref_img, ref_labels = write_reference(out, ref_rgb, ref_lab)
        gens["exemplar + ref"] = load_generator(
            "exemplar", reference_image=str(ref_img), reference_labels=str(ref_labels)
        )
        # real imagery's own spread: the reference image's class colours against the scenes'
        mine = class_mean_lab([ref_rgb], [ref_lab])
        theirs = class_mean_lab(reals, labels)
        delta = {k: float(np.linalg.norm(mine[k] - theirs[k])) for k in theirs if k in mine}
        sat = mean_saturation([ref_rgb]) / mean_saturation(reals)
        ref_colour = {"part": ref_name, "delta_e": delta, "saturation_ratio": sat,
                      "mean_delta_e": float(np.mean(list(delta.values())))}  # fmt: skip
        print(f"reference {ref_name}: its own class colours vs the scenes' dE "
              f"{ref_colour['mean_delta_e']:.2f} "
              f"({', '.join(f'{k}: {v:.1f}' for k, v in delta.items())}), saturation "
              f"{ref_colour['saturation_ratio']:.2f} of the scenes'", flush=True)  # fmt: skip
    for k, v in speed.items():
        print(f"{k:20s} one 256-px tile: {v:.2f} s ({v / speed['tiny v1 (shipped)']:.2f}x v1)")
    report = evaluate(
        {**gens, "class-patch fill": fill},
        reals,
        labels,
        out=out,
        names=names,
        taxonomy="dubai_aerial",
        render_settings=settings,
        protocol=protocol,
        flat_painter=flat,
        segmenter=a.segmenter,
        copy_reference=list(ExemplarBank.shipped().rgb),
        classifier=not a.no_classifier,
        picture_rows=3,
        picture_crop=384,
        picture_panel=192,
    )
    t_eval = time.perf_counter() - t0
    print(report.table(), flush=True)
    other = {}
    if a.other_tiling[0]:
        tile, overlap = a.other_tiling
        layout = layout_from_labels(labels[0], load_taxonomy("dubai_aerial"))
        for k, g in gens.items():
            # one folder per row: "exemplar" and "exemplar + ref" must not share a job folder
            slug = "".join(ch if ch.isalnum() else "_" for ch in k)
            image = render(g, [layout], out / f"other_tiling_{slug}",
                           replace(settings, tile_size=tile, overlap=overlap))[0]  # fmt: skip
            other[k] = seam_scores(image, tile, overlap).to_dict()
        other["real"] = seam_scores(reals[0], tile, overlap).to_dict()
        for k, v in other.items():
            print(
                f"{k:20s} at {tile}/{overlap} tiles on {names[0]}: tile {v['tile_worst']:.2f}"
                f" (chance {v['tile_chance']:.2f}, mean line {v['tile_mean']:.2f})"
                f"  token max {v['token_worst']:.2f}  token mean {v['token_mean']:.2f}"
            )
    picture = report.files["picture"]
    a.picture.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(a.picture) as tmp:
        tmp.write_bytes(picture.read_bytes())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    summary = {"seconds_evaluate": round(t_eval, 1),
               "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
               "peak_rss_mb": round(usage.ru_maxrss / 1024),
               "seconds_total": round(time.perf_counter() - t0, 1),
               "other_tiling": other, "seconds_per_256_tile": speed,
               "fidelity": report.fidelity, "reference_colour": ref_colour,
               "report": str(report.files["report"]),
               "picture": str(a.picture), "picture_bytes": a.picture.stat().st_size}  # fmt: skip
    (out / "bench_summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
