"""Peak memory of scenarios on a 16x larger area: edit regions must stream by tile.

Goal: a polygon flood and a change pair on 8192 x 8192 px (16x) peak at <= 1.3x the same
scenario on 2048 x 2048 px (1x), measured in the same run. A DEM flood is reported too: it
needs whole-grid connectivity, computed tile by tile with a union-find over tile borders
(:mod:`rs_seg2any.scenarios.flood_tiled`), so its memory follows the terrain's number of
basins rather than its pixels; its line checks the same goal on this smooth terrain.

Each run is a fresh subprocess that reads inputs prepared by another subprocess, so neither
the inputs' creation nor an earlier run is in its peak. Peak RSS is ``ru_maxrss``; the
generator's own memory (RSS added by building it) is reported separately. The generator is
:class:`flat_generator.FlatGenerator`, a real Generator that paints each entity one colour
from its description, so a 16x run takes minutes instead of hours of diffusion sampling.
``--tracemalloc`` adds the peak of Python and NumPy allocations (slower).

Run: ``OMP_NUM_THREADS=1 python bench/bench_scenario_memory.py`` (``--sizes 512 2048`` for a
quick look; ``--cases flood change dem``; ``--json``).
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

HERE = Path(__file__).resolve().parent
CRS = "EPSG:32640"
X0, Y0, RES = 300_000.0, 2_780_000.0, 1.0
CELL = 256  # px: one block of the synthetic town, repeated over the area
TILE, OVERLAP = 256, 64
GOAL = 1.3


def _grid(size: int) -> Any:
    from odc.geo.geobox import GeoBox

    return GeoBox.from_bbox((X0, Y0, X0 + size * RES, Y0 + size * RES), CRS, resolution=RES)


def _rss_mib() -> float:
    """Peak RSS of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# ------------------------------------------------------------------------------------ inputs


