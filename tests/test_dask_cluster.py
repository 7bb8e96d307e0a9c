"""Jobs on a real Dask cluster (LocalCluster, 2 worker processes): the same bytes as local.

One cluster serves the module (started once: worker processes are slow to start on a busy
machine); jobs reach it with ``--scheduler``, and one test lets the client start its own with
``--workers 2``. Killing a worker, or the client (SIGTERM, SIGKILL), and rerunning gives the
outputs of an uninterrupted local run; a tile that always fails leaves the others finished
and the manifest and exit code say so.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("distributed")

import distributed

import rs_seg2any as rs
from rs_seg2any.demo import write_demo_layer
from rs_seg2any.errors import Cancelled, PartialJobError
from rs_seg2any.generators.registry import TinyBackend
from rs_seg2any.job.execparams import ExecParams
from rs_seg2any.job.execute import execution
from rs_seg2any.job.generate_job import run_generate_job
from rs_seg2any.job.jobdir import JOB_DIRNAME
from rs_seg2any.job.tiling import TilePlan
from rs_seg2any.layout import load_layout

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
REPO = Path(__file__).resolve().parents[1]
EXTENT = "300000,2780150,300096,2780246"  # 96 m x 96 m at 0.5 m: 192 px, 4 x 4 tiles of 64
OUTPUTS = ("image.tif", "label.tif", "instance.tif", "contour.tif", "entities.csv")


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_layer(tmp_path_factory.mktemp("demo") / "town.gpkg")


def job_file(folder: Path, layer: Path, weights: Path, out: Path, **extra: Any) -> Path:
    values = {"command": "generate", "layout": str(layer), "class_field": "landcover",
              "description_field": "description", "taxonomy": "dubai_aerial",
              "resolution": 0.5, "extent": EXTENT, "model": str(weights), "steps": 2,
              "tile_size": 64, "overlap": 16, "seed": 9, "progress": "none",
              "out": str(out), **extra}  # fmt: skip
    path = folder / f"{out.name}.yaml"
    path.write_text(json.dumps(values))  # JSON is YAML
    return path


def digests(out: Path) -> dict[str, str]:
    return {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in OUTPUTS}


@pytest.fixture(scope="module")
def reference(
    layer: Path, tiny_random_weights: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """The local run every cluster run must equal, byte for byte."""
    folder = tmp_path_factory.mktemp("ref")
    rs.run(job_file(folder, layer, tiny_random_weights, folder / "local"))
    return digests(folder / "local")


def tiles_done(out: Path) -> int:
    tiles = out / JOB_DIRNAME / "tiles"
    return len(list(tiles.glob("r*.npz"))) if tiles.is_dir() else 0


def test_generate_on_the_cluster_equals_the_local_run(
    cluster: Any, layer: Path, tiny_random_weights: Path, reference: dict[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    res = rs.run(job_file(tmp_path, layer, tiny_random_weights, tmp_path / "dask"),
                 scheduler=cluster.scheduler_address)  # fmt: skip
    assert digests(res.out_dir) == reference
    manifest = json.loads((res.out_dir / JOB_DIRNAME / "manifest.json").read_text())
    assert manifest["summary"]["backend"].startswith("dask")
    assert {t["status"] for t in manifest["tiles"].values()} == {"done"}
    assert manifest["outputs"]["image"]["sha256"] == reference["image.tif"]
    # both workers rendered tiles (Dask puts a task with dependencies only where one of
    # them is held, which once kept every tile on the first worker)
    assert len({t["worker"] for t in manifest["tiles"].values()}) == 2


def test_scenario_on_the_cluster_equals_the_local_run(
    cluster: Any, layer: Path, tiny_random_weights: Path, tmp_path: Path
) -> None:
    layout = rs.load_layout(layer, "landcover", taxonomy="dubai_aerial", resolution=1.0,
                            description_field="description",
                            extent=(300000, 2780150, 300096, 2780246))  # fmt: skip
    runs = {}
    for name, where in (("local", {}), ("dask", {"scheduler": cluster.scheduler_address})):
        res = rs.seasons(tmp_path / name, layout=layout, seasons="summer,winter",
                         model=str(tiny_random_weights), steps=1, tile_size=32, overlap=8,
                         progress="none", **where)  # fmt: skip
        runs[name] = {k: hashlib.sha256(p.read_bytes()).hexdigest()
                      for k, p in res.rasters().items()}  # fmt: skip
    assert runs["local"] == runs["dask"] and len(runs["local"]) >= 2


def test_killed_worker_job_finishes_identical(
    cluster: Any, layer: Path, tiny_random_weights: Path, reference: dict[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    out = tmp_path / "killed_worker"
    path = job_file(tmp_path, layer, tiny_random_weights, out)
    result: dict[str, Any] = {}

    def job() -> None:
        try:
            result["res"] = rs.run(path, scheduler=cluster.scheduler_address)
        except BaseException as exc:  # reported below
            result["exc"] = exc

    thread = threading.Thread(target=job)
    thread.start()
    with distributed.Client(cluster.scheduler_address) as client:
        deadline = time.monotonic() + 300
        while tiles_done(out) < 2 and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tiles_done(out) < 16, "the job ended before a worker could be killed"
        pids = client.run(os.getpid)
        os.kill(next(iter(pids.values())), signal.SIGKILL)
    thread.join(600)
    assert "exc" not in result, result.get("exc")
    assert digests(result["res"].out_dir) == reference


def _client(job: Path, scheduler: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "rs_seg2any.cli", "run", str(job),
                             "--scheduler", scheduler], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_client_then_rerun_gives_identical_outputs(
    sig: int, cluster: Any, layer: Path, tiny_random_weights: Path,
    reference: dict[str, str], tmp_path: Path,
) -> None:  # fmt: skip
    out = tmp_path / "killed_client"
    path = job_file(tmp_path, layer, tiny_random_weights, out)
    proc = _client(path, cluster.scheduler_address)
    deadline = time.monotonic() + 300
    while tiles_done(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    os.kill(proc.pid, sig)
    _, stderr = proc.communicate(timeout=120)
    if sig == signal.SIGTERM:
        assert proc.returncode == Cancelled.exit_code, stderr
        assert "run the same command again" in stderr
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not (out / "image.tif").exists()
    # workers may still be writing the tiles the dead client asked for: the rerun waits for
    # them (the folder's writers lock), then resumes
    res = rs.run(path, scheduler=cluster.scheduler_address)
    assert 0 < res.tiles_resumed < res.tiles_total
    assert digests(out) == reference


class FailsOneTile:
    """The tiny model, except one tile (by seed) that always raises."""

    def __init__(self, weights: Path, seed: int) -> None:
        self.inner, self.bad = TinyBackend(weights), seed
        self.name, self.bands, self.tile_multiple = "tiny", 3, self.inner.tile_multiple
        self.supports_inpainting = True

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "test": "fails one tile"}

    def generate(self, cond: Any, **kw: Any) -> Any:
        if kw["seed"] == self.bad:
            raise RuntimeError("this tile always fails")
        return self.inner.generate(cond, **kw)


def test_one_failing_tile_others_complete_and_are_reported(
    cluster: Any, layer: Path, tiny_random_weights: Path, tmp_path: Path
) -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers get the class
    layout = load_layout(layer, "landcover", description_field="description",
                         taxonomy="dubai_aerial", resolution=0.5,
                         extent=tuple(float(v) for v in EXTENT.split(",")))  # fmt: skip
    plan = TilePlan.for_grid(layout.grid, 64, 16)
    bad = plan.tiles[-1]
    gen = FailsOneTile(tiny_random_weights, plan.tile_seed(9, bad))
    with (
        execution(ExecParams(scheduler=cluster.scheduler_address, attempts=2)),
        pytest.raises(PartialJobError, match=r"1 of 16 tiles failed.*always fails"),
    ):
        run_generate_job(layout, tmp_path / "o", gen, steps=2, seed=9, tile_size=64, overlap=16)
    tiles = json.loads((tmp_path / "o" / JOB_DIRNAME / "manifest.json").read_text())["tiles"]
    assert tiles[bad.seed_key]["status"] == "failed" and tiles[bad.seed_key]["attempts"] == 2
    assert "always fails" in tiles[bad.seed_key]["error"]
    assert sum(t["status"] == "done" for t in tiles.values()) == 15


def test_local_cluster_of_the_client_equals_the_local_run(
    layer: Path, tiny_random_weights: Path, reference: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "workers"
    path = job_file(tmp_path, layer, tiny_random_weights, out, progress="json")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "rs_seg2any.cli", "run", str(path),
                           "--workers", "2"], env=env, text=True, capture_output=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    summary = [e["summary"] for e in events if "summary" in e]
    assert summary and summary[-1]["tiles"] == 16 and summary[-1]["failed"] == 0
    assert summary[-1]["backend"] == "dask (2 local workers)"
    assert digests(out) == reference
