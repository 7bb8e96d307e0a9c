"""End-to-end: the `rs-seg2any layout` command on real files, read back with rasterio."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_bounds

from rs_seg2any.cli import main
from rs_seg2any.demo import write_demo_layer
from rs_seg2any.errors import JobError, LayoutError, OutputError
from rs_seg2any.job.jobdir import JobDir
from rs_seg2any.job.runner import layout_job_params
from rs_seg2any.job.tiling import TilePlan
from rs_seg2any.layout import load_layout
from rs_seg2any.raster import rasterize_window
from rs_seg2any.taxonomy import load_taxonomy

OUTPUT_RASTERS = ("label.tif", "instance.tif", "contour.tif")


@pytest.fixture(scope="module")
def demo_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_layer(tmp_path_factory.mktemp("demo") / "town.gpkg")


def run_layout(layer: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "layout",
            str(layer),
            "--class-field",
            "landcover",
            "--description-field",
            "description",
            "--taxonomy",
            "dubai_aerial",
            "--resolution",
            "0.5",
            "--progress",
            "none",
            "--out",
            str(out),
            *extra,
        ]
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_outputs_share_one_grid_and_are_styled(demo_layer: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_layout(demo_layer, out, "--tile-size", "300") == 0
    grids = set()
    for name in OUTPUT_RASTERS:
        with rasterio.open(out / name) as src:
            grids.add((src.crs.to_epsg(), tuple(src.transform), src.shape))
            assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert src.overviews(1), f"{name} has no overviews"
    assert len(grids) == 1
    epsg, transform, shape = grids.pop()
    assert epsg == 32640 and shape == (768, 1024) and transform[0] == 0.5

    taxonomy = load_taxonomy("dubai_aerial")
    with rasterio.open(out / "label.tif") as src:
        labels = src.read(1)
        assert src.dtypes[0] == "uint8" and src.nodata == 0
        cmap = src.colormap(1)
        assert cmap[1][:3] == taxonomy.by_id(1).colour
        assert json.loads(src.tags(1)["CLASS_NAMES"])[1] == "building"
        # Overviews of a mask must keep class values only (nearest resampling).
        small = src.read(1, out_shape=(96, 128))
        assert set(np.unique(small)) <= set(np.unique(labels))
    with rasterio.open(out / "instance.tif") as src:
        instances = src.read(1)
    with rasterio.open(out / "contour.tif") as src:
        contours = src.read(1)
    assert set(np.unique(labels)) == {1, 2, 3, 4, 5}  # every demo class is drawn
    assert set(np.unique(contours)) == {0, 1}
    assert np.all(contours[instances == 0] == 0)

    rows = list(csv.DictReader((out / "entities.csv").open(encoding="utf-8")))
    report = json.loads((out / "layout.json").read_text())
    assert len(rows) == report["report"]["entities"]
    by_id = {int(r["instance_id"]): r for r in rows}
    # Every visible instance pixel carries the class its entity row says.
    for iid in np.unique(instances[instances > 0])[:50]:
        assert np.all(labels[instances == iid] == int(by_id[int(iid)]["class_id"]))
    assert any(r["description"] == "a calm river, dark green-blue water" for r in rows)
    assert (out / "label.qml").read_text().count("paletteEntry") >= 6
    assert (out / "preview.png").stat().st_size > 0
    assert not (out / ".rs_seg2any" / "tiles").exists() or not any(
        (out / ".rs_seg2any" / "tiles").iterdir()
    )


def test_same_job_twice_gives_identical_bytes_for_any_tile_size(
    demo_layer: Path, tmp_path: Path
) -> None:
    assert run_layout(demo_layer, tmp_path / "a", "--tile-size", "256") == 0
    assert run_layout(demo_layer, tmp_path / "b", "--tile-size", "256") == 0
    for name in OUTPUT_RASTERS:
        assert digest(tmp_path / "a" / name) == digest(tmp_path / "b" / name)
    # Pixels do not depend on the tile size (1-pixel halo), only the job parameters do.
    assert run_layout(demo_layer, tmp_path / "c", "--tile-size", "1000") == 0
    for name in OUTPUT_RASTERS:
        with rasterio.open(tmp_path / "a" / name) as a, rasterio.open(tmp_path / "c" / name) as c:
            np.testing.assert_array_equal(a.read(), c.read())


def test_bad_input_fails_with_typed_error_and_writes_nothing(
    demo_layer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "layout",
            str(demo_layer),
            "--class-field",
            "landcover",
            "--taxonomy",
            "worldcover",  # 'building', 'land', 'road'... are not WorldCover names
            "--resolution",
            "0.5",
            "--progress",
            "json",
            "--out",
            str(out),
        ]
    )
    assert code == LayoutError.exit_code
    err = capsys.readouterr().err
    assert "error:" in err and "'land'" in err and "--unknown-class" in err
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert events[-1]["event"] == "error" and events[-1]["type"] == "LayoutError"
    assert not any(p.suffix == ".tif" for p in out.rglob("*"))


def test_missing_class_field_lists_the_fields(
    demo_layer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["layout", str(demo_layer), "--class-field", "kind", "--resolution", "1",
                 "--progress", "none", "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == LayoutError.exit_code
    err = capsys.readouterr().err
    assert "'kind' not found" in err and "landcover" in err and "description" in err


def test_unwritable_output_folder_is_a_typed_error(
    demo_layer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert run_layout(demo_layer, blocker / "out") == OutputError.exit_code
    assert "error:" in capsys.readouterr().err


def test_unfinished_job_is_protected_until_restart(
    demo_layer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    layout = load_layout(
        demo_layer, "landcover", description_field="description", taxonomy="dubai_aerial",
        resolution=0.5,
    )  # fmt: skip
    plan = TilePlan.for_grid(layout.grid, tile_size=256, overlap=0)
    job = JobDir(out, layout_job_params(layout, 256))
    maps = rasterize_window(layout, plan.tiles[0].rows, plan.tiles[0].cols)
    job.save_tile(plan.tiles[0], {"label": maps.label})  # an interrupted job: 1 tile done
    assert run_layout(demo_layer, out, "--tile-size", "128") == JobError.exit_code
    err = capsys.readouterr().err
    assert "--restart" in err and "tile_size" in err
    assert run_layout(demo_layer, out, "--tile-size", "128", "--restart") == 0


def test_finished_job_is_replaced_by_a_new_one(demo_layer: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_layout(demo_layer, out) == 0
    assert run_layout(demo_layer, out, "--extent", "300000,2780000,300100,2780050") == 0
    with rasterio.open(out / "label.tif") as src:
        assert src.shape == (100, 200)


def test_json_progress_reports_stages_and_result(
    demo_layer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["layout", str(demo_layer), "--class-field", "landcover", "--taxonomy",
                 "dubai_aerial", "--resolution", "1", "--tile-size", "128", "--progress", "json",
                 "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 0
    events = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    stages = [e["stage"] for e in events if e["event"] == "stage"]
    assert stages[:2] == ["validate layer", "tiles"]
    tiles = [e for e in events if e["event"] == "progress" and e["stage"] == "tiles"]
    assert tiles[-1]["done"] == tiles[-1]["total"] == 12  # 384 x 512 px in 128 px tiles
    assert events[-1]["event"] == "done" and "label" in events[-1]["outputs"]


def _big_layer(path: Path) -> Path:
    """A layer with enough tiles that a job can be killed half-way."""
    rng = np.random.default_rng(5)
    x0, y0 = 500_000.0, 4_000_000.0
    centres = rng.uniform(0, 2000, (700, 2))
    geoms = [shapely.Point(x0 + cx, y0 + cy).buffer(rng.uniform(10, 60), 6) for cx, cy in centres]
    classes = rng.choice(["tree cover", "cropland", "built-up", "grassland"], len(geoms))
    frame = gpd.GeoDataFrame({"lc": classes}, geometry=geoms, crs="EPSG:32631")
    frame.to_file(path, driver="GPKG")
    return path


def _layout_cmd(layer: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "rs_seg2any.cli", "layout", str(layer), "--class-field",
            "lc", "--resolution", "1", "--tile-size", "128", "--progress", "json",
            "--out", str(out)]  # fmt: skip


def test_killed_then_resumed_job_is_byte_identical(tmp_path: Path) -> None:
    layer = _big_layer(tmp_path / "big.gpkg")
    reference = tmp_path / "reference"
    subprocess.run(_layout_cmd(layer, reference), check=True, capture_output=True)

    out = tmp_path / "killed"
    proc = subprocess.Popen(_layout_cmd(layer, out), stderr=subprocess.DEVNULL)
    tiles = out / ".rs_seg2any" / "tiles"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if tiles.exists() and len(list(tiles.glob("r*.npz"))) >= 30:
            break
        if proc.poll() is not None:
            pytest.fail("the job finished before it could be killed; make the layer bigger")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(tiles.glob("r*.npz")))
    assert 0 < done_before < 16 * 16  # killed half-way
    assert not (out / "label.tif").exists()

    resumed = subprocess.run(_layout_cmd(layer, out), check=True, capture_output=True, text=True)
    messages = [json.loads(x) for x in resumed.stderr.splitlines() if x.startswith("{")]
    assert any("resuming" in e.get("message", "") for e in messages)
    for name in OUTPUT_RASTERS:
        assert digest(out / name) == digest(reference / name), name


def test_a_stop_whose_interrupt_a_reader_drops_still_lands_at_the_next_tile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """pyogrio's OGR reader drops the KeyboardInterrupt a SIGTERM raises inside it (about
    one signal in ten during a layout job): the job must stop anyway, tiles kept."""
    import threading

    import pyogrio

    from rs_seg2any import interrupts

    monkeypatch.setattr(interrupts, "_STOP", threading.Event())  # this test's stop only
    layer = _big_layer(tmp_path / "big.gpkg")
    read = pyogrio.read_dataframe
    calls = []

    def read_dropping_a_signal(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 12:  # SIGTERM lands inside the reader, which eats the exception
            with contextlib.suppress(KeyboardInterrupt):
                interrupts._interrupt(signal.SIGTERM, None)
        return read(*args, **kwargs)

    monkeypatch.setattr(pyogrio, "read_dataframe", read_dropping_a_signal)
    out = tmp_path / "out"
    argv = _layout_cmd(layer, out)[3:]
    assert main(argv) == 130
    assert '"type": "Cancelled"' in capsys.readouterr().err
    tiles = out / ".rs_seg2any" / "tiles"
    kept = len(list(tiles.glob("r*.npz")))
    assert 0 < kept < 17 * 17 and not (out / "label.tif").exists()

    monkeypatch.setattr(interrupts, "_STOP", threading.Event())  # the user reruns
    monkeypatch.setattr(pyogrio, "read_dataframe", read)
    assert main(argv) == 0
    assert "resuming: " + str(kept) in capsys.readouterr().err
    assert (out / "label.tif").is_file()


def test_slovenian_polygons_match_the_reference_raster(shared_data: Path, tmp_path: Path) -> None:
    """Real land-use polygons at 10 m agree with eo-learn's own rasterisation (LULC.npy)."""
    folder = shared_data / "eolearn_slovenia"
    bbox = json.loads((folder / "bbox.geojson").read_text())["coordinates"][0]
    xs, ys = [p[0] for p in bbox], [p[1] for p in bbox]
    reference = np.load(folder / "LULC.npy")[..., 0]
    extent = f"{min(xs)},{min(ys)},{max(xs)},{max(ys)}"
    common = ["layout", str(folder / "LULC.gpkg"), "--class-field", "LULC_NAME",
              "--taxonomy", "eolearn_slovenia", "--unknown-class", "background",
              "--progress", "none"]  # fmt: skip

    # 1) A 10 m grid starting at the patch corner.
    out = tmp_path / "ten_metres"
    assert main([*common, "--resolution", "10", "--extent", extent, "--no-snap",
                 "--out", str(out)]) == 0  # fmt: skip
    with rasterio.open(out / "label.tif") as src:
        assert src.crs.to_epsg() == 32633 and src.shape == reference.shape
        agreement = float((src.read(1) == reference).mean())
    assert agreement >= 0.95, agreement

    # 2) The exact grid of the reference raster, given as a GeoTIFF to copy (--like).
    like = tmp_path / "reference.tif"
    transform = from_bounds(min(xs), min(ys), max(xs), max(ys), reference.shape[1],
                            reference.shape[0])  # fmt: skip
    with rasterio.open(like, "w", driver="GTiff", width=reference.shape[1],
                       height=reference.shape[0], count=1, dtype="uint8", crs="EPSG:32633",
                       transform=transform) as dst:  # fmt: skip
        dst.write(reference.astype("uint8"), 1)
    out = tmp_path / "like"
    assert main([*common, "--like", str(like), "--out", str(out)]) == 0
    with rasterio.open(out / "label.tif") as src, rasterio.open(like) as ref:
        assert src.crs == ref.crs and src.transform == ref.transform and src.shape == ref.shape
        assert float((src.read(1) == reference).mean()) >= 0.99


def test_sigterm_stops_cleanly_and_the_job_resumes(tmp_path: Path) -> None:
    """Schedulers and the QGIS plugin cancel with SIGTERM/SIGINT: typed exit, tiles kept."""
    layer = _big_layer(tmp_path / "big.gpkg")
    out = tmp_path / "out"
    proc = subprocess.Popen(_layout_cmd(layer, out), stderr=subprocess.PIPE, text=True)
    tiles = out / ".rs_seg2any" / "tiles"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if tiles.exists() and len(list(tiles.glob("r*.npz"))) >= 20:
            break
        time.sleep(0.02)
    if proc.poll() is not None:
        pytest.fail("the job finished before it could be stopped; make the layer bigger")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert '"type": "Cancelled"' in err
    kept = len(list(tiles.glob("r*.npz")))
    assert kept >= 20
    resumed = subprocess.run(_layout_cmd(layer, out), check=True, capture_output=True, text=True)
    assert "resuming" in resumed.stderr
