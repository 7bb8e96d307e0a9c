"""Rasterisation: contour rule, tiled windows equal the whole grid, labels agree with instances."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from conftest import write_vector
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon, box

from rs_seg2any import raster
from rs_seg2any.layout import Layout, load_layout
from rs_seg2any.raster import (
    LayoutMaps,
    contours_from_instances,
    instance_dtype,
    rasterize_layout,
    rasterize_window,
)

UTM33 = "EPSG:32633"
X0, Y0 = 460_000.0, 5_100_000.0
RES = 2.0
SIZE = 40  # grid of SIZE x SIZE pixels of RES metres
EXTENT = (X0, Y0, X0 + SIZE * RES, Y0 + SIZE * RES)
CLASS_IDS = (1, 2, 3, 4, 5, 8)  # eolearn_slovenia classes of different priorities


# --------------------------------------------------------------------------------------------
# Contour rule on hand-written arrays


def test_adjacent_entities_are_both_outlined_and_background_never() -> None:
    instance = np.array(
        [
            [1, 1, 2, 2],
            [1, 1, 2, 2],
            [0, 0, 0, 0],
        ],
        dtype=np.uint16,
    )
    expected = np.array(
        [
            [0, 1, 1, 0],  # top row: the array border is no outline; the 1|2 edge is
            [1, 1, 1, 1],  # above background
            [0, 0, 0, 0],  # background is never outlined
        ],
        dtype=np.uint8,
    )
    out = contours_from_instances(instance)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    assert instance[0, 0] == 1  # the input is not modified


def test_outline_is_one_pixel_wide_inner_ring() -> None:
    instance = np.zeros((9, 9), dtype=np.uint32)
    instance[1:8, 1:8] = 7
    out = contours_from_instances(instance)
    ring = np.zeros((9, 9), dtype=np.uint8)
    ring[1:8, 1:8] = 1
    ring[2:7, 2:7] = 0
    np.testing.assert_array_equal(out, ring)


def test_entity_filling_the_array_has_no_outline_and_single_pixels_are_outlined() -> None:
    np.testing.assert_array_equal(
        contours_from_instances(np.full((5, 6), 3, dtype=np.uint16)), np.zeros((5, 6), np.uint8)
    )
    dot = np.zeros((3, 3), dtype=np.uint8)
    dot[1, 1] = 1
    np.testing.assert_array_equal(contours_from_instances(dot), dot)
    # diagonal neighbours do not count: only the 4-neighbourhood
    checker = np.array([[1, 2], [2, 1]], dtype=np.uint16)
    np.testing.assert_array_equal(contours_from_instances(checker), np.ones((2, 2), np.uint8))
    diagonal = np.array([[5, 5, 5], [5, 5, 5], [5, 5, 5]], dtype=np.uint16)
    diagonal[0, 0] = 6
    out = contours_from_instances(diagonal)
    assert out[1, 1] == 0 and out[0, 1] == 1 and out[1, 0] == 1 and out[0, 0] == 1


# --------------------------------------------------------------------------------------------
# Tiled windows == whole grid


def _check_window(layout: Layout, whole: LayoutMaps, rows: slice, cols: slice) -> None:
    win = rasterize_window(layout, rows, cols)
    for name in ("label", "instance", "contour"):
        got = getattr(win, name)
        want = getattr(whole, name)[rows, cols]
        assert got.dtype == getattr(whole, name).dtype, name
        np.testing.assert_array_equal(got, want, err_msg=f"{name} {rows} {cols}")


def _whole(layout: Layout) -> LayoutMaps:
    ds = rasterize_layout(layout)
    return LayoutMaps(ds.label.values, ds.instance.values, ds.contour.values)


def _assert_labels_follow_instances(layout: Layout, maps: LayoutMaps) -> None:
    feats = layout.features()
    table = np.zeros(int(feats["instance_id"].max()) + 1, dtype=np.int64)
    table[feats["instance_id"].to_numpy()] = feats["class_id"].to_numpy()
    np.testing.assert_array_equal(maps.label, table[maps.instance])
    assert (maps.contour[maps.instance == 0] == 0).all()


coord = st.floats(-10.0, SIZE * RES + 10.0, allow_nan=False).map(lambda v: round(v, 2))


@st.composite
def polygon_st(draw: st.DrawFn) -> Polygon | MultiPolygon:
    kind = draw(st.sampled_from(["box", "triangle", "multi"]))
    xs = [X0 + draw(coord) for _ in range(3)]
    ys = [Y0 + draw(coord) for _ in range(3)]
    if kind == "triangle":
        tri = Polygon(list(zip(xs, ys, strict=True)))
        if tri.area > 1.0:
            return tri
    a = box(min(xs[:2]), min(ys[:2]), max(xs[:2]), max(ys[:2]) + 1.0)
    if kind == "multi":
        b = box(xs[2], ys[2], xs[2] + 7.0, ys[2] + 5.0)
        if not a.intersects(b):
            return MultiPolygon([a, b])
    return box(*a.bounds) if a.area > 0 else box(X0, Y0, X0 + 3, Y0 + 3)


layout_st = st.lists(st.tuples(polygon_st(), st.sampled_from(CLASS_IDS)), min_size=1, max_size=8)


def _window(draw: st.DrawFn) -> tuple[slice, slice]:
    r0 = draw(st.integers(0, SIZE - 1))
    r1 = draw(st.integers(r0 + 1, SIZE))
    c0 = draw(st.integers(0, SIZE - 1))
    c1 = draw(st.integers(c0 + 1, SIZE))
    return slice(r0, r1), slice(c0, c1)


@settings(max_examples=40, deadline=None)
@given(polys=layout_st, data=st.data())
def test_any_window_equals_the_same_crop_of_the_whole_grid(
    polys: list[tuple[Polygon | MultiPolygon, int]], data: st.DataObject
) -> None:
    frame = gpd.GeoDataFrame(
        {"cls": [cid for _, cid in polys]}, geometry=[g for g, _ in polys], crs=UTM33
    )
    parts = shapely.get_parts(frame.geometry.values)
    left, bottom, right, top = shapely.total_bounds(parts[shapely.area(parts) > 0])
    # a layer whose (non-degenerate) parts lie wholly outside the extent is a LayoutError
    # (tested in test_layout.py)
    assume(left < EXTENT[2] and right > EXTENT[0] and bottom < EXTENT[3] and top > EXTENT[1])
    layout = load_layout(frame, "cls", taxonomy="eolearn_slovenia", resolution=RES, extent=EXTENT)
    assert layout.grid.shape == (SIZE, SIZE)
    whole = _whole(layout)
    _assert_labels_follow_instances(layout, whole)
    for _ in range(3):
        rows, cols = data.draw(st.composite(lambda d: _window(d))())
        _check_window(layout, whole, rows, cols)


@pytest.fixture(scope="module")
def file_layout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Layout, LayoutMaps]:
    """A GeoPackage in degrees (so windows are read by reprojected bounds) on a UTM grid."""
    rng = np.random.default_rng(7)
    geoms: list[Polygon] = []
    for _ in range(30):
        x, y = rng.uniform(-10, SIZE * RES, 2)
        w, h = rng.uniform(3, 30, 2)
        geoms.append(box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h))
    geoms.append(shapely.Polygon([(X0 + 5, Y0 + 5), (X0 + 70, Y0 + 20), (X0 + 30, Y0 + 75)]))
    classes = [int(c) for c in rng.choice(CLASS_IDS, len(geoms))]
    classes[3] = 77  # an unknown class drawn as background: an entity with label 0
    frame = gpd.GeoDataFrame({"LULC_ID": classes}, geometry=geoms, crs=UTM33)
    path = write_vector(frame.to_crs("EPSG:4326"), tmp_path_factory.mktemp("raster") / "l.gpkg")
    layout = load_layout(
        path,
        "LULC_ID",
        taxonomy="eolearn_slovenia",
        resolution=RES,
        crs=UTM33,
        extent=EXTENT,
        unknown_class="background",
    )
    return layout, _whole(layout)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_file_backed_windows_in_another_crs_equal_the_whole_grid(
    file_layout: tuple[Layout, LayoutMaps], data: st.DataObject
) -> None:
    layout, whole = file_layout
    rows, cols = data.draw(st.composite(lambda d: _window(d))())
    _check_window(layout, whole, rows, cols)


def test_file_layout_maps_are_consistent_and_not_trivial(
    file_layout: tuple[Layout, LayoutMaps],
) -> None:
    layout, whole = file_layout
    _assert_labels_follow_instances(layout, whole)
    assert layout.entity_count == 31
    assert len(np.unique(whole.instance)) > 15  # many entities visible
    assert whole.contour.sum() > 100
    # the unknown class is an entity (instance + contour) with label 0
    background = layout.features().query("class_id == 0")["instance_id"].tolist()
    assert background == [4]


def test_tiles_assembled_reproduce_the_whole_grid(file_layout: tuple[Layout, LayoutMaps]) -> None:
    layout, whole = file_layout
    label = np.zeros_like(whole.label)
    instance = np.zeros_like(whole.instance)
    contour = np.zeros_like(whole.contour)
    for r in range(0, SIZE, 16):
        for c in range(0, SIZE, 16):
            rows, cols = slice(r, min(r + 16, SIZE)), slice(c, min(c + 16, SIZE))
            tile = rasterize_window(layout, rows, cols)
            label[rows, cols], instance[rows, cols], contour[rows, cols] = (
                tile.label,
                tile.instance,
                tile.contour,
            )
    np.testing.assert_array_equal(label, whole.label)
    np.testing.assert_array_equal(instance, whole.instance)
    np.testing.assert_array_equal(contour, whole.contour)


def test_window_with_given_features_matches() -> None:
    frame = gpd.GeoDataFrame(
        {"cls": ["forest", "water"]},
        geometry=[box(X0, Y0, X0 + 40, Y0 + 40), box(X0 + 20, Y0 + 20, X0 + 60, Y0 + 60)],
        crs=UTM33,
    )
    layout = load_layout(frame, "cls", taxonomy="eolearn_slovenia", resolution=RES, extent=EXTENT)
    whole = _whole(layout)
    rows, cols = slice(10, 30), slice(5, 25)
    win = rasterize_window(layout, rows, cols, features=layout.features())
    np.testing.assert_array_equal(win.instance, whole.instance[rows, cols])
    np.testing.assert_array_equal(win.contour, whole.contour[rows, cols])
    # water (priority 40) is drawn over forest (30) where they overlap
    assert (whole.label[whole.instance == 2] == 5).all()
    assert (whole.instance == 2).sum() == 400


# --------------------------------------------------------------------------------------------
# Pixel rule, dtypes and the Dataset


def test_pixel_centre_rule() -> None:
    # 10.9 m wide at 1 m: centres 0.5 .. 10.5 are inside -> 11 columns; 0.4 m never counts
    frame = gpd.GeoDataFrame(
        {"cls": ["forest", "water"]},
        geometry=[box(X0, Y0, X0 + 10.9, Y0 + 1), box(X0 + 15, Y0, X0 + 15.4, Y0 + 1)],
        crs=UTM33,
    )
    layout = load_layout(
        frame, "cls", taxonomy="eolearn_slovenia", resolution=1, extent=(X0, Y0, X0 + 20, Y0 + 1)
    )
    ds = rasterize_layout(layout)
    assert ds.label.values.tolist() == [[2] * 11 + [0] * 9]


def test_instance_dtype_switches_above_65535() -> None:
    assert instance_dtype(0) == np.uint16
    assert instance_dtype(65535) == np.uint16
    assert instance_dtype(65536) == np.uint32


def test_more_than_65535_entities_keep_their_ids() -> None:
    n = 256
    xs, ys = np.meshgrid(np.arange(n) * 2.0, np.arange(n) * 2.0)
    parts = shapely.box(xs.ravel() + 0.2, ys.ravel() + 0.2, xs.ravel() + 1.8, ys.ravel() + 1.8)
    frame = gpd.GeoDataFrame(
        {"cls": ["forest", "water"]},
        geometry=[shapely.multipolygons(parts), box(600, 600, 610, 610)],
        crs=UTM33,
    )
    layout = load_layout(
        frame, "cls", taxonomy="eolearn_slovenia", resolution=1, extent=(0, 0, 620, 620)
    )
    assert layout.entity_count == 65537
    win = rasterize_window(layout, slice(10, 20), slice(600, 610))
    assert win.instance.dtype == np.uint32
    assert set(np.unique(win.instance)) == {65537}  # would wrap to 1 in uint16
    assert set(np.unique(win.label)) == {5}


def test_rasterize_layout_dataset_is_on_the_layout_grid(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame(
        {"cls": ["forest"]}, geometry=[box(X0 + 3, Y0 + 3, X0 + 33, Y0 + 23)], crs=UTM33
    )
    layout = load_layout(frame, "cls", taxonomy="eolearn_slovenia", resolution=RES)
    ds = rasterize_layout(layout)
    assert ds.label.shape == layout.grid.shape
    assert ds.instance.dtype == np.uint16
    assert ds.contour.dtype == np.uint8
    assert ds.odc.geobox == layout.grid
    assert ds.label.attrs["class_names"][2] == "forest"
    assert ds.attrs["taxonomy"] == "eolearn_slovenia"
    # x/y coordinates are pixel centres
    assert float(ds.x[0]) == layout.grid.affine.c + RES / 2
    assert float(ds.y[0]) == layout.grid.affine.f - RES / 2


@pytest.mark.parametrize("strip_rows", [3, 7, 40])
def test_strip_pipeline_equals_one_burn(
    file_layout: tuple[Layout, LayoutMaps], strip_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large windows are burnt in strips (threaded look-ups); pixels must not change."""
    layout, whole = file_layout
    monkeypatch.setattr(raster, "STRIP_ROWS", strip_rows)
    height, width = layout.grid.shape
    striped = rasterize_window(layout, slice(0, height), slice(0, width))
    np.testing.assert_array_equal(striped.label, whole.label)
    np.testing.assert_array_equal(striped.instance, whole.instance)
    np.testing.assert_array_equal(striped.contour, whole.contour)
