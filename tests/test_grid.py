"""Target grids: resolutions, pixel budget, CRS choice, snapping and grids copied from rasters."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from odc.geo import CRS, BoundingBox
from shapely.geometry import box

from rs_seg2any.errors import GridError, InputError
from rs_seg2any.grid import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_ENV,
    check_budget,
    choose_crs,
    grid_from_bounds,
    grid_like,
    parse_crs,
    parse_resolution,
    pixel_budget,
)
from rs_seg2any.layout import load_layout

UTM33 = "EPSG:32633"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10", (10.0, 10.0)),
        ("10,5", (10.0, 5.0)),
        ("10 5", (10.0, 5.0)),
        ("0.5", (0.5, 0.5)),
        (10, (10.0, 10.0)),
        (2.5, (2.5, 2.5)),
        ((3, 4), (3.0, 4.0)),
    ],
)
def test_parse_resolution_accepts_one_or_two_numbers(
    value: float | str | tuple[float, float], expected: tuple[float, float]
) -> None:
    assert parse_resolution(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "must be > 0"),
        (-1, "must be > 0"),
        ("0,5", "must be > 0"),
        ("abc", "is not a number"),
        ("nan", "finite"),
        ("1,2,3", "one or two"),
        ("", "one or two"),
    ],
)
def test_parse_resolution_rejects_bad_values(value: float | str, message: str) -> None:
    with pytest.raises(GridError, match=message):
        parse_resolution(value)


def test_parse_crs_normalises_codes_and_rejects_nonsense() -> None:
    assert parse_crs(32633) == CRS(UTM33)
    assert parse_crs("epsg:32633") == CRS(UTM33)
    with pytest.raises(GridError, match=r"not understood; use e.g. 'EPSG:32633'"):
        parse_crs("EPSG:nope")


def test_pixel_budget_argument_env_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    assert pixel_budget() == DEFAULT_MAX_PIXELS
    monkeypatch.setenv(MAX_PIXELS_ENV, "1e6")
    assert pixel_budget() == 1_000_000
    assert pixel_budget(500) == 500  # the argument wins over the environment
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(GridError, match=f"{MAX_PIXELS_ENV}='lots' is not a number"):
        pixel_budget()


def test_grid_above_budget_names_size_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    bounds = BoundingBox(0, 0, 100_000, 100_000, crs=UTM33)
    with pytest.raises(GridError) as err:
        grid_from_bounds(bounds, 1, max_pixels=1_000_000)  # a metre where 100 m was meant
    text = str(err.value)
    assert "--max-pixels" in text
    assert MAX_PIXELS_ENV in text
    assert "1,000,000" in text
    assert "--resolution" in text
    # the same extent at a sane resolution fits
    assert grid_from_bounds(bounds, 100, max_pixels=1_000_000).shape == (1000, 1000)


def test_budget_from_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    bounds = BoundingBox(0, 0, 1000, 1000, crs=UTM33)  # 100 x 100 pixels at 10 m
    monkeypatch.setenv(MAX_PIXELS_ENV, "9999")
    with pytest.raises(GridError, match="above the budget of 9,999"):
        grid_from_bounds(bounds, 10)
    # exactly the grid's size is allowed (no off-by-one refusal)
    monkeypatch.setenv(MAX_PIXELS_ENV, "10000")
    assert grid_from_bounds(bounds, 10).shape == (100, 100)


def test_budget_counts_the_snapped_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    # 100 m wide but off the 10 m lattice: the snapped grid needs 11 x 11 pixels
    bounds = BoundingBox(5, 5, 105, 105, crs=UTM33)
    assert grid_from_bounds(bounds, 10).shape == (11, 11)
    with pytest.raises(GridError, match="11 x 11 = 121 pixels"):
        grid_from_bounds(bounds, 10, max_pixels=120)
    assert grid_from_bounds(bounds, 10, snap=False, max_pixels=100).shape == (10, 10)


def test_check_budget_refuses_empty_grids() -> None:
    grid = grid_from_bounds(BoundingBox(0, 0, 100, 100, crs=UTM33), 10)
    with pytest.raises(GridError, match="empty"):
        check_budget(grid[0:0, :])


def test_empty_extent_and_missing_crs() -> None:
    with pytest.raises(GridError, match="is empty"):
        grid_from_bounds(BoundingBox(10, 0, 10, 100, crs=UTM33), 1)
    with pytest.raises(GridError, match="has no CRS"):
        grid_from_bounds(BoundingBox(0, 0, 100, 100), 1)


def test_degree_resolution_mistake_is_caught() -> None:
    bounds = BoundingBox(14.0, 45.0, 15.0, 46.0, crs="EPSG:4326")
    with pytest.raises(GridError, match=r"in degrees .* metres with a projected --crs"):
        grid_from_bounds(bounds, 10.5)


def test_geographic_layer_gets_local_utm_zone() -> None:
    ljubljana = BoundingBox(14.49, 45.99, 14.51, 46.01, crs="EPSG:4326")
    assert choose_crs(CRS("EPSG:4326"), ljubljana) == CRS("EPSG:32633")
    assert choose_crs(CRS("EPSG:4326"), ljubljana, keep_geographic=True) == CRS("EPSG:4326")
    assert choose_crs(CRS("EPSG:4326"), ljubljana, "EPSG:3794") == CRS("EPSG:3794")
    assert choose_crs(CRS(UTM33), ljubljana) == CRS(UTM33)  # projected layers keep their CRS
    # the southern hemisphere gets the southern zone (Sydney)
    sydney = BoundingBox(151.1, -33.9, 151.2, -33.8, crs="EPSG:4326")
    assert choose_crs(CRS("EPSG:4326"), sydney) == CRS("EPSG:32756")


def test_load_layout_in_degrees_lands_on_utm(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame(
        {"cls": ["forest"]}, geometry=[box(14.49, 45.99, 14.51, 46.01)], crs="EPSG:4326"
    )
    path = tmp_path / "deg.gpkg"
    frame.to_file(path)
    layout = load_layout(path, "cls", taxonomy="eolearn_slovenia", resolution=10)
    assert layout.grid.crs == CRS("EPSG:32633")
    assert layout.grid.resolution.x == 10
    # ~1.55 km x 2.2 km at 10 m
    assert 140 < layout.grid.shape[1] < 170
    assert 210 < layout.grid.shape[0] < 235
    kept = load_layout(
        path, "cls", taxonomy="eolearn_slovenia", resolution=0.001, keep_geographic=True
    )
    assert kept.grid.crs == CRS("EPSG:4326")
    assert kept.grid.shape == (20, 20)


@settings(max_examples=40, deadline=None)
@given(
    x=st.floats(-1e6, 1e6),
    y=st.floats(-1e6, 1e6),
    w=st.floats(1, 5000),
    h=st.floats(1, 5000),
    res=st.sampled_from([1.0, 2.5, 10.0, 30.0]),
)
def test_snapped_grid_covers_extent_on_resolution_multiples(
    x: float, y: float, w: float, h: float, res: float
) -> None:
    grid = grid_from_bounds(BoundingBox(x, y, x + w, y + h, crs=UTM33), res)
    a = grid.affine
    assert (a.a, a.e) == (res, -res)
    assert a.c / res == pytest.approx(round(a.c / res), abs=1e-6)
    assert a.f / res == pytest.approx(round(a.f / res), abs=1e-6)
    gb = grid.boundingbox
    tol = 0.01 * res  # odc-geo ignores slivers under 1 % of a pixel: they hold no pixel centre
    assert gb.left <= x + tol and gb.bottom <= y + tol
    assert gb.right >= x + w - tol and gb.top >= y + h - tol
    # snapping adds at most one pixel on each side
    assert gb.right - gb.left < w + 2 * res + 1e-6
    assert gb.top - gb.bottom < h + 2 * res + 1e-6


def test_unsnapped_grid_starts_at_the_extent_corner() -> None:
    bounds = BoundingBox(500003.0, 5000007.0, 500101.0, 5000093.0, crs=UTM33)
    snapped = grid_from_bounds(bounds, 10)
    assert (snapped.affine.c, snapped.affine.f) == (500000.0, 5000100.0)
    tight = grid_from_bounds(bounds, 10, snap=False)
    assert (tight.affine.c, tight.affine.f) == (500003.0, 5000093.0)
    assert tight.shape == (9, 10)
    # anisotropic pixels: y snapped to multiples of 4
    aniso = grid_from_bounds(bounds, "10,4")
    assert (aniso.affine.a, aniso.affine.e) == (10.0, -4.0)
    assert aniso.affine.f == 5000096.0


def _write_tif(path: Path, crs: str | None, transform: Affine, shape: tuple[int, int]) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=shape[1],
        height=shape[0],
        count=1,
        dtype="uint8",
        crs=crs,
        transform=transform,
    ) as dst:
        dst.write(np.zeros(shape, dtype=np.uint8), 1)
    return path


def test_grid_like_copies_crs_transform_and_shape(tmp_path: Path) -> None:
    transform = Affine(0.3, 0.0, 455000.15, 0.0, -0.3, 5101000.45)  # off-lattice on purpose
    tif = _write_tif(tmp_path / "ortho.tif", "EPSG:32633", transform, (70, 90))
    grid = grid_like(tif)
    with rasterio.open(tif) as src:
        assert grid.affine == src.transform
        assert grid.shape == (src.height, src.width)
        assert grid.crs == CRS(src.crs.to_wkt())
    assert grid.crs == CRS(UTM33)
    with pytest.raises(GridError, match="--max-pixels"):
        grid_like(tif, max_pixels=70 * 90 - 1)


def test_load_layout_like_raster_uses_its_grid(tmp_path: Path) -> None:
    transform = Affine(2.0, 0.0, 500001.0, 0.0, -2.0, 5000099.0)
    tif = _write_tif(tmp_path / "base.tif", UTM33, transform, (40, 30))
    frame = gpd.GeoDataFrame(
        {"cls": ["forest"]}, geometry=[box(500000, 5000000, 500050, 5000050)], crs=UTM33
    )
    layout = load_layout(frame, "cls", taxonomy="eolearn_slovenia", like=tif, resolution=10)
    assert layout.grid.affine == transform  # like= wins over resolution
    assert layout.grid.shape == (40, 30)


def test_raster_without_crs_is_a_grid_error(tmp_path: Path) -> None:
    tif = _write_tif(tmp_path / "nocrs.tif", None, Affine(1, 0, 0, 0, -1, 10), (10, 10))
    with pytest.raises(GridError, match="has no CRS; assign one"):
        grid_like(tif)


def test_missing_or_unreadable_raster_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"raster '.*absent.tif' not found"):
        grid_like(tmp_path / "absent.tif")
    junk = tmp_path / "notes.tif"
    junk.write_text("not a raster", encoding="utf-8")
    with pytest.raises(InputError, match="not a raster GDAL can read"):
        grid_like(junk)


def test_same_grid_allows_float_noise_only() -> None:
    from odc.geo.geobox import GeoBox

    from rs_seg2any.grid import same_grid

    a = GeoBox((100, 200), Affine(0.5, 0, 300_000.0, 0, -0.5, 2_780_000.0), "EPSG:32640")
    noisy = GeoBox((100, 200), Affine(0.5, 0, 300_000.0 + 1e-7, 0, -0.5, 2_780_000.0),
                   "EPSG:32640")  # fmt: skip
    assert same_grid(a, a) and same_grid(a, noisy)
    shifted = GeoBox((100, 200), Affine(0.5, 0, 300_000.001, 0, -0.5, 2_780_000.0),
                     "EPSG:32640")  # fmt: skip
    finer = GeoBox((100, 200), Affine(0.5 + 1e-8, 0, 300_000.0, 0, -0.5, 2_780_000.0),
                   "EPSG:32640")  # fmt: skip
    other_crs = GeoBox((100, 200), a.affine, "EPSG:32639")
    other_shape = GeoBox((100, 201), a.affine, "EPSG:32640")
    for b in (shifted, finer, other_crs, other_shape):
        assert not same_grid(a, b)
