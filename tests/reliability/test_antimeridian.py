"""Layers in degrees across the antimeridian: unwrapped into one range, nothing lost.

Two 1 km squares on either side of +-180 used to give a 3-pixel-wide grid, and a polygon
reaching 180.005 an all-zero label while entities.csv still listed it. Every case here checks
the real GeoTIFFs: the grid covers exactly the data and every entity of entities.csv has
pixels in instance.tif (or is counted as without pixels in layout.json).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.features
import shapely
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rasterio.transform import from_origin

from rs_seg2any.cli import main
from rs_seg2any.errors import GridError
from rs_seg2any.layout import load_layout
from rs_seg2any.raster import rasterize_layout

D = 0.009  # about 1 km of longitude at 17 S
LAT = -17.0

CASES: dict[str, list[shapely.Polygon]] = {
    # two pieces, one each side of the antimeridian (the Fiji case)
    "both_sides": [
        shapely.box(180 - D, LAT, 180, LAT + D),
        shapely.box(-180, LAT, -180 + D, LAT + D),
    ],
    # one polygon whose coordinates run past 180
    "past_180": [shapely.box(180 - D / 2, LAT, 180 + D / 2, LAT + D)],
    # the same written with coordinates before -180
    "before_-180": [shapely.box(-180 - D / 2, LAT, -180 + D / 2, LAT + D)],
    # a mix: a piece past 180 plus a piece stored on the western side
    "mixed": [
        shapely.box(180 - D, LAT, 180 + D / 3, LAT + D),
        shapely.box(-179.99, LAT, -179.99 + D, LAT + D),
    ],
}

EXPECTED_WIDTH_M = {"both_sides": 2 * D, "past_180": D, "before_-180": D, "mixed": 0.01 + 2 * D}


def frame(case: str) -> gpd.GeoDataFrame:
    geoms = CASES[case]
    classes = ["water", "tree cover", "grassland", "cropland"][: len(geoms)]
    return gpd.GeoDataFrame({"cls": classes}, geometry=geoms, crs="EPSG:4326")


def write(case: str, folder: Path, suffix: str = ".gpkg") -> Path:
    path = folder / f"{case}{suffix}"
    f = frame(case)
    if suffix == ".parquet":
        f.to_parquet(path)
    else:
        f.to_file(path, engine="pyogrio")
    return path


def run(cmd: str, layer: Path, out: Path, *extra: str) -> int:
    return main(
        [cmd, str(layer), "--class-field", "cls", "--out", str(out), "--progress", "none", *extra]
    )


def entity_ids(out: Path) -> list[int]:
    with (out / "entities.csv").open(encoding="utf-8") as fh:
        return [int(row["instance_id"]) for row in csv.DictReader(fh)]


def assert_every_entity_drawn(out: Path, crosses: bool = True) -> np.ndarray:
    with rasterio.open(out / "instance.tif") as src:
        inst = src.read(1)
    with rasterio.open(out / "label.tif") as src:
        label = src.read(1)
    ids = entity_ids(out)
    assert ids, "entities.csv is empty"
    for iid in ids:
        assert (inst == iid).sum() > 50, f"entity {iid} has no pixels: {np.unique(inst)}"
    report = json.loads((out / "layout.json").read_text())["report"]
    assert report["entities_without_pixels"]["total"] == 0
    assert report["crosses_antimeridian"] is crosses
    assert (label > 0).sum() == (inst > 0).sum()
    return inst


def wrap(lon: float) -> float:
    return ((lon + 180) % 360) - 180


@pytest.mark.parametrize("case", sorted(CASES))
def test_layout_job_covers_exactly_the_data(case: str, tmp_path: Path) -> None:
    layer = write(case, tmp_path)
    out = tmp_path / "out"
    assert run("layout", layer, out, "--resolution", "10") == 0
    with rasterio.open(out / "label.tif") as src:
        width_m = src.width * src.transform.a
        epsg = src.crs.to_epsg()
    # zone 60 S or 1 S (their border is 180), never a zone picked from a world-wide box
    assert epsg in (32760, 32701), epsg
    metres = EXPECTED_WIDTH_M[case] * 111_320 * np.cos(np.radians(LAT))
    assert abs(width_m - metres) < 40, (width_m, metres)  # at most a snapped pixel each side
    assert_every_entity_drawn(out)


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".parquet"])
def test_python_api_from_files_and_frames(suffix: str, tmp_path: Path) -> None:
    layer = write("both_sides", tmp_path, suffix)
    for source in (layer, frame("both_sides")):
        layout = load_layout(source, "cls", resolution=10)
        assert layout.report.crosses_antimeridian
        assert layout.report.entities_without_pixels == 0
        left, _, right, _ = layout.layer_bounds.bbox
        assert left == pytest.approx(180 - D) and right == pytest.approx(180 + D)
        maps = rasterize_layout(layout)
        ids, counts = np.unique(maps.instance.values, return_counts=True)
        assert set(ids.tolist()) == {0, 1, 2} and counts[1:].min() > 8000
        # every tile reads its polygons, whatever side they are stored on
        feats = layout.features(layout.grid[:, : layout.grid.shape[1] // 2].boundingbox)
        assert set(feats["instance_id"]) == {1, 2}


def test_generate_job_renders_both_sides(tiny_random_weights: Path, tmp_path: Path) -> None:
    layer = write("both_sides", tmp_path)
    out = tmp_path / "gen"
    code = run(
        "generate",
        layer,
        out,
        "--resolution",
        "20",
        "--model",
        str(tiny_random_weights),
        "--steps",
        "1",
        "--tile-size",
        "64",
        "--overlap",
        "16",
    )
    assert code == 0
    inst = assert_every_entity_drawn(out)
    with rasterio.open(out / "image.tif") as img, rasterio.open(out / "label.tif") as lab:
        assert (img.crs, img.transform, img.shape) == (lab.crs, lab.transform, lab.shape)
        assert img.shape == inst.shape and img.width > 90


def test_geographic_grid_runs_past_180(tmp_path: Path) -> None:
    """--crs EPSG:4326 --keep-geographic: one continuous raster whose x runs past 180."""
    layer = write("both_sides", tmp_path)
    out = tmp_path / "geo"
    assert (
        run(
            "layout",
            layer,
            out,
            "--crs",
            "EPSG:4326",
            "--keep-geographic",
            "--resolution",
            "0.0001",
        )
        == 0
    )
    with rasterio.open(out / "label.tif") as src:
        assert src.crs.to_epsg() == 4326
        assert src.bounds.left == pytest.approx(180 - D, abs=2e-4)
        assert src.bounds.right == pytest.approx(180 + D, abs=2e-4)
        assert src.width == pytest.approx(2 * D / 0.0001, abs=2)
    assert_every_entity_drawn(out)


@pytest.mark.parametrize("west", [180 - 2 * D, -180 - 2 * D])
def test_like_raster_in_degrees_on_either_side(west: float, tmp_path: Path) -> None:
    """A --like raster across the antimeridian, written with x past 180 or before -180."""
    like = tmp_path / "like.tif"
    res = 0.0002
    n = round(4 * D / res)
    with rasterio.open(
        like,
        "w",
        driver="GTiff",
        width=n,
        height=n // 2,
        count=1,
        dtype="uint8",
        crs="EPSG:4326",
        transform=from_origin(west, LAT + 2 * D, res, res),
    ) as dst:
        dst.write(np.zeros((1, n // 2, n), np.uint8))
    out = tmp_path / "out"
    assert run("layout", write("both_sides", tmp_path), out, "--like", str(like)) == 0
    assert_every_entity_drawn(out)


def test_extent_across_the_antimeridian_in_degrees(tmp_path: Path) -> None:
    """xmin > xmax in degrees means across +-180 (GeoJSON bbox convention)."""
    out = tmp_path / "ext"
    extent = f"{180 - 2 * D},{LAT - D},{-180 + 2 * D},{LAT + 2 * D}"
    assert (
        run(
            "layout", write("both_sides", tmp_path), out, "--resolution", "10", f"--extent={extent}"
        )
        == 0
    )
    with rasterio.open(out / "label.tif") as src:
        # the lon/lat box's bounding box in UTM: its width plus a little grid convergence
        metres = 4 * D * 111_320 * np.cos(np.radians(LAT))
        assert src.width * 10 == pytest.approx(metres, rel=0.03)
    assert_every_entity_drawn(out)


def test_utm_zone_comes_from_the_unwrapped_centre() -> None:
    east = gpd.GeoDataFrame(
        {"cls": ["water"]}, geometry=[shapely.box(178.2, LAT, 179.9, LAT + D)], crs="EPSG:4326"
    )
    west = gpd.GeoDataFrame(
        {"cls": ["water"]}, geometry=[shapely.box(-179.9, LAT, -178.2, LAT + D)], crs="EPSG:4326"
    )
    assert load_layout(east, "cls", resolution=100).grid.crs.epsg == 32760
    assert load_layout(west, "cls", resolution=100).grid.crs.epsg == 32701
    both = gpd.GeoDataFrame(pd_concat(east, west), crs="EPSG:4326")
    layout = load_layout(both, "cls", resolution=100)
    assert layout.grid.crs.epsg in (32760, 32701)
    # 3.4 degrees wide, not 358
    assert layout.grid.shape[1] * 100 < 400_000
    assert layout.report.entities_without_pixels == 0


def pd_concat(*frames: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    import pandas as pd

    return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry")


def test_layer_within_180_is_not_shifted() -> None:
    """An ordinary layer keeps its coordinates: unwrapping only applies across +-180."""
    f = gpd.GeoDataFrame(
        {"cls": ["water", "water"]},
        geometry=[shapely.box(14.50, 46.0, 14.51, 46.01), shapely.box(14.52, 46.0, 14.53, 46.01)],
        crs="EPSG:4326",
    )
    layout = load_layout(f, "cls", resolution=10)
    assert layout.lon_west is None and not layout.report.crosses_antimeridian
    assert layout.grid.crs.epsg == 32633


def test_entities_without_pixels_are_counted_and_warned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Class-wide: an entity listed in entities.csv but with no pixel never vanishes silently."""
    f = gpd.GeoDataFrame(
        {"cls": ["water", "water", "grassland"]},
        geometry=[
            shapely.box(500_000, 5_000_000, 500_100, 5_000_100),
            shapely.box(500_040, 5_000_040, 500_040.3, 5_000_040.3),  # 0.3 m: below a pixel
            shapely.box(510_000, 5_000_000, 510_100, 5_000_100),  # outside the extent
        ],
        crs="EPSG:32633",
    )
    layer = tmp_path / "l.gpkg"
    f.to_file(layer, engine="pyogrio")
    out = tmp_path / "out"
    code = main(
        [
            "layout",
            str(layer),
            "--class-field",
            "cls",
            "--resolution",
            "10",
            "--extent",
            "500000,5000000,500100,5000100",
            "--out",
            str(out),
            "--progress",
            "json",
        ]
    )
    assert code == 0
    events = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    warns = [e["message"] for e in events if e.get("level") == "warning"]
    assert any("1 of 3 entities lie outside the grid" in w for w in warns), warns
    assert any("1 of 3 entities are smaller or thinner than a pixel" in w for w in warns), warns
    report = json.loads((out / "layout.json").read_text())["report"]
    assert report["entities_without_pixels"] == {
        "total": 2,
        "outside_grid": 1,
        "smaller_than_a_pixel": 1,
    }
    assert len(report["warnings"]) == 2
    with rasterio.open(out / "instance.tif") as src:
        drawn = set(np.unique(src.read(1)).tolist()) - {0}
    assert len(entity_ids(out)) - len(drawn) == report["entities_without_pixels"]["total"]


