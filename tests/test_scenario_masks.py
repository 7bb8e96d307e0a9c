"""Scenario masks stream by window: what is written window by window must be exactly what a
whole-grid computation gives.

The window size is shrunk to 48 px (not a divisor of the 64-px tiles nor of the grid), so a
small grid spans many windows and every offset, edge window and tile border is exercised.
"""

from __future__ import annotations

import csv
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import rasterio.features
from affine import Affine
from odc.geo.geobox import GeoBox
from shapely import affinity
from shapely.geometry import MultiPolygon, Point, Polygon, box

from rs_seg2any.geoio import write_cog
from rs_seg2any.scenarios import masks
from rs_seg2any.scenarios.change import write_change
from rs_seg2any.scenarios.common import GenOptions, Polygons, polygons_from_mask, write_mask
from rs_seg2any.scenarios.masks import (
    PolygonMask,
    array_windows,
    mask_any,
    polygons_from_raster,
    scratch_raster,
    windows,
)

CRS = "EPSG:32640"
X0, Y0, RES = 300_000.0, 2_780_000.0, 0.7  # a resolution that does not divide coordinates
H, W = 150, 170
GRID = GeoBox((H, W), Affine(RES, 0.0, X0, 0.0, -RES, Y0 + H * RES), CRS)
BLOCK = 48


@pytest.fixture(autouse=True)
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(masks, "MASK_BLOCK", BLOCK)


def shapes_in_degrees() -> gpd.GeoDataFrame:
    """Awkward polygons: a rotated box across window borders, a ring with a hole, a
    multipolygon, a sliver thinner than a pixel and one polygon outside the grid; stored in
    degrees, so the coordinates are those of a reprojection. (A pixel centre exactly on an
    edge, to the last bit, may fall either side in a window, as in GDAL itself; these
    shapes have none, as real data has none.)"""
    cx, cy = X0 + W * RES / 2, Y0 + H * RES / 2
    ring = Point(X0 + 30, Y0 + 70).buffer(22.3).difference(Point(X0 + 30, Y0 + 70).buffer(9.1))
    geoms = [
        affinity.rotate(box(cx - 40, cy - 9, cx + 35, cy + 11), 33.0),
        ring,
        MultiPolygon(
            [
                box(X0 + 80.2, Y0 + 3.3, X0 + 95.9, Y0 + 30.1),
                Polygon([(X0 + 100, Y0 + 90), (X0 + 118.4, Y0 + 101.7), (X0 + 96.6, Y0 + 104.2)]),
            ]
        ),
        box(X0 + 10.0, Y0 + 33.3, X0 + 110.0, Y0 + 33.8),  # a sliver holding one row of centres
        box(X0 - 50, Y0 - 50, X0 - 10, Y0 - 10),  # outside the grid
    ]
    return gpd.GeoDataFrame(geometry=geoms, crs=CRS).to_crs("EPSG:4326")


def whole_grid(frame: gpd.GeoDataFrame) -> np.ndarray:
    """GDAL's rasterisation of the whole grid at once (the reference)."""
    geoms = list(frame.to_crs(CRS).geometry)
    out: np.ndarray = rasterio.features.rasterize(
        geoms, out_shape=GRID.shape, transform=GRID.affine, fill=0, default_value=1,
        dtype="uint8",
    )  # fmt: skip
    return out


