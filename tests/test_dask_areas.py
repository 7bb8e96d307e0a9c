"""Many areas at once on a real Dask cluster (LocalCluster, 2 worker processes).

On a cluster the areas of one job run on client threads sharing one client, so small
areas' tiles interleave; every output file must still equal the local run's, where the
areas run one after another. A partial area does not stop the others; SIGTERM to the
client ends with Cancelled, the local cluster closed, and a rerun finishes identical.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

import psutil

import rs_seg2any as rs
from rs_seg2any.api import run_loaded_job
from rs_seg2any.areas import load_areas
from rs_seg2any.demo import write_demo_layer
from rs_seg2any.errors import Cancelled, LayoutError, PartialJobError
from rs_seg2any.generators.registry import load_generator
from rs_seg2any.job.execparams import ExecParams
from rs_seg2any.job.jobdir import JOB_DIRNAME
from rs_seg2any.job.tiling import TilePlan
from rs_seg2any.layout import load_layout
from rs_seg2any.progress import JsonProgress

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
REPO = Path(__file__).resolve().parents[1]
X0, Y0, SIDE = 300000, 2780000, 56  # 56 m at 1 m: 2 x 2 tiles of 32 px, overlap 8 (serial)
CORNERS = {"a": (0, 0), "b": (100, 0), "c": (200, 0), "d": (0, 100)}
TILES = 4 * len(CORNERS)
SEEDS = {"a": 9, "b": 5, "c": 9, "d": 3}


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_layer(tmp_path_factory.mktemp("demo") / "town.gpkg")


def extent(name: str) -> tuple[float, float, float, float]:
    dx, dy = CORNERS[name]
    return (X0 + dx, Y0 + dy, X0 + dx + SIDE, Y0 + dy + SIDE)


def areas_file(folder: Path, layer: Path, out: Path, **changes: dict[str, Any]) -> Path:
    areas = [{"name": n, "extent": ",".join(str(v) for v in extent(n)), "seed": SEEDS[n],
              **changes.get(n, {})} for n in CORNERS]  # fmt: skip
    values = {"command": "generate", "layout": str(layer), "class_field": "landcover",
              "description_field": "description", "taxonomy": "dubai_aerial",
              "resolution": 1.0, "backend": "exemplar", "tile_size": 32, "overlap": 8,
              "progress": "none", "out": str(out), "areas": areas}  # fmt: skip
    path = folder / f"{out.name}.yaml"
    path.write_text(json.dumps(values))  # JSON is YAML
    return path


def digests(out: Path) -> dict[str, str]:
    """Every file the job wrote, outside its state folder (manifests name workers)."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*"))
            if p.is_file() and JOB_DIRNAME not in p.parts}  # fmt: skip


