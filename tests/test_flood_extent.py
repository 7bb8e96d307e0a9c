# SPDX-License-Identifier: Apache-2.0
"""Connected flood extents: what floods, what stays dry, depths, depth classes and errors."""

from __future__ import annotations

import numpy as np
import pytest

from rs_seg2any.errors import InputError, ScenarioError
from rs_seg2any.scenarios.flood_extent import FloodExtent, depth_class, flood_from_dem

LEVEL = 3.5


def valley_dem() -> np.ndarray:
    """7 x 12 DEM: river (col 0), valley rising east (cols 1-4), ridge (col 5), plateau with a
    closed bowl (rows 2-4, cols 7-9) whose floor lies below ``LEVEL``."""
    dem = np.full((7, 12), 8.0)
    dem[:, 0] = 0.5  # river bed
    dem[0, 0] = 5.0  # a bridge deck on the river: water, but above the level
    dem[:, 1:5] = [1.0, 2.0, 3.0, 4.0]  # valley slope: cols 1-3 low, col 4 dry
    dem[:, 5] = 10.0  # ridge, higher than the level
    dem[2:5, 7:10] = 2.0  # bowl behind the ridge
    dem[3, 8] = 1.0  # bowl's deepest point
    return dem


def river() -> np.ndarray:
    water = np.zeros((7, 12), dtype=bool)
    water[:, 0] = True
    return water


def valley_flood() -> np.ndarray:
    """The expected flood from the river, by hand."""
    expected = np.zeros((7, 12), dtype=bool)
    expected[:, 0:4] = True
    expected[0, 0] = False  # the bridge pixel is water but not low: not in the mask
    return expected


def bowl() -> np.ndarray:
    expected = np.zeros((7, 12), dtype=bool)
    expected[2:5, 7:10] = True
    return expected


def test_river_floods_valley_but_not_depression_behind_ridge() -> None:
    dem = valley_dem()
    extent = flood_from_dem(dem, LEVEL, water=river())

    assert isinstance(extent, FloodExtent)
    assert extent.level == LEVEL
    assert extent.mask.dtype == np.bool_
    np.testing.assert_array_equal(extent.mask, valley_flood())
    assert not extent.mask[bowl()].any()  # below the level but unreachable: stays dry


def test_depth_is_level_minus_dem_on_flood_and_zero_elsewhere() -> None:
    dem = valley_dem()
    extent = flood_from_dem(dem, LEVEL, water=river())

    assert extent.depth.dtype == np.float32
    assert extent.depth.shape == dem.shape
    expected = np.zeros(dem.shape, dtype=np.float32)
    expected[1:, 0] = 3.0  # river bed 0.5
    expected[:, 1] = 2.5
    expected[:, 2] = 1.5
    expected[:, 3] = 0.5
    np.testing.assert_allclose(extent.depth, expected)
    assert extent.depth[bowl()].max() == 0.0  # the dry bowl has no depth although dem < level


def test_seed_in_depression_floods_it_too() -> None:
    dem = valley_dem()
    seeds = np.zeros(dem.shape, dtype=bool)
    seeds[3, 8] = True

    both = flood_from_dem(dem, LEVEL, water=river(), seeds=seeds)
    np.testing.assert_array_equal(both.mask, valley_flood() | bowl())
    assert both.depth[3, 8] == pytest.approx(2.5)
    assert both.depth[2, 7] == pytest.approx(1.5)

    seeds_only = flood_from_dem(dem, LEVEL, seeds=seeds)
    np.testing.assert_array_equal(seeds_only.mask, bowl())  # no river source: valley dry


def test_seed_above_level_does_not_flood_low_neighbours() -> None:
    dem = valley_dem()
    seeds = np.zeros(dem.shape, dtype=bool)
    seeds[1, 8] = True  # on the bowl's rim (8 m), next to the bowl floor
    extent = flood_from_dem(dem, LEVEL, water=river(), seeds=seeds)
    np.testing.assert_array_equal(extent.mask, valley_flood())


