# SPDX-License-Identifier: Apache-2.0
"""Job directories resume after kills and crashes, and refuse to mix different jobs."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from affine import Affine
from odc.geo.geobox import GeoBox

from rs_seg2any.errors import JobError
from rs_seg2any.job.jobdir import JOB_DIRNAME, JobDir
from rs_seg2any.job.tiling import TilePlan

REPO = Path(__file__).resolve().parents[1]
PARAMS: dict[str, Any] = {
    "seed": 7,
    "tile_size": 32,
    "overlap": 8,
    "classes": {"water": "a lake", "forest": "pines"},
}


@pytest.fixture
def plan() -> TilePlan:
    grid = GeoBox((64, 80), Affine(10, 0, 500_000, 0, -10, 6_000_000), "EPSG:32633")
    return TilePlan.for_grid(grid, tile_size=32, overlap=8)


def tile_arrays(plan: TilePlan, tile) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(plan.tile_seed(PARAMS["seed"], tile))
    return {
        "image": rng.random((3, *tile.shape), dtype=np.float32),
        "label": rng.integers(0, 9, size=tile.shape, dtype=np.uint8),
    }


def test_save_load_round_trip_and_deterministic_bytes(tmp_path, plan):
    tile = plan.tiles[1]
    arrays = {**tile_arrays(plan, tile), "ids": np.arange(12, dtype=np.int32).reshape(3, 4)}
    first, second = JobDir(tmp_path / "a", PARAMS), JobDir(tmp_path / "b", PARAMS)
    assert not first.tile_done(tile)
    first.save_tile(tile, arrays)
    second.save_tile(tile, arrays)
    assert first.tile_done(tile)
    loaded = first.load_tile(tile)
    assert set(loaded) == set(arrays)
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype
        np.testing.assert_array_equal(loaded[name], array)
    assert first.tile_path(tile).read_bytes() == second.tile_path(tile).read_bytes()
    assert first.path == tmp_path / "a" / JOB_DIRNAME
    assert first.params == json.loads(json.dumps(PARAMS))


def test_invalid_tile_arrays_are_rejected(tmp_path, plan):
    job = JobDir(tmp_path, PARAMS)
    with pytest.raises(ValueError, match="identifiers"):
        job.save_tile(plan.tiles[0], {"../evil": np.zeros(2)})
    with pytest.raises(ValueError, match="identifiers"):
        job.save_tile(plan.tiles[0], {"__window__": np.zeros(2)})
    with pytest.raises(TypeError, match="object"):
        job.save_tile(plan.tiles[0], {"x": np.array([None, 1])})
    assert not job.tile_done(plan.tiles[0])


def test_params_must_be_json(tmp_path):
    with pytest.raises(TypeError, match="JSON"):
        JobDir(tmp_path, {"out": Path("x")})
    with pytest.raises(TypeError, match="JSON"):
        JobDir(tmp_path, {"gamma": float("nan")})


def test_stale_temp_files_are_ignored_and_cleaned(tmp_path, plan):
    job = JobDir(tmp_path, PARAMS)
    job.save_tile(plan.tiles[0], tile_arrays(plan, plan.tiles[0]))
    stale = job.path / "tiles" / ".tmp-r0000_c0001-abc123.npz"
    stale.write_bytes(b"PK\x03\x04 half a tile")
    (job.path / ".tmp-job-xyz.json").write_text("{")
    assert job.pending(plan) == list(plan.tiles[1:])
    again = JobDir(tmp_path, PARAMS)
    assert not stale.exists() and not (job.path / ".tmp-job-xyz.json").exists()
    assert again.pending(plan) == list(plan.tiles[1:])


def test_resume_with_same_params_keeps_done_tiles(tmp_path, plan):
    job = JobDir(tmp_path, PARAMS)
    for tile in plan.tiles[:2]:
        job.save_tile(tile, tile_arrays(plan, tile))
    reordered = dict(reversed(list(PARAMS.items())))  # key order must not matter
    again = JobDir(tmp_path, reordered)
    assert all(again.tile_done(t) for t in plan.tiles[:2])
    assert again.pending(plan) == list(plan.tiles[2:])


def test_different_params_name_the_differing_keys(tmp_path, plan):
    JobDir(tmp_path, PARAMS).save_tile(plan.tiles[0], tile_arrays(plan, plan.tiles[0]))
    changed = {**PARAMS, "seed": 8, "classes": {"water": "a river", "forest": "pines"}}
    with pytest.raises(JobError) as info:
        JobDir(tmp_path, changed)
    message = str(info.value)
    assert "seed" in message and "classes.water" in message
    assert "tile_size" not in message and "classes.forest" not in message
    assert "--out" in message and "--restart" in message
    assert JobDir(tmp_path, PARAMS).tile_done(plan.tiles[0])  # nothing was lost


def test_restart_wipes_tiles_and_records_new_params(tmp_path, plan):
    job = JobDir(tmp_path, PARAMS)
    job.save_tile(plan.tiles[0], tile_arrays(plan, plan.tiles[0]))
    job.mark_complete({"image": "image.tif"})
    changed = {**PARAMS, "seed": 8}
    fresh = JobDir(tmp_path, changed, restart=True)
    assert fresh.pending(plan) == list(plan.tiles)
    assert not fresh.complete
    assert JobDir(tmp_path, changed).params["seed"] == 8


def test_truncated_tile_is_detected_and_recomputed(tmp_path, plan):
    job = JobDir(tmp_path, PARAMS)
    first, second = plan.tiles[0], plan.tiles[1]
    for tile in (first, second):
        job.save_tile(tile, tile_arrays(plan, tile))
    for tile in (first, second):  # e.g. a full disk on a filesystem without atomic rename
        path = job.tile_path(tile)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    again = JobDir(tmp_path, PARAMS)
    with pytest.raises(JobError, match="rerun the same command"):
        again.load_tile(second)
    assert not job.tile_path(second).exists()
    assert again.pending(plan) == list(plan.tiles)  # first was dropped by the cheap check too
    again.save_tile(first, tile_arrays(plan, first))
    np.testing.assert_array_equal(
        again.load_tile(first)["label"], tile_arrays(plan, first)["label"]
    )


def test_corrupt_job_json_or_orphan_tiles_need_restart(tmp_path, plan):
    job = JobDir(tmp_path, PARAMS)
    job.save_tile(plan.tiles[0], tile_arrays(plan, plan.tiles[0]))
    (job.path / "job.json").write_text("{not json")
    with pytest.raises(JobError, match="--restart"):
        JobDir(tmp_path, PARAMS)
    (job.path / "job.json").unlink()
    with pytest.raises(JobError, match=r"no job\.json"):
        JobDir(tmp_path, PARAMS)
    assert JobDir(tmp_path, PARAMS, restart=True).pending(plan) == list(plan.tiles)


def test_complete_outputs_and_clean_tiles(tmp_path, plan):
    job = JobDir(tmp_path, PARAMS)
    for tile in plan.tiles:
        job.save_tile(tile, tile_arrays(plan, tile))
    assert job.pending(plan) == [] and not job.complete
    job.mark_complete({"image": tmp_path / "image.tif", "labels": "labels.tif"})
    job.clean_tiles()
    assert not (job.path / "tiles").exists()
    again = JobDir(tmp_path, PARAMS)
    assert again.complete
    assert again.outputs == {"image": str(tmp_path / "image.tif"), "labels": "labels.tif"}
    record = json.loads((job.path / "job.json").read_text())
    assert record["params"]["seed"] == 7 and "version" in record


def test_jobdir_pickles_for_workers(tmp_path, plan):
    job = JobDir(tmp_path, PARAMS)
    clone = pickle.loads(pickle.dumps(job))
    clone.save_tile(plan.tiles[0], tile_arrays(plan, plan.tiles[0]))
    assert job.tile_done(plan.tiles[0])


WORKER = """
import sys, time
import numpy as np
from affine import Affine
from odc.geo.geobox import GeoBox
from rs_seg2any.job import jobdir
from rs_seg2any.job.tiling import TilePlan

