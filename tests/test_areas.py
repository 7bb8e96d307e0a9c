"""Many areas in one job file: a list of layers or a folder of them, one sub-folder each."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

pytest.importorskip("torch")

import rs_seg2any as rs
from rs_seg2any.areas import load_areas
from rs_seg2any.cli import main
from rs_seg2any.demo import write_demo_layer
from rs_seg2any.errors import InputError

EXTENT = "300000,2780150,300064,2780214"


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_layer(tmp_path_factory.mktemp("demo") / "town.gpkg")


def top(weights: Path, out: Path) -> dict[str, object]:
    return {"out": str(out), "class_field": "landcover", "description_field": "description",
            "taxonomy": "dubai_aerial", "resolution": 1.0, "extent": EXTENT,
            "model": str(weights), "steps": 1, "tile_size": 32, "overlap": 8,
            "progress": "none"}  # fmt: skip


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_areas_list_runs_each_area_in_its_folder(
    layer: Path, tiny_random_weights: Path, tmp_path: Path
) -> None:
    spec = {**top(tiny_random_weights, tmp_path / "runs"), "command": "generate", "areas": [
        {"name": "north", "layout": str(layer), "seed": 1},
        {"name": "south", "layout": str(layer), "command": "layout",
         "tile_size": 2048},
    ]}  # fmt: skip
    path = tmp_path / "areas.yaml"
    path.write_text(json.dumps(spec))
    res = rs.run(path)
    assert (tmp_path / "runs" / "north" / "image.tif").is_file()
    assert (tmp_path / "runs" / "south" / "label.tif").is_file()
    assert not (tmp_path / "runs" / "south" / "image.tif").exists()  # a layout area
    assert res.outputs["north/image"] == tmp_path / "runs" / "north" / "image.tif"
    # each area is the job it would be on its own: same bytes as a single-area run
    single = {**top(tiny_random_weights, tmp_path / "single"), "command": "generate",
              "layout": str(layer), "seed": 1}  # fmt: skip
    (tmp_path / "single.yaml").write_text(json.dumps(single))
    assert main(["run", str(tmp_path / "single.yaml")]) == 0
    assert sha(tmp_path / "single" / "image.tif") == sha(res.outputs["north/image"])


def test_layers_folder_makes_one_area_per_file(
    layer: Path, tiny_random_weights: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "layers"
    folder.mkdir()
    for name in ("a_town", "b_town"):
        shutil.copy(layer, folder / f"{name}.gpkg")
    (folder / "notes.txt").write_text("not a layer")
    spec = {**top(tiny_random_weights, tmp_path / "runs"), "layers": str(folder), "seed": 4}
    path = tmp_path / "layers.yaml"
    path.write_text(json.dumps(spec))
    job = load_areas(path)
    assert [name for name, _ in job.areas] == ["a_town", "b_town"]
    assert all(j.command == "generate" and j.sampler.seed == 4 for _, j in job.areas)
    assert main(["run", str(path)]) == 0
    images = []
    for name in ("a_town", "b_town"):
        with rasterio.open(tmp_path / "runs" / name / "image.tif") as src:
            images.append(src.read())
    np.testing.assert_array_equal(*images)  # same polygons, same seed: same pixels


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"areas": [{"name": "x"}, {"name": "x"}]}, "two areas are called x"),
        ({"areas": [{"name": "x", "workers": 2}]}, "once, at the top"),
        ({"areas": [{"name": "x", "seeed": 1}]}, "area 'x': unknown key 'seeed'"),
        ({"areas": []}, "non-empty list"),
        ({"layers": "nowhere"}, "folder 'nowhere' not found"),
    ],
)
def test_area_errors_name_the_area(
    extra: dict[str, object], message: str, layer: Path, tmp_path: Path
) -> None:
    spec = {"out": str(tmp_path / "o"), "layout": str(layer), "class_field": "landcover",
            "resolution": 1.0, **extra}  # fmt: skip
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(spec))
    with pytest.raises(InputError, match=message):
        load_areas(path)


class _Cluster:
    """What area_slots asks of a cluster executor: its worker threads."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def slots(self) -> int:
        return self.threads


def test_areas_at_once_follow_the_workers_and_gpu_backends_go_one_at_a_time() -> None:
    from rs_seg2any.areas import area_slots

    assert area_slots(object(), 5, ["exemplar"]) == 1  # local backend: the reference order
    assert area_slots(_Cluster(4), 5, ["exemplar", "tiny"]) == 4
    assert area_slots(_Cluster(1), 5, ["exemplar"]) == 2  # client steps overlap tiles
    assert area_slots(_Cluster(8), 3, ["tiny"]) == 3
    # each area in flight loads its generator on the client: not FLUX once per area
    assert area_slots(_Cluster(4), 5, ["exemplar", "flux"]) == 1
    with pytest.raises(InputError, match="unknown backend"):
        area_slots(_Cluster(4), 5, ["no-such-backend"])