def read1(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        out: np.ndarray = src.read(1)
    return out


def test_the_grid_spans_many_windows() -> None:
    spans = list(windows(GRID))
    assert len(spans) == 4 * 4
    covered = np.zeros(GRID.shape, dtype=int)
    for w in spans:
        covered[w.toslices()] += 1
    assert (covered == 1).all()


def test_polygon_mask_written_by_window_equals_whole_grid_rasterisation(tmp_path: Path) -> None:
    frame = shapes_in_degrees()
    expected = whole_grid(frame)
    assert 0 < expected.sum() < expected.size
    streamed = PolygonMask(frame, GRID)
    path = write_mask(tmp_path / "m.tif", streamed, GRID, {"RS_SEG2ANY_ROLE": "test"})
    assert np.array_equal(read1(path), expected)
    # and the file is byte for byte the one a whole-grid array gives
    whole = write_mask(tmp_path / "w.tif", expected.astype(bool), GRID, {"RS_SEG2ANY_ROLE": "test"})
    assert path.read_bytes() == whole.read_bytes()


def test_mask_any_sees_a_single_pixel_in_the_last_window() -> None:
    one = np.zeros(GRID.shape, dtype=bool)
    assert not mask_any(array_windows(one), GRID)
    one[H - 1, W - 1] = True
    assert mask_any(array_windows(one), GRID)


def test_polygons_from_a_band_equal_polygons_from_the_array(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    classes = np.zeros(GRID.shape, dtype=np.uint8)
    for _ in range(25):
        r, c = rng.integers(0, H - 20), rng.integers(0, W - 20)
        classes[r : r + rng.integers(2, 30), c : c + rng.integers(2, 30)] = rng.integers(1, 4)
    with scratch_raster(tmp_path, "classes.tif", array_windows(classes), GRID) as path:
        geoms, vals = polygons_from_raster(path, GRID)
    assert not list(tmp_path.iterdir()), "the scratch raster is removed after use"
    ref_geoms, ref_vals = polygons_from_mask(classes, GRID)
    assert vals == ref_vals and len(vals) > 10
    assert [g.wkb for g in geoms] == [g.wkb for g in ref_geoms]


def test_change_rasters_and_counts_by_window_equal_the_whole_grid(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    before = rng.integers(0, 5, size=GRID.shape, dtype=np.uint8)
    after = before.copy()
    after[20:90, 30:140] = rng.integers(0, 5, size=(70, 110), dtype=np.uint8)
    polys = Polygons.empty(CRS)
    m, c, k = write_change(tmp_path, array_windows(before), array_windows(after), polys, GRID)
    changed = before != after
    assert np.array_equal(read1(m), changed.astype(np.uint8))
    code = np.where(changed, before.astype(np.uint16) * 256 + after, 0)
    assert np.array_equal(read1(c), code)
    values, counts = np.unique(code[changed], return_counts=True)
    with k.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["code"]) for r in rows] == values.tolist()
    assert [int(r["pixels"]) for r in rows] == counts.tolist()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_flood_and_edit_masks_equal_the_whole_grid_rasterisation(
    tmp_path: Path, tiny_random_weights: Path
) -> None:
    """The real flood scenario over several tiles and windows: flood_mask.tif and the edit
    job's edit_mask.tif are the whole-grid rasterisation of the extent; outside pixels kept."""
    pytest.importorskip("torch")
    from rs_seg2any.generators.registry import load_generator
    from rs_seg2any.scenarios.flood import flood

    gen = load_generator("tiny", tiny_random_weights, threads=1)
    rng = np.random.default_rng(0)
    photo = write_cog(tmp_path / "photo.tif", rng.integers(0, 256, (3, H, W), dtype=np.uint8),
                      GRID, categorical=False)  # fmt: skip
    extent = shapes_in_degrees()
    expected = whole_grid(extent).astype(bool)
    opts = GenOptions(steps=1, tile_size=64, overlap=16, seed=2)
    res = flood(tmp_path / "f", gen, extent=extent, base_image=photo, opts=opts)  # type: ignore[arg-type]
    assert np.array_equal(read1(res.flood_mask).astype(bool), expected)
    edit = read1(tmp_path / "f" / "after" / "edit_mask.tif").astype(bool)
    assert np.array_equal(edit, expected)
    with rasterio.open(photo) as a, rasterio.open(res.after.outputs["image"]) as b:
        before, after = a.read(), b.read()
    assert np.array_equal(after[:, ~expected], before[:, ~expected])
    label = read1(res.after.outputs["label"])
    assert (label[expected] > 0).all() and (label[~expected] == 0).all()
    assert not [p for p in (tmp_path / "f").iterdir() if p.name.startswith(".tmp-")]


def test_a_change_run_validates_each_layer_once(
    tmp_path: Path, tiny_random_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from rs_seg2any.generators.registry import load_generator
    from rs_seg2any.scenarios import common
    from rs_seg2any.scenarios.change import change_pairs

    calls: list[int] = []
    real = common.load_layout

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(len(args[0]))  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(common, "load_layout", counted)
    gen = load_generator("tiny", tiny_random_weights, threads=1)
    frame = gpd.GeoDataFrame(
        {"cls": ["land", "building", "building"], "desc": ["sand", "roof", "roof"]},
        geometry=[
            box(X0, Y0, X0 + W * RES, Y0 + H * RES),
            box(X0 + 10, Y0 + 10, X0 + 40, Y0 + 30),
            box(X0 + 70, Y0 + 60, X0 + 90, Y0 + 95),
        ],
        crs=CRS,
    )
    before = Polygons.read(frame, "cls", description_field="desc", taxonomy="dubai_aerial")
    after_frame = frame.copy()
    after_frame.loc[1, ["cls", "desc"]] = ["land", "cleared"]
    after = before.with_frame(after_frame)
    opts = GenOptions(steps=1, tile_size=64, overlap=16, seed=2)
    res = change_pairs(tmp_path / "c", gen, before, GRID, after=after, opts=opts)  # type: ignore[arg-type]
    assert calls == [3, 3], "the before and the after layer are each validated once"
    t1, t2 = read1(res.t1.outputs["label"]), read1(res.pairs[0].t2.outputs["label"])
    assert np.array_equal(read1(res.pairs[0].change_mask).astype(bool), t1 != t2)
    assert (t1 != t2).sum() > 0
