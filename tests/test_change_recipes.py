"""Change recipes: T2 layouts derived from T1 by new buildings, demolition, roads and growth."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal
from shapely.geometry import LineString, Polygon, box

from rs_seg2any.errors import ScenarioError
from rs_seg2any.scenarios.change_recipes import (
    DUBAI_AERIAL_ROLES,
    RECIPES,
    ChangeRoles,
    apply_recipe,
    demolition,
    new_buildings,
    road_construction,
    urban_growth,
)

UTM40 = "EPSG:32640"  # Dubai, UTM zone 40N
X0, Y0 = 300_000.0, 2_770_000.0
ROLES = DUBAI_AERIAL_ROLES  # building / land / road


def ubox(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    """A box in metres from the local origin (X0, Y0)."""
    return box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def frame(rows: list[tuple[str, Polygon]], crs: str = UTM40) -> gpd.GeoDataFrame:
    """A layer with a class, a description and a numeric column, in a projected CRS."""
    return gpd.GeoDataFrame(
        {
            "cls": [c for c, _ in rows],
            "desc": [f"feature {i}" for i in range(len(rows))],
            "height": [float(i) for i in range(len(rows))],
        },
        geometry=[g for _, g in rows],
        crs=crs,
    )


def town() -> gpd.GeoDataFrame:
    """200 x 200 m: two bare parcels (spelt 'Land'), water, a road, and four buildings, two of
    them drawn on top of the bare parcels (overlaps are allowed in these layers)."""
    return frame(
        [
            ("Land", ubox(0, 0, 200, 100)),
            ("Land", ubox(0, 100, 100, 200)),
            ("water", ubox(100, 100, 200, 140)),
            ("road", ubox(100, 140, 200, 160)),
            ("building", ubox(120, 165, 140, 190)),
            ("building", ubox(150, 165, 190, 195)),
            ("Building ", ubox(20, 20, 40, 40)),  # on the first parcel
            ("building", ubox(60, 120, 80, 140)),  # on the second parcel
        ]
    )


def of_class(gdf: gpd.GeoDataFrame, name: str) -> gpd.GeoDataFrame:
    return gdf[gdf["cls"].str.strip().str.casefold() == name]


def union(gdf: gpd.GeoDataFrame) -> shapely.Geometry:
    return shapely.union_all(gdf.geometry.values)


def bare_area(gdf: gpd.GeoDataFrame) -> float:
    return float(of_class(gdf, "land").area.sum())


# --------------------------------------------------------------------------------------------
# new_buildings
# --------------------------------------------------------------------------------------------


def test_new_buildings_places_count_rectangles_on_free_bare_land() -> None:
    t1 = town()
    before = t1.copy()
    t2 = new_buildings(
        t1, "cls", ROLES, count=6, rng=np.random.default_rng(1), size_m=(8.0, 15.0),
        description="new villa", description_field="desc",
    )  # fmt: skip
    assert_geodataframe_equal(t1, before)  # the input is not modified
    assert t2.crs == t1.crs
    assert list(t2.columns) == list(t1.columns)
    assert list(t2.index) == list(range(len(t2)))
    assert len(t2) == len(t1) + 6
    new = t2.iloc[len(t1) :]
    assert set(new["cls"]) == {"building"}
    assert set(new["desc"]) == {"new villa"}
    assert new["height"].isna().all()

    free = union(t1.iloc[:2]).difference(union(t1.iloc[2:]))  # bare land off other polygons
    for geom in new.geometry:
        assert geom.area >= 8.0 * 8.0 - 1e-9
        assert geom.area <= 15.0 * 15.0 + 1e-9
        assert free.buffer(1e-6).contains(geom)  # inside bare land, off every other polygon
    geoms = list(new.geometry)
    for i in range(len(geoms)):
        for j in range(i + 1, len(geoms)):
            assert geoms[i].intersection(geoms[j]).area == pytest.approx(0.0, abs=1e-9)

    added = float(new.area.sum())
    assert bare_area(t2) == pytest.approx(bare_area(t1) - added, rel=1e-6)
    # the new buildings were cut out of the bare polygons: no new overlaps
    assert union(of_class(t2, "land")).intersection(union(new)).area == pytest.approx(0.0, abs=1e-6)
    # everything that is not bare land is unchanged
    others = t1.iloc[2:].reset_index(drop=True)
    assert_geodataframe_equal(t2.iloc[2 : len(t1)].reset_index(drop=True), others)


def test_new_buildings_rotated_and_reproducible() -> None:
    t1 = town()
    a = new_buildings(t1, "cls", ROLES, count=4, rng=np.random.default_rng(5), rotate=True)
    b = new_buildings(t1, "cls", ROLES, count=4, rng=np.random.default_rng(5), rotate=True)
    c = new_buildings(t1, "cls", ROLES, count=4, rng=np.random.default_rng(6), rotate=True)
    assert_geodataframe_equal(a, b)
    assert not a.geometry.iloc[-1].equals(c.geometry.iloc[-1])
    edges = np.diff(np.asarray(a.geometry.iloc[-1].exterior.coords), axis=0)
    assert not np.isclose(edges, 0.0, atol=1e-6).any()  # not axis-aligned
    assert bare_area(a) == pytest.approx(bare_area(t1) - a.iloc[len(t1) :].area.sum(), rel=1e-6)


def test_new_buildings_uses_the_layer_spelling_of_the_class() -> None:
    t1 = frame([("LAND", ubox(0, 0, 100, 100)), ("Building", ubox(0, 0, 10, 10))])
    t2 = new_buildings(t1, "cls", ROLES, count=2, rng=np.random.default_rng(0))
    assert list(t2["cls"].iloc[2:]) == ["Building", "Building"]


def test_new_buildings_that_do_not_fit_raise() -> None:
    t1 = frame([("land", ubox(0, 0, 30, 30))])
    with pytest.raises(ScenarioError, match=r"only \d+ of 50 buildings"):
        new_buildings(t1, "cls", ROLES, count=50, rng=np.random.default_rng(0))


# --------------------------------------------------------------------------------------------
# demolition
# --------------------------------------------------------------------------------------------


def estate(n: int = 20) -> gpd.GeoDataFrame:
    """A parcel of bare land with ``n`` buildings on it, and a water body."""
    rows = [("land", ubox(0, 0, 400, 400)), ("water", ubox(400, 0, 500, 400))]
    rows += [("building", ubox(20 * i, 300, 20 * i + 12, 312)) for i in range(n)]
    return frame(rows)


@pytest.mark.parametrize(("fraction", "expected"), [(0.5, 10), (0.33, 7), (0.01, 1), (1.0, 20)])
def test_demolition_reclassifies_round_fraction_of_buildings(
    fraction: float, expected: int
) -> None:
    t1 = estate()
    before = t1.copy()
    t2 = demolition(t1, "cls", ROLES, fraction=fraction, rng=np.random.default_rng(3))
    assert_geodataframe_equal(t1, before)
    assert len(t2) == len(t1)
    assert t2.crs == t1.crs
    changed = t2["cls"] != t1["cls"]
    assert int(changed.sum()) == expected
    assert set(t1.loc[changed, "cls"]) == {"building"}
    assert set(t2.loc[changed, "cls"]) == {"land"}
    assert t2.geometry.geom_equals(t1.geometry).all()  # footprints kept exactly
    assert (t2["desc"] == t1["desc"]).all()


def test_demolition_is_reproducible_per_seed() -> None:
    t1 = estate()

    def demolished(seed: int) -> list[int]:
        t2 = demolition(t1, "cls", ROLES, fraction=0.5, rng=np.random.default_rng(seed))
        return list(np.flatnonzero(t2["cls"] != t1["cls"]))

    assert demolished(7) == demolished(7)
    assert demolished(7) != demolished(8)


def test_demolition_can_rewrite_the_description() -> None:
    t1 = estate(4)
    t2 = demolition(
        t1, "cls", ROLES, fraction=1.0, rng=np.random.default_rng(0),
        description="cleared plot", description_field="desc",
    )  # fmt: skip
    assert list(t2["desc"].iloc[2:]) == ["cleared plot"] * 4
    assert list(t2["desc"].iloc[:2]) == list(t1["desc"].iloc[:2])


# --------------------------------------------------------------------------------------------
# road_construction
# --------------------------------------------------------------------------------------------


def test_road_along_a_line_takes_only_bare_land() -> None:
    t1 = town()
    before = t1.copy()
    # y = 30 crosses the first parcel and the building drawn on it; the line overshoots the
    # layer's bounds on both sides and is clipped to them
    line = LineString([(X0 - 50, Y0 + 30), (X0 + 250, Y0 + 30)])
    t2 = road_construction(t1, "cls", ROLES, width_m=12.0, line=line, rng=np.random.default_rng(0))
    assert_geodataframe_equal(t1, before)
    assert len(t2) == len(t1) + 1
    road = t2.geometry.iloc[-1]
    assert t2["cls"].iloc[-1] == "road"
    assert road.area == pytest.approx(200 * 12 - 20 * 12, rel=1e-9)  # the building is not taken
    expected = line.buffer(6.0, cap_style="flat").intersection(
        union(of_class(t1, "land")).difference(union(of_class(t1, "building")))
    )
    assert road.symmetric_difference(expected).area == pytest.approx(0.0, abs=1e-6)
    assert bare_area(t2) == pytest.approx(bare_area(t1) - road.area, rel=1e-9)
    # buildings, water and the old road are untouched
    for name in ("building", "water"):
        assert_geodataframe_equal(of_class(t2, name), of_class(t1, name))
    assert_geodataframe_equal(of_class(t2, "road").iloc[:1], of_class(t1, "road"))


def test_road_drops_bare_polygons_it_uses_up() -> None:
    t1 = frame([("land", ubox(0, 0, 200, 10)), ("land", ubox(0, 10, 200, 100))])
    line = LineString([(X0, Y0 + 5), (X0 + 200, Y0 + 5)])
    t2 = road_construction(t1, "cls", ROLES, width_m=12.0, line=line, rng=np.random.default_rng(0))
    assert list(t2["cls"]) == ["land", "road"]
    assert t2["desc"].iloc[0] == "feature 1"
    assert t2["desc"].isna().iloc[1]  # new rows: no value in the other columns
    assert t2.geometry.iloc[0].area == pytest.approx(200 * 89, rel=1e-9)
    assert t2.geometry.iloc[1].area == pytest.approx(200 * 11, rel=1e-9)  # clipped at y = 0


def test_road_does_not_cross_water_or_existing_road() -> None:
    t1 = town()
    line = LineString([(X0 + 110, Y0 - 10), (X0 + 110, Y0 + 210)])  # through water and road
    t2 = road_construction(t1, "cls", ROLES, width_m=12.0, line=line, rng=np.random.default_rng(0))
    road = t2.geometry.iloc[-1]
    assert road.area == pytest.approx(12 * 100, rel=1e-9)  # only the first parcel's part
    assert road.intersection(union(t1.iloc[2:4])).area == pytest.approx(0.0, abs=1e-9)


def test_random_road_crosses_bare_land_reproducibly() -> None:
    t1 = town()
    a = road_construction(t1, "cls", ROLES, rng=np.random.default_rng(11))
    b = road_construction(t1, "cls", ROLES, rng=np.random.default_rng(11))
    assert_geodataframe_equal(a, b)
    road = a.geometry.iloc[-1]
    assert road.area > 0
    free = union(of_class(t1, "land")).difference(union(t1.iloc[2:]))
    assert free.buffer(1e-6).contains(road)
    assert bare_area(a) == pytest.approx(bare_area(t1) - road.area, rel=1e-9)


def test_road_that_misses_bare_land_raises() -> None:
    line = LineString([(X0 + 150, Y0 + 110), (X0 + 190, Y0 + 110)])  # inside the water
    with pytest.raises(ScenarioError, match="crosses no free bare land"):
        road_construction(town(), "cls", ROLES, line=line, rng=np.random.default_rng(0))


# --------------------------------------------------------------------------------------------
# urban_growth
# --------------------------------------------------------------------------------------------


def plot() -> gpd.GeoDataFrame:
    """A bare parcel with a 20 x 20 m building on it; the parcel's east part is covered by a
    water polygon drawn on top of it, touching the building's east side."""
    return frame(
        [
            ("land", ubox(0, 0, 100, 100)),
            ("water", ubox(60, 0, 100, 100)),
            ("building", ubox(40, 40, 60, 60)),
        ]
    )


