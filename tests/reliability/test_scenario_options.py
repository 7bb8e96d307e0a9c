"""Every scenario takes the layer options ``layout`` and ``generate`` take (one definition,
one LayerOptions carrier), and a failing scenario leaves nothing half-written."""

from __future__ import annotations

import argparse
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from odc.geo import BoundingBox
from shapely.geometry import box

pytest.importorskip("torch")

from inputs_kit import (
    GEN,
    GRID,
    X0,
    Y0,
    assert_one_line_error,
    files_under,
    run_cli,
    town,
    write_gpkg,
)

from rs_seg2any.cli import build_parser, job_of
from rs_seg2any.errors import LayoutError
from rs_seg2any.geoio import write_cog
from rs_seg2any.grid import grid_from_bounds
from rs_seg2any.options import LayerOptions
from rs_seg2any.scenarios.common import Polygons

LAYER_FLAGS = {"--layer", "--class-field", "--description-field", "--priority-field",
               "--taxonomy", "--unknown-class", "--layer-crs"}  # fmt: skip
COMMANDS = ["layout", "generate", "flood", "plan", "seasons", "change", "cloudfill", "damage"]


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]  # type: ignore[no-any-return]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_the_same_layer_options(command: str) -> None:
    parser = _subparser(command)
    flags = {f for a in parser._actions for f in a.option_strings}
    assert flags >= LAYER_FLAGS
    unknown = next(a for a in parser._actions if "--unknown-class" in a.option_strings)
    assert list(unknown.choices or []) == ["error", "skip", "background"]


def test_layer_options_reach_the_library_from_a_scenario(tmp_path: Path) -> None:
    for name in ("x.gpkg", "f.gpkg"):
        (tmp_path / name).touch()
    args = build_parser().parse_args(
        ["flood", "--layout", str(tmp_path / "x.gpkg"), "--class-field", "c",
         "--unknown-class", "skip", "--priority-field", "p", "--layer-crs", "EPSG:32633",
         "--description-field", "d", "--layer", "l", "--taxonomy", "eolearn_slovenia",
         "--flood-polygons", str(tmp_path / "f.gpkg"), "--out", "o"]
    )  # fmt: skip
    opts = job_of(args).layer
    assert opts == LayerOptions("c", "l", "d", "p", "eolearn_slovenia", "skip", "EPSG:32633")


SLOVENIA = ["--class-field", "LULC_NAME", "--taxonomy", "eolearn_slovenia"]


def _slovenia(shared_data: Path, tmp: Path) -> tuple[Path, Path, Path]:
    """The real layer, a photo on a 40 m grid over it, and a flood zone inside it."""
    layer = shared_data / "eolearn_slovenia" / "LULC.gpkg"
    frame = gpd.read_file(layer)
    xmin, ymin, xmax, ymax = frame.total_bounds
    grid = grid_from_bounds(BoundingBox(xmin, ymin, xmax, ymax, crs=str(frame.crs)), 40.0)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (3, *grid.shape), dtype=np.uint8)
    image = write_cog(tmp / "photo.tif", img, grid, categorical=False)
    zone = gpd.GeoDataFrame(geometry=[box(xmin + 300, ymin + 300, xmin + 1200, ymin + 1000)],
                            crs=frame.crs)  # fmt: skip
    return layer, image, write_gpkg(zone, tmp / "zone.gpkg")


@pytest.mark.parametrize("with_image", [True, False])
def test_flood_on_slovenia_unknown_classes_fail_cleanly_then_skip_works(
    with_image: bool, shared_data: Path, tmp_path: Path, tiny_random_weights: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    layer, image, zone = _slovenia(shared_data, tmp_path)
    base = ["--image", image] if with_image else ["--resolution", 40]
    out = tmp_path / "out"
    argv = ["flood", *base, "--layout", layer, *SLOVENIA, "--flood-polygons", zone, "--out", out,
            "--model", tiny_random_weights, *GEN]  # fmt: skip
    code, err = run_cli(argv, capsys)
    assert_one_line_error(code, err, "--unknown-class skip|background", "4 features")
    assert code == LayoutError.exit_code
    assert files_under(out) == []  # in particular no after/edit_mask.tif
    code, err = run_cli([*argv, "--unknown-class", "skip"], capsys)
    assert code == 0, err
    with rasterio.open(out / "flood_mask.tif") as src:
        flooded = src.read(1).astype(bool)
    with (
        rasterio.open(out / "after" / "image.tif") as after,
        rasterio.open(image if with_image else out / "before" / "image.tif") as before,
    ):
        a, b = after.read(), before.read()
    assert flooded.any() and np.array_equal(a[:, ~flooded], b[:, ~flooded])


def test_seasons_take_layer_crs_and_priority_field(
    tmp_path: Path, tiny_random_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = town(crs=None)
    frame["prio"] = [0, 10, 0, 0, 0]  # bare land above everything: the buildings disappear
    layer = write_gpkg(frame, tmp_path / "nocrs.gpkg")
    out = tmp_path / "out"
    argv = ["seasons", "--layout", layer, "--class-field", "cls", "--taxonomy", "dubai_aerial",
            "--resolution", 1, "--seasons", "summer", "--out", out, "--model",
            tiny_random_weights, *GEN]  # fmt: skip
    code, err = run_cli(argv, capsys)
    assert_one_line_error(code, err, "has no CRS", "--layer-crs")
    assert files_under(out) == []
    code, err = run_cli([*argv, "--layer-crs", "EPSG:32640"], capsys)
    assert code == 0, err
    building = (64 - 37, 37)  # row, col of the centre of the building at x 30-44, y 30-44
    with rasterio.open(out / "summer" / "label.tif") as src:
        plain = src.read(1)[building]
    code, err = run_cli([*argv, "--layer-crs", "EPSG:32640", "--priority-field", "prio",
                         "--restart"], capsys)  # fmt: skip
    assert code == 0, err
    with rasterio.open(out / "summer" / "label.tif") as src:
        ranked = src.read(1)[building]
    assert (plain, ranked) == (1, 2)  # dubai_aerial: building 1, land 2


def test_polygons_read_carries_layer_options(tmp_path: Path) -> None:
    frame = town()
    frame.loc[len(frame)] = ["volcano", "lava", box(X0 + 2, Y0 + 2, X0 + 8, Y0 + 8)]
    layer = write_gpkg(frame, tmp_path / "t.gpkg")
    strict = Polygons.read(layer, options=LayerOptions("cls", taxonomy="dubai_aerial"))
    with pytest.raises(LayoutError, match="unknown-class"):
        strict.layout(GRID)
    lenient = LayerOptions("cls", taxonomy="dubai_aerial", unknown_class="background")
    layout = Polygons.read(layer, options=lenient).layout(GRID)
    assert layout.report.unknown_classes == {"volcano": 1}
    with pytest.raises(LayoutError, match="--unknown-class 'maybe'"):
        LayerOptions("cls", unknown_class="maybe")