def test_four_and_eight_connectivity_differ_on_a_diagonal_link() -> None:
    dem = np.full((4, 4), 9.0)
    dem[1, 1] = 1.0
    dem[2, 2] = 1.0  # touches (1, 1) only by a corner
    seeds = np.zeros(dem.shape, dtype=bool)
    seeds[1, 1] = True

    eight = flood_from_dem(dem, 2.0, seeds=seeds, connectivity=8)
    four = flood_from_dem(dem, 2.0, seeds=seeds, connectivity=4)

    expected_eight = np.zeros(dem.shape, dtype=bool)
    expected_eight[1, 1] = expected_eight[2, 2] = True
    expected_four = np.zeros(dem.shape, dtype=bool)
    expected_four[1, 1] = True
    np.testing.assert_array_equal(eight.mask, expected_eight)
    np.testing.assert_array_equal(four.mask, expected_four)


def test_nan_never_floods_and_blocks_flow() -> None:
    dem = np.full((5, 8), 1.0)  # everything below the level
    dem[:, 3] = np.nan  # a nodata wall
    dem[2, 1] = np.nan  # a nodata hole on the river side
    water = np.zeros(dem.shape, dtype=bool)
    water[:, 0] = True

    extent = flood_from_dem(dem, 2.0, water=water)

    expected = np.zeros(dem.shape, dtype=bool)
    expected[:, 0:3] = True
    expected[2, 1] = False
    np.testing.assert_array_equal(extent.mask, expected)
    assert not extent.mask[np.isnan(dem)].any()
    assert extent.depth[2, 1] == 0.0
    assert np.isfinite(extent.depth).all()


def test_river_on_dem_nodata_is_still_a_source_but_not_in_the_mask() -> None:
    dem = np.full((4, 5), 1.0)
    dem[:, 0] = np.nan  # DEMs often hold nodata over water
    dem[:, 3:] = 6.0
    water = np.zeros(dem.shape, dtype=bool)
    water[:, 0] = True

    extent = flood_from_dem(dem, 2.0, water=water)

    expected = np.zeros(dem.shape, dtype=bool)
    expected[:, 1:3] = True
    np.testing.assert_array_equal(extent.mask, expected)


def test_water_pixels_above_the_level_are_still_sources() -> None:
    # The river's DEM says 9 m (above the level) everywhere; its low banks still flood, and the
    # river pixels themselves are not in the mask.
    dem = np.full((3, 7), 9.0)
    dem[0, 0] = 1.0
    dem[0, 6] = 1.0
    water = np.zeros(dem.shape, dtype=bool)
    water[1, :] = True  # all river pixels sit at 9 m
    extent = flood_from_dem(dem, 2.0, water=water)
    expected = np.zeros(dem.shape, dtype=bool)
    expected[0, 0] = expected[0, 6] = True
    np.testing.assert_array_equal(extent.mask, expected)


# -- errors -------------------------------------------------------------------------------


def test_dem_must_be_two_dimensional() -> None:
    with pytest.raises(InputError, match=r"\(2, 3, 4\)"):
        flood_from_dem(np.zeros((2, 3, 4)), 1.0, water=np.ones((2, 3), dtype=bool))


@pytest.mark.parametrize("name", ["seeds", "water"])
def test_mask_shape_must_match_dem(name: str) -> None:
    kwargs = {name: np.ones((3, 5), dtype=bool)}
    with pytest.raises(InputError, match=r"\(3, 5\).*\(4, 4\)") as info:
        flood_from_dem(np.zeros((4, 4)), 1.0, **kwargs)  # type: ignore[arg-type]
    assert name in str(info.value)


def test_connectivity_must_be_four_or_eight() -> None:
    with pytest.raises(InputError, match="6"):
        flood_from_dem(valley_dem(), LEVEL, water=river(), connectivity=6)


@pytest.mark.parametrize("level", [float("nan"), float("inf"), float("-inf")])
def test_level_must_be_finite(level: float) -> None:
    with pytest.raises(InputError, match="finite"):
        flood_from_dem(valley_dem(), level, water=river())


