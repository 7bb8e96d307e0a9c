"""``change``: roles resolve through the taxonomy (class names work on a numeric class field,
ids work on a text one), and ``--pairs N`` never writes N identical pairs."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from inputs_kit import CRS, GEN, X0, Y0, N, assert_one_line_error, files_under, run_cli, town
from shapely.geometry import box

pytest.importorskip("torch")

from rs_seg2any.errors import ScenarioError


def _coded_town(path: Path) -> Path:
    """The town with WorldCover codes in an integer field: 80 water, 60 bare, 50 built-up."""
    frame = town().drop(columns=["cls"])
    frame["code"] = np.array([80, 60, 50, 50, 50], dtype=np.int64)
    frame.to_file(path, driver="GPKG", engine="pyogrio")
    return path


def _labels(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


ROLES = {
    "names": ["--roles", "built-up,bare / sparse vegetation,built-up"],
    "ids": ["--roles", "50,60,50"],
    "preset": [],
}


@pytest.mark.parametrize("roles", list(ROLES))
def test_roles_resolve_on_a_numeric_class_field(
    roles: str, tmp_path: Path, tiny_random_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layer = _coded_town(tmp_path / "coded.gpkg")
    out = tmp_path / "out"
    code, err = run_cli(["change", "--layout", layer, "--class-field", "code", "--taxonomy",
                         "worldcover", "--resolution", 1, "--recipe", "new_buildings",
                         "--param", "count=2", *ROLES[roles], "--out", out, "--model",
                         tiny_random_weights, *GEN], capsys)  # fmt: skip
    assert code == 0, err
    t1, t2 = _labels(out / "t1" / "label.tif"), _labels(out / "t2" / "label.tif")
    changed = _labels(out / "change_mask.tif").astype(bool)
    assert changed.any() and np.array_equal(changed, t1 != t2)
    assert set(np.unique(t1[changed]).tolist()) == {60}  # only bare land was taken
    assert set(np.unique(t2[changed]).tolist()) == {50}  # by new built-up


def test_roles_text_ids_on_a_text_class_field(
    tmp_path: Path, tiny_random_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layer = tmp_path / "t.gpkg"
    town().to_file(layer, driver="GPKG", engine="pyogrio")
    out = tmp_path / "out"
    code, err = run_cli(["change", "--layout", layer, "--class-field", "cls", "--taxonomy",
                         "dubai_aerial", "--resolution", 1, "--recipe", "demolition",
                         "--param", "fraction=1.0", "--roles", "1,2,3", "--out", out,
                         "--model", tiny_random_weights, *GEN], capsys)  # fmt: skip
    assert code == 0, err
    t2 = _labels(out / "t2" / "label.tif")
    assert 1 not in t2  # every building (id 1) demolished


def test_role_not_in_taxonomy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layer = _coded_town(tmp_path / "coded.gpkg")
    out = tmp_path / "out"
    code, err = run_cli(["change", "--layout", layer, "--class-field", "code", "--taxonomy",
                         "worldcover", "--resolution", 1, "--recipe", "new_buildings",
                         "--roles", "built-up,sand,built-up", "--out", out,
                         "--progress", "none"], capsys)  # fmt: skip
    assert_one_line_error(code, err, "'sand'", "worldcover")
    assert code == ScenarioError.exit_code
    assert files_under(out) == []


@pytest.mark.parametrize(
    ("recipe", "params"),
    [("urban_growth", ["--param", "percent=30"]),
     ("demolition", ["--param", "fraction=1.0"]),
     ("road_construction", ["--param", "line=null"])],
)  # fmt: skip
def test_pairs_of_a_deterministic_recipe_are_refused_before_rendering(
    recipe: str, params: list[str], tmp_path: Path, tiny_random_weights: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    layer = tmp_path / "t.gpkg"
    town().to_file(layer, driver="GPKG", engine="pyogrio")
    out = tmp_path / "out"
    argv = ["change", "--layout", layer, "--class-field", "cls", "--taxonomy", "dubai_aerial",
            "--resolution", 1, "--recipe", recipe, *params, "--out", out, "--model",
            tiny_random_weights, *GEN]  # fmt: skip
    code, err = run_cli([*argv, "--pairs", 3], capsys)
    if recipe == "road_construction":  # a random line: pairs differ, so they run
        assert code == 0, err
        masks = [_labels(out / f"pair_{i:03d}" / "change_mask.tif") for i in range(3)]
        assert not np.array_equal(masks[0], masks[1])
        return
    assert_one_line_error(code, err, "--pairs 3", "identical to pair 0")
    assert files_under(out) == []  # refused before the T1 render
    code, err = run_cli([*argv, "--pairs", 1], capsys)
    assert code == 0, err


def test_pairs_with_a_fixed_after_layout_are_refused(
    tmp_path: Path, tiny_random_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tmp_path / "t.gpkg"
    town().to_file(before, driver="GPKG", engine="pyogrio")
    after_frame = town()
    after_frame.loc[len(after_frame)] = ["building", "new", box(X0 + 16, Y0 + 44, X0 + 28,
                                                                Y0 + N - 4)]  # fmt: skip
    after = tmp_path / "a.gpkg"
    gpd.GeoDataFrame(after_frame, crs=CRS).to_file(after, driver="GPKG", engine="pyogrio")
    out = tmp_path / "out"
    code, err = run_cli(["change", "--layout", before, "--after", after, "--class-field", "cls",
                         "--taxonomy", "dubai_aerial", "--resolution", 1, "--pairs", 2,
                         "--out", out, "--model", tiny_random_weights, *GEN], capsys)  # fmt: skip
    assert_one_line_error(code, err, "--pairs 2", "identical")
    assert files_under(out) == []
