"""Grid CRS options: --extent in another CRS (--extent-crs), --like rasters in degrees
(warned, or --like-utm), and the typed one-line errors of the grid options."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from odc.geo import BoundingBox
from rasterio.transform import from_origin

from rs_seg2any.cli import main
from rs_seg2any.errors import GridError, LayoutError
from rs_seg2any.layout import load_layout

# Two fields near Ljubljana (UTM 33N), in lon/lat
LON, LAT = 14.50, 46.05
POLYS = [
    shapely.box(LON, LAT, LON + 0.01, LAT + 0.01),
    shapely.box(LON + 0.02, LAT, LON + 0.03, LAT + 0.01),
]


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    path = tmp_path / "fields.gpkg"
    gpd.GeoDataFrame({"cls": ["cropland", "grassland"]}, geometry=POLYS, crs="EPSG:4326").to_file(
        path, engine="pyogrio"
    )
    return path


def layout_cmd(layer: Path, out: Path, *extra: str, progress: str = "none") -> int:
    return main(
        [
            "layout",
            str(layer),
            "--class-field",
            "cls",
            "--out",
            str(out),
            "--progress",
            progress,
            *extra,
        ]
    )


def one_line_error(err: str, code: int, expected: type[Exception], *words: str) -> None:
    assert code == expected.exit_code  # type: ignore[attr-defined]
    lines = [x for x in err.splitlines() if not x.startswith("{")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], lines[0]


def nothing_written(out: Path) -> bool:
    return not out.exists() or not any(out.rglob("*.*"))


def test_extent_in_degrees_on_the_auto_utm_grid(layer: Path, tmp_path: Path) -> None:
    """Default --extent-crs is the layer's CRS: degrees work on the auto-picked UTM grid."""
    out = tmp_path / "out"
    extent = f"{LON},{LAT},{LON + 0.01},{LAT + 0.01}"  # the first field only
    assert layout_cmd(layer, out, "--resolution", "10", "--extent", extent) == 0
    with rasterio.open(out / "label.tif") as src:
        assert src.crs.to_epsg() == 32633
        assert 70 <= src.width <= 82 and 108 <= src.height <= 115  # 0.01 deg x 0.01 deg
        label = src.read(1)
    assert set(np.unique(label).tolist()) <= {0, 40}  # cropland only
    report = json.loads((out / "layout.json").read_text())["report"]
    assert report["entities_without_pixels"]["outside_grid"] == 1  # the grassland: said so


def test_extent_crs_names_the_extent_crs(layer: Path, tmp_path: Path) -> None:
    """--crs picks the grid, --extent-crs says what the extent numbers are in."""
    out = tmp_path / "out"
    extent = f"{LON},{LAT},{LON + 0.03},{LAT + 0.01}"
    assert (
        layout_cmd(
            layer,
            out,
            "--resolution",
            "10",
            "--crs",
            "EPSG:3035",
            "--extent",
            extent,
            "--extent-crs",
            "EPSG:4326",
        )
        == 0
    )
    with rasterio.open(out / "label.tif") as src:
        assert src.crs.to_epsg() == 3035
        assert set(np.unique(src.read(1)).tolist()) == {0, 30, 40}


def test_extent_with_crs_and_no_extent_crs_is_in_that_crs(layer: Path, tmp_path: Path) -> None:
    """Unchanged behaviour: with --crs and no --extent-crs the extent is in --crs."""
    grid_bounds = BoundingBox(LON, LAT, LON + 0.03, LAT + 0.01, crs="EPSG:4326").to_crs(
        "EPSG:32633"
    )
    extent = ",".join(str(round(v)) for v in grid_bounds.bbox)
    out = tmp_path / "out"
    assert (
        layout_cmd(layer, out, "--resolution", "10", "--crs", "EPSG:32633", "--extent", extent) == 0
    )
    with rasterio.open(out / "label.tif") as src:
        assert src.crs.to_epsg() == 32633 and src.width > 200


