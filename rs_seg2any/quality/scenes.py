"""Evaluation scenes: a real image with its label raster, and rendering a generator on them.

A generator is scored on whole multi-tile scenes rendered by the product's own generate job,
so the seams, overlaps and tile seeds it is judged on are the ones users get. Label rasters
without polygons (a data set's mask PNGs, a label GeoTIFF) become a layout by vectorising
each class's connected areas into polygons on the scene's grid; rasterising that layout gives
the label raster back exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from numpy.typing import NDArray
from odc.geo.geobox import GeoBox

from ..errors import LayoutError
from ..generators.base import DEFAULT_GUIDANCE, DEFAULT_STEPS, Generator
from ..layout import Layout
from ..taxonomy import Taxonomy

U8 = NDArray[np.uint8]
LOCAL_CRS = "EPSG:32640"
"""CRS given to scenes that have none (UTM 40N, Dubai's zone): only the pixel size matters to
the generator, never the place."""


def local_grid(shape: tuple[int, int], resolution: float = 0.5) -> GeoBox:
    """A north-up grid of ``shape`` pixels at ``resolution`` metres for an image with none."""
    h, w = shape
    return GeoBox((h, w), Affine(resolution, 0, 0.0, 0, -resolution, h * resolution), LOCAL_CRS)


def layout_from_labels(
    labels: NDArray[np.integer], taxonomy: Taxonomy, grid: GeoBox | None = None
) -> Layout:
    """The layout whose rasterisation on ``grid`` is ``labels``: one polygon per connected
    area of each class (id 0 = no polygon). Raises LayoutError for ids the taxonomy lacks."""
    import geopandas as gpd
    from rasterio import features
    from shapely.geometry import shape

    from ..layout import load_layout

    lab = np.ascontiguousarray(labels, dtype=np.uint8)
    grid = grid or local_grid(lab.shape)
    names = taxonomy.names_by_id()
    unknown = sorted(int(c) for c in np.unique(lab) if c and int(c) not in names)
    if unknown:
        raise LayoutError(
            f"label ids {unknown} are not classes of taxonomy '{taxonomy.name}' (ids "
            f"{sorted(names)}); pass the taxonomy the labels were made with"
        )
    rows = [
        (names[int(v)], shape(geom))
        for geom, v in features.shapes(lab, mask=lab > 0, transform=grid.affine)
    ]
    if not rows:
        raise LayoutError("the label raster has no class pixels (all 0): nothing to render")
    frame = gpd.GeoDataFrame(
        {"class": [r[0] for r in rows]}, geometry=[r[1] for r in rows], crs=str(grid.crs)
    )
    return load_layout(frame, "class", taxonomy=taxonomy, grid=grid)


@dataclass(frozen=True)
class RenderSettings:
    """How a generator renders evaluation scenes (the generate job's own knobs)."""

    tile_size: int = 256
    overlap: int = 64
    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    gamma: float = 1.0
    seed: int = 0


def render(
    generator: Generator,
    layouts: Sequence[Layout],
    work: Path,
    settings: RenderSettings | None = None,
) -> list[U8]:
    """Run the generate job on every layout (job folders under ``work``, resumable) and
    return the images, ``(H, W, bands)`` uint8."""
    import rasterio

    from ..generate_job import run_generate_job

    s = settings or RenderSettings()
    images: list[U8] = []
    for i, layout in enumerate(layouts):
        result = run_generate_job(
            layout, Path(work) / f"scene_{i:03d}", generator, steps=s.steps,
            guidance=s.guidance, gamma=s.gamma, seed=s.seed + i, tile_size=s.tile_size,
            overlap=s.overlap,
        )  # fmt: skip
        with rasterio.open(result.outputs["image"]) as src:
            images.append(np.ascontiguousarray(src.read().transpose(1, 2, 0)))
    return images
