"""Rasterisation speed and tiled-job memory, as ratios against baselines run in the same process.

1. Speed: label + instance + contour maps of N polygons on a W x W grid (one window), against
   a bare ``rasterio.features.rasterize`` of the labels alone. Goal: <= 1.3x.
2. Memory: peak RSS of the tiled ``rs-seg2any layout`` job on an area 16x larger (4x per side,
   16x the polygons) against the same job on the 1x area, each in a fresh process.
   Goal: <= 1.3x.

Run: ``python bench/bench_rasterize.py`` (defaults: 10,000 polygons, 10,000 x 10,000 pixels).
Use ``--quick`` for a small smoke run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio.features
import shapely
from odc.geo.geobox import GeoBox

CRS = "EPSG:32633"
ORIGIN = (400_000.0, 5_000_000.0)
CLASSES = ["tree cover", "grassland", "cropland", "built-up", "permanent water bodies"]


def make_layer(n: int, width_px: int, res: float, seed: int) -> gpd.GeoDataFrame:
    """n irregular octagons of ~60-180 px across, scattered over a width_px square."""
    rng = np.random.default_rng(seed)
    x0, y0 = ORIGIN
    size = width_px * res
    cx = x0 + rng.uniform(0, size, n)
    cy = y0 + rng.uniform(0, size, n)
    radius = rng.uniform(30, 90, n) * res
    angles = np.sort(rng.uniform(0, 2 * np.pi, (n, 8)), axis=1)
    radii = radius[:, None] * rng.uniform(0.6, 1.0, (n, 8))
    xs = cx[:, None] + radii * np.cos(angles)
    ys = cy[:, None] + radii * np.sin(angles)
    rings = np.stack([xs, ys], axis=-1)
    rings = np.concatenate([rings, rings[:, :1]], axis=1)
    polys = shapely.polygons(rings)
    polys = shapely.make_valid(polys)
    classes = rng.choice(CLASSES, n)
    return gpd.GeoDataFrame({"landcover": classes}, geometry=polys, crs=CRS)


def grid_for(width_px: int, res: float) -> GeoBox:
    x0, y0 = ORIGIN
    size = width_px * res
    return GeoBox.from_bbox((x0, y0, x0 + size, y0 + size), CRS, resolution=res)


def bench_speed(n: int, width_px: int, repeats: int) -> dict[str, float]:
    from rs_seg2any.layout import load_layout
    from rs_seg2any.raster import instance_dtype, rasterize_features

    layer = make_layer(n, width_px, 1.0, seed=1)
    grid = grid_for(width_px, 1.0)
    layout = load_layout(layer, "landcover", taxonomy="worldcover", grid=grid)
    features = layout.features()  # prepared once, like the baseline's in-memory shapes
    class_ids = features["class_id"].to_numpy()
    geoms = features.geometry.values
    inst_dt = instance_dtype(layout.entity_count)

    def baseline() -> None:
        rasterio.features.rasterize(
            zip(geoms, class_ids.tolist(), strict=True),
            out_shape=grid.shape,
            transform=grid.affine,
            dtype="uint8",
        )

    def ours() -> None:
        rasterize_features(features, grid, inst_dt)

    times: dict[str, list[float]] = {"baseline": [], "ours": []}
    for _ in range(repeats):  # interleaved, so drift in machine load hits both alike
        for name, fn in (("baseline", baseline), ("ours", ours)):
            gc.collect()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    return {
        "polygons": float(n),
        "pixels": float(width_px * width_px),
        "baseline_s": best["baseline"],
        "ours_s": best["ours"],
        "ratio": best["ours"] / best["baseline"],
    }


def _job_peak_rss(layer_path: Path, out: Path, res: float, tile: int) -> tuple[float, float]:
    """Peak RSS (MiB) and wall time of the layout CLI in a fresh process."""
    argv = [
        "layout", str(layer_path), "--class-field", "landcover", "--taxonomy", "worldcover",
        "--resolution", str(res), "--tile-size", str(tile), "--progress", "none",
        "--out", str(out),
    ]  # fmt: skip
    code = (
        "import sys, time\n"
        "from rs_seg2any.cli import main\n"
        "t = time.perf_counter()\n"
        f"rc = main({argv!r})\n"
        "wall = time.perf_counter() - t\n"
        # VmHWM is this process's own peak: ru_maxrss would include the forking parent's.
        "hwm = [x for x in open('/proc/self/status') if x.startswith('VmHWM')]\n"
        "peak = int(hwm[0].split()[1]) / 1024\n"
        "print(peak, wall)\n"
        "sys.exit(rc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    peak, wall = done.stdout.strip().splitlines()[-1].split()
    return float(peak), float(wall)


def bench_memory(n: int, width_px: int, scale: int, tile: int, workdir: Path) -> dict[str, float]:
    results: dict[str, float] = {}
    for label, factor in (("1x", 1), (f"{scale * scale}x", scale)):
        layer = make_layer(n * factor * factor, width_px * factor, 1.0, seed=2)
        path = workdir / f"layer_{label}.gpkg"
        layer.to_file(path, driver="GPKG")
        del layer
        peak, wall = _job_peak_rss(path, workdir / f"out_{label}", 1.0, tile)
        results[f"peak_rss_mib_{label}"] = peak
        results[f"wall_s_{label}"] = wall
    big = f"{scale * scale}x"
    results["memory_ratio"] = results[f"peak_rss_mib_{big}"] / results["peak_rss_mib_1x"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polygons", type=int, default=10_000)
    parser.add_argument("--width", type=int, default=10_000, help="grid side in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=int, default=4, help="side factor of the large run")
    parser.add_argument("--tile", type=int, default=2048)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    args = parser.parse_args()
    if args.quick:
        args.polygons, args.width, args.repeats, args.tile = 400, 2000, 1, 512

    report: dict[str, object] = {"cpu_count": os.cpu_count()}
    if not args.skip_speed:
        speed = bench_speed(args.polygons, args.width, args.repeats)
        print(
            f"speed: {int(speed['polygons'])} polygons on {args.width}x{args.width}: "
            f"bare label rasterize {speed['baseline_s']:.3f} s, label+instance+contour "
            f"{speed['ours_s']:.3f} s -> ratio {speed['ratio']:.2f}x (goal <= 1.3x)"
        )
        report["speed"] = speed
    if not args.skip_memory:
        with tempfile.TemporaryDirectory() as tmp:
            mem = bench_memory(args.polygons, args.width, args.scale, args.tile, Path(tmp))
        big = f"{args.scale * args.scale}x"
        print(
            f"memory: tiled job peak RSS 1x {mem['peak_rss_mib_1x']:.0f} MiB "
            f"({mem['wall_s_1x']:.1f} s), {big} {mem[f'peak_rss_mib_{big}']:.0f} MiB "
            f"({mem[f'wall_s_{big}']:.1f} s) -> ratio {mem['memory_ratio']:.2f}x (goal <= 1.3x)"
        )
        report["memory"] = mem
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
