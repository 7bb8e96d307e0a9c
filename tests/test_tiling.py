# SPDX-License-Identifier: Apache-2.0
"""Tile plans partition any grid, and the streaming mosaic is exact, seamless and lean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from odc.geo.geobox import GeoBox

from rs_seg2any.errors import GridError
from rs_seg2any.job.tiling import (
    Tile,
    TilePlan,
    _axis_cores,
    _axis_windows,
    assemble,
    blend_weights,
)

REPO = Path(__file__).resolve().parents[1]


def make_grid(height: int, width: int) -> GeoBox:
    return GeoBox((height, width), Affine(10, 0, 500_000, 0, -10, 6_000_000), "EPSG:32633")


def collect(plan: TilePlan, load, *, mode, dtype, bands=1):
    """Assemble into an in-memory array, checking the block contract on the way."""
    height, width = plan.grid.shape
    out = np.zeros((bands, height, width), dtype=dtype)
    written = np.zeros((height, width), dtype=np.int32)

    def sink(block, rows, cols):
        assert block.shape == (bands, rows.stop - rows.start, cols.stop - cols.start)
        assert block.dtype == np.dtype(dtype)
        out[:, rows, cols] = block
        written[rows, cols] += 1

    assemble(plan, load, sink, mode=mode, dtype=dtype, bands=bands)
    assert np.all(written == 1)  # every pixel written exactly once
    return out


AXIS_CASES = [(1, 0), (2, 0), (3, 1), (5, 2), (8, 3), (16, 0), (16, 7), (17, 8), (64, 16)]


@pytest.mark.parametrize(("size", "overlap"), AXIS_CASES)
def test_axis_windows_and_cores_for_every_length(size, overlap):
    for n in range(1, 160):
        windows = _axis_windows(n, size, overlap)
        cores = _axis_cores(windows)
        assert all(e - s == min(size, n) for s, e in windows)
        assert windows[0][0] == 0 and windows[-1][1] == n
        for (s0, e0), (s1, _) in pairwise(windows):
            assert s0 < s1 <= e0 - overlap  # advancing, overlapping by at least `overlap`
        assert cores[0][0] == 0 and cores[-1][1] == n
        for (_, e0), (s1, _) in pairwise(cores):
            assert e0 == s1  # contiguous: no gap, no double ownership
        for (cs, ce), (ws, we) in zip(cores, windows, strict=True):
            assert ws <= cs < ce <= we


GRID_SIZES = [(1, 1), (5, 7), (31, 32), (32, 32), (33, 32), (64, 96), (97, 113), (100, 1), (56, 57)]


@pytest.mark.parametrize(("height", "width"), GRID_SIZES)
def test_cores_partition_the_grid_and_weights_cover_it(height, width):
    plan = TilePlan.for_grid(make_grid(height, width), tile_size=32, overlap=8)
    owners = np.zeros((height, width), dtype=np.int64)
    weight_sum = np.zeros((height, width), dtype=np.float64)
    for tile in plan.tiles:
        owners[tile.core_rows, tile.core_cols] += 1
        assert tile.shape == (min(32, height), min(32, width))
        weights = blend_weights(plan, tile)
        assert weights.dtype == np.float32 and weights.shape == tile.shape
        assert weights.min() > 0 and weights.max() <= 1
        weight_sum[tile.rows, tile.cols] += weights
    assert np.all(owners == 1)
    assert weight_sum.min() > 0
    assert len(plan.tiles) == plan.shape[0] * plan.shape[1]
    assert [t.index for t in plan.tiles] == sorted(t.index for t in plan.tiles)  # row-major


def test_weights_are_flat_on_grid_edges_and_sum_to_one_in_regular_overlaps():
    plan = TilePlan.for_grid(make_grid(80, 80), tile_size=32, overlap=8)  # exactly 3 x 3 tiles
    assert plan.shape == (3, 3)
    corner = blend_weights(plan, plan.tiles[0])
    assert np.all(corner[:24, :24] == 1)  # no ramp on the grid's top and left edges
    total = np.zeros((80, 80))
    for tile in plan.tiles:
        total[tile.rows, tile.cols] += blend_weights(plan, tile)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_small_grid_is_one_tile_of_its_own_size():
    plan = TilePlan.for_grid(make_grid(20, 300), tile_size=64, overlap=8)
    assert plan.shape[0] == 1
    assert all(t.shape == (20, 64) for t in plan.tiles)


def test_tile_geobox_is_the_grid_window():
    grid = make_grid(100, 130)
    plan = TilePlan.for_grid(grid, tile_size=32, overlap=8)
    tile = plan.tiles[7]
    sub = tile.geobox(grid)
    assert sub.shape == tile.shape and sub.crs == grid.crs
    assert sub.affine == grid.affine @ Affine.translation(tile.cols.start, tile.rows.start)


@pytest.mark.parametrize(
    ("tile_size", "overlap"), [(0, 0), (-4, 0), (32, -1), (32, 16), (32, 40), (True, 0), (32.5, 0)]
)
def test_invalid_plans_raise_grid_error(tile_size, overlap):
    with pytest.raises(GridError, match=r"tile_size|overlap"):
        TilePlan.for_grid(make_grid(50, 50), tile_size=tile_size, overlap=overlap)


def test_tiles_are_hashable_and_equal_by_value():
    plan = TilePlan.for_grid(make_grid(64, 64), tile_size=32, overlap=8)
    again = TilePlan.for_grid(make_grid(64, 64), tile_size=32, overlap=8)
    assert plan.tiles == again.tiles
    assert len({*plan.tiles, *again.tiles}) == len(plan.tiles)


@pytest.mark.parametrize(("height", "width"), [(5, 7), (64, 64), (97, 113), (120, 40)])
def test_core_mode_reproduces_the_array_exactly(height, width):
    rng = np.random.default_rng(height * 1000 + width)
    labels = rng.integers(0, 60_000, size=(2, height, width), dtype=np.uint16)
    plan = TilePlan.for_grid(make_grid(height, width), tile_size=32, overlap=8)
    calls: dict[tuple[int, int], int] = {}

    def load(tile: Tile):
        calls[tile.index] = calls.get(tile.index, 0) + 1
        return labels[:, tile.rows, tile.cols]

    out = collect(plan, load, mode="core", dtype=np.uint16, bands=2)
    np.testing.assert_array_equal(out, labels)
    assert set(calls.values()) == {1} and len(calls) == len(plan.tiles)


@pytest.mark.parametrize(("height", "width"), [(5, 7), (64, 64), (97, 113), (17, 17)])
def test_blend_mode_reproduces_a_smooth_array(height, width):
    yy, xx = np.mgrid[0:height, 0:width]
    smooth = np.stack([np.sin(yy / 9.0) * np.cos(xx / 7.0), (yy + 2 * xx) / 50.0])
    tile_size, overlap = (10, 4) if height == 17 else (32, 8)  # (17, 10, 4): 3 tiles overlap
    plan = TilePlan.for_grid(make_grid(height, width), tile_size=tile_size, overlap=overlap)
    calls: dict[tuple[int, int], int] = {}

    def load(tile: Tile):
        calls[tile.index] = calls.get(tile.index, 0) + 1
        return smooth[:, tile.rows, tile.cols].astype(np.float32)

    out = collect(plan, load, mode="blend", dtype=np.float32, bands=2)
    np.testing.assert_allclose(out, smooth, atol=1e-5)
    assert len(calls) == len(plan.tiles)
    assert max(calls.values()) <= 9  # neighbours are re-read at most once per covered core


def test_blend_mode_rounds_and_clips_integer_outputs():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(70, 90), dtype=np.uint8)
    plan = TilePlan.for_grid(make_grid(70, 90), tile_size=32, overlap=8)
    out = collect(plan, lambda t: image[t.rows, t.cols], mode="blend", dtype=np.uint8)
    np.testing.assert_array_equal(out[0], image)
    hot = collect(plan, lambda t: np.full(t.shape, 300.0), mode="blend", dtype=np.uint8)
    assert np.all(hot == 255)  # clipped, not wrapped around to 44


@pytest.mark.parametrize(
    ("height", "width", "tile_size", "overlap"), [(100, 130, 32, 8), (50, 47, 24, 10)]
)
def test_blend_seams_are_smooth(height, width, tile_size, overlap):
    """A constant offset per tile may only change by ~offset/overlap per pixel, never jump."""
    plan = TilePlan.for_grid(make_grid(height, width), tile_size=tile_size, overlap=overlap)
    rng = np.random.default_rng(7)
    offset = {tile.index: float(rng.uniform(0, 10)) for tile in plan.tiles}
    spread = max(offset.values()) - min(offset.values())

    def load(tile: Tile):
        return np.full(tile.shape, offset[tile.index], dtype=np.float32)

    blended = collect(plan, load, mode="blend", dtype=np.float64)[0]
    step = max(np.abs(np.diff(blended, axis=0)).max(), np.abs(np.diff(blended, axis=1)).max())
    assert step <= spread / overlap * 1.05
    hard = collect(plan, load, mode="core", dtype=np.float64)[0]
    assert np.abs(np.diff(hard, axis=1)).max() > 3 * step  # the test can see a seam


def test_blend_memory_does_not_grow_with_grid_area():
    def peak(side: int) -> int:
        plan = TilePlan.for_grid(make_grid(side, side), tile_size=64, overlap=16)
        _ = plan.tiles  # the (tiny) tile list is not mosaic memory

        def load(tile: Tile):
            return np.full((3, *tile.shape), tile.index[0], dtype=np.float32)

        def sink(block, rows, cols):
            assert block.shape[1:] == (rows.stop - rows.start, cols.stop - cols.start)

        tracemalloc.start()
        try:
            assemble(plan, load, sink, mode="blend", dtype=np.uint8, bands=3)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(256), peak(1024)  # 16x the area, 4x the width
    assert large < 1.5 * small


def test_loader_shape_is_checked():
    plan = TilePlan.for_grid(make_grid(40, 40), tile_size=32, overlap=8)
    with pytest.raises(ValueError, match="expected an array of shape"):
        collect(plan, lambda t: np.zeros((2, *t.shape)), mode="core", dtype=np.uint8)
    with pytest.raises(ValueError, match="mode"):
        assemble(plan, lambda t: np.zeros(t.shape), lambda *a: None, mode="max", dtype="u1")  # type: ignore[arg-type]


SEED_SCRIPT = """
import json
from affine import Affine
from odc.geo.geobox import GeoBox
from rs_seg2any.job.tiling import TilePlan
grid = GeoBox((100, 130), Affine(10, 0, 500000, 0, -10, 6000000), "EPSG:32633")
plan = TilePlan.for_grid(grid, tile_size=32, overlap=8)
print(json.dumps([plan.tile_seed(42, t) for t in plan.tiles]))
"""


def test_tile_seeds_are_distinct_and_stable_across_processes():
    plan = TilePlan.for_grid(make_grid(100, 130), tile_size=32, overlap=8)
    seeds = [plan.tile_seed(42, t) for t in plan.tiles]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**63 for s in seeds)
    assert seeds[0] == 6017006741803876838  # sha256("42:r0000_c0000"), pinned
    assert plan.tile_seed(43, plan.tiles[0]) != seeds[0]
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", SEED_SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == seeds