@pytest.fixture(scope="module")
def reference(layer: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The local run (areas one after another) every cluster run must equal, byte for byte."""
    folder = tmp_path_factory.mktemp("ref")
    rs.run(areas_file(folder, layer, folder / "local"))
    found = digests(folder / "local")
    assert {f"{n}/image.tif" for n in CORNERS} <= set(found)
    return found


def tile_areas(events: list[dict[str, Any]]) -> list[str]:
    """The area of each tile progress event, in the order they were reported."""
    return [e["area"] for e in events if e["event"] == "progress" and e["stage"] == "tiles"]


def test_areas_run_at_once_and_equal_the_local_run(
    cluster: Any, layer: Path, reference: dict[str, str], tmp_path: Path
) -> None:
    stream = io.StringIO()
    res = rs.run(areas_file(tmp_path, layer, tmp_path / "dask"),
                 scheduler=cluster.scheduler_address, progress=JsonProgress(stream))  # fmt: skip
    assert digests(tmp_path / "dask") == reference
    assert res.tiles_total == TILES and set(res.outputs) >= {f"{n}/image" for n in CORNERS}
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    order = tile_areas(events)
    assert sorted(set(order)) == sorted(CORNERS) and len(order) == TILES
    # run one after another, each area's tiles would be one block: 3 switches between areas
    switches = sum(a != b for a, b in itertools.pairwise(order))
    assert switches > len(CORNERS) - 1, order
    # as many areas at once as worker threads: two run, the others wait for a slot
    summary = [e["summary"] for e in events if "summary" in e and "areas" in e["summary"]]
    assert summary[-1]["at_once"] == 2 and summary[-1]["partial"] == 0
    for name in CORNERS:
        manifest = json.loads((tmp_path / "dask" / name / JOB_DIRNAME / "manifest.json")
                              .read_text())  # fmt: skip
        assert manifest["summary"]["backend"].startswith("dask")
        assert {t["status"] for t in manifest["tiles"].values()} == {"done"}


class FailsOneTile:
    """The exemplar backend, except one tile (by seed) that always raises."""

    def __init__(self, seed: int) -> None:
        self.inner, self.bad = load_generator("exemplar", None), seed
        self.name, self.bands, self.tile_multiple = "exemplar", 3, self.inner.tile_multiple
        self.supports_inpainting = self.inner.supports_inpainting

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "test": "fails one tile"}

    def generate(self, cond: Any, **kw: Any) -> Any:
        if kw["seed"] == self.bad:
            raise RuntimeError("this tile always fails")
        return self.inner.generate(cond, **kw)


def test_a_partial_area_does_not_stop_the_others(cluster: Any, layer: Path, tmp_path: Path) -> None:
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers get the class
    layout = load_layout(layer, "landcover", description_field="description",
                         taxonomy="dubai_aerial", resolution=1.0, extent=extent("b"))  # fmt: skip
    plan = TilePlan.for_grid(layout.grid, 32, 8)
    bad = plan.tiles[2]  # (1, 0): tile (1, 1) reads it and is blocked
    gen = FailsOneTile(plan.tile_seed(SEEDS["b"], bad))
    job = load_areas(areas_file(tmp_path, layer, tmp_path / "o"))
    job = dataclasses.replace(job, cluster=ExecParams(scheduler=cluster.scheduler_address))
    with pytest.raises(PartialJobError, match=r"1 of 4 areas are partial; b: 1 of 4 tiles "
                                              r"failed.*always fails"):  # fmt: skip
        run_loaded_job(job, generator=gen)
    for name in ("a", "c", "d"):
        assert (tmp_path / "o" / name / "image.tif").is_file()
    assert not (tmp_path / "o" / "b" / "image.tif").exists()
    tiles = json.loads((tmp_path / "o" / "b" / JOB_DIRNAME / "manifest.json").read_text())["tiles"]
    assert tiles[bad.seed_key]["status"] == "failed" and tiles[bad.seed_key]["attempts"] == 2
    assert "always fails" in tiles[bad.seed_key]["error"]
    assert [t["status"] for t in tiles.values()].count("done") == 2
    assert [t["status"] for t in tiles.values()].count("blocked") == 1


def test_an_error_stops_starting_areas_and_names_its_area(
    cluster: Any, layer: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bad"
    path = areas_file(tmp_path, layer, out, b={"class_field": "no_such_field"})
    with pytest.raises(LayoutError, match=r"^area 'b': .*no_such_field"):
        rs.run(path, scheduler=cluster.scheduler_address)
    # a started with b (2 at once) and was let finish; c and d were never started
    assert (out / "a" / "image.tif").is_file()
    assert not (out / "c").exists() and not (out / "d").exists()


def tiles_done(out: Path) -> int:
    return sum(len(list((out / n / JOB_DIRNAME / "tiles").glob("r*.npz"))) for n in CORNERS
               if (out / n / JOB_DIRNAME / "tiles").is_dir())  # fmt: skip


def test_sigterm_mid_job_cancels_closes_the_cluster_and_the_rerun_is_identical(
    cluster: Any, layer: Path, reference: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    path = areas_file(tmp_path, layer, out)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rs_seg2any.cli", "run", str(path),
                             "--workers", "2"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 300
    while tiles_done(out) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    workers = psutil.Process(proc.pid).children(recursive=True)  # the local cluster's
    assert workers
    os.kill(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)  # the process exits: no thread left hanging
    assert proc.returncode == Cancelled.exit_code, stderr
    assert "run the same command again" in stderr
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, alive
    assert not all((out / n / "image.tif").exists() for n in CORNERS)
    res = rs.run(path, scheduler=cluster.scheduler_address)
    assert 0 < res.tiles_resumed < res.tiles_total == TILES
    assert digests(out) == reference
