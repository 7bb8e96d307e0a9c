"""The generate job: a layout rendered into imagery by a generator, tile by tile, seamlessly.

Tiles are generated in row-major order. Each tile inpaints: the pixels of its window that
earlier tiles already generated (its top and left overlaps) are passed to the generator as
known pixels, so neighbouring tiles continue each other instead of being blended — no seams
and no ghosting. Every tile is saved in the job folder before the next starts, so an
interrupted job resumes, and because a tile's seed derives from the job seed and its
position, the result is byte-identical to an uninterrupted run.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.enums import ColorInterp
from rasterio.windows import Window
from scipy.ndimage import binary_dilation

from ..digest import file_sha256
from ..errors import GridError, InputError, ScenarioError
from ..generators.base import (
    DEFAULT_GUIDANCE,
    DEFAULT_STEPS,
    Generator,
    TileCondition,
    local_entities,
)
from ..geoio import GridRasterWriter, ensure_writable_dir, provenance_tags, write_preview_png
from ..grid import grid_like, same_grid
from ..layout import Layout
from ..limits import check, check_sampler, check_tiling
from ..params import DEFAULT_OVERLAP, DEFAULT_TILE_SIZE
from ..progress import NullProgress, Progress
from ..radiometry import Radiometry, analyse_base, mask_from_file
from ..raster import rasterize_window
from .jobdir import JobDir
from .runner import (
    GDAL_CACHE_BYTES,
    LAYOUT_FILES,
    JobResult,
    already_done,
    assemble_layer,
    estimate_job_bytes,
    finish_job,
    grid_params,
    layout_job_params,
    layout_pixel_bytes,
    run_tiles,
    space_for,
    write_entities_csv,
    write_layout_outputs,
    write_report,
)
from .tiling import Tile, TilePlan, assemble, feather_width, soft_edge


@dataclass(frozen=True)
class EditRegion:
    """Generate only inside ``mask`` over the image ``base``; every other pixel is copied.

    Both are GeoTIFFs on exactly the layout's grid (the scenarios load their layouts with
    ``like=base``). ``mask`` is one band, non-zero = generate. This is what floods, planning
    zones, change pairs and cloud filling share: a window of both is read per tile, so any
    area size works in constant memory. The base keeps its dtype, bands and nodata: its
    :class:`~rs_seg2any.radiometry.Radiometry` (analysed from the files when not given) says
    how the generator sees it; nodata pixels are never edited.
    """

    base: Path
    mask: Path
    radiometry: Radiometry | None = None

    def check_grid(self, grid: GeoBox) -> None:
        for what, path in (("base image", self.base), ("edit mask", self.mask)):
            if not Path(path).is_file():
                raise InputError(f"{what} not found: {path}")
            other = grid_like(path)
            if not same_grid(other, grid):
                raise ScenarioError(
                    f"the {what} {path} is not on the layout's grid ({other.shape[1]}x"
                    f"{other.shape[0]} px, {other.crs}) vs ({grid.shape[1]}x{grid.shape[0]} px, "
                    f"{grid.crs}); load the layout with like=<base image>"
                )

    def analysed(self) -> EditRegion:
        """This region with its base's radiometry (read once from the files if missing)."""
        if self.radiometry is not None:
            return self
        rad = analyse_base(Path(self.base), mask_from_file(Path(self.mask)))
        return EditRegion(self.base, self.mask, rad)

    def read(self, tile: Tile) -> tuple[np.ndarray, np.ndarray]:
        """``(h, w, count)`` native base pixels and the ``(h, w)`` bool mask of the pixels to
        generate: the edit mask minus every nodata pixel."""
        rad = self.radiometry
        if rad is None:
            raise RuntimeError("EditRegion.read needs analysed() first")
        window = Window.from_slices(tile.rows, tile.cols)
        with rasterio.open(self.base) as src:
            base = np.ascontiguousarray(src.read(window=window).transpose(1, 2, 0))
            valid = rad.valid(base)
            if rad.dataset_mask:
                valid &= src.read_masks(1, window=window) != 0
        with rasterio.open(self.mask) as src:
            mask = src.read(1, window=window) != 0
        return base, mask & valid


#: Every file a generate job writes into its folder (a replacement removes them all).
GENERATE_FILES = (*LAYOUT_FILES, "image.tif")
CAPTION_TEMPLATE = "top-down aerial photograph showing {classes}"