def test_extent_latitude_beyond_90_is_a_grid_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bad"
    code = run(
        "layout",
        write("both_sides", tmp_path),
        out,
        "--resolution",
        "10",
        "--extent",
        "179,-100,181,-16",
    )
    assert code == GridError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--extent-crs" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_projected_crs_cut_at_the_antimeridian_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Web Mercator is cut at +-180: the two halves would land at opposite ends of the world."""
    layer = write("both_sides", tmp_path)
    out = tmp_path / "merc"
    code = run("layout", layer, out, "--resolution", "10", "--crs", "EPSG:3857")
    assert code == GridError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "antimeridian" in err and "EPSG:3857" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
    # a CRS centred on the Pacific works
    assert (
        run("layout", layer, tmp_path / "pacific", "--resolution", "10", "--crs", "EPSG:3832") == 0
    )
    assert_every_entity_drawn(tmp_path / "pacific")


@pytest.mark.parametrize("east", [179.99999, -179.99999])
def test_layer_ending_at_180_loses_nothing_in_one_tile(east: float, tmp_path: Path) -> None:
    """A layer that stays on one side, but whose grid window reaches past 180: the window
    used to wrap into a box round the world that missed the polygon (all-zero label)."""
    west = 179.99 if east > 0 else -179.99
    poly = shapely.box(min(west, east), LAT, max(west, east), LAT + 0.01)
    f = gpd.GeoDataFrame({"cls": ["water"]}, geometry=[poly], crs="EPSG:4326")
    layer = tmp_path / "edge.gpkg"
    f.to_file(layer, engine="pyogrio")
    out = tmp_path / "out"
    assert run("layout", layer, out, "--resolution", "10") == 0  # one 2048-px tile
    inst = assert_every_entity_drawn(out, crosses=False)
    with rasterio.open(out / "label.tif") as src:
        projected = f.to_crs(src.crs.to_wkt()).geometry.values[0]
        expected = rasterio.features.rasterize(
            [(projected, 1)], out_shape=src.shape, transform=src.transform, dtype="uint8"
        )
    assert int((inst > 0).sum()) == int(expected.sum()) > 10_000


