"""Recovered edit-mask IoU for a flood, a planning zone and a change pair on a real image.

The base is a central ``--size`` window of a held-out ``tile_7`` Dubai image (local grid), its
layout the window's hand-made class map; the shipped tiny model edits it. Prints each
scenario's ``edit_check.json`` (IoU of the recovered vs the intended mask, leakage).

    python bench/bench_edit_verify.py --data ../shared/data/dubai_aerial
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import geopandas as gpd
import torch
from rasterio import features
from shapely.geometry import box, shape

from rs_seg2any.generators.registry import load_generator
from rs_seg2any.geoio import write_cog
from rs_seg2any.quality.scenes import local_grid
from rs_seg2any.scenarios.change import change_pairs
from rs_seg2any.scenarios.common import GenOptions, Polygons
from rs_seg2any.scenarios.flood import flood
from rs_seg2any.scenarios.planning import plan
from rs_seg2any.train.dubai import load_pairs

NAMES = {1: "building", 2: "land", 3: "road", 4: "vegetation", 5: "water"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--image", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    gen = load_generator("tiny", threads=1)
    pair = load_pairs(a.data, [7])[a.image]
    h, w = pair.classes.shape
    y0, x0 = (h - a.size) // 2, (w - a.size) // 2
    img = pair.image[y0 : y0 + a.size, x0 : x0 + a.size]
    lab = pair.classes[y0 : y0 + a.size, x0 : x0 + a.size]
    grid = local_grid(lab.shape)
    valid = (lab > 0) & (lab <= 5)
    shapes = features.shapes(lab, mask=valid, transform=grid.affine)
    rows = [(NAMES[int(v)], shape(g)) for g, v in shapes]
    crs = str(grid.crs)
    frame = gpd.GeoDataFrame({"cls": [r[0] for r in rows]}, geometry=[r[1] for r in rows], crs=crs)
    polys = Polygons.read(frame, "cls", taxonomy="dubai_aerial")
    opts = GenOptions(steps=8, tile_size=256, overlap=64, seed=0)
    x_min, y_min, x_max, y_max = grid.boundingbox
    cx, cy, span = (x_min + x_max) / 2, (y_min + y_max) / 2, (x_max - x_min)
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as work:
        photo = write_cog(Path(work) / "photo.tif", img.transpose(2, 0, 1), grid,
                          categorical=False)  # fmt: skip
        zone = gpd.GeoDataFrame(geometry=[box(x_min, y_min, cx, cy + span / 4)], crs=crs)
        r = flood(Path(work) / "f", gen, extent=zone, base_image=photo, polygons=polys, opts=opts)
        out["flood"] = json.loads(r.after.outputs["edit_check"].read_text())
        zones = gpd.GeoDataFrame(
            {"what": ["a park with trees and lawns"], "cls": ["vegetation"]},
            geometry=[box(cx, cy, cx + span / 3, cy + span / 3)], crs=crs,
        )  # fmt: skip
        r2 = plan(Path(work) / "p", gen, zones, description_field="what",
                  zone_class_field="cls", base_image=photo, polygons=polys, opts=opts)  # fmt: skip
        out["plan"] = json.loads(r2.after.outputs["edit_check"].read_text())
        after = frame.copy()
        big = after.geometry.area.sort_values(ascending=False).index
        target = next(i for i in big if after.loc[i, "cls"] != "building")
        after.loc[target, "cls"] = "building"
        r3 = change_pairs(Path(work) / "c", gen, polys, grid, after=polys.with_frame(after),
                          opts=opts)  # fmt: skip
        out["change"] = json.loads(r3.pairs[0].t2.outputs["edit_check"].read_text())
    for v in out.values():
        assert isinstance(v, dict)
        v.pop("base", None)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
