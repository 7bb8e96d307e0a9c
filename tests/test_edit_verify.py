"""Edits verified as segmentations: the recovered edit mask of every edit scenario.

The critics in :mod:`rs_seg2any.critics.edit` on hand-made edits (exact inpainting, lossy
drift), and the ``recovered_edit_mask.tif`` / ``edit_check.json`` that flood, plan, change
and cloudfill write next to their outputs (real tiny model code, small random weights).
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from shapely.geometry import box

from rs_seg2any.critics.edit import check_edit, iou, recovered_mask

CRS = "EPSG:32640"
X0, Y0, N = 300_000.0, 2_780_000.0, 96
GRID = GeoBox.from_bbox((X0, Y0, X0 + N, Y0 + N), CRS, resolution=1.0)


def pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    src = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), bool)
    mask[10:30, 20:50] = True
    mask[40:60, 5:15] = True
    edited = src.copy()
    edited[mask] = rng.integers(0, 256, (int(mask.sum()), 3), dtype=np.uint8)
    return src, edited, mask


def test_exact_edit_recovered_with_no_leakage() -> None:
    src, edited, mask = pair()
    check, rec = check_edit(src, edited, mask)
    assert check.leaked_pixels == 0 and check.max_change_outside == 0.0
    assert check.iou > 0.97 and iou(rec, mask) == check.iou
    assert not recovered_mask(src, src).any()  # no edit, nothing recovered


def test_lossy_drift_is_leakage_but_not_part_of_the_edit() -> None:
    src, edited, mask = pair(1)
    rng = np.random.default_rng(2)
    drift = rng.integers(-2, 3, edited.shape)
    lossy = np.clip(edited.astype(int) + drift * ~mask[..., None], 0, 255).astype(np.uint8)
    check, _rec = check_edit(src, lossy, mask)
    assert check.leakage > 0.5 and check.max_change_outside <= 2
    assert check.iou > 0.95  # the drift stays below the threshold


def test_misplaced_edit_scores_low() -> None:
    src, edited, mask = pair(3)
    check, _ = check_edit(src, edited, np.roll(mask, 20, axis=1))
    assert check.iou < 0.5 and check.leaked_pixels > 0


# --- the scenarios ---------------------------------------------------------------------------

torch = pytest.importorskip("torch")

from rs_seg2any.generators.registry import load_generator  # noqa: E402
from rs_seg2any.geoio import write_cog  # noqa: E402
from rs_seg2any.scenarios.change import change_pairs  # noqa: E402
from rs_seg2any.scenarios.cloudfill import cloudfill  # noqa: E402
from rs_seg2any.scenarios.common import GenOptions, Polygons  # noqa: E402
from rs_seg2any.scenarios.flood import flood  # noqa: E402
from rs_seg2any.scenarios.planning import plan  # noqa: E402

OPTS = GenOptions(steps=2, tile_size=64, overlap=16, seed=3)


@pytest.fixture(scope="module")
def gen(tiny_random_weights: Path) -> object:
    return load_generator("tiny", tiny_random_weights, threads=1)


@pytest.fixture
def town() -> Polygons:
    frame = gpd.GeoDataFrame(
        {"cls": ["water", "land", "building"], "desc": ["a river", "bare sand", "a flat roof"]},
        geometry=[box(X0, Y0, X0 + 16, Y0 + N), box(X0 + 16, Y0, X0 + N, Y0 + N),
                  box(X0 + 50, Y0 + 50, X0 + 70, Y0 + 70)],
        crs=CRS,
    )  # fmt: skip
    return Polygons.read(frame, "cls", description_field="desc", taxonomy="dubai_aerial")


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    img = np.random.default_rng(0).integers(0, 256, size=(3, N, N), dtype=np.uint8)
    return write_cog(tmp_path / "photo.tif", img, GRID, categorical=False)


def verified(outputs: dict[str, Path], min_iou: float = 0.9) -> dict[str, object]:
    check = json.loads(outputs["edit_check"].read_text())
    with rasterio.open(outputs["recovered_edit_mask"]) as src:
        rec = src.read(1).astype(bool)
        assert src.crs.to_epsg() == 32640 and src.shape == (N, N)
    folder = outputs["edit_check"].parent
    with rasterio.open(folder / check["intended_mask"]) as src:
        want = src.read(1).astype(bool)
    assert check["recovered_pixels"] == int(rec.sum())
    assert check["iou"] == pytest.approx(iou(rec, want))
    assert check["leaked_pixels"] == 0  # scenario edits are exact outside the mask
    assert check["iou"] >= min_iou
    return check


def test_flood_plan_change_cloudfill_write_their_recovered_masks(
    tmp_path: Path, gen: object, photo: Path, town: Polygons
) -> None:
    zone = gpd.GeoDataFrame(geometry=[box(X0 + 10, Y0 + 5, X0 + 40, Y0 + 60)], crs=CRS)
    res = flood(tmp_path / "f", gen, extent=zone, base_image=photo, polygons=town, opts=OPTS)  # type: ignore[arg-type]
    verified(res.after.outputs)
    park = box(X0 + 60, Y0 + 20, X0 + 90, Y0 + 40)
    zones = gpd.GeoDataFrame(
        {"what": ["a park with a lake"], "cls": ["vegetation"]}, geometry=[park], crs=CRS
    )
    res_p = plan(tmp_path / "p", gen, zones, description_field="what", zone_class_field="cls",  # type: ignore[arg-type]
                 base_image=photo, polygons=town, opts=OPTS)  # fmt: skip
    verified(res_p.after.outputs)
    frame = town.frame.copy()
    frame.loc[2, "cls"] = "land"  # a building demolished
    res_c = change_pairs(tmp_path / "c", gen, town, GRID, after=town.with_frame(frame), opts=OPTS)  # type: ignore[arg-type]
    verified(res_c.pairs[0].t2.outputs, min_iou=0.5)  # generated over generated: closer colours
    clouds = np.zeros((1, N, N), dtype=np.uint8)
    clouds[0, 10:40, 30:70] = 1
    cpath = write_cog(tmp_path / "clouds.tif", clouds, GRID, categorical=True)
    res_cf = cloudfill(tmp_path / "cf", gen, photo, cpath, town, opts=OPTS)  # type: ignore[arg-type]
    verified(res_cf.outputs)
