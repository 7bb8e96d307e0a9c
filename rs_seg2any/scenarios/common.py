"""What every scenario shares: its inputs, the base image, the edit mask and the edit job.

A scenario is a short recipe: derive an *after* layer (polygons) and an *edit mask* from the
inputs, then run the generate job with an :class:`~rs_seg2any.job.generate_job.EditRegion` over
the *before* image, so only masked pixels change. All rasters land on one grid.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.features
from odc.geo.geobox import GeoBox

from ..errors import InputError, LayoutError, ScenarioError
from ..generators.base import DEFAULT_GUIDANCE, DEFAULT_STEPS, Generator
from ..geoio import GridRasterWriter, ensure_writable_dir
from ..inputs import raster_grid, read_vector
from ..job.generate_job import EditRegion
from ..job.jobdir import folder_lock
from ..job.runner import GDAL_CACHE_BYTES, JobResult
from ..layout import Layout, load_layout
from ..limits import MAX_SEED, check_sampler, check_tiling
from ..options import LayerOptions
from ..params import DEFAULT_OVERLAP, DEFAULT_TILE_SIZE, SamplerParams, TileParams
from ..progress import Progress
from ..radiometry import MaskReader, Radiometry, analyse_base, mask_from_array
from ..taxonomy import ClassDef, Taxonomy, load_taxonomy, parse_colour
from .masks import array_windows, as_bool, mask_any, write_windows

P = ParamSpec("P")
R = TypeVar("R")


def exclusive_folder(run: Callable[P, R]) -> Callable[P, R]:
    """A scenario holds its whole output folder (first argument ``out``) while it runs: a
    second run on it fails at once with the PID, and a killed run's temporaries are cleared.
    GDAL's block cache is bounded as in a job: its default (5 % of RAM) would keep every
    block of the base image, masks and scratch rasters a scenario scans, so the peak would
    grow with the area."""

    @functools.wraps(run)
    def locked(*args: P.args, **kwargs: P.kwargs) -> R:
        out = kwargs["out"] if "out" in kwargs else args[0]
        with folder_lock(out), rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):  # type: ignore[arg-type]
            return run(*args, **kwargs)

    return locked


@dataclass(frozen=True)
class GenOptions:
    """Sampler and tiling settings, shared by every render of a scenario."""

    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    gamma: float = 1.0
    seed: int = 0
    tile_size: int = DEFAULT_TILE_SIZE
    overlap: int = DEFAULT_OVERLAP
    caption: str | None = None
    restart: bool = False
    refine: Any = None  # rs_seg2any.critics.RefineParams: refine every render (None: never)

    def __post_init__(self) -> None:
        check_sampler(steps=self.steps, guidance=self.guidance, gamma=self.gamma, seed=self.seed)
        check_tiling(self.tile_size, self.overlap)

    @classmethod
    def from_params(cls, sampler: SamplerParams, tiles: TileParams) -> GenOptions:
        """The settings of typed sampler and tiling params (the backend's sampler defaults
        where steps or guidance are not given)."""
        from ..generators.registry import resolve_sampler

        steps, guidance = resolve_sampler(sampler)
        return cls(
            steps=steps,
            guidance=guidance,
            gamma=sampler.gamma,
            seed=sampler.seed,
            tile_size=tiles.tile_size,
            overlap=tiles.overlap,
            caption=sampler.caption,
            restart=tiles.restart,
        )

    def job_kwargs(self, **changes: Any) -> dict[str, Any]:
        """Keyword arguments of ``run_generate_job`` for these settings (``changes``
        override some, e.g. a scenario's own seed or caption)."""
        kwargs = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "refine"}
        return {**kwargs, **changes}


