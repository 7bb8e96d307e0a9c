"""Cloud-gap filling: pixels under a cloud mask of a real image are generated from the layout.

The cloud mask is a raster on the image's grid (non-zero = cloud) or polygons; outside it the
image is copied bit for bit. The layout says what lies under the clouds.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
from odc.geo.geobox import GeoBox
from rasterio.windows import Window

from ..errors import ScenarioError
from ..generators.base import Generator
from ..geoio import ensure_writable_dir
from ..grid import same_grid
from ..inputs import RASTER_SUFFIXES, open_raster, raster_grid, read_vector
from ..job.runner import JobResult
from ..progress import Progress
from ..radiometry import MaskReader
from .common import GenOptions, Polygons, edit_job, exclusive_folder, grid_of
from .masks import PolygonMask, mask_any, raster_mask


def read_cloud_mask(clouds: str | Path | gpd.GeoDataFrame, grid: GeoBox) -> np.ndarray:
    """Bool mask on the image grid from a mask raster (same grid required) or polygons, as a
    whole-grid array (for small areas and notebooks; the scenario reads windows)."""
    height, width = grid.shape
    return np.asarray(cloud_windows(clouds, grid)(Window(0, 0, width, height)), dtype=bool)


def cloud_windows(clouds: str | Path | gpd.GeoDataFrame, grid: GeoBox) -> MaskReader:
    """Windows of the cloud mask on the image grid (non-zero = cloud) from a mask raster
    (same grid required) or polygons; nothing is held for the whole grid."""
    if isinstance(clouds, gpd.GeoDataFrame):
        return PolygonMask(clouds, grid)
    path = Path(clouds)
    if path.suffix.lower() not in RASTER_SUFFIXES:
        return PolygonMask(read_vector(path, "--clouds"), grid)
    if not same_grid(raster_grid(path, "--clouds"), grid):
        raise ScenarioError(f"cloud mask {path} is not on the grid of the image")
    with open_raster(path, "--clouds"):
        pass  # readable, or a typed error now rather than in the middle of the job
    return raster_mask(path)


@exclusive_folder
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
    mask = cloud_windows(clouds, grid)
    if not mask_any(mask, grid):
        raise ScenarioError("the cloud mask covers no pixel of the image")
    out = ensure_writable_dir(out)
    return edit_job(polygons, grid, image, mask, out, generator, opts or GenOptions(), progress)