def _town(size: int) -> Any:
    """Land everywhere, a river on the left, per 256-px block four buildings and a road."""
    import geopandas as gpd
    from shapely.geometry import box

    geoms = [box(X0, Y0, X0 + size * RES, Y0 + size * RES), box(X0, Y0, X0 + 40, Y0 + size)]
    cls, desc = ["bare / sparse vegetation", "permanent water bodies"], ["bare sand", "a river"]
    rng = np.random.default_rng(0)
    for by in range(0, size, CELL):
        for bx in range(0, size, CELL):
            geoms.append(box(X0 + bx, Y0 + by + 120, X0 + bx + CELL, Y0 + by + 132))
            cls.append("built-up")
            desc.append("asphalt road")
            for k in range(4):
                x = X0 + bx + 20 + (k % 2) * 120 + rng.uniform(0, 40)
                y = Y0 + by + 10 + (k // 2) * 140 + rng.uniform(0, 40)
                geoms.append(box(x, y, x + rng.uniform(15, 60), y + rng.uniform(15, 60)))
                cls.append("built-up")
                desc.append(f"a flat roof {k}")
    return gpd.GeoDataFrame({"cls": cls, "desc": desc}, geometry=geoms, crs=CRS)


def _write_raster(path: Path, size: int, count: int, dtype: str, fill: Any) -> None:
    """A tiled GeoTIFF written in 1024-row strips (the inputs never exist as one array)."""
    import rasterio

    with rasterio.open(
        path, "w", driver="GTiff", width=size, height=size, count=count, dtype=dtype, crs=CRS,
        transform=_grid(size).affine, tiled=True, blockxsize=512, blockysize=512,
        compress="DEFLATE", zlevel=1,
    ) as dst:  # fmt: skip
        for r0 in range(0, size, 1024):
            rows = min(1024, size - r0)
            yy, xx = np.mgrid[r0 : r0 + rows, 0:size]
            data = fill(yy, xx).astype(dtype).reshape(count, rows, size)
            dst.write(data, window=((r0, r0 + rows), (0, size)))


def prepare(folder: Path, size: int) -> None:
    """Layout, after layout, flood polygons, a base photo and a DEM for one area size."""
    import geopandas as gpd
    from shapely.geometry import Point

    folder.mkdir(parents=True, exist_ok=True)
    town = _town(size)
    town.to_file(folder / "town.gpkg")
    after = town.copy()
    roofs = after.index[after["desc"].str.startswith("a flat roof")]
    after.loc[roofs[::10], ["cls", "desc"]] = ["bare / sparse vegetation", "a cleared plot"]
    after.to_file(folder / "after.gpkg")
    s = size / 2048  # the flood covers the same share of every area
    blobs = [Point(X0 + 700 * s, Y0 + 900 * s).buffer(450 * s),
             Point(X0 + 1500 * s, Y0 + 1400 * s).buffer(300 * s)]  # fmt: skip
    gpd.GeoDataFrame(geometry=blobs, crs=CRS).to_file(folder / "extent.gpkg")

    def photo(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        return np.stack([(xx * 7 + yy) % 251, (yy * 5) % 241, (xx ^ yy) % 239])

    def dem(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        return xx * (10.0 / size) + 2.0 * np.sin(yy / (40.0 * s))

    _write_raster(folder / "photo.tif", size, 3, "uint8", photo)
    _write_raster(folder / "dem.tif", size, 1, "float32", dem)


# --------------------------------------------------------------------------------------- run


def run_case(case: str, folder: Path, out: Path, size: int, trace: bool) -> dict[str, Any]:
    """One scenario in this (fresh) process; returns its memory figures."""
    import tracemalloc

    import geopandas as gpd

    from rs_seg2any.scenarios.change import change_pairs
    from rs_seg2any.scenarios.common import GenOptions, Polygons
    from rs_seg2any.scenarios.flood import DemFlood, flood

    sys.path.insert(0, str(HERE))
    from flat_generator import FlatGenerator

    before_gen = _current_rss_mib()
    generator = FlatGenerator()
    generator_mib = _current_rss_mib() - before_gen
    imported = _rss_mib()
    if trace:
        tracemalloc.start()
    opts = GenOptions(steps=1, tile_size=TILE, overlap=OVERLAP, seed=1)
    fields: dict[str, Any] = {"description_field": "desc", "taxonomy": "worldcover"}
    town = Polygons.read(folder / "town.gpkg", "cls", **fields)
    grid = _grid(size)
    start = time.perf_counter()
    if case == "flood":
        extent = gpd.read_file(folder / "extent.gpkg")
        flood(out, generator, extent=extent, base_image=folder / "photo.tif", polygons=town,
              opts=opts)  # fmt: skip
    elif case == "dem":
        level = 5.0
        seed = (X0 + 10.5, Y0 + size / 2 + 0.5)
        flood(out, generator, extent=DemFlood(folder / "dem.tif", level, seeds=[seed]),
              base_image=folder / "photo.tif", polygons=town, opts=opts)  # fmt: skip
    elif case == "change":
        after = Polygons.read(folder / "after.gpkg", "cls", **fields)
        change_pairs(out, generator, town, grid, after=after, opts=opts)
    else:
        raise SystemExit(f"unknown case {case}")
    seconds = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    return {
        "case": case,
        "size": size,
        "peak_rss_mib": _rss_mib(),
        "rss_after_imports_mib": imported,
        "generator_mib": generator_mib,
        "tracemalloc_peak_mib": traced,
        "seconds": seconds,
    }


def tiny_generator_memory(folder: Path) -> dict[str, Any]:
    """RSS a tiny model generator adds (random weights built like the tests' fixture): what a
    real backend adds on top of the scenario peaks above, whatever the area."""
    start = _current_rss_mib()
    import torch

    from rs_seg2any.generators.registry import load_generator
    from rs_seg2any.generators.tiny.model import TinyConfig, TinySeg2Any
    from rs_seg2any.generators.tiny.weights import save_weights

    torch.manual_seed(0)
    model = TinySeg2Any(TinyConfig(patch=8, width=32, depth=1, heads=2, ctx_depth=1,
                                   bottleneck=16))  # fmt: skip
    path = folder / "tiny_random.safetensors"
    save_weights(model, path)
    del model
    imported = _current_rss_mib()
    generator = load_generator("tiny", path, threads=1)
    loaded = _current_rss_mib()
    del generator
    return {"torch_and_imports_mib": imported - start, "weights_mib": loaded - imported}


def _child(args: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-4000:]}")
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "{}"
    result: dict[str, Any] = json.loads(last)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs=2, default=[2048, 8192], metavar=("BASE", "BIG"))
    p.add_argument("--cases", nargs="+", default=["flood", "change", "dem"])
    p.add_argument("--tracemalloc", action="store_true")
    p.add_argument("--work", type=Path, help="folder for inputs and outputs (default: temp)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--tiny", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--prepare", nargs=2, metavar=("FOLDER", "SIZE"), help=argparse.SUPPRESS)
    p.add_argument("--run", nargs=4, metavar=("CASE", "FOLDER", "OUT", "SIZE"),
                   help=argparse.SUPPRESS)  # fmt: skip
    a = p.parse_args()
    if a.prepare:
        prepare(Path(a.prepare[0]), int(a.prepare[1]))
        print("{}")
        return
    if a.tiny:
        print(json.dumps(tiny_generator_memory(a.tiny)))
        return
    if a.run:
        case, folder, out, size = a.run
        print(json.dumps(run_case(case, Path(folder), Path(out), int(size), a.tracemalloc)))
        return
    with tempfile.TemporaryDirectory(dir=a.work) as tmp:
        work = Path(tmp)
        for size in a.sizes:
            _child(["--prepare", str(work / f"in{size}"), str(size)])
        rows = []
        for case in a.cases:
            runs = []
            for size in a.sizes:
                extra = ["--tracemalloc"] if a.tracemalloc else []
                out = work / f"out-{case}-{size}"
                runs.append(_child([*extra, "--run", case, str(work / f"in{size}"),
                                    str(out), str(size)]))  # fmt: skip
            small, big = runs
            ratio = big["peak_rss_mib"] / small["peak_rss_mib"]
            print(json.dumps({"case": case, "runs": runs, "ratio": ratio}), file=sys.stderr)
            rows.append({"case": case, "runs": runs, "ratio": ratio})
        tiny = _child(["--tiny", str(work)])
    if a.json:
        print(json.dumps({"cases": rows, "tiny_generator": tiny}, indent=1))
        return
    area = (a.sizes[1] / a.sizes[0]) ** 2
    print(f"peak RSS, {a.sizes[0]}^2 px (1x) vs {a.sizes[1]}^2 px ({area:g}x), fresh process each")
    for row in rows:
        small, big = row["runs"]
        goal = "OK" if row["ratio"] <= GOAL else "OVER GOAL"
        print(f"{row['case']:7s} 1x {small['peak_rss_mib']:7.0f} MiB ({small['seconds']:5.0f} s)"
              f"  {area:g}x {big['peak_rss_mib']:7.0f} MiB ({big['seconds']:5.0f} s)"
              f"  ratio {row['ratio']:.2f} (goal <= {GOAL}) {goal}")  # fmt: skip
        extra_px = a.sizes[1] ** 2 - a.sizes[0] ** 2
        growth = (big["peak_rss_mib"] - small["peak_rss_mib"]) * 2**20 / extra_px
        imports = small["rss_after_imports_mib"]
        print(f"        growth {growth:.2f} B/px; after imports {imports:.0f} MiB;"
              f" generator's own memory {small['generator_mib']:.1f} MiB"
              + (f"; tracemalloc peak {small['tracemalloc_peak_mib']:.0f} / "
                 f"{big['tracemalloc_peak_mib']:.0f} MiB" if a.tracemalloc else ""))  # fmt: skip
    print(
        f"tiny generator (random weights, as the tests' fixture), fresh process: torch and "
        f"model imports +{tiny['torch_and_imports_mib']:.0f} MiB, weights "
        f"+{tiny['weights_mib']:.1f} MiB; add these to each peak, they do not grow with area"
    )


if __name__ == "__main__":
    main()
