"""One run per output folder: a second process is refused at once, naming the holder's PID.

All with real processes: the lock is an ``flock`` held by the coordinating process, dropped by
the kernel when that process dies (also on SIGKILL), and not taken by workers that receive a
pickled JobDir (the Dask-distributed shape: workers write tiles under the client's lock).
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _jobfs_util import (
    assert_one_line_error,
    cli_env,
    layout_args,
    run_cli,
    snapshot,
    start_cli,
    temps,
)

from rs_seg2any.demo import write_demo_layer
from rs_seg2any.errors import JobError
from rs_seg2any.job.jobdir import JobDir
from rs_seg2any.job.tiling import TilePlan

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

HOLDER = """
import sys, time
from rs_seg2any.job.jobdir import JobDir
job = JobDir(sys.argv[1], {"job": sys.argv[2] if len(sys.argv) > 2 else "holder"})
print("locked", flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_layer(tmp_path_factory.mktemp("demo") / "town.gpkg")


def _hold(folder: Path, job: str = "holder") -> subprocess.Popen[str]:
    """Another process that opened the job folder and keeps it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), job],
                            stdout=subprocess.PIPE, text=True, env=cli_env())  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def test_second_run_is_refused_at_once_touching_nothing(layer: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    holder = _hold(out)
    try:
        before = snapshot(out, state=True)
        started = time.monotonic()
        refused = run_cli(layout_args(layer, out))
        assert time.monotonic() - started < 60  # refused, not queued
        assert refused.returncode == JobError.exit_code
        assert_one_line_error(
            refused.stderr, f"in use by another rs_seg2any run (PID {holder.pid})"
        )
        assert snapshot(out, state=True) == before
        with pytest.raises(JobError, match=f"PID {holder.pid}"):
            JobDir(out, {"job": "holder"})
    finally:
        _kill(holder)
    # SIGKILL dropped the lock: the folder is usable (the holder's empty job is restarted)
    done = run_cli(layout_args(layer, out, "2", "--restart"))
    assert done.returncode == 0, done.stderr
    assert (out / "label.tif").exists()


def test_two_cli_runs_on_one_folder_one_waits_for_nothing(layer: Path, tmp_path: Path) -> None:
    """Run A is frozen (SIGSTOP) while it holds the folder; run B fails cleanly and A, resumed,
    finishes with the same bytes as a run that had the folder to itself."""
    out, clean = tmp_path / "out", tmp_path / "clean"
    lock = out / ".rs_seg2any" / "lock"
    first = start_cli(layout_args(layer, out, "1"))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None:
            if lock.exists() and lock.read_text().strip() == str(first.pid):
                os.kill(first.pid, signal.SIGSTOP)
                break
            time.sleep(0.01)
        else:
            pytest.fail("run A never took the lock")
        second = run_cli(layout_args(layer, out, "1"))
        assert second.returncode == JobError.exit_code
        assert_one_line_error(second.stderr, f"PID {first.pid}")
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert run_cli(layout_args(layer, clean, "1")).returncode == 0
    assert snapshot(out) == snapshot(clean)
    assert temps(out) == []
    assert lock.read_text() == ""  # released: no PID left behind


WORKER = """
import pickle, sys
import numpy as np
job, tile = pickle.load(sys.stdin.buffer)
job.save_tile(tile, {"label": np.full(tile.shape, 7, np.uint8)})
job.close()  # a worker's close never releases the client's lock
print("saved", flush=True)
"""


def test_pickled_jobdir_lets_workers_write_under_the_clients_lock(tmp_path: Path) -> None:
    from odc.geo.geobox import GeoBox

    grid = GeoBox.from_bbox((0, 0, 64, 64), "EPSG:32640", resolution=1)
    plan = TilePlan.for_grid(grid, tile_size=32, overlap=0)
    with JobDir(tmp_path, {"job": "dask"}) as job:
        payload = pickle.dumps((job, plan.tiles[0]))
        worker = subprocess.run([sys.executable, "-c", WORKER], input=payload,
                                capture_output=True, env=cli_env(), check=False)  # fmt: skip
        assert worker.returncode == 0, worker.stderr.decode()
        assert job.tile_done(plan.tiles[0])
        assert np.all(job.load_tile(plan.tiles[0])["label"] == 7)
        other = subprocess.run([sys.executable, "-c", HOLDER, str(tmp_path), "dask"],
                               capture_output=True, text=True, env=cli_env(), timeout=120,
                               check=False)  # fmt: skip
        assert other.returncode != 0 and f"PID {os.getpid()}" in other.stderr
    holder = _hold(tmp_path, "dask")  # released by the client's close: another process may take it
    _kill(holder)
