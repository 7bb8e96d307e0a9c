"""Detection sets: chips per second (export alone, and with generation) and memory against the
number of objects.

* ``export``: a 2048 x 2048 px photo with N objects cut into 256 px chips (64 chips), written
  in every format (COCO RLE, YOLO x3, DOTA, GeoPackage + GeoJSON), report and STAC.
  Chips/s, and peak memory for N = 100, 1,000 and 10,000 objects, printed as ratios against
  N = 100 measured in the same run. Goal: peak RSS flat (<= 1.3x at 100x the objects).
* ``dubai`` (with ``--dubai ../shared/data/dubai_aerial``): one real Dubai image with its
  mask. Instances are the 4-connected components of the building class (the masks have no
  polygons, so touching buildings merge into one instance: the line reports how many
  components there are with 4- and 8-connectivity and how much of the building area lies in
  components over 10x the median size, the merged blocks). The image is not georeferenced:
  it is put on a local 1 m grid. Chips/s of the export.
* ``generate``: the same through ``rs.detection_set`` with the background rendered by the
  embedded tiny model from a layout (512 x 512 px, 16 chips of 128 px), then exported:
  chips/s including generation.

Each case runs in a fresh subprocess: peak RSS is its ``ru_maxrss``, the Python/NumPy peak its
``tracemalloc`` peak. Single thread. Run: ``OMP_NUM_THREADS=1 python bench/bench_detection.py``
(``--objects 100 1000`` for a quick look; ``--skip-generate``; ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CRS = "EPSG:32640"
X0, Y0, RES = 300_000.0, 2_780_000.0, 1.0
SIZE, CHIP = 2048, 256
GOAL = 1.3


def _grid(size: int) -> Any:
    from odc.geo.geobox import GeoBox

    return GeoBox.from_bbox((X0, Y0, X0 + size * RES, Y0 + size * RES), CRS, resolution=RES)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _objects(n: int, size: int, seed: int = 0) -> Any:
    """``n`` rotated rectangles of 6-30 m spread over the area."""
    import geopandas as gpd
    from shapely import affinity
    from shapely.geometry import box

    rng = np.random.default_rng(seed)
    geoms, cls = [], []
    for i in range(n):
        x, y = X0 + rng.uniform(0, size), Y0 + rng.uniform(0, size)
        w, h = rng.uniform(6, 30), rng.uniform(4, 14)
        geoms.append(affinity.rotate(box(x, y, x + w, y + h), float(rng.uniform(0, 180))))
        cls.append(("building", "ship", "storage tank")[i % 3])
    return gpd.GeoDataFrame({"kind": cls}, geometry=geoms, crs=CRS)


def prepare(folder: Path, counts: list[int]) -> None:
    import rasterio

    folder.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        folder / "photo.tif", "w", driver="GTiff", width=SIZE, height=SIZE, count=3,
        dtype="uint8", crs=CRS, transform=_grid(SIZE).affine, tiled=True, compress="DEFLATE",
    ) as dst:  # fmt: skip
        for r0 in range(0, SIZE, 512):
            yy, xx = np.mgrid[r0 : r0 + 512, 0:SIZE]
            data = np.stack([(xx * 7 + yy) % 251, (yy * 5) % 241, (xx ^ yy) % 239])
            dst.write(data.astype("uint8"), window=((r0, r0 + 512), (0, SIZE)))
    for n in counts:
        _objects(n, SIZE).to_file(folder / f"objects_{n}.gpkg")


def run_export(folder: Path, out: Path, n: int) -> dict[str, Any]:
    import tracemalloc

    import rs_seg2any as rs

    imported = _rss_mib()
    tracemalloc.start()
    start = time.perf_counter()
    rs.detection_set(
        out, image=str(folder / "photo.tif"), objects=str(folder / f"objects_{n}.gpkg"),
        object_class_field="kind", chip_size=CHIP, split_buffer=0, progress="none",
    )  # fmt: skip
    seconds = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    chips = len(list((out / "images").rglob("*.tif")))
    return {"case": "export", "objects": n, "chips": chips, "seconds": seconds,
            "chips_per_s": chips / seconds, "peak_rss_mib": _rss_mib(),
            "rss_after_imports_mib": imported, "tracemalloc_peak_mib": traced}  # fmt: skip


def run_generate(folder: Path, out: Path) -> dict[str, Any]:
    import geopandas as gpd
    from shapely.geometry import box

    import rs_seg2any as rs

    size = 512
    town = gpd.GeoDataFrame(
        {"cls": ["permanent water bodies", "bare / sparse vegetation"],
         "desc": ["a calm river", "bare sand"]},
        geometry=[box(X0, Y0, X0 + 120, Y0 + size), box(X0 + 120, Y0, X0 + size, Y0 + size)],
        crs=CRS,
    )  # fmt: skip
    town.to_file(folder / "town.gpkg")
    objects = _objects(60, size, seed=1)
    objects = objects[objects.geometry.bounds.minx > X0 + 130]
    objects.to_file(folder / "objects_gen.gpkg")
    start = time.perf_counter()
    rs.detection_set(
        out, layout=str(folder / "town.gpkg"), class_field="cls", description_field="desc",
        resolution="1", objects=str(folder / "objects_gen.gpkg"), object_class_field="kind",
        chip_size=128, split_buffer=0, threads=1, progress="none",
    )  # fmt: skip
    seconds = time.perf_counter() - start
    chips = len(list((out / "images").rglob("*.tif")))
    return {"case": "generate", "objects": len(objects), "chips": chips, "seconds": seconds,
            "chips_per_s": chips / seconds, "peak_rss_mib": _rss_mib()}  # fmt: skip


def run_dubai(root: Path, out: Path) -> dict[str, Any]:
    from PIL import Image

    from rs_seg2any.detection.export import ChipSettings, export_scene
    from rs_seg2any.detection.instances import scene_from_classes
    from rs_seg2any.train.dubai import classes_from_mask_rgb

    tile = root / "tile_1"
    img = np.asarray(Image.open(tile / "images" / "image_part_004.jpg").convert("RGB"))
    cls = classes_from_mask_rgb(np.asarray(Image.open(tile / "masks" / "image_part_004.png")
                                           .convert("RGB")))  # fmt: skip
    h, w = min(img.shape[0], cls.shape[0]), min(img.shape[1], cls.shape[1])
    img, cls = img[:h, :w], cls[:h, :w]
    grid = _grid(max(h, w))[:h, :w]
    photo = out.parent / "dubai.tif"
    import rasterio

    with rasterio.open(photo, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8",
                       crs=CRS, transform=grid.affine) as dst:  # fmt: skip
        dst.write(img.transpose(2, 0, 1))
    start = time.perf_counter()
    scene = scene_from_classes(cls, grid, {1: "building"}, connectivity=4)
    _, records, _ = export_scene(out, scene, photo, ChipSettings(size=256, stride=256, buffer=0))
    seconds = time.perf_counter() - start
    eight = scene_from_classes(cls, grid, {1: "building"}, connectivity=8)
    sizes = np.array([o.full_area for o in scene.objects])
    big = sizes > 10 * np.median(sizes)
    chips = sum(r.exported for r in records)
    return {"case": "dubai", "objects": len(scene.objects), "chips": chips, "seconds": seconds,
            "chips_per_s": chips / seconds, "peak_rss_mib": _rss_mib(),
            "components_8": len(eight.objects), "median_px": float(np.median(sizes)),
            "area_in_big_components": float(sizes[big].sum() / sizes.sum())}  # fmt: skip


def _child(args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          env=env, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--skip-generate", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--dubai", type=Path, help="dubai_aerial folder: add the real-mask case")
    ap.add_argument("--child", nargs=3, metavar=("CASE", "FOLDER", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        case, folder, n = args.child
        out = Path(tempfile.mkdtemp(dir=folder)) / "set"
        if case == "export":
            res = run_export(Path(folder), out, int(n))
        elif case == "dubai":
            res = run_dubai(Path(n), out)
        else:
            res = run_generate(Path(folder), out)
        print(json.dumps(res))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        prepare(folder, args.objects)
        rows = [_child(["--child", "export", str(folder), str(n)]) for n in args.objects]
        if not args.skip_generate:
            rows.append(_child(["--child", "generate", str(folder), "0"]))
        if args.dubai:
            rows.append(_child(["--child", "dubai", str(folder), str(args.dubai.resolve())]))
    if args.json:
        print(json.dumps(rows, indent=1))
    base = rows[0]
    print(f"{'case':<9}{'objects':>8}{'chips':>7}{'s':>8}{'chips/s':>9}{'peak MiB':>10}"
          f"{'x base':>8}{'py peak MiB':>13}{'x base':>8}")  # fmt: skip
    for r in rows:
        ratio = r["peak_rss_mib"] / base["peak_rss_mib"]
        traced = r.get("tracemalloc_peak_mib")
        tr = f"{traced:13.1f}{traced / base['tracemalloc_peak_mib']:8.2f}" if traced else ""
        print(f"{r['case']:<9}{r['objects']:>8}{r['chips']:>7}{r['seconds']:8.2f}"
              f"{r['chips_per_s']:9.2f}{r['peak_rss_mib']:10.1f}{ratio:8.2f}{tr}")  # fmt: skip
    for r in rows:
        if r["case"] == "dubai":
            print(f"dubai: {r['objects']} building instances (4-connected components; "
                  f"{r['components_8']} with 8-connectivity), median {r['median_px']:.0f} px, "
                  f"{r['area_in_big_components']:.0%} of the building area in components over "
                  "10x the median (touching buildings merged)")  # fmt: skip
    exports = [r for r in rows if r["case"] == "export"]
    worst = max(r["peak_rss_mib"] for r in exports) / base["peak_rss_mib"]
    verdict = "met" if worst <= GOAL else "NOT met"
    print(f"peak RSS at {exports[-1]['objects'] // base['objects']}x the objects: {worst:.2f}x "
          f"the {base['objects']}-object run (goal <= {GOAL}x: {verdict})")  # fmt: skip


if __name__ == "__main__":
    main()
