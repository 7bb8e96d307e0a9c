"""A scenario holds its whole output folder: ``before/``, ``after/`` and its own masks.

The generate jobs inside already lock their own folders; these tests cover the scenario's top
folder, where ``flood_mask.tif`` and ``change_mask.tif`` live: a second run on it (another
process, CLI or Python API) is refused at once naming the holder's PID and touching nothing,
and temporaries a killed run left there are cleared by the next run. Real processes, real
GeoTIFFs, the real tiny model with small random weights.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from _jobfs_util import assert_one_line_error, cli_env, run_cli, snapshot
from odc.geo.geobox import GeoBox
from shapely.geometry import box

pytest.importorskip("torch")

from rs_seg2any.errors import JobError
from rs_seg2any.generators.registry import load_generator
from rs_seg2any.job.jobdir import JOB_DIRNAME
from rs_seg2any.scenarios.common import GenOptions
from rs_seg2any.scenarios.planning import plan

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

CRS = "EPSG:32633"
X0, Y0, N = 500_000.0, 5_000_000.0, 48
GRID = GeoBox.from_bbox((X0, Y0, X0 + N, Y0 + N), CRS, resolution=1.0)

HOLDER = """
import sys, time
from rs_seg2any.job.jobdir import folder_lock
with folder_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    """A plain uint8 RGB photo and one planning zone inside it."""
    image = tmp_path / "photo.tif"
    data = np.random.default_rng(3).integers(0, 255, size=(3, N, N), dtype=np.uint8)
    with rasterio.open(image, "w", driver="GTiff", width=N, height=N, count=3, dtype="uint8",
                       crs=CRS, transform=GRID.affine) as dst:  # fmt: skip
        dst.write(data)
    zones = tmp_path / "zones.geojson"
    zone = box(X0 + 8, Y0 + 8, X0 + 30, Y0 + 30)
    gpd.GeoDataFrame({"d": ["a new park"]}, geometry=[zone], crs=CRS).to_file(zones)
    return image, zones


def plan_args(image: Path, zones: Path, weights: Path, out: Path) -> list[str]:
    return ["plan", "--image", str(image), "--zones", str(zones), "--zone-description-field",
            "d", "--model", str(weights), "--steps", "1", "--tile-size", "32", "--overlap", "8",
            "--progress", "none", "--out", str(out)]  # fmt: skip


def hold(folder: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE,
                            text=True, env=cli_env())  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def test_second_scenario_run_is_refused_at_once(
    inputs: tuple[Path, Path], tiny_random_weights: Path, tmp_path: Path
) -> None:
    image, zones = inputs
    out = tmp_path / "plan"
    holder = hold(out)
    try:
        before = snapshot(out, state=True)
        refused = run_cli(plan_args(image, zones, tiny_random_weights, out))
        assert refused.returncode == JobError.exit_code
        assert_one_line_error(
            refused.stderr, f"in use by another rs_seg2any run (PID {holder.pid})"
        )
        assert snapshot(out, state=True) == before  # not even before/ or after/
        generator = load_generator("tiny", tiny_random_weights, threads=1)
        with pytest.raises(JobError, match=f"PID {holder.pid}"):
            plan(out, generator, zones, description_field="d", base_image=image,
                 opts=GenOptions(steps=1, tile_size=32, overlap=8))  # fmt: skip
        assert snapshot(out, state=True) == before
    finally:
        stop(holder)
    # once the holder is gone (even killed), the same command runs
    done = run_cli(plan_args(image, zones, tiny_random_weights, out))
    assert done.returncode == 0, done.stderr
    assert (out / "after" / "image.tif").is_file()


def test_killed_runs_temporaries_are_cleared_and_a_refusal_leaves_no_state(
    inputs: tuple[Path, Path], tiny_random_weights: Path, tmp_path: Path
) -> None:
    image, zones = inputs
    out = tmp_path / "plan"
    out.mkdir()
    orphan = out / ".tmp-flood_mask-k1ll3d.tif"
    orphan.write_bytes(b"half a GeoTIFF")
    done = run_cli(plan_args(image, zones, tiny_random_weights, out))
    assert done.returncode == 0, done.stderr
    assert not orphan.exists()
    # a run refused for its inputs leaves no lock folder behind in a fresh folder
    fresh = tmp_path / "fresh"
    bad = run_cli(plan_args(image, tmp_path / "missing.gpkg", tiny_random_weights, fresh))
    assert bad.returncode != 0
    assert_one_line_error(bad.stderr, "--zones")
    assert not (fresh / JOB_DIRNAME).exists()
    assert not fresh.exists() or not any(p.is_file() for p in fresh.rglob("*"))
