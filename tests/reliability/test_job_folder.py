"""One folder, one job: a different finished job in the folder is replaced as a whole.

A finished job's outputs (and their side files, e.g. ``image.tif.aux.xml`` written by QGIS)
are all removed before the new job writes, so the folder ends up exactly as a clean run of the
new job would leave it (same files, same bytes, one grid). An unfinished job with other
parameters is refused without ``--restart``, touching nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _jobfs_util import (
    DEMO_EXTENT,
    assert_one_line_error,
    generate_args,
    grids,
    layout_args,
    run_cli,
    snapshot,
    temps,
)

from rs_seg2any.demo import write_demo_layer
from rs_seg2any.errors import JobError
from rs_seg2any.job.jobdir import JobDir
from rs_seg2any.job.runner import layout_job_params, run_layout_job
from rs_seg2any.job.tiling import TilePlan
from rs_seg2any.layout import load_layout


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_layer(tmp_path_factory.mktemp("demo") / "town.gpkg")


@pytest.fixture(scope="module")
def weights(tiny_random_weights: Path) -> Path:
    pytest.importorskip("torch")
    return tiny_random_weights


def _qgis_side_files(out: Path) -> list[Path]:
    """What QGIS leaves beside rasters it opened (statistics in PAM sidecars)."""
    made = []
    for name in ("image.tif", "instance.tif"):
        if (out / name).exists():
            side = out / f"{name}.aux.xml"
            side.write_text("<PAMDataset/>\n")
            made.append(side)
    return made


def _layout(layer: Path, resolution: float, extent: bool = False) -> object:
    box = [float(v) for v in DEMO_EXTENT.split(",")] if extent else None
    return load_layout(layer, "landcover", description_field="description",
                       taxonomy="dubai_aerial", resolution=resolution, extent=box)  # fmt: skip


def test_cli_layout_into_finished_generate_folder_replaces_it(
    layer: Path, weights: Path, tmp_path: Path
) -> None:
    out, clean = tmp_path / "out", tmp_path / "clean"
    assert run_cli(generate_args(layer, weights, out)).returncode == 0
    assert (out / "image.tif").exists()
    sides = _qgis_side_files(out)
    assert sides
    assert run_cli(layout_args(layer, clean)).returncode == 0

    done = run_cli(layout_args(layer, out))
    assert done.returncode == 0, done.stderr
    assert not (out / "image.tif").exists()
    assert not any(side.exists() for side in sides)
    assert snapshot(out) == snapshot(clean)  # every file and byte as a clean 2 m layout job
    assert len(grids(out)) == 1
    assert temps(out) == []


def test_cli_generate_into_finished_layout_folder_replaces_it(
    layer: Path, weights: Path, tmp_path: Path
) -> None:
    out, clean = tmp_path / "out", tmp_path / "clean"
    assert run_cli(layout_args(layer, out)).returncode == 0
    sides = _qgis_side_files(out)
    assert run_cli(generate_args(layer, weights, clean)).returncode == 0

    done = run_cli(generate_args(layer, weights, out))
    assert done.returncode == 0, done.stderr
    assert not any(side.exists() for side in sides)
    assert snapshot(out) == snapshot(clean)  # 0.5 m, 128 px: nothing of the 2 m job is left
    assert len(grids(out)) == 1


def test_api_replaces_a_finished_job_in_both_directions(
    layer: Path, weights: Path, tmp_path: Path
) -> None:
    from rs_seg2any.generators.registry import TinyBackend
    from rs_seg2any.job.generate_job import run_generate_job

    backend = TinyBackend(weights)
    gen_opts = {"steps": 1, "tile_size": 64, "overlap": 16}
    small, coarse = _layout(layer, 0.5, extent=True), _layout(layer, 4.0)
    out = tmp_path / "out"

    run_generate_job(small, out, backend, **gen_opts)  # type: ignore[arg-type]
    side = out / "image.tif.aux.xml"
    side.write_text("<PAMDataset/>\n")
    run_layout_job(coarse, out, tile_size=64)  # type: ignore[arg-type]
    run_layout_job(coarse, tmp_path / "clean_layout", tile_size=64)  # type: ignore[arg-type]
    assert not (out / "image.tif").exists() and not side.exists()
    assert snapshot(out) == snapshot(tmp_path / "clean_layout")

    run_generate_job(small, out, backend, **gen_opts)  # type: ignore[arg-type]
    run_generate_job(small, tmp_path / "clean_gen", backend, **gen_opts)  # type: ignore[arg-type]
    assert snapshot(out) == snapshot(tmp_path / "clean_gen")
    assert len(grids(out)) == 1


def _unfinished_other_job(layer: Path, out: Path) -> None:
    """A 4 m layout job with one finished tile, as a killed run leaves it."""
    layout = _layout(layer, 4.0)
    plan = TilePlan.for_grid(layout.grid, tile_size=32, overlap=0)  # type: ignore[attr-defined]
    with JobDir(out, layout_job_params(layout, 32)) as job:  # type: ignore[arg-type]
        tile = plan.tiles[0]
        job.save_tile(tile, {"label": np.zeros(tile.shape, np.uint8)})


def test_unfinished_other_job_is_refused_untouched_then_restart_replaces(
    layer: Path, tmp_path: Path
) -> None:
    out, clean = tmp_path / "out", tmp_path / "clean"
    _unfinished_other_job(layer, out)
    before = snapshot(out, state=True)

    refused = run_cli(layout_args(layer, out))
    assert refused.returncode == JobError.exit_code
    assert_one_line_error(refused.stderr, "--restart", "different parameters")
    assert snapshot(out, state=True) == before

    with pytest.raises(JobError, match="--restart"):
        run_layout_job(_layout(layer, 2.0), out)  # type: ignore[arg-type]
    assert snapshot(out, state=True) == before

    assert run_cli(layout_args(layer, out, "2", "--restart")).returncode == 0
    assert run_cli(layout_args(layer, clean)).returncode == 0
    assert snapshot(out) == snapshot(clean)


def test_replacement_never_deletes_outside_the_folder(layer: Path, tmp_path: Path) -> None:
    """job.json is data: an output recorded outside the folder is not the job's to delete."""
    import json

    out, precious = tmp_path / "out", tmp_path / "precious.tif"
    precious.write_bytes(b"not yours")
    assert run_cli(layout_args(layer, out, "4")).returncode == 0
    record_path = out / ".rs_seg2any" / "job.json"
    record = json.loads(record_path.read_text())
    record["outputs"]["evil"] = "../precious.tif"
    record_path.write_text(json.dumps(record))
    assert run_cli(layout_args(layer, out, "2")).returncode == 0
    assert precious.read_bytes() == b"not yours"


def test_a_job_without_a_finished_tile_is_replaced_without_restart(
    layer: Path, tmp_path: Path
) -> None:
    """E.g. a job refused for lack of space: nothing to protect, so another job may start."""
    out, clean = tmp_path / "out", tmp_path / "clean"
    layout = _layout(layer, 4.0)
    JobDir(out, layout_job_params(layout, 32)).close()  # type: ignore[arg-type]
    done = run_cli(layout_args(layer, out))
    assert done.returncode == 0, done.stderr
    assert run_cli(layout_args(layer, clean)).returncode == 0
    assert snapshot(out) == snapshot(clean)