def default_caption(layout: Layout, labels: np.ndarray) -> str:
    """A global caption naming the classes of a tile, most frequent first."""
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    names = layout.taxonomy.names_by_id()
    ordered = [names[int(i)] for i in ids[np.argsort(-counts, kind="stable")] if int(i) in names]
    return CAPTION_TEMPLATE.format(classes=", ".join(ordered) if ordered else "open ground")


def generate_job_params(
    layout: Layout,
    generator: Generator,
    *,
    tile_size: int,
    overlap: int,
    steps: int,
    guidance: float,
    gamma: float,
    seed: int,
    caption: str | None,
) -> dict[str, Any]:
    params = layout_job_params(layout, tile_size)
    params.update(
        job="generate",
        generator=generator.describe(),
        overlap=overlap,
        steps=steps,
        guidance=guidance,
        gamma=gamma,
        seed=seed,
        caption=caption,
    )
    return params


class _TileRenderer:
    """Builds each tile's condition (maps, entity texts, known overlap) and generates it."""

    def __init__(
        self,
        layout: Layout,
        generator: Generator,
        plan: TilePlan,
        job: JobDir,
        *,
        steps: int,
        guidance: float,
        gamma: float,
        seed: int,
        caption: str | None,
        edit: EditRegion | None = None,
    ) -> None:
        self.layout, self.generator, self.plan, self.job = layout, generator, plan, job
        self.steps, self.guidance, self.gamma, self.seed = steps, guidance, gamma, seed
        self.caption = caption
        self.edit = edit
        self._order = {tile.index: i for i, tile in enumerate(plan.tiles)}

    def __call__(self, tile: Tile) -> dict[str, np.ndarray]:
        grid = self.layout.grid
        height, width = grid.shape
        halo = grid[
            max(tile.rows.start - 1, 0) : min(tile.rows.stop + 1, height),
            max(tile.cols.start - 1, 0) : min(tile.cols.stop + 1, width),
        ]
        features = self.layout.features(halo.boundingbox)
        maps = rasterize_window(self.layout, tile.rows, tile.cols, features=features)
        texts = dict(
            zip(
                features["instance_id"].astype(int).tolist(),
                features["description"].tolist(),
                strict=True,
            )
        )
        local, descriptions, _ids = local_entities(maps.instance, texts)
        caption = self.caption or default_caption(self.layout, maps.label)
        seed = self.plan.tile_seed(self.seed, tile)
        if self.edit is not None:
            image = self._edit_tile(tile, local, descriptions, caption, maps.label, seed)
        else:
            image = self._free_tile(tile, local, descriptions, caption, maps.label, seed)
        return {
            "image": np.ascontiguousarray(image.transpose(2, 0, 1)),
            "label": maps.label,
            "instance": maps.instance,
            "contour": maps.contour,
        }

    def _free_tile(
        self,
        tile: Tile,
        local: np.ndarray,
        descriptions: list[str],
        caption: str,
        labels: np.ndarray,
        seed: int,
    ) -> np.ndarray:
        """A tile of a plain generate job: earlier tiles' overlap is known, the rest generated."""
        known, edit = self._known(tile, self.generator.bands, np.dtype(np.uint8))
        if edit is not None and not edit.any():
            return known  # covered by earlier tiles: copied, bit for bit
        cond = TileCondition(
            instances=local,
            descriptions=descriptions,
            caption=caption,
            labels=labels,
            known=known if edit is not None else None,
            edit_mask=edit,
            feather=feather_width(self.plan.overlap) if edit is not None else 0,
            extra=self._extra(),
            gsd=self._gsd(),
        )
        image = self._generate_padded(cond, seed)
        if edit is not None:  # exact outside the edit and its feather, whatever the backend
            near = binary_dilation(edit, np.ones((3, 3), bool), iterations=cond.feather)
            firm = ~near if cond.feather else ~edit
            image = np.where(firm[..., None], known, image)
        return image

    def _edit_tile(
        self,
        tile: Tile,
        local: np.ndarray,
        descriptions: list[str],
        caption: str,
        labels: np.ndarray,
        seed: int,
    ) -> np.ndarray:
        """A tile over the base: native pixels kept bit for bit, the edit generated in display
        RGB and mapped back to the base's dtype and bands (:mod:`rs_seg2any.radiometry`)."""
        assert self.edit is not None and self.edit.radiometry is not None
        rad = self.edit.radiometry
        base, region = self.edit.read(tile)
        earlier, todo = self._known(tile, rad.count, np.dtype(rad.dtype))
        # earlier tiles' pixels where they exist, the base elsewhere
        current = base if todo is None else np.where(todo[..., None], base, earlier)
        edit = region if todo is None else region & todo
        if not edit.any():
            return current  # nothing to generate here: the tile is copied, bit for bit
        cond = TileCondition(
            instances=local,
            descriptions=descriptions,
            caption=caption,
            labels=labels,
            known=rad.to_display(current, self.generator.bands),
            edit_mask=edit,
            extra=self._extra(),
            gsd=self._gsd(),
        )
        generated = rad.from_display(self._generate_padded(cond, seed))
        return np.where(edit[..., None], generated, current)

    def _known(
        self, tile: Tile, bands: int, dtype: np.dtype[Any]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Pixels of this window already generated by earlier tiles, and the mask of those
        still to make (None when no earlier tile overlaps)."""
        h, w = tile.shape
        known = np.zeros((h, w, bands), dtype=dtype)
        done = np.zeros((h, w), dtype=bool)
        me = self._order[tile.index]
        for other in self.plan.tiles[:me]:
            r0, r1 = max(tile.rows.start, other.rows.start), min(tile.rows.stop, other.rows.stop)
            c0, c1 = max(tile.cols.start, other.cols.start), min(tile.cols.stop, other.cols.stop)
            if r0 >= r1 or c0 >= c1:
                continue
            image = self.job.load_tile(other)["image"]
            src = image[:, r0 - other.rows.start : r1 - other.rows.start,
                        c0 - other.cols.start : c1 - other.cols.start]  # fmt: skip
            dst = (slice(r0 - tile.rows.start, r1 - tile.rows.start),
                   slice(c0 - tile.cols.start, c1 - tile.cols.start))  # fmt: skip
            known[dst] = src.transpose(1, 2, 0)
            done[dst] = True
        if not done.any() or not self.generator.supports_inpainting:
            return known, None
        return known, ~(done & ~self._soft_edges(tile))

    def _soft_edges(self, tile: Tile) -> np.ndarray:
        """Pixels of this tile's core within SOFT_EDGE px of an earlier tile's inner window
        edge. A decoder renders the last pixels of a window with less context than the rest,
        so they are made again by the tile that owns them: the seam then falls where the
        earlier tile's pixels are at their best. Nobody else ever reads those pixels from the
        earlier tile: the mosaic and later tiles take them from their owner, this tile."""
        margin = soft_edge(self.plan.overlap)
        soft = np.zeros(tile.shape, dtype=bool)
        if margin <= 0:
            return soft
        height, width = self.layout.grid.shape
        r0, c0 = tile.rows.start, tile.cols.start
        core = (slice(tile.core_rows.start - r0, tile.core_rows.stop - r0),
                slice(tile.core_cols.start - c0, tile.core_cols.stop - c0))  # fmt: skip
        in_core = np.zeros(tile.shape, dtype=bool)
        in_core[core] = True
        me = self._order[tile.index]
        for other in self.plan.tiles[:me]:
            bands = []
            if other.rows.stop < height:
                bands.append((slice(other.rows.stop - margin, other.rows.stop), other.cols))
            if other.cols.stop < width:
                bands.append((other.rows, slice(other.cols.stop - margin, other.cols.stop)))
            for rows, cols in bands:
                a, b = max(rows.start, tile.rows.start), min(rows.stop, tile.rows.stop)
                c, d = max(cols.start, tile.cols.start), min(cols.stop, tile.cols.stop)
                if a < b and c < d:
                    soft[a - r0 : b - r0, c - c0 : d - c0] = True
        return soft & in_core

    def _gsd(self) -> float:
        """The grid's pixel size in metres (approximate for degrees), for scale-aware backends."""
        from ..grid import grid_gsd

        grid = self.layout.grid
        return grid_gsd(grid.affine, grid.crs, grid.shape[0])

    def _extra(self) -> dict[str, Any]:
        """Class names, taxonomy and class field (backends that map classes by name or
        rasterise reference polygons with the layout's own field)."""
        tax = self.layout.taxonomy
        return {"class_names": tax.names_by_id(), "taxonomy": tax,
                "class_field": self.layout.spec.class_field,
                "job_seed": self.seed}  # fmt: skip

    def _generate_padded(self, cond: TileCondition, seed: int) -> np.ndarray:
        """Pad a tile to the generator's multiple (grid edges of small grids), then crop."""
        h, w = cond.shape
        m = self.generator.tile_multiple
        ph, pw = -h % m, -w % m
        if ph or pw:
            pad2 = ((0, ph), (0, pw))
            cond = replace(
                cond,
                instances=np.pad(cond.instances, pad2, mode="edge"),
                labels=None if cond.labels is None else np.pad(cond.labels, pad2, mode="edge"),
                known=None if cond.known is None else np.pad(cond.known, (*pad2, (0, 0))),
                edit_mask=None
                if cond.edit_mask is None
                else np.pad(cond.edit_mask, pad2, constant_values=True),
                feather=cond.feather,
            )
        image = self.generator.generate(
            cond, steps=self.steps, guidance=self.guidance, gamma=self.gamma, seed=seed
        )
        return image[:h, :w]


def run_generate_job(
    layout: Layout,
    out_dir: str | Path,
    generator: Generator,
    *,
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    gamma: float = 1.0,
    seed: int = 0,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    caption: str | None = None,
    edit: EditRegion | None = None,
    restart: bool = False,
    keep_tiles: bool = False,
    progress: Progress | None = None,
) -> JobResult:
    """Render ``layout`` with ``generator`` into image.tif plus the layout maps, resumably.

    With ``edit``, only the pixels inside its mask are generated over its base image; all
    others are copied from the base exactly.
    """
    check_sampler(steps=steps, guidance=guidance, gamma=gamma, seed=seed)
    check("tile_size", tile_size)
    if tile_size % generator.tile_multiple:
        raise GridError(
            f"--tile-size {tile_size} must be a multiple of {generator.tile_multiple} px for "
            f"the {generator.name} generator"
        )
    check_tiling(tile_size, overlap)
    if edit is not None:
        if not generator.supports_inpainting:
            raise ScenarioError(f"the {generator.name} generator cannot inpaint an edit region")
        if generator.bands not in (3, 4):
            raise ScenarioError(f"the {generator.name} generator makes {generator.bands} bands; "
                                "editing an image needs an RGB generator")  # fmt: skip
        edit.check_grid(layout.grid)
        edit = edit.analysed()
    check_layout = getattr(generator, "check_layout", None)
    if check_layout is not None:  # e.g. LoRA adapters trained for other classes
        check_layout(layout)
    progress = progress or NullProgress()
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), ExitStack() as scope:
        out = ensure_writable_dir(out_dir)
        plan = TilePlan.for_grid(layout.grid, tile_size=tile_size, overlap=overlap)
        params = generate_job_params(
            layout, generator, tile_size=tile_size, overlap=overlap, steps=steps,
            guidance=guidance, gamma=gamma, seed=seed, caption=caption,
        )  # fmt: skip
        if edit is not None:
            params["edit"] = {"base": _file_key(edit.base), "mask": _content_key(edit.mask)}
            assert edit.radiometry is not None
            params["edit"]["radiometry"] = edit.radiometry.to_params()
        job = scope.enter_context(JobDir(out, params, restart=restart, planned=GENERATE_FILES))
        done = already_done(job, plan, out, progress)
        if done is not None:
            return done
        rad = edit.radiometry if edit is not None else None
        image_bytes = rad.count * np.dtype(rad.dtype).itemsize if rad else generator.bands
        need = estimate_job_bytes(plan, job, categorical_bytes=layout_pixel_bytes(layout),
                                  image_bands=image_bytes)  # fmt: skip
        scope.enter_context(space_for(out, need))  # lock held and space checked until the end
        render = _TileRenderer(
            layout, generator, plan, job, steps=steps, guidance=guidance, gamma=gamma,
            seed=seed, caption=caption, edit=edit,
        )  # fmt: skip
        resumed = run_tiles(plan, job, render, progress)
        tags = provenance_tags(
            inputs={"layer": str(layout.spec.path or "<GeoDataFrame>")},
            taxonomy=layout.taxonomy.name,
            seed=seed,
            extra={
                "layout": layout.describe(),
                "grid": grid_params(layout),
                "generator": generator.describe(),
                "steps": steps,
                "guidance": guidance,
                "gamma": gamma,
                "tile_size": tile_size,
                "overlap": overlap,
                "caption": caption,
            },
        )
        outputs = write_layout_outputs(plan, job, layout, out, tags, progress)
        if edit is not None and edit.radiometry is not None:
            outputs["image"] = _assemble_native(plan, job, out / "image.tif", edit.radiometry, tags)
            outputs["preview"] = _native_preview(
                outputs["image"], out / "preview.png", edit.radiometry
            )
        else:
            bands = generator.bands
            outputs["image"] = assemble_layer(
                plan,
                job,
                "image",
                out / "image.tif",
                dtype="uint8",
                nodata=None,
                bands=bands,
                finalize={
                    "categorical": False,
                    "band_descriptions": getattr(generator, "band_descriptions", None)
                    or (
                        ["red", "green", "blue", "alpha"][:bands]
                        if bands in (3, 4)
                        else [f"band {i + 1}" for i in range(bands)]
                    ),
                    "tags": tags,
                    "rgb": bands in (3, 4) and not getattr(generator, "band_descriptions", None),
                },
            )
            outputs["preview"] = _image_preview(outputs["image"], out / "preview.png")
        outputs["entities"] = write_entities_csv(layout, out / "entities.csv")
        outputs["report"] = write_report(out / "layout.json", layout)
        return finish_job(job, plan, out, outputs, resumed=resumed, keep_tiles=keep_tiles)


