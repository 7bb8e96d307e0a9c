"""Pseudo-labels of RGBN imagery: the rules put known covers in their classes, smoothing keeps
roads and drops specks, and the written raster and polygons are what the generator reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from rs_seg2any.errors import InputError
from rs_seg2any.quality.pseudo_labels import (
    BARE,
    BUILT,
    CROPLAND,
    GRASSLAND,
    WATER,
    PseudoLabelRules,
    label_image,
    majority_filter,
    otsu,
    pseudo_labels,
)

# red, green, blue, NIR of covers as NAIP records them (uint8)
LAKE, CROP, GRASS, SOIL, ROAD = (
    (40, 60, 55, 12),
    (45, 95, 45, 200),
    (95, 110, 80, 150),
    (170, 150, 130, 160),
    (235, 230, 225, 215),
)
TRANSFORM = Affine(5.0, 0, 485900.0, 0, -5.0, 5209245.0)


def scene() -> tuple[np.ndarray, np.ndarray]:
    """A 96 x 128 farm: crop field, grass, a tilled field, a lake, a 2-px road, and a 2 x 2
    speck of soil in the crop field (under the minimum mapping unit)."""
    truth = np.full((96, 128), GRASSLAND, np.uint8)
    truth[:48, :64] = CROPLAND
    truth[48:, 64:] = BARE
    yy, xx = np.mgrid[:96, :128]
    truth[(yy - 30) ** 2 + (xx - 96) ** 2 < 15**2] = WATER
    truth[70:72, :] = BUILT
    colours = {GRASSLAND: GRASS, CROPLAND: CROP, BARE: SOIL, WATER: LAKE, BUILT: ROAD}
    img = np.zeros((96, 128, 4), np.uint8)
    for c, v in colours.items():
        img[truth == c] = v
    rng = np.random.default_rng(0)
    img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    img[20:22, 20:22] = SOIL
    return img, truth


def test_rules_find_each_cover_and_smoothing_keeps_roads_drops_specks() -> None:
    img, truth = scene()
    lab = pseudo_labels(img)
    assert set(np.unique(lab)) == {WATER, CROPLAND, GRASSLAND, BARE, BUILT}
    assert (lab == truth).mean() > 0.97
    assert (lab[70:72, 5:-5] == BUILT).mean() > 0.9  # the road survives the majority filter
    assert (lab[20:22, 20:22] == CROPLAND).all()  # the speck is sieved away
    unsmoothed = pseudo_labels(img, PseudoLabelRules(majority=1, min_area=0))
    assert (unsmoothed[20:22, 20:22] == BARE).all()


def test_thresholds_follow_the_image() -> None:
    """A darker date (all bands x 0.7) keeps its classes: the splits come from the image."""
    img, truth = scene()
    dim = (img.astype(np.float32) * 0.7).astype(np.uint8)
    assert (pseudo_labels(dim) == truth).mean() > 0.95
    v = np.concatenate([np.full(100, 0.1), np.full(100, 0.6)])
    assert 0.1 <= otsu(v) < 0.6


def test_majority_filter_ties_keep_own_class() -> None:
    lab = np.array([[1, 1, 2], [1, 2, 2], [3, 3, 3]], np.uint8)
    out = majority_filter(lab, 3)
    assert out.dtype == np.uint8 and out.shape == lab.shape
    assert out[1, 1] in (2, 3) and out[0, 0] == 1
    assert (majority_filter(lab, 1) == lab).all()


def test_written_raster_and_polygons_round_trip(tmp_path: Path) -> None:
    from odc.geo.geobox import GeoBox

    from rs_seg2any.generators.exemplar.reference import Reference
    from rs_seg2any.layout import load_layout
    from rs_seg2any.raster import rasterize_window

    img, _ = scene()
    src = tmp_path / "naip.tif"
    with rasterio.open(
        src,
        "w",
        driver="GTiff",
        width=128,
        height=96,
        count=4,
        dtype="uint8",
        crs="EPSG:26914",
        transform=TRANSFORM,
    ) as dst:
        dst.write(img.transpose(2, 0, 1))
    lab = label_image(src, tmp_path / "labels.tif", tmp_path / "labels.gpkg")
    with rasterio.open(tmp_path / "labels.tif") as r:
        assert r.crs.to_epsg() == 26914 and r.transform == TRANSFORM and r.nodata == 0
        assert (r.read(1) == lab).all()
    ref = Reference.open(src, tmp_path / "labels.tif")
    assert ref.labels is not None and (ref.labels == lab).all()
    grid = GeoBox((96, 128), TRANSFORM, "EPSG:26914")
    layout = load_layout(tmp_path / "labels.gpkg", "class", taxonomy="worldcover", grid=grid)
    back = rasterize_window(layout, slice(0, 96), slice(0, 128)).label
    assert (back == lab).mean() > 0.99
    assert not list(tmp_path.glob(".tmp-*"))


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="near-infrared"):
        pseudo_labels(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="odd"):
        PseudoLabelRules(majority=4)
    rgb = tmp_path / "rgb.tif"
    with rasterio.open(
        rgb,
        "w",
        driver="GTiff",
        width=8,
        height=8,
        count=3,
        dtype="uint8",
        crs="EPSG:26914",
        transform=TRANSFORM,
    ) as dst:
        dst.write(np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(InputError, match="3 band"):
        label_image(rgb, tmp_path / "l.tif")
    assert not (tmp_path / "l.tif").exists()
