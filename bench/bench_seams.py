"""Tile seams on a sparse vs a dense real layer: the line score of the embedded model.

The Slovenian land-use layer (../shared/data) rendered whole ("dense") and with only its
'artificial surface' polygons ("sparse": most tiles have no polygon), on the same grid, seed
and tiling. Prints the line score (rs_seg2any.quality.seams; real imagery about 1.1-1.3) of
each and the sparse / dense ratio, per tiling and seed. Run on a quiet machine:

    python bench/bench_seams.py [--seeds 0 1 2] [--out /tmp/seams]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import rasterio

from rs_seg2any.generators.registry import load_generator
from rs_seg2any.job.generate_job import run_generate_job
from rs_seg2any.layout import load_layout
from rs_seg2any.quality.seams import line_score

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eolearn_slovenia" / "LULC.gpkg"
TILINGS = ((10.0, 64, 16), (5.0, 128, 32), (2.5, 256, 64))


def score(frame: gpd.GeoDataFrame, res: float, tile: int, overlap: int, seed: int,
          out: Path) -> float:  # fmt: skip
    layout = load_layout(frame, "LULC_NAME", taxonomy="eolearn_slovenia", resolution=res)
    gen = load_generator("tiny")  # the network whose seams this bench tracked
    run_generate_job(layout, out, gen, tile_size=tile, overlap=overlap, seed=seed,
                     restart=True)  # fmt: skip
    with rasterio.open(out / "image.tif") as src:
        return line_score(src.read().transpose(1, 2, 0), tile, overlap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="seams-")))
    args = parser.parse_args()
    frame = gpd.read_file(DATA)
    frame = frame[frame.LULC_NAME != ""]
    layers = {"dense": frame, "sparse": frame[frame.LULC_NAME == "artificial surface"]}
    print("res_m tile overlap seed  sparse  dense  sparse/dense")
    for res, tile, overlap in TILINGS:
        ratios = []
        for seed in args.seeds:
            start = time.perf_counter()
            got = {name: score(f, res, tile, overlap, seed, args.out / name)
                   for name, f in layers.items()}  # fmt: skip
            ratios.append(got["sparse"] / got["dense"])
            print(f"{res:5.1f} {tile:4d} {overlap:7d} {seed:4d}  {got['sparse']:6.2f} "
                  f"{got['dense']:6.2f}  {ratios[-1]:6.2f}  ({time.perf_counter() - start:.0f} s)",
                  flush=True)  # fmt: skip
        print(f"{res:5.1f} {tile:4d} {overlap:7d}  median sparse/dense "
              f"{statistics.median(ratios):.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