def _file_key(path: Path) -> dict[str, Any]:
    """Identity of an input file for the job parameters: a changed file is a different job."""
    st = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _content_key(path: Path) -> dict[str, Any]:
    """Identity of a file by its bytes: the scenarios rewrite the same edit mask on a rerun
    (a new mtime), which must still resume the job."""
    return {"path": str(Path(path).resolve()), "sha256": file_sha256(path)}


def _image_preview(image_path: Path, dest: Path, max_size: int = 1024) -> Path:
    from rasterio.enums import Resampling

    with rasterio.open(image_path) as src:
        scale = max(1.0, max(src.height, src.width) / max_size)
        shape = (max(1, round(src.height / scale)), max(1, round(src.width / scale)))
        data = src.read(out_shape=(src.count, *shape), resampling=Resampling.average)
    return write_preview_png(dest, data[:3] if data.shape[0] >= 3 else data[0])


class _NativeImageWriter(GridRasterWriter):
    """A GridRasterWriter that also carries the base image's colour interpretation (set
    before any pixel is written, so GeoTIFF stores it in its own tags)."""

    def __init__(self, dest: Path, plan: TilePlan, job: JobDir, rad: Radiometry) -> None:
        super().__init__(
            dest, plan.grid, dtype=rad.dtype, count=rad.count, nodata=rad.nodata,
            workdir=job.path,
        )  # fmt: skip
        self._ds.colorinterp = [ColorInterp[name] for name in rad.colorinterp]