def test_all_nan_dem_is_rejected() -> None:
    with pytest.raises(InputError, match="no valid height"):
        flood_from_dem(np.full((3, 3), np.nan), 1.0, water=np.ones((3, 3), dtype=bool))


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"seeds": np.zeros((7, 12), dtype=bool)},
        {"seeds": np.zeros((7, 12), dtype=bool), "water": np.zeros((7, 12), dtype=bool)},
    ],
)
def test_a_source_is_required(kwargs: dict[str, np.ndarray]) -> None:
    with pytest.raises(ScenarioError, match="give seed locations or a river/water class"):
        flood_from_dem(valley_dem(), LEVEL, **kwargs)  # type: ignore[arg-type]


def test_level_below_all_terrain_names_level_and_lowest() -> None:
    dem = np.full((3, 3), 20.0)
    dem[1, 1] = 15.3
    dem[0, 0] = np.nan  # ignored when looking for the lowest terrain
    with pytest.raises(ScenarioError, match=r"12\.0 m is below all terrain.*15\.3 m"):
        flood_from_dem(dem, 12.0, water=np.ones((3, 3), dtype=bool))
    with pytest.raises(ScenarioError, match=r"15\.3 m.*15\.3 m"):
        flood_from_dem(dem, 15.3, water=np.ones((3, 3), dtype=bool))  # equal: nothing is below


def test_seeds_above_level_name_level_and_lowest_seed_terrain() -> None:
    dem = valley_dem()
    seeds = np.zeros(dem.shape, dtype=bool)
    seeds[1, 8] = True  # 8 m
    seeds[0, 5] = True  # 10 m
    with pytest.raises(ScenarioError, match=r"seeds are all above the water level 3\.5 m") as info:
        flood_from_dem(dem, LEVEL, seeds=seeds)
    assert "8.0 m" in str(info.value)


def test_seeds_on_nodata_only_are_reported() -> None:
    dem = np.full((3, 3), 1.0)
    dem[0, 0] = np.nan
    seeds = np.zeros(dem.shape, dtype=bool)
    seeds[0, 0] = True
    with pytest.raises(ScenarioError, match="nodata"):
        flood_from_dem(dem, 2.0, seeds=seeds)


# -- depth classes ------------------------------------------------------------------------


def test_depth_class_default_thresholds() -> None:
    depth = np.array([[0.2, 0.5, 1.0], [1.5, 3.0, 9.0]], dtype=np.float32)
    mask = np.array([[True, True, True], [True, True, False]])
    classes = depth_class(depth, mask)
    assert classes.dtype == np.uint8
    np.testing.assert_array_equal(classes, [[1, 2, 2], [3, 3, 0]])


def test_depth_class_generalises_to_more_thresholds() -> None:
    depth = np.array([0.0, 0.49, 0.5, 1.49, 1.5, 2.99, 3.0, 7.0])
    mask = np.ones(depth.shape, dtype=bool)
    mask[-1] = False
    classes = depth_class(depth, mask, thresholds=(0.5, 1.5, 3.0))
    np.testing.assert_array_equal(classes, [1, 1, 2, 2, 3, 3, 4, 0])
    np.testing.assert_array_equal(
        depth_class(depth, mask, thresholds=[1.0]), [1, 1, 1, 2, 2, 2, 2, 0]
    )


def test_depth_class_of_a_flood_extent() -> None:
    extent = flood_from_dem(valley_dem(), LEVEL, water=river())
    classes = depth_class(extent.depth, extent.mask)
    assert (classes[~extent.mask] == 0).all()
    np.testing.assert_array_equal(classes[3, 0:5], [3, 3, 3, 2, 0])  # 3.0, 2.5, 1.5, 0.5, dry


@pytest.mark.parametrize("thresholds", [(), (1.5, 0.5), (0.5, 0.5), (0.5, float("nan"))])
def test_depth_class_rejects_bad_thresholds(thresholds: tuple[float, ...]) -> None:
    with pytest.raises(InputError, match="threshold"):
        depth_class(np.zeros((2, 2)), np.ones((2, 2), dtype=bool), thresholds)


def test_depth_class_rejects_mismatched_shapes() -> None:
    with pytest.raises(InputError, match=r"\(2, 2\).*\(3, 3\)"):
        depth_class(np.zeros((2, 2)), np.ones((3, 3), dtype=bool))
