"""Segmenter accuracy: mIoU per class of several weight files on the validation tile (tile_2)
and the held-out tile_7, whole images, in one run and one code path.

    python bench/bench_segmenter.py [WEIGHTS ...] [--flips] [--scales 1 --scales 0.75,1,1.25]
        [--out scores.json]

Default weights: the shipped one (``rs_seg2any/quality/weights/segmenter_dubai.safetensors``).
Each file is scored with its own flip setting (``flips`` in its config) and, with ``--flips``,
both without and with flip averaging (4x the time); each ``--scales`` list is scored as
well (default: the file's own input scales).
Single-threaded; prints a markdown table (mIoU and per-class IoU, seconds per tile and per
megapixel).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

from rs_seg2any.atomic import write_json
from rs_seg2any.quality.segmenter import DEFAULT_WEIGHTS
from rs_seg2any.train.segmenter import CLASS_NAMES, HELD_OUT_TILE, VAL_TILE, tile_scores

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dubai_aerial"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("weights", type=Path, nargs="*", default=[DEFAULT_WEIGHTS])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--flips", action="store_true", help="also score with flip averaging")
    ap.add_argument(
        "--scales",
        action="append",
        default=None,
        help="input scales to average, e.g. 0.75,1,1.25 (repeat for several settings)",
    )
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    scale_sets: list[tuple[float, ...] | None] = (
        [tuple(float(v) for v in text.split(",")) for text in a.scales] if a.scales else [None]
    )
    rows: list[dict[str, object]] = []
    for w in a.weights:
        options: tuple[bool | None, ...] = (False, True) if a.flips else (None,)
        for flips, scales in itertools.product(options, scale_sets):
            for tile in (VAL_TILE, HELD_OUT_TILE):
                t0 = time.perf_counter()
                res = tile_scores(w, a.data, [tile], flips=flips, scales=scales)
                dt = time.perf_counter() - t0
                row = {"weights": str(w), "flips": "own" if flips is None else flips,
                       "scales": "own" if scales is None else ",".join(f"{v:g}" for v in scales),
                       "tile": tile, "seconds": round(dt, 1),
                       "s_per_mp": round(dt / float(res["megapixels"]), 2), **res}  # type: ignore[arg-type]  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
    names = list(CLASS_NAMES.values())
    print("\n| weights | flips | scales | tile | mIoU | " + " | ".join(names) + " | s | s/MP |")
    print("|---" * (len(names) + 7) + "|")
    for r in rows:
        per = r["per_class"]
        assert isinstance(per, dict)
        cells = " | ".join(f"{per[n]:.3f}" for n in names)
        head = f"| {Path(str(r['weights'])).name} | {r['flips']} | {r['scales']} | tile_{r['tile']}"
        print(f"{head} | {float(r['miou']):.3f} | {cells} | {r['seconds']} | {r['s_per_mp']} |")  # type: ignore[arg-type]  # fmt: skip
    if a.out:
        write_json(a.out, rows, sort_keys=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