def test_urban_growth_reaches_the_percent_into_bare_land_only() -> None:
    t1 = plot()
    before = t1.copy()
    step = 2.0
    t2 = urban_growth(t1, "cls", ROLES, percent=50.0, step_m=step, rng=np.random.default_rng(0))
    assert_geodataframe_equal(t1, before)
    assert len(t2) == len(t1)
    old, new = t1.geometry.iloc[2], t2.geometry.iloc[2]
    grown = new.area - old.area
    achieved = 100.0 * grown / old.area
    assert t2.attrs["growth_achieved_percent"] == pytest.approx(achieved, rel=1e-9)
    # at least the target, at most one step of growth beyond it
    d = t2.attrs["growth_distance_m"]
    one_step = (20 + d + step) * (20 + 2 * (d + step)) - (20 + d) * (20 + 2 * d)  # west/N/S only
    assert 50.0 - 1e-6 <= achieved <= 50.0 + 100.0 * one_step / old.area
    assert achieved == pytest.approx(50.0, abs=0.5)  # the last step is refined
    assert new.contains(old)
    assert new.intersection(t1.geometry.iloc[1]).area == pytest.approx(0.0, abs=1e-9)  # water
    assert new.difference(old).within(t1.geometry.iloc[0].buffer(1e-6))  # bare land only
    assert bare_area(t2) == pytest.approx(bare_area(t1) - grown, rel=1e-9)
    # the parcel keeps only the overlap it already had with the building: no new overlaps
    assert t2.geometry.iloc[0].intersection(new).area == pytest.approx(old.area, rel=1e-9)
    assert t2.geometry.iloc[1].equals(t1.geometry.iloc[1])