@settings(max_examples=25, deadline=None)
@given(
    centre=st.floats(-180, 180),
    lat=st.floats(-60, 60),
    offsets=st.lists(
        st.tuples(st.floats(-1.5, 1.4), st.floats(0.05, 0.1), st.integers(-1, 1)),
        min_size=1,
        max_size=5,
    ),
)
@example(centre=179.0, lat=0.0, offsets=[(1.0, 0.0625, 1)])  # a part at 540: two turns out
def test_any_representation_of_a_region_is_one_range(
    centre: float, lat: float, offsets: list[tuple[float, float, int]]
) -> None:
    """Property: parts of a region within 3 degrees of any meridian, each written at its
    own turn (x, x - 360 or x + 360), give the region's true width, a UTM zone next to its
    centre, and every part drawn."""
    geoms, wests, easts = [], [], []
    for row, (dx, width, turn) in enumerate(offsets):
        west = centre + dx  # the true longitude, maybe past 180
        south = lat + 0.15 * row  # one row per part: no part hides another
        geoms.append(shapely.box(west + 360 * turn, south, west + width + 360 * turn, south + 0.1))
        wests.append(west)
        easts.append(west + width)
    f = gpd.GeoDataFrame({"cls": ["water"] * len(geoms)}, geometry=geoms, crs="EPSG:4326")
    layout = load_layout(f, "cls", resolution=1000)
    left, _, right, _ = layout.layer_bounds.bbox
    assert right - left == pytest.approx(max(easts) - min(wests), abs=1e-9)
    zone = int(np.floor((wrap((left + right) / 2) + 180) / 6)) % 60 + 1
    assert (layout.grid.crs.epsg % 100 - zone) % 60 in (0, 1, 59)
    assert layout.report.entities_without_pixels == 0
    ids = set(np.unique(rasterize_layout(layout).instance.values).tolist()) - {0}
    assert ids == set(range(1, len(geoms) + 1))
