"""Every file option of the scenarios reads through one vector reader or one raster opener:
missing, empty, random-byte, wrong-kind and CRS-less files give a one-line typed error naming
the option (as ``layout`` does for its layer), never a GDAL/pyogrio traceback, and nothing is
written."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

pytest.importorskip("torch")

from inputs_kit import (
    GEN,
    X0,
    Y0,
    N,
    assert_one_line_error,
    bad_file,
    dem,
    files_under,
    photo,
    run_cli,
    town,
    write_gpkg,
    write_tif,
    zones,
)

from rs_seg2any.errors import InputError, LayoutError
from rs_seg2any.inputs import raster_grid, read_vector


def _good(tmp: Path) -> dict[str, Path]:
    return {
        "layout": write_gpkg(town(), tmp / "town.gpkg"),
        "photo": photo(tmp / "photo.tif"),
        "dem": dem(tmp / "dem.tif"),
        "zones": zones(tmp / "zones.gpkg"),
        "after": write_gpkg(_after(), tmp / "after.gpkg"),
    }


def _after() -> gpd.GeoDataFrame:
    """The town with one new building."""
    after = town()
    after.loc[len(after)] = ["building", "a new roof", box(X0 + 16, Y0 + 44, X0 + 28, Y0 + 56)]
    return after


LAYOUT = ["--class-field", "cls", "--taxonomy", "dubai_aerial"]
EXPECTS = {
    "--layout": "vector",
    "--after": "vector",
    "--after-like": "raster",
    "--zones": "vector",
    "--clouds": "raster",
    "--image": "raster",
    "--dem": "raster",
    "--flood-polygons": "vector",
}


def _argv(option: str, g: dict[str, Path], x: Path) -> list[object]:
    """A command that is valid except for ``option``'s value ``x``."""
    change = ["change", "--layout", g["layout"], *LAYOUT, "--resolution", 1]
    seed = f"{X0 + 5.5},{Y0 + 30.5}"
    return {
        "--layout": ["seasons", "--layout", x, *LAYOUT, "--resolution", 1, "--seasons", "summer"],
        "--after": [*change, "--after", x],
        "--after-like": [*change, "--after", g["after"], "--after-like", x],
        "--zones": ["plan", "--image", g["photo"], "--zones", x, "--zone-description-field",
                    "desc"],
        "--clouds": ["cloudfill", "--image", g["photo"], "--clouds", x, "--layout", g["layout"],
                     *LAYOUT],
        "--image": ["cloudfill", "--image", x, "--clouds", g["zones"], "--layout", g["layout"],
                    *LAYOUT],
        "--dem": ["flood", "--image", g["photo"], "--dem", x, "--level", 3, "--seed-xy", seed],
        "--flood-polygons": ["flood", "--image", g["photo"], "--flood-polygons", x],
    }[option]  # fmt: skip


KINDS = ["missing", "empty", "random", "wrong_kind", "no_crs"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("option", list(EXPECTS))
def test_bad_file_gives_typed_error_naming_option(
    option: str, kind: str, tmp_path: Path, tiny_random_weights: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    expect = EXPECTS[option]
    good = _good(tmp_path)
    suffix = ".gpkg" if expect == "vector" else ".tif"
    bad = bad_file(kind, tmp_path / f"bad{suffix}", tmp_path, expect)
    out = tmp_path / "out"
    argv = [*_argv(option, good, bad), "--out", out, "--model", tiny_random_weights, *GEN]
    code, err = run_cli(argv, capsys)
    if option == "--clouds" and kind == "wrong_kind":  # polygons are a valid cloud mask too
        assert code == 0, err
        return
    named = {"wrong_kind": "is a raster" if expect == "vector" else "is a vector layer",
             "no_crs": "no CRS", "missing": "not found", "empty": "empty"}  # fmt: skip
    assert_one_line_error(code, err, option, named.get(kind, ""))
    assert files_under(out) == []


@pytest.mark.parametrize("option", list(EXPECTS))
def test_the_same_command_with_a_good_file_runs(
    option: str, tmp_path: Path, tiny_random_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each base command of the table is valid: every failure above is the bad file's doing."""
    good = _good(tmp_path)
    value = {
        "--layout": good["layout"],
        "--after": good["after"],
        "--after-like": good["photo"],
        "--zones": good["zones"],
        "--clouds": write_tif(tmp_path / "clouds.tif", _cloud_mask()),
        "--image": good["photo"],
        "--dem": good["dem"],
        "--flood-polygons": good["zones"],
    }[option]
    out = tmp_path / "out"
    code, err = run_cli([*_argv(option, good, value), "--out", out, "--model",
                         tiny_random_weights, *GEN], capsys)  # fmt: skip
    assert code == 0, err
    assert any(p.name == "image.tif" for p in files_under(out))


def _cloud_mask() -> np.ndarray:
    mask = np.zeros((1, N, N), dtype=np.uint8)
    mask[0, 10:30, 20:40] = 1
    return mask


def test_layer_crs_rescues_a_vector_without_crs(tmp_path: Path) -> None:
    path = zones(tmp_path / "z.gpkg", crs=None)
    with pytest.raises(LayoutError, match=r"--zones: .*has no CRS"):
        read_vector(path, "--zones")
    frame = read_vector(path, "--zones", layer_crs="EPSG:32640")
    assert frame.crs.to_epsg() == 32640


def test_python_api_readers_name_the_option(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match=r"^--dem: "):
        raster_grid(junk, "--dem")
    with pytest.raises(InputError, match=r"^--zones: "):
        read_vector(junk, "--zones")