def test_urban_growth_does_not_jump_over_a_road() -> None:
    t1 = frame(
        [
            ("land", ubox(0, 0, 100, 62)),
            ("road", ubox(0, 62, 100, 66)),
            ("land", ubox(0, 66, 100, 200)),
            ("building", ubox(40, 40, 60, 60)),
        ]
    )
    t2 = urban_growth(t1, "cls", ROLES, percent=300.0, rng=np.random.default_rng(0))
    assert t2.attrs["growth_achieved_percent"] == pytest.approx(300.0, abs=1.0)
    assert t2.geometry.iloc[2].equals(t1.geometry.iloc[2])  # the far side of the road
    assert t2.geometry.iloc[3].intersection(t1.geometry.iloc[1:3].union_all()).area == 0.0


def test_urban_growth_reports_a_target_it_cannot_reach() -> None:
    t1 = frame([("land", ubox(0, 0, 30, 30)), ("building", ubox(30, 10, 40, 20))])
    t2 = urban_growth(t1, "cls", ROLES, percent=5000.0, rng=np.random.default_rng(0))
    # all 900 m² of bare land were taken: +900 % of a 100 m² building
    assert t2.attrs["growth_achieved_percent"] == pytest.approx(900.0, rel=1e-6)
    assert len(t2) == 1  # the bare parcel was used up and dropped
    assert list(t2["cls"]) == ["building"]
    assert t2.geometry.iloc[0].area == pytest.approx(1000.0, rel=1e-9)