out, stall_at = sys.argv[1], int(sys.argv[2])
saved = 0
real_write = jobdir._write_npz


def stalling_write(fh, arrays):
    real_write(fh, arrays)  # the temp file is full, but not yet fsynced nor renamed
    if saved == stall_at:
        print("mid-write", flush=True)
        time.sleep(60)


jobdir._write_npz = stalling_write
grid = GeoBox((96, 96), Affine(10, 0, 500000, 0, -10, 6000000), "EPSG:32633")
plan = TilePlan.for_grid(grid, tile_size=32, overlap=8)
job = jobdir.JobDir(out, {"seed": 7, "tile_size": 32, "overlap": 8})
for tile in job.pending(plan):
    print("start", tile.seed_key, flush=True)
    rng = np.random.default_rng(plan.tile_seed(7, tile))
    arrays = {
        "image": rng.random((3, *tile.shape), dtype=np.float32),
        "label": rng.integers(0, 9, size=tile.shape, dtype=np.uint8),
    }
    job.save_tile(tile, arrays)
    saved += 1
print("finished", flush=True)
"""


def run_worker(out: Path, stall_at: int = -1) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", WORKER, str(out), str(stall_at)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def tile_bytes(out: Path) -> dict[str, bytes]:
    tiles = out / JOB_DIRNAME / "tiles"
    return {p.name: p.read_bytes() for p in sorted(tiles.iterdir())}


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_write_then_rerun_equals_uninterrupted_run(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = run_worker(killed, stall_at=4)
    assert proc.stdout is not None
    line = ""
    while line != "mid-write\n":
        line = proc.stdout.readline()
        assert line, f"worker died early: {proc.communicate()[1]}"
    os.kill(proc.pid, signal.SIGKILL)  # the 5th tile is written to a temp file, not renamed
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    left = sorted(tile_bytes(killed))
    assert len(left) == 5 and left[0].startswith(".tmp-r0001_c0000-"), left

    starts = {}
    for out in (killed, clean):
        done = run_worker(out)
        stdout, stderr = done.communicate(timeout=120)
        assert done.returncode == 0 and stdout.endswith("finished\n"), stderr
        starts[out] = stdout.count("start")
    assert starts == {killed: 12, clean: 16}  # the rerun resumed at the killed tile
    assert tile_bytes(killed) == tile_bytes(clean)
    assert len(tile_bytes(clean)) == 16
