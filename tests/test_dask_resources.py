"""GPU tiles via Dask resources, on a real cluster of this CPU machine.

The cluster is the one ``--workers 2`` would start on a machine with one GPU: worker 0 sees
GPU "0" and offers ``GPU=1``, worker 1 sees none. A job that asks for the resource (forced
with ``gpu_resource``: the tiny model runs on the CPU) must run every tile on worker 0 and
give the local run's bytes; a job asking for a resource no worker offers must fail with a
ClusterError within the wait, before any tile is submitted.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("distributed")

import torch

import rs_seg2any as rs
from rs_seg2any.cli import build_parser, main
from rs_seg2any.demo import write_demo_layer
from rs_seg2any.errors import ClusterError, InputError
from rs_seg2any.generators.registry import load_generator
from rs_seg2any.job import resources
from rs_seg2any.job.cluster import local_cluster
from rs_seg2any.job.execparams import ExecParams
from rs_seg2any.job.jobdir import JOB_DIRNAME
from rs_seg2any.jobmodel import load_job

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes")
EXTENT = "300000,2780150,300080,2780206"  # 160 x 112 px at 0.5 m: 2 x 3 tiles of 64
OUTPUTS = ("image.tif", "label.tif", "instance.tif")


@pytest.fixture(scope="module")
def gpu_cluster() -> Iterator[tuple[Any, Any]]:
    cluster, client = local_cluster(2, gpus=["0"])
    try:
        yield cluster, client
    finally:
        client.close()
        cluster.close()


def gpu_worker(client: Any) -> str:
    workers = client.scheduler_info()["workers"]
    having = [a for a, w in workers.items() if w.get("resources", {}).get("GPU") == 1]
    assert len(having) == 1 and len(workers) == 2, workers
    return str(having[0])


def job_file(folder: Path, weights: Path, out: Path, **extra: Any) -> Path:
    layer = folder / "town.gpkg"
    if not layer.exists():
        write_demo_layer(layer)
    values = {"command": "generate", "layout": str(layer), "class_field": "landcover",
              "description_field": "description", "taxonomy": "dubai_aerial",
              "resolution": 0.5, "extent": EXTENT, "model": str(weights), "steps": 1,
              "tile_size": 64, "overlap": 16, "seed": 5, "progress": "none",
              "out": str(out), **extra}  # fmt: skip
    path = folder / f"{out.name}.yaml"
    path.write_text(json.dumps(values))  # JSON is YAML
    return path


def digests(out: Path) -> dict[str, str]:
    return {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in OUTPUTS}


def test_local_cluster_gives_one_worker_per_gpu_the_resource(gpu_cluster: Any) -> None:
    _, client = gpu_cluster
    gpu = gpu_worker(client)
    env = client.run(lambda: dict(os.environ))  # the workers' own environment
    assert env.pop(gpu)["CUDA_VISIBLE_DEVICES"] == "0"
    assert [e["CUDA_VISIBLE_DEVICES"] for e in env.values()] == [""]  # the CPU worker: none
    assert all(e["OMP_NUM_THREADS"] == "1" for e in env.values())
    # no statistical profiler sampling the tile thread every 10 ms (QUIET_CONFIG)
    profiling = client.run(
        lambda: __import__("dask").config.get("distributed.worker.profile.enabled")
    )
    assert set(profiling.values()) == {False}


def test_tiles_holding_the_resource_all_run_on_the_gpu_worker(
    gpu_cluster: Any, tiny_random_weights: Path, tmp_path: Path
) -> None:
    cluster, client = gpu_cluster
    reference = rs.run(job_file(tmp_path, tiny_random_weights, tmp_path / "local"))
    path = job_file(tmp_path, tiny_random_weights, tmp_path / "gpu", gpu_resource="GPU")
    assert load_job(path).cluster.gpu_resource == "GPU"  # a job-file key
    res = rs.run(path, scheduler=cluster.scheduler_address)
    assert digests(res.out_dir) == digests(reference.out_dir)
    tiles = json.loads((res.out_dir / JOB_DIRNAME / "manifest.json").read_text())["tiles"]
    assert len(tiles) == 6
    assert {t["worker"] for t in tiles.values()} == {gpu_worker(client)}
    # the worker that rendered them runs torch with one inter-op thread, as --threads 1 intra
    interop = client.run(lambda: __import__("torch").get_num_interop_threads(),
                         workers=[gpu_worker(client)])  # fmt: skip
    assert list(interop.values()) == [1]
    local = json.loads((reference.out_dir / JOB_DIRNAME / "manifest.json").read_text())
    assert all("worker" not in t for t in local["tiles"].values())


def test_a_resource_no_worker_offers_is_a_clear_error_not_a_hang(
    gpu_cluster: Any, tiny_random_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, _ = gpu_cluster
    monkeypatch.setattr(resources, "RESOURCE_WAIT_S", 1.0)
    out = tmp_path / "tpu"
    path = job_file(tmp_path, tiny_random_weights, out)
    started = time.monotonic()
    with pytest.raises(ClusterError, match=r"none of the 2 workers .* resource 'TPU'.*TPU=1"):
        rs.run(path, scheduler=cluster.scheduler_address, gpu_resource="TPU")
    assert time.monotonic() - started < 60
    assert not list((out / JOB_DIRNAME).glob("tiles/*.npz"))
    code = main(["run", str(path), "--scheduler", cluster.scheduler_address,
                 "--gpu-resource", "TPU"])  # fmt: skip
    assert code == ClusterError.exit_code


class OnCuda:
    """A generator as FluxBackend reports itself after loading onto a GPU."""

    device = torch.device("cuda")


def test_auto_asks_for_the_gpu_resource_only_for_a_gpu_generator(
    tiny_random_weights: Path,
) -> None:
    class Render:
        def __init__(self, generator: Any) -> None:
            self.generator = generator

    tiny = Render(load_generator("tiny", str(tiny_random_weights)))
    assert resources.tile_resource("auto", tiny) is None
    assert resources.tile_resource("auto", Render(OnCuda())) == "GPU"
    assert resources.tile_resource("none", Render(OnCuda())) is None
    assert resources.tile_resource("GPU_A100", tiny) == "GPU_A100"
    assert resources.tile_resource("auto", object()) is None  # a layout job: no generator
    tiny.generator._rs_recipe = ("flux", "m", None, {"device": "cuda:1"})  # --device cuda:1
    assert resources.runs_on_gpu(tiny.generator)


def test_gpu_resource_option_is_typed_everywhere() -> None:
    with pytest.raises(InputError, match="--gpu-resource"):
        ExecParams(gpu_resource="GPU=1")
    given = ExecParams(scheduler="tcp://h:8786", gpu_resource="GPU")
    assert given.override(workers=2).gpu_resource == "GPU"
    assert given.override(gpu_resource="none").gpu_resource == "none"
    args = build_parser().parse_args(["run", "job.yaml", "--gpu-resource", "MYGPU"])
    assert args.gpu_resource == "MYGPU"
    assert build_parser().parse_args(["run", "job.yaml"]).gpu_resource is None  # job's own


def test_local_worker_specs_without_gpus_are_the_cluster_defaults() -> None:
    base = {"cls": object, "options": {"nthreads": 1, "env": {"OMP_NUM_THREADS": "1"}}}
    specs = resources.local_worker_specs(base, 3, [])
    assert [s["options"] for s in specs.values()] == [base["options"]] * 3
    two = resources.local_worker_specs(base, 3, ["2", "5"])
    assert [s["options"]["env"]["CUDA_VISIBLE_DEVICES"] for s in two.values()] == ["2", "5", ""]
    assert [s["options"].get("resources") for s in two.values()] == [{"GPU": 1}, {"GPU": 1}, None]
