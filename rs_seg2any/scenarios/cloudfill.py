"""Cloud-gap filling: pixels under a cloud mask of a real image are generated from the layout.

The cloud mask is a raster on the image's grid (non-zero = cloud) or polygons; outside it the
image is copied bit for bit. The layout says what lies under the clouds.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from odc.geo.geobox import GeoBox

from ..errors import InputError, ScenarioError
from ..generators.base import Generator
from ..geoio import ensure_writable_dir
from ..grid import grid_like, same_grid
from ..progress import Progress
from ..runner import JobResult
from .common import GenOptions, Polygons, edit_job, grid_of, rasterize_polygons


def read_cloud_mask(clouds: str | Path | gpd.GeoDataFrame, grid: GeoBox) -> np.ndarray:
    """Bool mask on the image grid from a mask raster (same grid required) or polygons."""
    if isinstance(clouds, gpd.GeoDataFrame):
        return rasterize_polygons(clouds, grid)
    path = Path(clouds)
    if not path.is_file():
        raise InputError(f"cloud mask not found: {path}")
    if path.suffix.lower() not in {".tif", ".tiff", ".vrt", ".img"}:
        return rasterize_polygons(gpd.read_file(path), grid)
    if not same_grid(grid_like(path), grid):
        raise ScenarioError(f"cloud mask {path} is not on the grid of the image")
    with rasterio.open(path) as src:
        mask: np.ndarray = src.read(1) != 0
    return mask


def cloudfill(
    out: str | Path,
    generator: Generator,
    image: str | Path,
    clouds: str | Path | gpd.GeoDataFrame,
    polygons: Polygons,
    *,
    opts: GenOptions | None = None,
    progress: Progress | None = None,
) -> JobResult:
    """Fill the clouds of ``image`` from ``polygons``; ``out`` gets image.tif, label.tif, ..."""
    image = Path(image)
    grid = grid_of(image)
    mask = read_cloud_mask(clouds, grid)
    if not mask.any():
        raise ScenarioError("the cloud mask covers no pixel of the image")
    out = ensure_writable_dir(out)
    return edit_job(polygons, grid, image, mask, out, generator, opts or GenOptions(), progress)