def test_neighbouring_buildings_do_not_grow_into_each_other() -> None:
    t1 = frame(
        [
            ("land", ubox(0, 0, 100, 100)),
            ("building", ubox(20, 40, 45, 60)),
            ("building", ubox(55, 40, 80, 60)),
        ]
    )
    t2 = urban_growth(t1, "cls", ROLES, percent=150.0, rng=np.random.default_rng(0))
    a, b = t2.geometry.iloc[1], t2.geometry.iloc[2]
    assert a.intersection(b).area == pytest.approx(0.0, abs=1e-9)
    assert a.contains(t1.geometry.iloc[1]) and b.contains(t1.geometry.iloc[2])
    grown = a.area + b.area - 1000.0
    assert t2.attrs["growth_achieved_percent"] == pytest.approx(100.0 * grown / 1000.0)


# --------------------------------------------------------------------------------------------
# apply_recipe and errors
# --------------------------------------------------------------------------------------------


def test_apply_recipe_dispatches_by_name_with_a_seed() -> None:
    assert set(RECIPES) == {"new_buildings", "demolition", "road_construction", "urban_growth"}
    t1 = estate()
    direct = demolition(t1, "cls", ROLES, fraction=0.5, rng=np.random.default_rng(4))
    assert_geodataframe_equal(
        apply_recipe(t1, "cls", ROLES, "demolition", rng=4, fraction=0.5), direct
    )


def test_unknown_recipe_lists_the_known_ones() -> None:
    with pytest.raises(ScenarioError) as info:
        apply_recipe(town(), "cls", ROLES, "flood", rng=0)
    for name in RECIPES:
        assert name in str(info.value)


def test_apply_recipe_rejects_unknown_and_missing_parameters() -> None:
    with pytest.raises(ScenarioError, match="no parameter colour"):
        apply_recipe(town(), "cls", ROLES, "new_buildings", rng=0, count=1, colour="red")
    with pytest.raises(ScenarioError, match="needs parameter count"):
        apply_recipe(town(), "cls", ROLES, "new_buildings", rng=0)


