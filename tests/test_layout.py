"""load_layout: every vector format, every user mistake, priorities, entities and reprojection."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
import xarray as xr
from conftest import VectorWriter
from odc.geo import CRS, BoundingBox
from odc.geo.geobox import GeoBox
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from rs_seg2any.errors import GridError, InputError, LayoutError
from rs_seg2any.layout import BACKGROUND_DESCRIPTION, Layout, load_layout
from rs_seg2any.raster import rasterize_layout
from rs_seg2any.taxonomy import ClassDef, Taxonomy

UTM33 = "EPSG:32633"
X0, Y0 = 460_000.0, 5_100_000.0  # Slovenia, UTM zone 33N
TAX = "eolearn_slovenia"


def ubox(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    """A box in metres from the local origin (X0, Y0)."""
    return box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def base_frame() -> gpd.GeoDataFrame:
    """Five features, six entities: overlaps, a hole-like inner polygon and a 2-part polygon."""
    return gpd.GeoDataFrame(
        {
            "cls": ["forest", "artificial surface", "water", "Schrubland", "grassland"],
            "desc": ["old beech forest", None, "", "  ", "summer meadow"],
        },
        geometry=[
            ubox(0, 0, 200, 200),
            ubox(50, 50, 80, 80),  # a building inside the forest
            MultiPolygon([ubox(120, 120, 150, 150), ubox(160, 20, 190, 50)]),
            ubox(100, -20, 140, 30),  # half outside the forest
            ubox(170, 170, 260, 260),
        ],
        crs=UTM33,
    )


def maps(layout: Layout) -> xr.Dataset:
    return rasterize_layout(layout)


def assert_same_maps(a: xr.Dataset, b: xr.Dataset) -> None:
    for name in ("label", "instance", "contour"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def at(ds: xr.Dataset, x: float, y: float) -> xr.Dataset:
    """The maps at one point, which must lie inside the grid."""
    assert float(ds.x.min()) <= x <= float(ds.x.max()) and float(ds.y.min()) <= y <= float(
        ds.y.max()
    )
    return ds.sel(x=x, y=y, method="nearest")


@pytest.fixture(scope="module")
def reference() -> xr.Dataset:
    return maps(load_layout(base_frame(), "cls", taxonomy=TAX, resolution=5))


# --------------------------------------------------------------------------------------------
# Formats


@pytest.mark.parametrize(
    "name", ["layer.gpkg", "layer.shp", "layer.geojson", "layer.fgb", "layer.parquet"]
)
def test_every_format_gives_the_maps_of_the_geodataframe(
    write_layer: VectorWriter, reference: xr.Dataset, name: str
) -> None:
    path = write_layer(base_frame(), name)
    layout = load_layout(path, "cls", taxonomy=TAX, resolution=5, description_field="desc")
    assert layout.report.features == 5
    assert layout.report.entities == 6
    ds = maps(layout)
    assert_same_maps(ds, reference)
    assert ds.label.values.dtype == np.uint8
    # the maps are not trivial: five classes and six entities are visible
    assert set(np.unique(ds.label.values)) == {0, 2, 3, 4, 5, 8}
    assert set(np.unique(ds.instance.values)) == {0, 1, 2, 3, 4, 5, 6}
    feats = layout.features().sort_values("instance_id")
    assert feats["instance_id"].tolist() == [1, 2, 3, 4, 5, 6]
    assert feats["class_id"].tolist() == [2, 8, 5, 5, 4, 3]


def test_flatgeobuf_spatial_index_reorders_ids_but_not_the_partition(
    tmp_path: Path, reference: xr.Dataset
) -> None:
    path = tmp_path / "indexed.fgb"
    base_frame().to_file(path, driver="FlatGeobuf")  # default: with a Hilbert-sorted index
    ds = maps(load_layout(path, "cls", taxonomy=TAX, resolution=5))
    np.testing.assert_array_equal(ds.label.values, reference.label.values)
    np.testing.assert_array_equal(ds.contour.values, reference.contour.values)
    pairs = {
        (int(a), int(b))
        for a, b in zip(ds.instance.values.ravel(), reference.instance.values.ravel(), strict=True)
    }
    assert len(pairs) == 7  # a bijection between the two numberings (0 <-> 0 included)
    assert (0, 0) in pairs


def test_geoparquet_suffix_variant(tmp_path: Path, reference: xr.Dataset) -> None:
    path = tmp_path / "layer.geoparquet"
    base_frame().to_parquet(path)
    assert_same_maps(maps(load_layout(path, "cls", taxonomy=TAX, resolution=5)), reference)


# --------------------------------------------------------------------------------------------
# Files and layers


def test_layer_selection_in_a_multi_layer_geopackage(tmp_path: Path) -> None:
    path = tmp_path / "multi.gpkg"
    gpd.GeoDataFrame({"cls": ["forest"]}, geometry=[ubox(0, 0, 50, 50)], crs=UTM33).to_file(
        path, layer="woods"
    )
    gpd.GeoDataFrame({"cls": ["water"]}, geometry=[ubox(0, 0, 50, 50)], crs=UTM33).to_file(
        path, layer="lakes"
    )
    lakes = load_layout(path, "cls", layer="lakes", taxonomy=TAX, resolution=5)
    assert lakes.spec.layer == "lakes"
    assert set(np.unique(maps(lakes).label.values)) == {5}
    woods = load_layout(path, "cls", layer="woods", taxonomy=TAX, resolution=5)
    assert set(np.unique(maps(woods).label.values)) == {2}

    with pytest.raises(InputError) as err:
        load_layout(path, "cls", taxonomy=TAX, resolution=5)
    text = str(err.value)
    assert "2 layers" in text and "woods" in text and "lakes" in text and "--layer" in text

    with pytest.raises(InputError) as err:
        load_layout(path, "cls", layer="roads", taxonomy=TAX, resolution=5)
    text = str(err.value)
    assert "layer 'roads' not found" in text and "woods" in text and "lakes" in text


@pytest.mark.parametrize("name", ["absent.gpkg", "absent.shp", "absent.parquet"])
def test_missing_file_is_an_input_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(InputError, match=f"vector file '.*{name}' not found"):
        load_layout(tmp_path / name, "cls", taxonomy=TAX, resolution=5)


@pytest.mark.parametrize("name", ["junk.gpkg", "junk.parquet"])
def test_unreadable_file_is_an_input_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"this is not a vector file\n" * 10)
    with pytest.raises(InputError, match="is not a"):
        load_layout(path, "cls", taxonomy=TAX, resolution=5)


@pytest.mark.parametrize("name", ["layer.gpkg", "layer.shp", "layer.parquet", None])
def test_missing_class_field_lists_the_fields(write_layer: VectorWriter, name: str | None) -> None:
    frame = base_frame()
    source: Path | gpd.GeoDataFrame = frame if name is None else write_layer(frame, name)
    with pytest.raises(LayoutError) as err:
        load_layout(source, "landcover", taxonomy=TAX, resolution=5)
    text = str(err.value)
    assert "class field 'landcover' not found" in text
    assert "fields are: cls, desc" in text


def test_field_name_in_the_wrong_case_gets_a_hint(write_layer: VectorWriter) -> None:
    path = write_layer(base_frame(), "layer.gpkg")
    with pytest.raises(LayoutError, match=r"class field 'CLS' not found .*did you mean 'cls'"):
        load_layout(path, "CLS", taxonomy=TAX, resolution=5)
    with pytest.raises(LayoutError, match=r"description field 'text' not found.*cls, desc"):
        load_layout(path, "cls", description_field="text", taxonomy=TAX, resolution=5)
    with pytest.raises(LayoutError, match=r"priority field 'z' not found.*cls, desc"):
        load_layout(path, "cls", priority_field="z", taxonomy=TAX, resolution=5)


# --------------------------------------------------------------------------------------------
# Classes


def unknown_frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"cls": ["forest", "marsland", "marsland", "pond", None]},
        geometry=[
            ubox(0, 0, 100, 100),
            ubox(200, 0, 250, 50),
            ubox(300, 0, 350, 50),
            ubox(200, 100, 250, 150),
            ubox(300, 100, 350, 150),
        ],
        crs=UTM33,
    )


def test_unknown_classes_error_lists_values_and_counts(write_layer: VectorWriter) -> None:
    path = write_layer(unknown_frame(), "unknown.gpkg")
    with pytest.raises(LayoutError) as err:
        load_layout(path, "cls", taxonomy=TAX, resolution=10)
    text = str(err.value)
    assert "4 features" in text
    assert "'marsland' (2)" in text and "'pond' (1)" in text and "'<null>' (1)" in text
    assert "eolearn_slovenia" in text and "--unknown-class skip|background" in text
    assert "shrubland" in text  # known classes are listed


def test_unknown_classes_skip_leaves_no_label_and_no_entity(write_layer: VectorWriter) -> None:
    path = write_layer(unknown_frame(), "unknown.gpkg")
    layout = load_layout(path, "cls", taxonomy=TAX, resolution=10, unknown_class="skip")
    assert layout.report.unknown_classes == {"marsland": 2, "pond": 1, "<null>": 1}
    assert layout.report.used_features == 1
    assert layout.entity_count == 1
    assert any("4 features of unknown class skipped" in line for line in layout.report.lines())
    # by default the grid covers the polygons that are used
    assert layout.grid.boundingbox.bbox == (X0, Y0, X0 + 100, Y0 + 100)
    wide = load_layout(
        path,
        "cls",
        taxonomy=TAX,
        resolution=10,
        unknown_class="skip",
        extent=(X0, Y0, X0 + 400, Y0 + 200),
    )
    ds = maps(wide)
    forest = at(ds, X0 + 50, Y0 + 50)
    assert int(forest.label) == 2 and int(forest.instance) == 1
    marsh = at(ds, X0 + 225, Y0 + 25)
    assert int(marsh.label) == 0 and int(marsh.instance) == 0 and int(marsh.contour) == 0
    assert set(np.unique(ds.instance.values)) == {0, 1}
    assert (ds.label.values > 0).sum() == 100


def test_unknown_classes_background_are_unlabeled_entities(write_layer: VectorWriter) -> None:
    path = write_layer(unknown_frame(), "unknown.gpkg")
    layout = load_layout(
        path,
        "cls",
        taxonomy=TAX,
        resolution=10,
        unknown_class="background",
        extent=(X0 - 50, Y0 - 50, X0 + 400, Y0 + 200),  # every polygon away from the border
    )
    assert layout.entity_count == 5
    assert layout.report.used_features == 5
    assert any("drawn as class 0 (unlabeled)" in line for line in layout.report.lines())
    ds = maps(layout)
    assert set(np.unique(ds.label.values)) == {0, 2}
    assert set(np.unique(ds.instance.values)) == {0, 1, 2, 3, 4, 5}
    feats = layout.features().set_index("instance_id")
    assert feats.loc[2, "class_id"] == 0
    assert feats.loc[2, "description"] == BACKGROUND_DESCRIPTION
    marsh = ds.instance.values == 2
    assert marsh.sum() == 25  # 50 m x 50 m at 10 m
    assert (ds.label.values[marsh] == 0).all()
    assert ds.contour.values[marsh].sum() == 16  # its outline is drawn like any entity's


def test_background_polygons_never_hide_real_classes() -> None:
    frame = gpd.GeoDataFrame(
        {"cls": ["forest", "no such class"]},
        geometry=[ubox(0, 0, 50, 50), ubox(-100, -100, 150, 150)],  # unknown drawn last
        crs=UTM33,
    )
    layout = load_layout(frame, "cls", taxonomy=TAX, resolution=10, unknown_class="background")
    ds = maps(layout)
    assert (ds.label.values == 2).sum() == 25


def test_bad_unknown_policy_and_all_unknown() -> None:
    with pytest.raises(LayoutError, match="'drop' is not one of error, skip, background"):
        load_layout(unknown_frame(), "cls", taxonomy=TAX, resolution=10, unknown_class="drop")
    only = unknown_frame().iloc[1:]
    with pytest.raises(LayoutError, match=r"no usable polygons .*4 of unknown class"):
        load_layout(only, "cls", taxonomy=TAX, resolution=10, unknown_class="skip")


def test_integer_class_ids_with_nulls(write_layer: VectorWriter) -> None:
    frame = gpd.GeoDataFrame(
        {"LULC_ID": [2, 5, None]},
        geometry=[ubox(0, 0, 50, 50), ubox(100, 0, 150, 50), ubox(200, 0, 250, 50)],
        crs=UTM33,
    )
    path = write_layer(frame, "ids.gpkg")
    layout = load_layout(path, "LULC_ID", taxonomy=TAX, resolution=10, unknown_class="skip")
    assert layout.report.unknown_classes == {"<null>": 1}
    assert sorted(layout.features()["class_id"].tolist()) == [2, 5]


# --------------------------------------------------------------------------------------------
# CRS, extent, emptiness


def test_layer_without_crs_is_a_layout_error_unless_overridden(write_layer: VectorWriter) -> None:
    frame = base_frame().set_crs(None, allow_override=True)
    for source in (write_layer(frame, "nocrs.shp"), write_layer(frame, "nocrs.gpkg"), frame):
        with pytest.raises(LayoutError) as err:
            load_layout(source, "cls", taxonomy=TAX, resolution=5)
        assert "has no CRS" in str(err.value) and "--layer-crs" in str(err.value)
    fixed = load_layout(frame, "cls", taxonomy=TAX, resolution=5, layer_crs=UTM33)
    assert fixed.grid.crs == CRS(UTM33)
    assert fixed.layer_crs == CRS(UTM33)
    path = write_layer(frame, "nocrs2.shp")
    from_file = load_layout(path, "cls", taxonomy=TAX, resolution=5, layer_crs="EPSG:32633")
    assert_same_maps(maps(from_file), maps(fixed))


def test_empty_layer_is_a_layout_error(write_layer: VectorWriter) -> None:
    empty = base_frame().iloc[:0]
    with pytest.raises(LayoutError, match="is empty: it has no features"):
        load_layout(write_layer(empty, "empty.gpkg"), "cls", taxonomy=TAX, resolution=5)
    with pytest.raises(LayoutError, match="the GeoDataFrame is empty"):
        load_layout(empty, "cls", taxonomy=TAX, resolution=5)


def test_layer_outside_the_requested_extent(write_layer: VectorWriter) -> None:
    path = write_layer(base_frame(), "layer.gpkg")
    with pytest.raises(LayoutError) as err:
        load_layout(path, "cls", taxonomy=TAX, resolution=5, extent=(0, 0, 1000, 1000))
    text = str(err.value)
    assert "lies outside the requested grid" in text and "check the CRS" in text
    assert "EPSG:32633" in text
    assert "PROJCRS" not in text  # short CRS names, not a page of WKT


def test_layer_outside_a_given_grid_in_another_crs() -> None:
    far = GeoBox.from_bbox((100_000, 100_000, 101_000, 101_000), "EPSG:3035", resolution=10)
    with pytest.raises(LayoutError, match="EPSG:3035"):
        load_layout(base_frame(), "cls", taxonomy=TAX, grid=far)


def test_extent_restricts_the_grid(write_layer: VectorWriter) -> None:
    path = write_layer(base_frame(), "layer.gpkg")
    layout = load_layout(
        path, "cls", taxonomy=TAX, resolution=5, extent=(X0 + 40, Y0 + 40, X0 + 90, Y0 + 90)
    )
    assert layout.grid.shape == (10, 10)
    ds = maps(layout)
    # the building (artificial surface, 50..80 m) in the middle of forest
    assert (ds.label.values == 8).sum() == 36
    assert (ds.label.values == 2).sum() == 64


def test_no_resolution_and_grid_without_crs() -> None:
    with pytest.raises(LayoutError, match=r"give a resolution .*--like"):
        load_layout(base_frame(), "cls", taxonomy=TAX)
    nocrs = GeoBox((10, 10), GeoBox.from_bbox((0, 0, 10, 10), UTM33, resolution=1).affine, None)
    with pytest.raises(GridError, match="no CRS"):
        load_layout(base_frame(), "cls", taxonomy=TAX, grid=nocrs)


# --------------------------------------------------------------------------------------------
# Geometries


def test_null_and_empty_geometries_are_skipped_and_counted(write_layer: VectorWriter) -> None:
    frame = gpd.GeoDataFrame(
        {"cls": ["forest", "water", "water", "grassland"]},
        geometry=[
            ubox(0, 0, 100, 100),
            None,
            Polygon(),
            Polygon([(X0, Y0), (X0 + 5, Y0), (X0 + 10, Y0)]),
        ],
        crs=UTM33,
    )
    for source in (write_layer(frame, "nulls.gpkg"), frame):
        layout = load_layout(source, "cls", taxonomy=TAX, resolution=10)
        report = layout.report
        assert (report.features, report.used_features, report.entities) == (4, 1, 1)
        assert report.null_geometries == 1
        assert report.empty_geometries == 2  # an empty polygon and a zero-area one
        lines = report.lines()
        assert "1 features without geometry skipped" in lines
        assert "2 empty or zero-area geometries skipped" in lines


def test_invalid_bow_tie_is_repaired_and_counted(write_layer: VectorWriter) -> None:
    bow = Polygon([(X0, Y0), (X0 + 100, Y0 + 100), (X0 + 100, Y0), (X0, Y0 + 100)])
    assert not bow.is_valid
    frame = gpd.GeoDataFrame({"cls": ["forest"]}, geometry=[bow], crs=UTM33)
    layout = load_layout(write_layer(frame, "bow.gpkg"), "cls", taxonomy=TAX, resolution=5)
    assert layout.report.repaired_geometries == 1
    assert "1 invalid geometries repaired with make_valid" in layout.report.lines()
    assert layout.entity_count == 2  # two triangles
    feats = layout.features()
    assert feats["area"].sum() == pytest.approx(5000.0)
    assert shapely.is_valid(feats.geometry.values).all()
    ds = maps(layout)
    assert set(np.unique(ds.instance.values)) == {0, 1, 2}


@pytest.mark.parametrize(
    ("geometry", "name"),
    [
        (Point(X0, Y0), "points.gpkg"),
        (LineString([(X0, Y0), (X0 + 10, Y0 + 10)]), "lines.shp"),
        (LineString([(X0, Y0), (X0 + 10, Y0 + 10)]), "lines.geojson"),
    ],
)
def test_point_or_line_layers_are_refused(
    write_layer: VectorWriter, geometry: Point | LineString, name: str
) -> None:
    frame = gpd.GeoDataFrame({"cls": ["forest"]}, geometry=[geometry], crs=UTM33)
    with pytest.raises(LayoutError, match=r"polygons are expected. Buffer points and lines"):
        load_layout(write_layer(frame, name), "cls", taxonomy=TAX, resolution=5)


@pytest.mark.parametrize("name", ["mixed.gpkg", "mixed.geojson", None])
def test_mixed_layer_names_the_non_polygon_feature_ids(
    write_layer: VectorWriter, name: str | None
) -> None:
    frame = gpd.GeoDataFrame(
        {"cls": ["forest", "water", "forest", "water"]},
        geometry=[
            ubox(0, 0, 100, 100),
            Point(X0 + 5, Y0 + 5),
            ubox(0, 0, 10, 10),
            LineString([(X0, Y0), (X0 + 3, Y0 + 3)]),
        ],
        crs=UTM33,
    )
    source: Path | gpd.GeoDataFrame = frame if name is None else write_layer(frame, name)
    with pytest.raises(LayoutError) as err:
        load_layout(source, "cls", taxonomy=TAX, resolution=5)
    text = str(err.value)
    assert "2 point or line geometries" in text
    # feature ids as the source numbers them: GeoPackage from 1, others from 0
    assert "feature ids 2, 4" in text if name == "mixed.gpkg" else "feature ids 1, 3" in text


def test_multipolygon_parts_are_separate_entities() -> None:
    frame = gpd.GeoDataFrame(
        {"cls": ["water", "forest"]},
        geometry=[MultiPolygon([ubox(0, 0, 30, 30), ubox(60, 0, 90, 30)]), ubox(0, 60, 30, 90)],
        crs=UTM33,
    )
    layout = load_layout(frame, "cls", taxonomy=TAX, resolution=10)
    assert layout.entity_count == 3
    feats = layout.features().set_index("instance_id")
    assert feats.loc[[1, 2], "source_fid"].tolist() == [0, 0]
    assert feats.loc[[1, 2], "part"].tolist() == [0, 1]
    assert feats.loc[3, "source_fid"] == 1
    ds = maps(layout)
    assert (ds.instance.values == 1).sum() == 9 and (ds.instance.values == 2).sum() == 9
    assert (ds.label.values[ds.instance.values == 2] == 5).all()


# --------------------------------------------------------------------------------------------
# Descriptions and priorities


@pytest.mark.parametrize("name", ["layer.gpkg", "layer.shp", None])
def test_descriptions_per_polygon_with_taxonomy_fallback(
    write_layer: VectorWriter, name: str | None
) -> None:
    frame = base_frame()
    source: Path | gpd.GeoDataFrame = frame if name is None else write_layer(frame, name)
    layout = load_layout(source, "cls", description_field="desc", taxonomy=TAX, resolution=5)
    by_id = dict(
        zip(layout.features()["instance_id"], layout.features()["description"], strict=True)
    )
    assert by_id == {
        1: "old beech forest",
        2: "buildings, roads and other artificial surfaces",  # None -> taxonomy default
        3: "open water, rivers and lakes",  # '' -> default, for both parts
        4: "open water, rivers and lakes",
        5: "shrubs and overgrown land",  # blank -> default
        6: "summer meadow",
    }
    without = load_layout(source, "cls", taxonomy=TAX, resolution=5)
    assert without.features().set_index("instance_id").loc[1, "description"] == (
        "dense mixed forest canopy"
    )


def _two_polygons(
    order: str, classes: tuple[str, str], extra: dict[str, list[float]] | None = None
) -> gpd.GeoDataFrame:
    big, small = ubox(0, 0, 100, 100), ubox(40, 40, 60, 60)
    geoms = [big, small] if order == "big first" else [small, big]
    cls = list(classes) if order == "big first" else list(reversed(classes))
    data: dict[str, list[object]] = {"cls": list(cls)}
    for key, values in (extra or {}).items():
        data[key] = list(values) if order == "big first" else list(reversed(values))
    return gpd.GeoDataFrame(data, geometry=geoms, crs=UTM33)


@pytest.mark.parametrize("order", ["big first", "small first"])
def test_small_building_stays_visible_inside_land(order: str) -> None:
    frame = _two_polygons(order, ("land", "building"))
    ds = maps(load_layout(frame, "cls", taxonomy="dubai_aerial", resolution=10))
    assert (ds.label.values == 1).sum() == 4  # building: 20 m x 20 m at 10 m
    assert (ds.label.values == 2).sum() == 96


@pytest.mark.parametrize("order", ["big first", "small first"])
def test_equal_priority_smaller_part_wins(order: str) -> None:
    tax = Taxonomy(
        "flat",
        (
            ClassDef(1, "field", (255, 255, 0), "a field"),
            ClassDef(2, "pond", (0, 0, 255), "a pond"),
        ),
    )
    for classes, small_id in ((("field", "pond"), 2), (("pond", "field"), 1)):
        frame = _two_polygons(order, classes)
        ds = maps(load_layout(frame, "cls", taxonomy=tax, resolution=10))
        assert (ds.label.values == small_id).sum() == 4


@pytest.mark.parametrize("order", ["big first", "small first"])
def test_priority_field_overrides_the_class_priority(write_layer: VectorWriter, order: str) -> None:
    # the land parcel is given a higher priority than the building: it covers it
    frame = _two_polygons(order, ("land", "building"), {"prio": [100.0, 1.0]})
    path = write_layer(frame, "prio.gpkg")
    layout = load_layout(path, "cls", priority_field="prio", taxonomy="dubai_aerial", resolution=10)
    ds = maps(layout)
    assert (ds.label.values == 1).sum() == 0
    assert (ds.label.values == 2).sum() == 100
    # a null priority falls back to the class priority (building 50 > land 10)
    frame = _two_polygons(order, ("land", "building"), {"prio": [float("nan"), float("nan")]})
    ds = maps(
        load_layout(frame, "cls", priority_field="prio", taxonomy="dubai_aerial", resolution=10)
    )
    assert (ds.label.values == 1).sum() == 4


# --------------------------------------------------------------------------------------------
# Entities and windows


@pytest.mark.parametrize("name", ["layer.gpkg", "layer.fgb", None])
def test_instance_ids_are_stable_across_windows(
    write_layer: VectorWriter, name: str | None
) -> None:
    frame = base_frame()
    source: Path | gpd.GeoDataFrame = frame if name is None else write_layer(frame, name)
    layout = load_layout(source, "cls", taxonomy=TAX, resolution=5)
    full = layout.features().set_index("instance_id")
    window = BoundingBox(X0 + 110, Y0 + 0, X0 + 200, Y0 + 60, crs=UTM33)
    sub = layout.features(window).set_index("instance_id")
    # the forest (1), water's southern part (4) and the shrubland (5) touch this window
    assert {1, 4, 5} <= set(sub.index)
    assert 6 not in sub.index  # the grassland lies far away
    for iid, row in sub.iterrows():
        assert row["class_id"] == full.loc[iid, "class_id"]
        assert row["source_fid"] == full.loc[iid, "source_fid"]
        assert row["part"] == full.loc[iid, "part"]
        assert row.geometry.equals(full.loc[iid].geometry)


def test_features_drawing_order_is_priority_then_area() -> None:
    layout = load_layout(base_frame(), "cls", taxonomy=TAX, resolution=5)
    feats = layout.features()
    keys = list(zip(feats["priority"], -feats["area"], feats["instance_id"], strict=True))
    assert keys == sorted(keys)
    assert feats["instance_id"].dtype == np.uint32


def test_reprojected_layer_matches_geopandas_reprojection(write_layer: VectorWriter) -> None:
    utm = base_frame()
    degrees = utm.to_crs("EPSG:4326")
    path = write_layer(degrees, "degrees.geojson")
    layout = load_layout(path, "cls", taxonomy=TAX, resolution=5)
    assert layout.grid.crs == CRS("EPSG:32633")  # degrees -> the local UTM zone
    assert layout.layer_crs == CRS("EPSG:4326")
    ds = maps(layout)
    pre = load_layout(degrees.to_crs(UTM33), "cls", taxonomy=TAX, grid=layout.grid)
    ref = maps(pre)
    for name in ("label", "instance"):
        same = (ds[name].values == ref[name].values).mean()
        assert same >= 0.995, (name, same)
    assert (ds.label.values > 0).mean() > 0.5  # most of the grid is covered, not vacuous