@dataclass
class Polygons:
    """A polygon layer in memory with the fields the layout needs."""

    frame: gpd.GeoDataFrame
    class_field: str
    description_field: str | None = None
    taxonomy: Taxonomy = field(default_factory=lambda: load_taxonomy("worldcover"))
    priority_field: str | None = None
    unknown_class: str = "error"
    # layouts already validated, by grid (treat ``frame`` as frozen once laid out)
    _layouts: list[tuple[GeoBox, Layout]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    @classmethod
    def read(
        cls,
        source: str | Path | gpd.GeoDataFrame,
        class_field: str | None = None,
        *,
        options: LayerOptions | None = None,
        what: str = "--layout",
        **fields: Any,
    ) -> Polygons:
        """A layer read with ``options`` (or ``class_field`` plus LayerOptions keywords:
        ``layer``, ``description_field``, ``priority_field``, ``taxonomy``, ``unknown_class``,
        ``layer_crs``); ``what`` names the option in errors."""
        if options is None:
            if class_field is None:
                raise LayoutError(f"{what}: a class field is required")
            options = LayerOptions(class_field=class_field, **fields)
        elif class_field is not None or fields:
            raise TypeError("give options= or class_field and keywords, not both")
        if isinstance(source, gpd.GeoDataFrame):
            frame = source.copy()
            if frame.crs is None and options.layer_crs is not None:
                frame = frame.set_crs(options.layer_crs)
        else:
            frame = read_vector(source, what, layer=options.layer, layer_crs=options.layer_crs)
        where = "the layer" if isinstance(source, gpd.GeoDataFrame) else f"{what} '{source}'"
        for role, name in (
            ("class", options.class_field),
            ("description", options.description_field),
            ("priority", options.priority_field),
        ):
            if name is not None and name not in frame.columns:
                fields_text = ", ".join(str(c) for c in frame.columns if c != "geometry")
                raise LayoutError(
                    f"{role} field '{name}' not found in {where}; fields are: {fields_text}"
                )
        tax = options.taxonomy
        tax = tax if isinstance(tax, Taxonomy) else load_taxonomy(tax)
        return cls(
            frame,
            options.class_field,
            options.description_field,
            tax,
            options.priority_field,
            options.unknown_class,
        )

    @classmethod
    def empty(cls, crs: object) -> Polygons:
        """A layer with no polygons: the scenario's own polygons are all its after layout has
        when the base is a photo without a layout."""
        frame = gpd.GeoDataFrame({"class": [], "description": []}, geometry=[], crs=crs)
        return cls(frame, "class", "description")

    def with_frame(self, frame: gpd.GeoDataFrame, taxonomy: Taxonomy | None = None) -> Polygons:
        return replace(self, frame=frame, taxonomy=taxonomy or self.taxonomy)

    def remember(self, layout: Layout) -> None:
        """Reuse an already validated layout of this layer (on its grid) for later steps."""
        self._layouts.append((layout.grid, layout))

    def layout_for(self, **grid_options: Any) -> Layout:
        """The layer validated on the grid the ``load_layout`` grid options describe
        (``resolution``, ``extent``, ``like``...), remembered for the scenario's later steps."""
        layout = load_layout(
            self.frame,
            self.class_field,
            description_field=self.description_field,
            priority_field=self.priority_field,
            taxonomy=self.taxonomy,
            unknown_class=self.unknown_class,
            **grid_options,
        )
        self.remember(layout)
        return layout

    def layout(self, grid: GeoBox) -> Layout:
        """The layer validated on ``grid``: loaded once per grid and reused, so a scenario
        run reads and checks each layer one time however many steps use it."""
        for known, layout in self._layouts:
            if known == grid:
                return layout
        layout = load_layout(
            self.frame,
            self.class_field,
            description_field=self.description_field,
            priority_field=self.priority_field,
            taxonomy=self.taxonomy,
            unknown_class=self.unknown_class,
            grid=grid,
        )
        self._layouts.append((grid, layout))
        return layout


def extend_taxonomy(taxonomy: Taxonomy, spec: dict[str, Any]) -> tuple[Taxonomy, ClassDef]:
    """The taxonomy plus one scenario class (e.g. flood water), or the class it already has."""
    existing = taxonomy.resolve(spec["name"])
    if existing is not None:
        return taxonomy, taxonomy.by_id(existing)
    new = ClassDef(
        id=taxonomy.max_id + 1,
        name=str(spec["name"]),
        colour=parse_colour(spec.get("colour", "#FF00FF")),
        description=str(spec.get("description", spec["name"])),
        priority=int(spec.get("priority", 1000)),
    )
    extended = Taxonomy(
        name=f"{taxonomy.name}+{new.name.replace(' ', '_')}",
        classes=(*taxonomy.classes, new),
        title=taxonomy.title,
        source=taxonomy.source,
    )
    return extended, new


def append_polygons(
    base: Polygons, geoms: gpd.GeoSeries, class_name: str, descriptions: list[str]
) -> gpd.GeoDataFrame:
    """``base``'s frame plus new polygons of one class (with their own descriptions)."""
    new = gpd.GeoDataFrame(
        {base.class_field: [class_name] * len(geoms)}, geometry=geoms.values, crs=geoms.crs
    )
    if base.description_field:
        new[base.description_field] = descriptions
    frame = base.frame
    if frame.crs is not None and geoms.crs is not None and frame.crs != geoms.crs:
        new = new.to_crs(frame.crs)
    return gpd.GeoDataFrame(pd.concat([frame, new], ignore_index=True), crs=frame.crs or geoms.crs)


def rasterize_polygons(frame: gpd.GeoDataFrame, grid: GeoBox) -> np.ndarray:
    """Bool mask of the pixels whose centres fall in any polygon of ``frame`` (GDAL's rule)."""
    if frame.crs is None:
        raise InputError("the polygon layer has no CRS")
    geoms = frame.to_crs(_wkt(grid)).geometry
    shapes = [g for g in geoms if g is not None and not g.is_empty]
    if not shapes:
        return np.zeros(grid.shape, dtype=bool)
    out: np.ndarray = (
        rasterio.features.rasterize(
            shapes,
            out_shape=tuple(grid.shape),
            transform=grid.affine,
            fill=0,
            default_value=1,
            dtype="uint8",
        )
        > 0
    )
    return out


def polygons_from_mask(
    classes: np.ndarray, grid: GeoBox, values: list[int] | None = None
) -> tuple[gpd.GeoSeries, list[int]]:
    """Pixel-exact polygons of the non-zero cells of ``classes`` (one per connected region and
    value): rasterised back on the same grid they give exactly the same cells."""
    geoms, vals = [], []
    mask = classes > 0
    for geom, value in rasterio.features.shapes(
        classes.astype(np.int32), mask=mask, transform=grid.affine, connectivity=4
    ):
        if values is not None and int(value) not in values:
            continue
        geoms.append(geom)
        vals.append(int(value))
    from shapely.geometry import shape

    series = gpd.GeoSeries([shape(g) for g in geoms], crs=_wkt(grid))
    return series, vals


def _wkt(grid: GeoBox) -> str:
    if grid.crs is None:
        raise InputError("the target grid has no CRS")
    return str(grid.crs.to_wkt())


def write_mask(
    path: Path,
    mask: np.ndarray | MaskReader,
    grid: GeoBox,
    tags: dict[str, str],
    names: tuple[str, str] = ("unchanged", "edited"),
) -> Path:
    """uint8 0/1 GeoTIFF on the grid named ``names`` (no nodata: 0 is a real answer), with a
    colour table (0 black, 1 a colour per kind of mask; a TIFF palette has no alpha) and class
    names, so GIS software opens it styled and labelled. ``mask`` is an array on the grid or
    a reader of its windows: it is written window by window either way."""
    if isinstance(mask, np.ndarray) and mask.shape != tuple(grid.shape):
        raise ValueError(f"data shape {mask.shape} does not match grid {tuple(grid.shape)}")
    reader = array_windows(mask) if isinstance(mask, np.ndarray) else as_bool(mask)
    colour = MASK_COLOURS.get(names[1], MASK_COLOURS["edited"])
    with GridRasterWriter(path, grid, dtype="uint8") as writer:
        write_windows(writer, reader, grid, lambda m: m.astype(np.uint8))
        return writer.finalize(
            categorical=True,
            tags=tags,
            category_names=list(names),
            colormap={0: (0, 0, 0, 255), 1: colour},
            band_descriptions=[names[1]],
        )


#: Colour of the "1" class of a 0/1 mask, by its name (flood blue, change red, edits orange).
MASK_COLOURS: dict[str, tuple[int, int, int, int]] = {
    "flooded": (0, 112, 255, 255),
    "changed": (230, 0, 0, 255),
    "edited": (255, 140, 0, 255),
}


def scenario_grid(base_image: str | Path | None, grid: GeoBox | None) -> GeoBox:
    """The grid a scenario works on: the base image's, else the layout's (one is needed)."""
    if base_image is not None:
        return grid_of(base_image)
    if grid is None:
        raise InputError("give a base image, or a layout and a grid to generate one")
    return grid


def scenario_base(
    base_image: str | Path | None,
    polys: Polygons | None,
    grid: GeoBox,
    out: Path,
    generator: Generator,
    opts: GenOptions,
    progress: Progress | None = None,
) -> Path:
    """The *before* image: the given one, or ``polys`` rendered into ``out/before/``.

    Called once the scenario's own inputs are checked, so bad input never costs a render.
    """
    if base_image is not None:
        return Path(base_image)
    if polys is None:
        raise InputError("give a base image, or a layout and a grid to generate one")
    return render_base(polys, grid, out / "before", generator, opts, progress).outputs["image"]


def render_base(
    polys: Polygons,
    grid: GeoBox,
    out: Path,
    generator: Generator,
    opts: GenOptions,
    progress: Progress | None = None,
) -> JobResult:
    """The *before* image of a scenario that starts from a layout instead of a photo."""
    from ..critics.scenario import generate_or_refine  # refined when opts.refine says so

    return generate_or_refine(polys.layout(grid), out, generator, opts, progress)


def edit_job(
    after: Polygons,
    grid: GeoBox,
    base_image: Path,
    mask: np.ndarray | MaskReader,
    out: Path,
    generator: Generator,
    opts: GenOptions,
    progress: Progress | None = None,
    *,
    seed_offset: int = 1,
) -> JobResult:
    """Generate the *after* image: only inside ``mask``, conditioned on ``after``'s layout.

    ``mask`` is a bool array on the grid or a reader of its windows (non-zero = edit): a
    reader keeps the scenario's memory independent of the area. The base's radiometry is
    analysed (and a base that cannot be edited refused) before anything is written; then the
    mask is written window by window next to the outputs (``edit_mask.tif``) and the job
    reads it back window by window.
    """
    reader = as_bool(mask_from_array(mask) if isinstance(mask, np.ndarray) else mask)
    empty = not mask.any() if isinstance(mask, np.ndarray) else not mask_any(reader, grid)
    if empty:
        raise ScenarioError("the edit mask is empty: nothing of the image would change")
    layout = after.layout(grid)  # validate before anything is written
    seed = (opts.seed + seed_offset) % (MAX_SEED + 1)  # the top seed wraps, never fails late
    radiometry = check_base(base_image, mask, grid)
    out = ensure_writable_dir(out)
    mask_path = write_mask(out / "edit_mask.tif", reader, grid, {"RS_SEG2ANY_ROLE": "edit mask"})
    from ..critics.scenario import generate_or_refine  # refined inside the mask when asked

    res = generate_or_refine(
        layout,
        out,
        generator,
        opts,
        progress,
        edit=EditRegion(Path(base_image), mask_path, radiometry),
        seed=seed,
    )
    from ..critics.verify import verify_edit  # the edit, recovered from the pixels

    res.outputs.update(verify_edit(out, Path(base_image), res.outputs["image"], mask_path, grid))
    return res


def check_base(base_image: str | Path, mask: np.ndarray | MaskReader, grid: GeoBox) -> Radiometry:
    """The base image's radiometry for editing ``mask`` (an array on the grid or a reader of
    its windows; typed errors, nothing written): how its dtype, bands and nodata are shown to
    the generator and mapped back."""
    path = Path(base_image)
    if not path.is_file():
        raise InputError(f"base image not found: {path}")
    if isinstance(mask, np.ndarray):
        if mask.shape != tuple(grid.shape):
            raise ScenarioError(
                f"the edit mask {mask.shape} is not on the grid {tuple(grid.shape)}"
            )
        return analyse_base(path, mask_from_array(mask))
    return analyse_base(path, as_bool(mask))


def grid_of(image: str | Path) -> GeoBox:
    """The grid of an existing image (the base of a scenario): outputs land exactly on it."""
    return raster_grid(image, "--image")
