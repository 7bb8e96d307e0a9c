"""Small real inputs for the LoRA tests: a GeoTIFF with polygons on its grid."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

X0, Y0, PX = 465000.0, 5080000.0, 10.0
CLASSES = ["forest", "artificial surface", "grassland"]


def write_scene(
    folder: Path,
    *,
    size: int = 64,
    bands: int = 3,
    seed: int = 0,
    under_mask: int | None = None,
    mask: tuple[slice, slice] | None = None,
    name: str = "img.tif",
) -> Path:
    """A uint8 image (nodata 0) whose west half is green, with a red block in the east."""
    rng = np.random.default_rng(seed)
    img = 60 + rng.normal(0, 8, (bands, size, size))
    img[1, :, : size // 2] += 80
    img[0, size // 3 :, size // 2 :] += 90
    img = np.clip(img, 1, 255).astype(np.uint8)
    img[:, :3, :3] = 0  # a nodata corner
    if mask is not None and under_mask is not None:
        img[:, mask[0], mask[1]] = under_mask
    path = folder / name
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=bands,
        dtype="uint8",
        crs="EPSG:32633",
        transform=from_origin(X0, Y0, PX, PX),
        nodata=0,
    ) as dst:
        dst.write(img)
        for b in range(bands):
            dst.set_band_description(b + 1, ["red", "green", "blue", "nir"][b % 4])
    return path


def write_mask(folder: Path, mask: tuple[slice, slice], size: int = 64) -> Path:
    arr = np.zeros((size, size), np.uint8)
    arr[mask] = 1
    path = folder / "clouds.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype="uint8",
        crs="EPSG:32633",
        transform=from_origin(X0, Y0, PX, PX),
    ) as dst:
        dst.write(arr[None])
    return path


def write_labels(
    folder: Path, size: int = 64, *, crs: str = "EPSG:32633", classes: list[str] | None = None
) -> Path:
    """Three polygons over the image, written in ``crs`` (reprojected from its UTM grid)."""
    s = size * PX
    polys = [
        box(X0, Y0 - s, X0 + s / 2, Y0),
        box(X0 + s / 2, Y0 - s, X0 + s, Y0 - s / 3),
        box(X0 + s / 2, Y0 - s / 3, X0 + s, Y0),
    ]
    frame = gpd.GeoDataFrame({"cls": classes or CLASSES}, geometry=polys, crs="EPSG:32633")
    path = folder / "labels.gpkg"
    frame.to_crs(crs).to_file(path)
    return path
