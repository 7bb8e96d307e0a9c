"""Build the shipped exemplar bank from Dubai training tiles 1-6 (never tile_7, held out).

The Dubai imagery (Humans in the Loop, MBRSC; CC0 1.0) is used at the project's GSD for it,
0.5 m, without resampling: the data set does not document its GSD, and the demo, tests and the
tiny model all treat it as 0.5 m. ``per_class`` crops of 128 px per class, centred on random
pixels of that class over all tiles (area-weighted: the surfaces that cover most ground, such
as plain desert, dominate as they do in real scenes), keep class boundaries (kerbs, shorelines,
building edges) for context-aware retrieval; each crop records its tile (its scene family).

    python -m rs_seg2any.train.exemplars [--data ../shared/data/dubai_aerial] [--out PATH]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rs_seg2any.generators.exemplar.bank import SHIPPED_BANK, ExemplarBank, draw_crops
from rs_seg2any.train.dubai import load_pairs, refuse_held_out

TRAIN_TILES = [1, 2, 3, 4, 5, 6]
DUBAI_GSD = 0.5
NAMES = {1: "building", 2: "land", 3: "road", 4: "vegetation", 5: "water", 6: "unlabeled"}
SOURCE = (
    "Semantic segmentation of aerial imagery (Dubai, MBRSC imagery, Humans in the Loop), "
    "CC0 1.0; tiles 1-6, 128-px crops at 0.5 m"
)


def build(
    data: Path, per_class: int = 14, crop: int = 128, seed: int = 0,
    tiles: Sequence[int] = TRAIN_TILES,
) -> ExemplarBank:  # fmt: skip
    """The shipped bank's recipe on ``tiles`` (default: all training tiles, the shipped
    bank; fewer to leave a tile out, as ``bench/bench_realism_cv.py`` does)."""
    refuse_held_out(tiles, "build a bank from")
    pairs = load_pairs(data, list(tiles))
    rgb, lab, src = draw_crops(
        [p.image for p in pairs],
        [p.classes for p in pairs],
        crop=crop,
        per_class=per_class,
        seed=seed,
    )
    # each crop's tile: one acquisition, one illumination and colour balance (a job's family)
    tiles_of = np.array([int(p.name.split("/")[0].removeprefix("tile_")) for p in pairs], np.int32)
    source = SOURCE
    if list(tiles) != TRAIN_TILES:
        source = SOURCE.replace("tiles 1-6", "tiles " + ",".join(str(t) for t in tiles))
    return ExemplarBank(rgb, lab, DUBAI_GSD, dict(NAMES), source, tiles_of[src])


def main() -> int:
    here = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--data", type=Path, default=here.parent / "shared/data/dubai_aerial")
    ap.add_argument(
        "--out", type=Path, default=here / "rs_seg2any/generators/exemplar" / SHIPPED_BANK
    )
    ap.add_argument("--per-class", type=int, default=14)
    a = ap.parse_args()
    bank = build(a.data, a.per_class)
    bank.save(a.out)
    bank.save_digest(a.out)
    print(f"{len(bank.rgb)} crops, classes {bank.classes}, {a.out.stat().st_size} bytes -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
