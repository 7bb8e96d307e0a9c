"""Flood scenario: flood water generated only inside a flood extent over a base image.

The extent is either polygons, or a DEM plus a water level, where only low ground that is
hydraulically connected to a seed location or to the layout's water class floods
(:mod:`rs_seg2any.scenarios.flood_extent`). Flooded pixels get a ``flood water`` class with a
depth-aware description; every pixel outside the extent is copied from the base image.

Memory: a polygon flood streams by window (the extent is rasterised per window into a scratch
GeoTIFF that GDAL polygonises line by line, the edit job reads windows), so its peak does not
grow with the area. A DEM flood needs whole-grid connectivity; it is computed tile by tile
(:mod:`rs_seg2any.scenarios.flood_tiled`: labels per tile joined by a union-find over tile
borders), so it holds one 1024-px tile, two label rows as wide as the grid and 8 bytes per
connected low piece of a tile: memory follows the terrain's number of basins, not its
pixels. A DEM on another grid (``--dem-resample``) is warped onto the whole grid at once
(4 bytes per pixel); warp it to the image grid beforehand (``gdalwarp``) for large areas.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window

from ..errors import InputError, ScenarioError
from ..generators.base import Generator
from ..geoio import GridRasterWriter, ensure_writable_dir
from ..grid import same_grid
from ..inputs import open_raster, raster_grid, read_vector
from ..job.runner import JobResult
from ..limits import check, check_number_list
from ..progress import Progress
from ..radiometry import MaskReader
from .common import (
    GenOptions,
    Polygons,
    append_polygons,
    edit_job,
    exclusive_folder,
    extend_taxonomy,
    scenario_base,
    scenario_grid,
    write_mask,
)
from .flood_extent import depth_class
from .flood_tiled import TiledFlood
from .masks import (
    PolygonMask,
    array_windows,
    as_bool,
    mask_any,
    polygons_from_raster,
    raster_mask,
    scratch_path,
    windows,
    write_scratch,
)
from .presets import load_preset

RESAMPLING = {"nearest": Resampling.nearest, "bilinear": Resampling.bilinear,
              "cubic": Resampling.cubic}  # fmt: skip


@dataclass(frozen=True)
class DemFlood:
    """A flood from terrain: ``dem`` GeoTIFF, water ``level`` (m, the DEM's datum), seeds."""

    dem: Path
    level: float
    seeds: Sequence[tuple[float, float]] = ()  # (x, y) in the grid's CRS
    resample: str | None = None  # None: the DEM must be on the grid; else a resampling name

    def __post_init__(self) -> None:
        check("level", self.level)
        for xy in self.seeds:
            check_number_list(",".join(str(v) for v in xy), "--seed-xy", 2)
        if self.resample is not None and self.resample not in RESAMPLING:
            raise InputError(
                f"--dem-resample {self.resample!r} is not one of {', '.join(RESAMPLING)}"
            )


@dataclass
class FloodResult:
    before: Path
    after: JobResult
    flood_mask: Path
    flood_depth: Path | None

    def outputs(self) -> dict[str, Path]:
        out = {"before": self.before, **self.after.outputs, "flood_mask": self.flood_mask}
        if self.flood_depth is not None:
            out["flood_depth"] = self.flood_depth
        return out


def read_dem_on_grid(path: Path, grid: GeoBox, resample: str | None) -> np.ndarray:
    """DEM heights on exactly ``grid`` (float32, NaN = nodata).

    A DEM on another grid is an error unless a resampling method is named: silently
    resampling terrain would move the flood edge without the user knowing.
    """
    with open_raster(path, "--dem") as src:
        if src.crs is None:
            raise InputError(f"--dem: '{path}' has no CRS; assign one (gdal_edit -a_srs) first")
        if same_grid(raster_grid(path, "--dem"), grid):
            dem = src.read(1, masked=True).astype(np.float32).filled(np.nan)
            return np.asarray(dem, dtype=np.float32)
        if resample is None:
            raise ScenarioError(
                f"DEM {path} is on another grid ({src.width}x{src.height} px, {src.crs}) than "
                f"the image ({grid.shape[1]}x{grid.shape[0]} px); pass --dem-resample "
                "bilinear (or nearest, cubic) to resample it onto the image grid"
            )
        if resample not in RESAMPLING:
            raise InputError(f"unknown DEM resampling '{resample}'; use {', '.join(RESAMPLING)}")
        out = np.full(tuple(grid.shape), np.nan, dtype=np.float32)
        reproject(
            source=rasterio.band(src, 1),
            destination=out,
            src_nodata=src.nodata,
            dst_transform=grid.affine,
            dst_crs=grid.crs.to_wkt(),  # type: ignore[union-attr]
            dst_nodata=np.nan,
            resampling=RESAMPLING[resample],
        )
        return out


def dem_windows(path: Path, grid: GeoBox, resample: str | None) -> MaskReader:
    """Windows of the DEM heights on ``grid`` (float32, NaN = nodata), checked as
    :func:`read_dem_on_grid` checks them. A DEM on the grid is read window by window; a
    resampled one is warped onto the whole grid once (4 bytes per pixel)."""
    with open_raster(path, "--dem") as src:
        if src.crs is None:
            raise InputError(f"--dem: '{path}' has no CRS; assign one (gdal_edit -a_srs) first")
        on_grid = same_grid(raster_grid(path, "--dem"), grid)
    if not on_grid:
        return array_windows(read_dem_on_grid(path, grid, resample))

    def read(window: Window) -> np.ndarray:
        with rasterio.open(path) as src:
            dem = src.read(1, window=window, masked=True).astype(np.float32).filled(np.nan)
        return np.asarray(dem, dtype=np.float32)

    return read


def seed_pixels(seeds: Sequence[tuple[float, float]], grid: GeoBox) -> list[tuple[int, int]]:
    """(row, col) of the seed points; a seed outside the image is an error."""
    pixels = []
    inv = ~grid.affine
    for x, y in seeds:
        col, row = inv * (x, y)
        r, c = int(np.floor(row)), int(np.floor(col))
        if not (0 <= r < grid.shape[0] and 0 <= c < grid.shape[1]):
            raise ScenarioError(f"flood seed ({x}, {y}) lies outside the image")
        pixels.append((r, c))
    return pixels


def _water_windows(
    polys: Polygons | None, grid: GeoBox, preset: dict[str, Any]
) -> MaskReader | None:
    """Windows of the layout's water classes (the flood's other source), or None."""
    if polys is None:
        return None
    names = (preset.get("water_classes") or {}).get(polys.taxonomy.name) or []
    ids = {polys.taxonomy.resolve(n) for n in names} - {None}
    if not ids:
        return None
    resolved = polys.frame[polys.class_field].map(polys.taxonomy.resolve)
    water = polys.frame[resolved.isin(ids)]
    return as_bool(PolygonMask(water, grid)) if len(water) else None


def _dem_extent(extent: DemFlood, grid: GeoBox, polygons: Polygons | None,
                cfg: dict[str, Any]) -> TiledFlood:  # fmt: skip
    return TiledFlood(
        dem_windows(extent.dem, grid, extent.resample), (grid.shape[0], grid.shape[1]),
        extent.level, seeds=seed_pixels(extent.seeds, grid),
        water=_water_windows(polygons, grid, cfg),
    )  # fmt: skip


@exclusive_folder
def flood(
    out: str | Path,
    generator: Generator,
    *,
    extent: gpd.GeoDataFrame | DemFlood | str | Path,
    base_image: str | Path | None = None,
    polygons: Polygons | None = None,
    grid: GeoBox | None = None,
    opts: GenOptions | None = None,
    preset: str | Path = "flood",
    progress: Progress | None = None,
) -> FloodResult:
    """Flood a base image (or one generated from ``polygons`` on ``grid``) inside ``extent``.

    Writes ``before/`` (when generated), ``after/`` (image, updated label mask, ...),
    ``flood_mask.tif`` and, for DEM floods, ``flood_depth.tif`` (metres, NaN outside).
    """
    opts = opts or GenOptions()
    cfg = load_preset(preset, needs=("class",))
    if isinstance(extent, str | Path):
        extent = read_vector(extent, "--flood-polygons")
    grid = scenario_grid(base_image, grid)
    out = ensure_writable_dir(out)
    thresholds = [float(t) for t in cfg.get("depth_thresholds_m", [0.5, 1.5])]
    texts = cfg.get("descriptions") or {}
    default_text = cfg["class"].get("description", cfg["class"]["name"])
    depth_names = ["shallow", "medium", "deep"] if len(thresholds) == 2 else None
    tiled: TiledFlood | None = None
    with ExitStack() as scratch:
        classes_path = scratch.enter_context(scratch_path(out, "flood_classes.tif"))
        if isinstance(extent, DemFlood):  # tile by tile with a union-find: module docstring
            tiled = _dem_extent(extent, grid, polygons, cfg)
            flooded = [False]

            def classes() -> Iterator[tuple[Window, np.ndarray]]:
                assert tiled is not None
                for window in tiled.windows():
                    mask, depth = tiled.window(window)
                    flooded[0] = flooded[0] or bool(mask.any())
                    yield window, depth_class(depth, mask, thresholds)

            write_scratch(classes_path, grid, classes())
            if not flooded[0]:
                raise tiled.empty_error()
            names = depth_names or [f"depth class {i}" for i in range(1, len(thresholds) + 2)]
            describe = {i + 1: str(texts.get(n, default_text)) for i, n in enumerate(names)}
        else:
            polygon_mask = PolygonMask(extent, grid)
            if not mask_any(polygon_mask, grid):
                raise ScenarioError("the flood polygons do not cover any pixel of the image")
            write_scratch(classes_path, grid, ((w, polygon_mask(w)) for w in windows(grid)))
            describe = {1: str(texts.get("polygon", default_text))}
        base = scenario_base(base_image, polygons, grid, out, generator, opts, progress)
        base_polys = polygons or Polygons.empty(grid.crs)
        taxonomy, flood_class = extend_taxonomy(base_polys.taxonomy, cfg["class"])
        geoms, vals = polygons_from_raster(classes_path, grid)
        frame = append_polygons(base_polys, geoms, flood_class.name, [describe[v] for v in vals])
        after = base_polys.with_frame(frame, taxonomy)
        mask = as_bool(raster_mask(classes_path))
        job = edit_job(after, grid, base, mask, out / "after", generator, opts, progress)
        tags = {"RS_SEG2ANY_SCENARIO": "flood"}
        mask_path = write_mask(out / "flood_mask.tif", mask, grid, tags, ("dry", "flooded"))
    depth_path = None
    if tiled is not None:
        depth_path = out / "flood_depth.tif"
        with GridRasterWriter(depth_path, grid, dtype="float32", nodata=float("nan")) as writer:
            for window in tiled.windows():
                flood_mask, depth = tiled.window(window)
                rows, cols = window.toslices()
                writer.write(np.where(flood_mask, depth, np.nan).astype(np.float32), rows, cols)
            writer.finalize(categorical=False, tags=tags, band_descriptions=["flood depth (m)"])
    return FloodResult(base, job, mask_path, depth_path)