def test_python_api_extent_crs(layer: Path) -> None:
    extent = (LON, LAT, LON + 0.03, LAT + 0.01)
    a = load_layout(layer, "cls", resolution=10, extent=extent)
    b = load_layout(layer, "cls", resolution=10, extent=extent, extent_crs="EPSG:4326")
    c = load_layout(layer, "cls", resolution=10, extent=BoundingBox(*extent, crs="EPSG:4326"))
    assert a.grid == b.grid == c.grid and a.grid.crs.epsg == 32633
    assert a.report.entities_without_pixels == 0


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (("--extent", "1,2,3"), ["--extent", "four numbers"]),
        (
            ("--extent", f"{LON},{LAT},{LON + 0.01},{LAT + 0.01}", "--extent-crs", "EPSG:nope"),
            ["CRS", "EPSG:nope"],
        ),
        (("--extent", "500000,5000000,510000,5010000"), ["latitudes beyond", "--extent-crs"]),
        (("--like-utm",), ["--like-utm", "--like"]),
    ],
)
def test_bad_grid_options_are_one_line_grid_errors(
    layer: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    words: list[str],
) -> None:
    out = tmp_path / "out"
    code = layout_cmd(layer, out, "--resolution", "10", *extra, progress="json")
    err = capsys.readouterr().err
    one_line_error(err, code, GridError, *words)
    events = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    assert events[-1]["event"] == "error" and events[-1]["type"] == "GridError"
    assert nothing_written(out)


def test_extent_off_the_layer_says_which_crs_it_was_read_in(
    layer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = layout_cmd(layer, out, "--resolution", "10", "--extent", "10,40,10.1,40.1")
    one_line_error(capsys.readouterr().err, code, LayoutError, "outside", "--extent-crs")
    assert nothing_written(out)


def degree_raster(path: Path, res: float = 0.0001) -> Path:
    width, height = round(0.03 / res), round(0.01 / res)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=1,
        dtype="uint8",
        crs="EPSG:4326",
        transform=from_origin(LON, LAT + 0.01, res, res),
    ) as dst:
        dst.write(np.zeros((1, height, width), np.uint8))
    return path


def test_like_raster_in_degrees_is_warned_in_json_and_bar(
    layer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    like = degree_raster(tmp_path / "like.tif")
    out = tmp_path / "json"
    assert layout_cmd(layer, out, "--like", str(like), progress="json") == 0
    events = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    warns = [e for e in events if e["event"] == "message" and e.get("level") == "warning"]
    assert len(warns) == 1, events
    text = warns[0]["message"]
    assert "in degrees" in text and "not square" in text and "--like-utm" in text
    assert "7.74 x 11.1 m" in text  # 0.0001 deg at 46 N
    report = json.loads((out / "layout.json").read_text())["report"]
    assert report["warnings"] == [text.removeprefix("warning: ")]
    with rasterio.open(out / "label.tif") as src:
        assert src.crs.to_epsg() == 4326  # still the raster's grid: warned, not changed

    assert layout_cmd(layer, tmp_path / "bar", "--like", str(like), progress="bar") == 0
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("warning: ")]
    assert len(lines) == 1 and "--like-utm" in lines[0]


def test_like_utm_renders_square_metre_pixels(layer: Path, tmp_path: Path) -> None:
    like = degree_raster(tmp_path / "like.tif")
    out = tmp_path / "utm"
    assert layout_cmd(layer, out, "--like", str(like), "--like-utm") == 0
    with rasterio.open(out / "label.tif") as src:
        assert src.crs.to_epsg() == 32633
        assert src.transform.a == -src.transform.e == pytest.approx(9.27)  # sqrt(7.74 * 11.1)
        assert set(np.unique(src.read(1)).tolist()) == {0, 30, 40}
    report = json.loads((out / "layout.json").read_text())["report"]
    assert report["warnings"] == []

    api = load_layout(layer, "cls", like=like, like_utm=True)
    assert api.grid.crs.epsg == 32633 and api.grid.resolution.x == pytest.approx(9.27)
    fine = load_layout(layer, "cls", like=like, like_utm=True, resolution=5)
    assert fine.grid.resolution.x == 5
    # a projected raster is already metric: --like-utm keeps its grid
    projected = load_layout(layer, "cls", like=out / "label.tif", like_utm=True)
    assert projected.grid == api.grid


def test_like_and_extent_together_are_refused(
    layer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    like = degree_raster(tmp_path / "like.tif")
    out = tmp_path / "out"
    code = layout_cmd(layer, out, "--like", str(like), "--extent", f"{LON},{LAT},{LON},{LAT}")
    one_line_error(capsys.readouterr().err, code, GridError, "--extent", "--like")
    assert nothing_written(out)