RNG = np.random.default_rng


@pytest.mark.parametrize(
    ("recipe", "params", "message"),
    [
        ("new_buildings", {"count": 0}, "count must be"),
        ("new_buildings", {"count": 2, "size_m": (10.0, 5.0)}, "size_m"),
        ("demolition", {"fraction": 0.0}, r"fraction must be in \(0, 1\]"),
        ("demolition", {"fraction": 1.5}, r"fraction must be in \(0, 1\]"),
        ("demolition", {"fraction": -0.2}, r"fraction must be in \(0, 1\]"),
        ("urban_growth", {"percent": 0.0}, "percent must be > 0"),
        ("urban_growth", {"percent": -10.0}, "percent must be > 0"),
        ("road_construction", {"width_m": 0.0}, "width_m must be"),
        ("road_construction", {"width_m": -3.0}, "width_m must be"),
    ],
)
def test_bad_parameters_raise(recipe: str, params: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        RECIPES[recipe](town(), "cls", ROLES, rng=RNG(0), **params)


NO_BARE = frame([("water", ubox(0, 0, 50, 50)), ("building", ubox(60, 0, 80, 20))])
NO_BUILDINGS = frame([("land", ubox(0, 0, 50, 50)), ("water", ubox(60, 0, 80, 20))])


@pytest.mark.parametrize(
    ("layer", "recipe", "params", "message"),
    [
        (NO_BARE, "new_buildings", {"count": 1}, "no bare land"),
        (NO_BARE, "road_construction", {}, "no bare land"),
        (NO_BARE, "urban_growth", {"percent": 10.0}, "no bare land"),
        (NO_BUILDINGS, "demolition", {"fraction": 0.5}, "no buildings to demolish"),
        (NO_BUILDINGS, "urban_growth", {"percent": 10.0}, "no buildings to grow"),
    ],
)
def test_missing_classes_raise(
    layer: gpd.GeoDataFrame, recipe: str, params: dict[str, object], message: str
) -> None:
    with pytest.raises(ScenarioError, match=message):
        RECIPES[recipe](layer, "cls", ROLES, rng=RNG(0), **params)


def test_bare_land_covered_by_other_polygons_is_not_free() -> None:
    t1 = frame([("land", ubox(0, 0, 50, 50)), ("water", ubox(0, 0, 50, 50))])
    with pytest.raises(ScenarioError, match="covered by other polygons"):
        new_buildings(t1, "cls", ROLES, count=1, rng=RNG(0))


def test_growth_without_adjacent_bare_land_raises() -> None:
    t1 = frame([("land", ubox(0, 0, 50, 50)), ("building", ubox(100, 0, 120, 20))])
    with pytest.raises(ScenarioError, match="nowhere to grow"):
        urban_growth(t1, "cls", ROLES, percent=10.0, rng=RNG(0))


@pytest.mark.parametrize(
    ("recipe", "params"),
    [
        ("new_buildings", {"count": 1}),
        ("demolition", {"fraction": 0.5}),
        ("road_construction", {}),
        ("urban_growth", {"percent": 10.0}),
    ],
)
def test_geographic_crs_is_refused(recipe: str, params: dict[str, object]) -> None:
    t1 = frame(
        [("land", box(55.0, 25.0, 55.01, 25.01)), ("building", box(55.02, 25.0, 55.03, 25.01))],
        crs="EPSG:4326",
    )
    with pytest.raises(ScenarioError, match="projected CRS"):
        RECIPES[recipe](t1, "cls", ROLES, rng=RNG(0), **params)


def test_missing_class_column_and_description_field_raise() -> None:
    with pytest.raises(ScenarioError, match="no class column 'class'"):
        demolition(town(), "class", ROLES, fraction=0.5, rng=RNG(0))
    with pytest.raises(ScenarioError, match="description_field"):
        new_buildings(town(), "cls", ROLES, count=1, rng=RNG(0), description="a villa")


def test_bare_role_must_differ_but_roads_may_be_built_up() -> None:
    with pytest.raises(ScenarioError, match="bare class must differ"):
        ChangeRoles(building="building", bare=" Building", road="road")
    with pytest.raises(ScenarioError, match="bare class must differ"):
        ChangeRoles(building="building", bare="road", road="Road")
    lumped = ChangeRoles(building="built-up", bare="bare", road="Built-up")  # WorldCover style
    assert lumped.building == "built-up"