def _assemble_native(
    plan: TilePlan, job: JobDir, dest: Path, rad: Radiometry, tags: dict[str, str]
) -> Path:
    """image.tif of an edit job: the base's dtype, bands, nodata and colour interpretation."""
    defaults = [rad.colorinterp[b] if rad.colorinterp[b] not in ("undefined", "gray")
                else f"band {b + 1}" for b in range(rad.count)]  # fmt: skip
    descriptions = [d or defaults[b] for b, d in enumerate(rad.descriptions)]
    with _NativeImageWriter(dest, plan, job, rad) as writer:

        def load(tile: Tile) -> np.ndarray:
            return job.load_tile(tile)["image"]

        def sink(stripe: np.ndarray, rows: slice, cols: slice) -> None:
            writer.write(stripe, rows, cols)

        assemble(plan, load, sink, mode="core", dtype=rad.dtype, bands=rad.count)
        return writer.finalize(categorical=False, band_descriptions=descriptions, tags=tags)


def _native_preview(image_path: Path, dest: Path, rad: Radiometry, max_size: int = 1024) -> Path:
    """The preview as the generator saw the image: display bands, same stretch, nodata black."""
    from rasterio.enums import Resampling

    with rasterio.open(image_path) as src:
        scale = max(1.0, max(src.height, src.width) / max_size)
        shape = (max(1, round(src.height / scale)), max(1, round(src.width / scale)))
        data = src.read(out_shape=(src.count, *shape), resampling=Resampling.nearest)
    native = data.transpose(1, 2, 0)
    display = rad.to_display(native)
    display[~rad.valid(native)] = 0
    return write_preview_png(dest, np.ascontiguousarray(display.transpose(2, 0, 1)))
