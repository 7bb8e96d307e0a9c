"""The tiled DEM flood (union-find over tile borders) gives exactly the whole-grid flood.

Random terrain near the water level makes many small basins that touch across tile borders,
edges and corners; tiles of 7 and 16 px over a 61 x 50 grid put borders everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from rasterio.windows import Window

from rs_seg2any.errors import InputError, ScenarioError
from rs_seg2any.scenarios.flood_extent import flood_from_dem
from rs_seg2any.scenarios.flood_tiled import TiledFlood

H, W = 61, 50


def reader(array: NDArray[np.generic]):  # type: ignore[no-untyped-def]
    return lambda window: array[window.toslices()]


def tiled(dem: NDArray[np.float32], level: float, seeds: list[tuple[int, int]],
          water: NDArray[np.bool_] | None, connectivity: int, tile: int
          ) -> tuple[NDArray[np.bool_], NDArray[np.float32]]:  # fmt: skip
    flood = TiledFlood(reader(dem), dem.shape, level, seeds=seeds,
                       water=None if water is None else reader(water),
                       connectivity=connectivity, tile=tile)  # fmt: skip
    mask = np.zeros(dem.shape, dtype=bool)
    depth = np.zeros(dem.shape, dtype=np.float32)
    for window in flood.windows():
        m, d = flood.window(window)
        mask[window.toslices()], depth[window.toslices()] = m, d
    return mask, depth


def terrain(seed: int) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    rng = np.random.default_rng(seed)
    dem = rng.normal(0.0, 1.0, (H, W)).astype(np.float32)
    dem[rng.random((H, W)) < 0.05] = np.nan  # nodata blocks flow
    water = np.zeros((H, W), dtype=bool)
    water[:, 0:2] = True  # a river on the left edge
    dem[10:14, 0:2] = np.nan  # the river over nodata is still passable
    return dem, water


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("tile", [7, 16])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tiled_flood_equals_the_whole_grid_flood(seed: int, tile: int, connectivity: int) -> None:
    dem, water = terrain(seed)
    seeds = [(40, 33), (5, 45)]
    seed_mask = np.zeros((H, W), dtype=bool)
    for r, c in seeds:
        seed_mask[r, c] = True
    for level in (-0.3, 0.2):
        whole = flood_from_dem(dem, level, seeds=seed_mask, water=water,
                               connectivity=connectivity)  # fmt: skip
        mask, depth = tiled(dem, level, seeds, water, connectivity, tile)
        assert 0 < whole.mask.sum() < whole.mask.size
        assert np.array_equal(mask, whole.mask)
        assert np.array_equal(depth, whole.depth)


def test_a_basin_reached_only_through_a_tile_corner_floods_with_8_neighbours() -> None:
    dem = np.full((8, 8), 5.0, dtype=np.float32)
    dem[3, 3] = dem[4, 4] = 0.0  # diagonal neighbours across the corner of 4-px tiles
    for connectivity, expected in ((8, 2), (4, 1)):
        mask, _ = tiled(dem, 1.0, [(3, 3)], None, connectivity, 4)
        assert mask.sum() == expected


def test_errors_match_the_whole_grid_flood() -> None:
    dem, _ = terrain(0)
    nowhere = np.full((H, W), np.nan, dtype=np.float32)
    with pytest.raises(InputError, match="no valid height"):
        TiledFlood(reader(nowhere), (H, W), 0.0, seeds=[(1, 1)], tile=16)
    with pytest.raises(ScenarioError, match="no source"):
        TiledFlood(reader(dem), (H, W), 0.0, tile=16)
    with pytest.raises(ScenarioError, match="below all terrain"):
        TiledFlood(reader(dem), (H, W), -50.0, seeds=[(1, 1)], tile=16)
    high = np.array(dem)
    high[20, 20] = 40.0
    flood = TiledFlood(reader(high), (H, W), 0.0, seeds=[(20, 20)], tile=16)
    seed_mask = np.zeros((H, W), dtype=bool)
    seed_mask[20, 20] = True
    with pytest.raises(ScenarioError) as whole:
        flood_from_dem(high, 0.0, seeds=seed_mask)
    assert str(flood.empty_error()) == str(whole.value)
    assert not any(flood.window(w)[0].any() for w in flood.windows())
    with pytest.raises(InputError, match="finite"):
        TiledFlood(reader(dem), (H, W), float("inf"), seeds=[(1, 1)], tile=16)


def test_windows_cover_the_grid_once() -> None:
    dem, _ = terrain(0)
    flood = TiledFlood(reader(dem), (H, W), 0.5, seeds=[(30, 30)], tile=16)
    covered = np.zeros((H, W), dtype=int)
    for window in flood.windows():
        assert isinstance(window, Window)
        covered[window.toslices()] += 1
    assert (covered == 1).all()
