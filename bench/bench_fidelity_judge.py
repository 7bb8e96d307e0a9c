"""Segmenters as judges: layout-fidelity ratios of the baselines on held-out scenes, per judge.

The fidelity ratio (``mIoU(seg(generated), layout) / mIoU(seg(real), labels)``) is only as
good as the segmenter behind it. This scores the same images with each segmenter given, in
one run, so a stronger judge can be compared with the previous one:

- scenes: central windows of held-out ``tile_7`` images (as ``bench_realism.py``);
- rows: ``flat paint`` (class mean colours of tiles 1-6), ``tiny v1`` and ``exemplar``
  (rendered whole by the generate job at the default tiling; job folders under ``--work``
  are resumable, so a second run only re-scores), ``blurred real (sigma 4)`` and real.

    python bench/bench_fidelity_judge.py OLD.safetensors NEW.safetensors --scenes 4 \\
        --scene-size 512 --work /tmp/fid
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from rs_seg2any.atomic import write_json
from rs_seg2any.generators.registry import load_generator
from rs_seg2any.quality.baselines import FlatPainter, blurred
from rs_seg2any.quality.scenes import RenderSettings, layout_from_labels, render
from rs_seg2any.quality.segmenter import DEFAULT_WEIGHTS, fidelity
from rs_seg2any.taxonomy import load_taxonomy
from rs_seg2any.train.dubai import HELD_OUT_TILE, central_scenes, load_pairs

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "dubai_aerial"
GENERATOR_TILES = [1, 2, 3, 4, 5, 6]  # the flat painter's colours (as bench_realism.py)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("segmenters", type=Path, nargs="*", default=[DEFAULT_WEIGHTS])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--scene-size", type=int, default=512)
    ap.add_argument("--work", type=Path, required=True, help="render folder (resumable)")
    ap.add_argument("--out", type=Path, default=None, help="scores as JSON")
    a = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    train = load_pairs(a.data, GENERATOR_TILES)
    flat = FlatPainter.from_pairs([p.image for p in train], [p.classes for p in train])
    reals, labels, _ = central_scenes(load_pairs(a.data, [HELD_OUT_TILE]), a.scenes, a.scene_size)
    tax = load_taxonomy("dubai_aerial")
    layouts = [layout_from_labels(lab, tax) for lab in labels]
    images: dict[str, list[np.ndarray]] = {"flat paint": [flat(lab) for lab in labels]}
    for name, gen in (
        ("tiny v1", load_generator("tiny")),
        ("exemplar", load_generator("exemplar")),
    ):
        images[name] = render(gen, layouts, a.work / name.replace(" ", "_"), RenderSettings())
        print(f"rendered {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    images["blurred real (sigma 4)"] = [blurred(r, 4.0) for r in reals]
    rows: list[dict[str, object]] = []
    for seg in a.segmenters:
        for name, imgs in images.items():
            rep = fidelity([im[..., :3] for im in imgs], labels, reals, seg)
            rows.append({"segmenter": str(seg), "row": name, "ratio": rep["ratio"],
                         "generated_miou": rep["generated_miou"],
                         "real_miou": rep["real_miou"]})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{a.scenes} tile_7 scenes of {a.scene_size} px; ratio = generated / real mIoU")
    names = list(images)
    print("| segmenter | real mIoU | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 2) + "|")
    for seg in a.segmenters:
        mine = [r for r in rows if r["segmenter"] == str(seg)]
        cells = " | ".join(f"{float(r['ratio']):.2f}" for r in mine)  # type: ignore[arg-type]
        print(f"| {seg.name} | {float(mine[0]['real_miou']):.3f} | {cells} |")  # type: ignore[arg-type]
    print(f"seconds: {time.perf_counter() - t0:.0f}")
    if a.out:
        write_json(a.out, rows, sort_keys=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
