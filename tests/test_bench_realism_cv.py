"""The cross-validated realism bench runs end to end on real tiles, including tile_2, whose
509-px-wide images are narrower than the 512-px scenes (a 2-px strip used to crash a tile)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import rasterio

from rs_seg2any.quality.c2st import C2STProtocol
from rs_seg2any.train.dubai import central_scenes, load_pairs

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import bench_realism_cv as cv  # noqa: E402


def test_each_tile_is_rendered_on_its_own_grid_and_scored(
    shared_data: Path, tmp_path: Path
) -> None:
    data = shared_data / "dubai_aerial"
    real, labels, _ = central_scenes(load_pairs(data, [2]), 1, cv.SCENE)
    assert real[0].shape == (509, 509, 3) and labels[0].shape == (509, 509)
    firsts: cv.Firsts = []
    scenes: cv.Scenes = []
    protocol = replace(C2STProtocol(), steps=10, seeds=(0,))
    row = cv.one_seed(data, [2, 6], 1, 0, protocol, tmp_path, firsts, scenes)
    assert set(row["per_tile"]) == {"2", "6"}
    assert 0.0 <= row["c2st"] <= 1.0 and row["saturation_ratio"] > 0
    for lab, rgb, gen in firsts:
        assert gen.shape == rgb.shape == (*lab.shape, 3)
        assert not np.array_equal(gen, rgb)  # rendered, not the real image passed through

    # where the classifier catches them: every test crop counted once per grouping
    assert [t for t, *_ in scenes] == [2, 6]
    report = cv.tells(scenes, protocol, tmp_path / "tells.png")
    totals = {
        what: [sum(g[side] for g in report[what].values()) for side in ("generated_n", "real_n")]
        for what in ("dominant class", "tile")
    }
    assert totals["dominant class"] == totals["tile"] and min(totals["tile"]) > 0
    assert set(report["tile"]) == {"tile 2", "tile 6"}
    assert set(report["dominant class"]) <= {"building", "land", "road", "vegetation", "water",
                                             "unlabeled"}  # fmt: skip
    assert (tmp_path / "tells.png").is_file()


def test_reference_mode_takes_another_image_of_the_same_tile(
    shared_data: Path, tmp_path: Path
) -> None:
    data = shared_data / "dubai_aerial"
    protocol = replace(C2STProtocol(), steps=10, seeds=(0,))
    firsts: cv.Firsts = []
    row = cv.one_seed(data, [6], 1, 0, protocol, tmp_path, firsts, reference=True)
    assert set(row["per_tile"]) == {"6"}
    with rasterio.open(tmp_path / "reference_t6" / "reference.tif") as src:
        reference = src.read().transpose(1, 2, 0)
    _, real, gen = firsts[0]
    s = real.shape[0]
    y, x = (reference.shape[0] - s) // 2, (reference.shape[1] - s) // 2
    assert not np.array_equal(reference[y : y + s, x : x + s], real)  # not the scene's image
    assert gen.shape == real.shape and not np.array_equal(gen, real)
