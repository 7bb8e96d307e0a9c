"""Jobs: a layout rendered tile by tile into a resumable job folder, then into GeoTIFFs.

A job is (layout, grid, options) -> files in one output folder. Every finished tile is saved
atomically in ``<out>/.rs_seg2any/tiles``; an interrupted job resumes where it stopped when the
same command is run again, and produces byte-identical outputs. Outputs are assembled by
streaming tile stripes, so memory depends on the tile size and grid width, not on the area.

The job folder is locked for the whole run (see :mod:`rs_seg2any.job.jobdir`), its free space is
checked against an estimate of tiles plus outputs before any work, and a write that fails
anyway (a full disk, a quota) ends in one OutputError line naming the disk and the space.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from .. import __version__
from ..atomic import atomic_open, ensure_writable_dir, write_json
from ..diskspace import job_space, require_free_space
from ..geoio import (
    GridRasterWriter,
    label_mask_style,
    provenance_tags,
    write_preview_png,
    write_qml,
)
from ..layout import Layout
from ..params import DEFAULT_LAYOUT_TILE
from ..progress import NullProgress, Progress
from ..raster import instance_dtype, rasterize_window
from .jobdir import JobDir
from .tiling import Tile, TilePlan, assemble

LAYOUT_OUTPUTS = ("label.tif", "instance.tif", "contour.tif")
#: Every file a layout job writes into its folder (a replacement removes them all).
LAYOUT_FILES = (*LAYOUT_OUTPUTS, "label.qml", "preview.png", "entities.csv", "layout.json")
#: Assumed compression of class rasters (tiles and COGs) and of imagery for the free-space
#: estimate. Both are on the optimistic side (the demo town's class layers deflate 28-100x,
#: aerial imagery about 1.3-2x), so the check only refuses a job that surely cannot fit.
CATEGORICAL_RATIO = 32.0
IMAGE_RATIO = 2.0
OVERVIEW_FACTOR = 4 / 3
SMALL_FILES_BYTES = 64 * 1024  # job.json, report, CSV, QML, preview
GDAL_CACHE_BYTES = 64 * 1024 * 1024
"""GDAL's block cache during jobs. Its default (5 % of RAM) fills up while COGs and their
overviews are written, so peak memory would grow with the area; tiles are written in whole
blocks, so a small cache costs nothing."""


@dataclass(frozen=True)
class JobResult:
    """Where the outputs of a finished job are."""

    out_dir: Path
    outputs: dict[str, Path] = field(default_factory=dict)
    tiles_total: int = 0
    tiles_resumed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "outputs": {k: str(v) for k, v in self.outputs.items()},
            "tiles_total": self.tiles_total,
            "tiles_resumed": self.tiles_resumed,
        }


def grid_params(layout: Layout) -> dict[str, Any]:
    """The grid as plain values (for job identity and provenance)."""
    grid = layout.grid
    return {
        "crs": str(grid.crs),
        "shape": [int(grid.shape[0]), int(grid.shape[1])],
        "transform": [float(v) for v in tuple(grid.affine)[:6]],
    }


def _input_fingerprint(layout: Layout) -> dict[str, Any]:
    """Size and mtime of the input file: a resumed job must read the same polygons."""
    path = layout.spec.path
    if path is None or not path.exists():
        return {}
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def layout_job_params(layout: Layout, tile_size: int) -> dict[str, Any]:
    return {
        "job": "layout",
        "version": __version__,
        "layout": layout.describe(),
        "input": _input_fingerprint(layout),
        "taxonomy": layout.taxonomy.to_dict(),
        "grid": grid_params(layout),
        "tile_size": tile_size,
    }


def estimate_job_bytes(
    plan: TilePlan, job: JobDir, *, categorical_bytes: int, image_bands: int = 0
) -> int:
    """Disk space a job still needs: pending tiles, the outputs with overviews, and the
    largest intermediate GeoTIFF, compressed by CATEGORICAL_RATIO and IMAGE_RATIO: a lower
    estimate, so a job refused by it would surely fill the disk."""
    per_pixel = categorical_bytes / CATEGORICAL_RATIO + image_bands / IMAGE_RATIO
    pending = sum(t.shape[0] * t.shape[1] for t in job.pending(plan))
    height, width = plan.grid.shape
    area = int(height) * int(width)
    largest = area * max(image_bands / IMAGE_RATIO, categorical_bytes / CATEGORICAL_RATIO)
    return int(pending * per_pixel + area * per_pixel * OVERVIEW_FACTOR + largest) + (
        SMALL_FILES_BYTES
    )


@contextmanager
def space_for(out: Path, need: int) -> Iterator[None]:
    """Refuse a job that cannot fit before any work; inside, disk-full errors quote ``need``."""
    require_free_space(out, need)
    with job_space(need):
        yield


def run_tiles(
    plan: TilePlan,
    job: JobDir,
    render: Callable[[Tile], Mapping[str, np.ndarray]],
    progress: Progress,
) -> int:
    """Render every pending tile into the job folder on the current backend (local, or a
    Dask cluster: :mod:`rs_seg2any.job.execute`); returns how many were already done."""
    from .execute import execute_tiles

    return execute_tiles(plan, job, render, progress)


def already_done(job: JobDir, plan: TilePlan, out: Path, progress: Progress) -> JobResult | None:
    """The result of a finished job whose outputs all still have the bytes the manifest
    recorded: a rerun does nothing. None when there is work to do."""
    if not job.outputs_intact():
        return None
    progress.message(f"{out} already holds this finished job (outputs verified); nothing to do")
    outputs = {k: out / str(v["path"]) for k, v in job.manifest.outputs.items()}
    n = len(plan.tiles)
    return JobResult(out, outputs, tiles_total=n, tiles_resumed=n)


def assemble_layer(
    plan: TilePlan,
    job: JobDir,
    name: str,
    dest: Path,
    *,
    dtype: str,
    nodata: int | None,
    finalize: Mapping[str, Any],
    bands: int = 1,
) -> Path:
    writer = GridRasterWriter(
        dest, plan.grid, dtype=dtype, count=bands, nodata=nodata, workdir=job.path
    )
    with writer:

        def load(tile: Tile) -> np.ndarray:
            return job.load_tile(tile)[name]

        def sink(stripe: np.ndarray, rows: slice, cols: slice) -> None:
            writer.write(stripe, rows, cols)

        assemble(plan, load, sink, mode="core", dtype=dtype, bands=bands)
        return writer.finalize(**finalize)


def write_entities_csv(layout: Layout, dest: Path) -> Path:
    """One row per entity: instance id -> class, description, source feature and part.

    Streamed batch by batch, so the table costs no memory proportional to the layer.
    """
    names = layout.taxonomy.names_by_id()
    with atomic_open(dest) as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["instance_id", "class_id", "class_name", "description", "source_fid", "part"])
        for batch in layout.iter_batches():
            for iid, cid, desc, fid, part in zip(
                batch["instance_id"].tolist(),
                batch["class_id"].tolist(),
                batch["description"].tolist(),
                batch["source_fid"].tolist(),
                batch["part"].tolist(),
                strict=True,
            ):
                out.writerow([iid, cid, names.get(cid, ""), desc, fid, part])
    return dest


def run_layout_job(
    layout: Layout,
    out_dir: str | Path,
    *,
    tile_size: int = DEFAULT_LAYOUT_TILE,
    restart: bool = False,
    keep_tiles: bool = False,
    entities_table: bool = True,
    progress: Progress | None = None,
) -> JobResult:
    """Write label.tif, instance.tif and contour.tif (+ style, preview, entity table) to out_dir.

    Resumable: an interrupted run keeps its finished tiles; running it again with the same
    inputs continues and gives byte-identical files. Different inputs in the same folder raise
    JobError (use another folder or ``restart=True``).
    """
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        return _run_layout_job(
            layout,
            Path(out_dir),
            tile_size=tile_size,
            restart=restart,
            keep_tiles=keep_tiles,
            entities_table=entities_table,
            progress=progress or NullProgress(),
        )


def _run_layout_job(
    layout: Layout,
    out_dir: Path,
    *,
    tile_size: int,
    restart: bool,
    keep_tiles: bool,
    entities_table: bool,
    progress: Progress,
) -> JobResult:
    out = ensure_writable_dir(out_dir)
    plan = TilePlan.for_grid(layout.grid, tile_size=tile_size, overlap=0)
    params = layout_job_params(layout, tile_size)
    with JobDir(out, params, restart=restart, planned=LAYOUT_FILES) as job:
        done = already_done(job, plan, out, progress)
        if done is not None:
            return done
        need = estimate_job_bytes(plan, job, categorical_bytes=layout_pixel_bytes(layout))
        with space_for(out, need):
            return _layout_outputs(layout, out, plan, job, keep_tiles, entities_table, progress)


def layout_pixel_bytes(layout: Layout) -> int:
    """Bytes per pixel of the class layers: label, instance and contour."""
    return 2 + int(np.dtype(instance_dtype(layout.entity_count)).itemsize)


def _layout_outputs(
    layout: Layout,
    out: Path,
    plan: TilePlan,
    job: JobDir,
    keep_tiles: bool,
    entities_table: bool,
    progress: Progress,
) -> JobResult:
    def render(tile: Tile) -> dict[str, np.ndarray]:
        maps = rasterize_window(layout, tile.rows, tile.cols)
        return {"label": maps.label, "instance": maps.instance, "contour": maps.contour}

    resumed = run_tiles(plan, job, render, progress)

    tags = provenance_tags(
        inputs={"layer": str(layout.spec.path or "<GeoDataFrame>")},
        taxonomy=layout.taxonomy.name,
        extra={"layout": layout.describe(), "grid": grid_params(layout)},
    )
    outputs = write_layout_outputs(plan, job, layout, out, tags, progress)
    outputs["preview"] = label_preview(outputs["label"], out / "preview.png", layout)
    if entities_table:
        outputs["entities"] = write_entities_csv(layout, out / "entities.csv")
    outputs["report"] = write_report(out / "layout.json", layout)
    return finish_job(job, plan, out, outputs, resumed=resumed, keep_tiles=keep_tiles)


def finish_job(
    job: JobDir,
    plan: TilePlan,
    out: Path,
    outputs: dict[str, Path],
    *,
    resumed: int,
    keep_tiles: bool,
) -> JobResult:
    """Record the outputs as complete, drop the tile cache unless kept, and report."""
    job.mark_complete({k: str(v) for k, v in outputs.items()})
    if not keep_tiles:
        job.clean_tiles()
    return JobResult(out, outputs, tiles_total=len(plan.tiles), tiles_resumed=resumed)


def write_layout_outputs(
    plan: TilePlan,
    job: JobDir,
    layout: Layout,
    out: Path,
    tags: Mapping[str, str],
    progress: Progress,
) -> dict[str, Path]:
    """label.tif, instance.tif, contour.tif and label.qml from the tiles of a finished job."""
    inst_dtype = str(instance_dtype(layout.entity_count))
    progress.stage("write GeoTIFFs", 3)
    outputs: dict[str, Path] = {}
    outputs["label"] = assemble_layer(
        plan,
        job,
        "label",
        out / "label.tif",
        dtype="uint8",
        nodata=0,
        finalize={**label_mask_style(layout.taxonomy), "tags": tags},
    )
    progress.advance(1)
    outputs["instance"] = assemble_layer(
        plan,
        job,
        "instance",
        out / "instance.tif",
        dtype=inst_dtype,
        nodata=0,
        finalize={"categorical": True, "band_descriptions": ["instance"], "tags": tags},
    )
    progress.advance(1)
    outputs["contour"] = assemble_layer(
        plan,
        job,
        "contour",
        out / "contour.tif",
        dtype="uint8",
        nodata=None,
        finalize={
            "categorical": True,
            "colormap": {0: (0, 0, 0, 255), 1: (255, 255, 255, 255)},
            "band_descriptions": ["contour"],
            "tags": tags,
        },
    )
    progress.advance(1)
    outputs["style"] = write_qml(out / "label.qml", layout.taxonomy)
    return outputs


def label_preview(label_path: Path, dest: Path, layout: Layout, max_size: int = 1024) -> Path:
    """Preview from the label COG's overviews: reads at most ~max_size^2 pixels."""
    from rasterio.enums import Resampling

    with rasterio.open(label_path) as src:
        scale = max(src.height, src.width) / max_size
        shape = (
            (max(1, round(src.height / scale)), max(1, round(src.width / scale)))
            if scale > 1
            else (src.height, src.width)
        )
        labels = src.read(1, out_shape=shape, resampling=Resampling.nearest)
    return write_preview_png(dest, labels, taxonomy=layout.taxonomy, max_size=max_size)


def write_report(dest: Path, layout: Layout) -> Path:
    payload = {
        "version": __version__,
        "layout": layout.describe(),
        "report": layout.report.to_dict(),
        "grid": grid_params(layout),
    }
    return write_json(dest, payload)
