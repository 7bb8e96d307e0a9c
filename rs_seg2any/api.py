"""The Python API: typed verbs over layouts, generators and scenarios (``import rs_seg2any as rs``).

Every verb takes plain values or the params dataclasses of :mod:`rs_seg2any.params` (never an
argparse namespace), runs the same job code as the CLI and returns a :class:`Result` whose
outputs open as xarray objects on the job's grid. Keyword options are routed by name to the
params they belong to, so ``rs.generate(layout, "out", seed=3, tile_size=512)`` and
``rs.flood("out", image="before.tif", dem="dem.tif", level=4.0)`` read like the CLI.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .critics.params import RefineParams
from .errors import InputError
from .job.runner import JobResult
from .jobmodel import Job, command_groups, job_from_mapping, load_job
from .layout import Layout, load_layout
from .options import LayerOptions
from .params import GridParams, SamplerParams, TileParams
from .progress import Progress, make_progress

if TYPE_CHECKING:
    import xarray as xr

    from .generators.base import Generator

__all__ = [
    "Result",
    "change",
    "cloudfill",
    "damage",
    "detection_set",
    "evaluate",
    "flood",
    "generate",
    "list_adapters",
    "list_backends",
    "list_scenarios",
    "load_generator",
    "load_layout",
    "plan",
    "rasterize",
    "run",
    "scenario",
    "seasons",
    "train_lora",
]


@dataclass(frozen=True)
class Result(JobResult):
    """Where a finished job's outputs are; ``open``/``to_xarray`` read them on the job grid."""

    @classmethod
    def of(cls, job: JobResult) -> Result:
        """The result of a finished job (the job core's own record of it)."""
        return cls(job.out_dir, dict(job.outputs), job.tiles_total, job.tiles_resumed)

    def rasters(self) -> dict[str, Path]:
        """The GeoTIFF outputs by name."""
        return {k: v for k, v in self.outputs.items() if v.suffix.lower() in (".tif", ".tiff")}

    def open(self, name: str = "image") -> xr.DataArray:
        """One GeoTIFF output as a DataArray (``band, y, x``) with ``spatial_ref`` coordinates."""
        rasters = self.rasters()
        if name not in rasters:
            raise InputError(f"no raster output '{name}'; outputs are: {', '.join(rasters)}")
        return _read_xarray(rasters[name], name)

    def to_xarray(self) -> xr.Dataset:
        """Every GeoTIFF output that shares the first one's grid, as one Dataset."""
        import xarray as xr

        rasters = self.rasters()
        arrays = {name: _read_xarray(path, name, f"band_{name}") for name, path in rasters.items()}
        if not arrays:
            raise InputError(f"{self.out_dir} has no raster outputs")
        first = next(iter(arrays.values()))
        same = {
            k: a
            for k, a in arrays.items()
            if a.sizes["y"] == first.sizes["y"]
            and a.sizes["x"] == first.sizes["x"]
            and bool((a.x == first.x).all())
            and bool((a.y == first.y).all())
        }
        return xr.Dataset(same)


def _read_xarray(path: Path, name: str, band_dim: str = "band") -> xr.DataArray:
    import rasterio
    import xarray as xr
    from odc.geo.geobox import GeoBox
    from odc.geo.xr import xr_coords

    with rasterio.open(path) as src:
        data = src.read()
        box = GeoBox((src.height, src.width), src.transform, src.crs)
        attrs = {"nodata": src.nodata, "descriptions": list(src.descriptions)}
    coords = {band_dim: list(range(1, data.shape[0] + 1)), **xr_coords(box)}
    return xr.DataArray(data, dims=(band_dim, "y", "x"), coords=coords, name=name, attrs=attrs)


def _progress(progress: Progress | str | None) -> Progress | None:
    return make_progress(progress) if isinstance(progress, str) else progress


def _route(command: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Check keyword options against the command's params (a TypeError names strangers)."""
    groups = command_groups(command)
    known = {f.name for cls in groups.values() for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(
            f"{command}() got unexpected options {', '.join(unknown)}; "
            f"options are: {', '.join(sorted(known))}"
        )
    return dict(options)


def _grouped(
    layer: LayerOptions | None,
    grid: GridParams | None,
    sampler: SamplerParams | None,
    tiles: TileParams | None,
) -> dict[str, Any]:
    """Fields of params objects the caller gave whole, as flat options."""
    flat: dict[str, Any] = {}
    for given in (layer, grid, sampler, tiles):
        if given is not None:
            flat.update({f.name: getattr(given, f.name) for f in dataclasses.fields(given)})
    return flat


def _job(command: str, out: str | Path, layout: Any, options: dict[str, Any]) -> Job:
    """A Job from keyword options; layouts already loaded keep their own layer options."""
    values = {**options, "out": str(out)}
    if isinstance(layout, Layout):
        spec = layout.spec
        for name in ("class_field", "description_field", "priority_field"):
            values.setdefault(name, getattr(spec, name, None))
    job = job_from_mapping(command, {k: v for k, v in values.items() if v is not None})
    return dataclasses.replace(job, layout=layout)


def rasterize(
    layout: Layout,
    out: str | Path,
    *,
    tile_size: int | None = None,
    restart: bool = False,
    keep_tiles: bool = False,
    progress: Progress | str | None = None,
) -> Result:
    """Write label, instance and contour GeoTIFFs (plus style, preview, entity table) of a
    layout (:func:`load_layout`) into ``out``; resumable like every job."""
    from .geoio import ensure_writable_dir
    from .job.runner import run_layout_job
    from .params import DEFAULT_LAYOUT_TILE

    ensure_writable_dir(out)
    res = run_layout_job(
        layout,
        out,
        tile_size=tile_size or DEFAULT_LAYOUT_TILE,
        restart=restart,
        keep_tiles=keep_tiles,
        progress=_progress(progress),
    )
    return Result.of(res)


def load_generator(
    backend: str = "auto", model: str | Path | None = None, **options: Any
) -> Generator:
    """A ready generator of a registered backend (see :func:`list_backends`); ``auto``: the
    default ``exemplar``, or the embedded network ``tiny`` when ``model`` or ``lora`` is given."""
    from .generators.registry import load_generator as load

    return load(backend, model, **options)


def generate(
    layout: Layout,
    out: str | Path,
    *,
    generator: Generator | None = None,
    sampler: SamplerParams | None = None,
    tiles: TileParams | None = None,
    progress: Progress | str | None = None,
    refine: RefineParams | bool | None = None,
    **options: Any,
) -> Result:
    """Render a layout into ``out/image.tif`` plus its label, instance and contour maps.

    ``options`` are fields of :class:`SamplerParams` (``backend``, ``model``, ``steps``,
    ``guidance``, ``gamma``, ``seed``, ``caption``, ``threads``, ``lora``...) and
    :class:`TileParams` (``tile_size``, ``overlap``, ``restart``, ``keep_tiles``).
    ``generator``: an already loaded generator (its backend's defaults still apply).
    ``refine``: score every entity and regenerate failing ones (:mod:`rs_seg2any.critics`).
    """
    flat = {**_grouped(None, None, sampler, tiles), **_route("generate", options)}
    if refine:
        given = refine if isinstance(refine, RefineParams) else RefineParams()
        flat.update({f.name: getattr(given, f.name) for f in dataclasses.fields(given)})
        flat["refine"] = True
    job = _job("generate", out, layout, flat)
    return run_loaded_job(job, progress=_progress(progress), generator=generator)


def scenario(
    name: str,
    out: str | Path,
    *,
    layout: Any = None,
    generator: Generator | None = None,
    layer: LayerOptions | None = None,
    grid: GridParams | None = None,
    sampler: SamplerParams | None = None,
    tiles: TileParams | None = None,
    progress: Progress | str | None = None,
    **options: Any,
) -> Result:
    """Run the registered scenario ``name`` (see :func:`list_scenarios`) into ``out``.

    ``layout``: a :class:`Layout` (its grid is used unless the scenario has an ``image``), or
    a polygon file / GeoDataFrame read with ``layer`` options. ``options``: the scenario's own
    params (e.g. ``level``, ``dem`` for a flood) and any field of the shared params.
    """
    refine = options.pop("refine", None)
    if isinstance(refine, RefineParams):  # given whole, like generate(refine=...)
        options.update({f.name: getattr(refine, f.name) for f in dataclasses.fields(refine)})
        options["refine"] = True
    elif refine is not None:
        options["refine"] = refine
    flat = {**_grouped(layer, grid, sampler, tiles), **_route(name, options)}
    job = _job(name, out, layout, flat)
    return run_loaded_job(job, progress=_progress(progress), generator=generator)


def flood(out: str | Path, **options: Any) -> Result:
    """Flood a scene: ``flood_polygons``, or ``dem`` + ``level`` (+ ``seed_xy``), over an
    ``image`` or a rendered ``layout``; only flooded pixels change."""
    return scenario("flood", out, **options)


def plan(out: str | Path, **options: Any) -> Result:
    """Inpaint planning ``zones`` (with ``zone_description_field``) into an ``image`` or a
    rendered ``layout``; pixels outside the zones stay exact."""
    return scenario("plan", out, **options)


def seasons(out: str | Path, **options: Any) -> Result:
    """Render one ``layout`` for several ``seasons`` (comma list) with the same seed."""
    return scenario("seasons", out, **options)


def change(out: str | Path, **options: Any) -> Result:
    """Bi-temporal change pairs of a ``layout``: an ``after`` layout or a ``recipe``."""
    return scenario("change", out, **options)


def cloudfill(out: str | Path, **options: Any) -> Result:
    """Fill the ``clouds`` of a real ``image`` from a ``layout``; clear pixels stay exact."""
    return scenario("cloudfill", out, **options)


def damage(out: str | Path, **options: Any) -> Result:
    """Disaster damage pairs: a ``damage_layer`` (levels, types) or the ``disaster``'s recipe
    over an ``image`` or a rendered ``layout``; only damaged buildings and areas change."""
    return scenario("damage", out, **options)


def detection_set(out: str | Path, **options: Any) -> Result:
    """A detection training set in ``out``: ``objects`` (polygon layer with
    ``object_class_field``) over a real ``image`` or a rendered ``layout``, rare objects
    inserted (``insert`` layer, or ``insert_count`` + ``insert_kind``), cut into chips
    (``chip_size``, ``chip_stride``, ``min_visible``) with spatial splits, exported as COCO,
    YOLO, DOTA and GeoJSON/GeoPackage, with ``report.json`` and a STAC catalog; options are
    the fields of :class:`~rs_seg2any.detection.params.DetectionParams` and the shared ones."""
    return scenario("detection-set", out, **options)


def run(
    job: str | Path | Job,
    *,
    progress: Progress | str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    attempts: int | None = None,
    gpu_resource: str | None = None,
) -> Result:
    """Run a job file (YAML) or a :class:`~rs_seg2any.jobmodel.Job`; ``workers`` (a local
    Dask cluster of that many processes) or ``scheduler`` (an existing cluster's address)
    override the job's own, ``attempts`` the tries per tile, ``gpu_resource`` the Dask
    resource each tile holds (auto, none or a name)."""
    from .areas import is_areas_file, load_areas

    if isinstance(job, Job):
        loaded = job
    else:
        loaded = load_areas(job) if is_areas_file(job) else load_job(job)
    cluster = loaded.cluster.override(
        workers=workers, scheduler=scheduler, attempts=attempts, gpu_resource=gpu_resource
    )
    loaded = dataclasses.replace(loaded, cluster=cluster)
    return run_loaded_job(loaded, progress=_progress(progress))


def list_backends() -> list[dict[str, Any]]:
    """The registered generator backends (shipped and from entry points)."""
    from .generators.registry import backends

    return [spec.describe() for spec in backends().values()]


def list_scenarios() -> list[dict[str, Any]]:
    """The registered scenarios (shipped and from entry points)."""
    from .scenarios.registry import scenarios

    return [spec.describe() for spec in scenarios().values()]


# --- execution: the one path the CLI, job files and the verbs above share ------------------


def run_loaded_job(
    job: Job, *, progress: Progress | None = None, generator: Generator | None = None
) -> Result:
    """Execute a :class:`Job` (``generator``: use this one instead of loading it), its tiles
    on the backend ``job.cluster`` names (local, ``workers``, ``scheduler``)."""
    from .job.execute import DEFAULT_TILE_THREADS, execution

    threads = job.sampler.threads or DEFAULT_TILE_THREADS
    with execution(job.cluster, threads=threads, progress=progress):
        return _run_job(job, progress, generator)


def _run_job(job: Job, progress: Progress | None, generator: Generator | None) -> Result:
    from .areas import AreasJob, run_areas
    from .geoio import ensure_writable_dir

    if isinstance(job, AreasJob):  # many areas, one tile backend
        done = run_areas(job, lambda one, p: _run_job(one, p, generator), progress)
        return Result(job.out, done["outputs"], done["tiles_total"], done["tiles_resumed"])

    out = ensure_writable_dir(job.out)  # fail before the (possibly long) validation pass
    if job.command == "layout":
        return rasterize(
            _layout_of(job, progress),
            out,
            tile_size=job.tiles.tile_size,
            restart=job.tiles.restart,
            keep_tiles=job.tiles.keep_tiles,
            progress=progress,
        )
    if job.command == "generate":
        return _generate(job, out, progress, generator)
    if job.command == "evaluate":
        return _evaluate(job, out, progress, generator)
    if job.command == "train-lora":
        return _train_lora(job, out, progress)
    return _scenario(job, out, progress, generator)


def evaluate(
    real: Any,
    labels: Any,
    out: str | Path,
    *,
    candidates: Mapping[str, Any] | None = None,
    taxonomy: str = "worldcover",
    generator: Generator | None = None,
    sampler: SamplerParams | None = None,
    tiles: TileParams | None = None,
    classifier: bool = True,
    segmenter: str | Path | None = None,
    copy_reference: Sequence[Any] | None = None,
    progress: Progress | str | None = None,
) -> Any:
    """Score generated imagery against real scenes (``real``: GeoTIFF path(s) or arrays;
    ``labels``: class rasters on their grids, or Layouts) with every measure of
    :mod:`rs_seg2any.quality`; returns the :class:`~rs_seg2any.quality.evaluate.EvaluationReport`
    and writes ``report.json`` and ``picture.png`` into ``out``.

    ``candidates``: name -> a generator, a painter (labels -> RGB) or one image per scene; with
    none given, the generator ``sampler`` describes (or ``generator``) is scored.
    """
    from .generators.registry import generator_from, resolve_sampler
    from .quality.evaluate import evaluate as score
    from .quality.scenes import RenderSettings

    s, t = sampler or SamplerParams(), tiles or TileParams()
    table = dict(candidates or {})
    if not table:
        table[s.backend] = generator if generator is not None else generator_from(s)
    steps, guidance = resolve_sampler(s)
    settings = RenderSettings(
        tile_size=t.tile_size,
        overlap=t.overlap,
        steps=steps,
        guidance=guidance,
        gamma=s.gamma,
        seed=s.seed,
    )
    return score(
        table,
        real,
        labels,
        out=out,
        taxonomy=taxonomy,
        render_settings=settings,
        classifier=classifier,
        segmenter=segmenter,
        copy_reference=copy_reference,
        progress=_progress(progress),
    )


def _evaluate(job: Job, out: Path, progress: Progress | None, generator: Any) -> Result:
    from .generators.registry import generator_from

    p = job.params
    candidates: dict[str, Any] = {}
    for text in p.candidate:
        name, _, images = text.partition("=")
        paths = [i for i in images.split(",") if i]
        if not name or not paths:
            raise InputError(f"--candidate {text!r} must be NAME=IMAGE[,IMAGE...]")
        for path in paths:
            if not Path(path).is_file():
                raise InputError(f"--candidate {name}: file '{path}' not found")
        candidates[name] = paths if len(paths) > 1 else paths[0]
    if not p.no_generator:
        gen = generator if generator is not None else generator_from(job.sampler)
        candidates.setdefault(job.sampler.backend, gen)
    if not candidates:
        raise InputError("nothing to score: give --candidate NAME=IMAGE or drop --no-generator")
    report = evaluate(
        list(p.real),
        list(p.labels),
        out,
        candidates=candidates,
        taxonomy=p.taxonomy,
        sampler=job.sampler,
        tiles=job.tiles,
        classifier=not p.no_classifier,
        segmenter=p.segmenter,
        copy_reference=list(p.copy_reference) or None,
        progress=progress,
    )
    del report
    outputs = {name: out / name for name in ("report.json", "picture.png")}
    return Result(out, {k.split(".")[0]: v for k, v in outputs.items() if v.exists()})


def _layout_of(job: Job, progress: Progress | None) -> Layout:
    """The job's layout on its grid: a loaded Layout as is, else read and validated."""
    if isinstance(job.layout, Layout):
        return job.layout
    if job.layout is None:
        raise InputError(f"{job.command} needs a layout (a polygon layer)")
    layer = job.layer.required("a layout")
    return load_layout(
        job.layout,
        layer.class_field,
        **layer.layout_kwargs(),
        **job.grid.layout_kwargs(),
        progress=progress,
    )


def _generate(job: Job, out: Path, progress: Progress | None, generator: Any) -> Result:
    from .generators.registry import generator_from
    from .job.generate_job import run_generate_job
    from .scenarios.common import GenOptions

    layout = _layout_of(job, progress)
    gen = generator if generator is not None else generator_from(job.sampler)
    opts = GenOptions.from_params(job.sampler, job.tiles)
    if job.refine.refine:
        from .critics.run import refine_generate

        return Result.of(refine_generate(layout, out, gen, job.refine, opts, job.tiles, progress))
    res = run_generate_job(
        layout, out, gen, keep_tiles=job.tiles.keep_tiles, progress=progress, **opts.job_kwargs()
    )
    return Result.of(res)


def _scenario(job: Job, out: Path, progress: Progress | None, generator: Any) -> Result:
    from .scenarios.common import Polygons
    from .scenarios.registry import ScenarioInputs, outputs_of, scenario_spec

    spec = scenario_spec(job.command)
    if spec.layout == "required" and job.layout is None:
        raise InputError(f"{spec.name} needs --layout (a polygon layer)")
    polygons = grid = None
    layer = job.layer
    if isinstance(job.layout, Layout):
        src = job.layout.spec
        layer = LayerOptions(
            class_field=src.class_field,
            layer=src.layer,
            description_field=src.description_field,
            priority_field=src.priority_field,
            taxonomy=job.layout.taxonomy,
            unknown_class=job.layer.unknown_class,
        )
        polygons = Polygons.read(_source_of(job.layout), options=layer, what="--layout")
        grid = job.layout.grid
    elif job.layout is not None:
        layer = layer.required("--layout")
        polygons = Polygons.read(job.layout, options=layer, what="--layout")
        if getattr(job.params, "image", None) is None and spec.grid:
            # validated once: the scenario reuses this layout on its grid
            grid = polygons.layout_for(**job.grid.layout_kwargs(), progress=progress).grid
    if getattr(job.params, "image", None) is not None or not spec.grid:
        grid = None  # the base image's grid
    inputs = ScenarioInputs(out, polygons, grid, job.sampler, job.tiles, progress, layer)
    if spec.refine and job.refine.refine:
        inputs.refine = job.refine
    if generator is not None:
        inputs._generators[()] = generator
    res = spec.run(inputs, job.params)
    if hasattr(res, "to_dict") and hasattr(res, "tiles_total"):
        return Result.of(res)
    return Result(out, outputs_of(res))


def _source_of(layout: Layout) -> Any:
    """What a loaded layout was read from (a path, or its GeoDataFrame in the layer CRS)."""
    if layout.spec.path is not None:
        return layout.spec.path
    frame = getattr(layout._source, "_frame", None)  # an in-memory layer
    if frame is None:
        raise InputError("this layout's polygons are not available; pass the layer itself")
    return frame.set_crs(layout.layer_crs, allow_override=True)


# --- LoRA adaptation (rs_seg2any.lora) ---------------------------------------------------


def train_lora(
    out: str | Path,
    *,
    layer: LayerOptions | None = None,
    progress: Progress | str | None = None,
    **options: Any,
) -> Result:
    """Train a LoRA adapter of a backend on your ``images`` and their polygon ``labels``
    (``class_field``...) into the folder ``out``; use it with ``lora=[out]`` in any verb.

    ``options``: fields of :class:`~rs_seg2any.lora.params.LoraTrainParams` (``images``,
    ``labels``, ``bands``, ``max_steps``, ``rank``, ``backend``...) and of
    :class:`~rs_seg2any.options.LayerOptions` (``class_field``, ``taxonomy``...).
    """
    flat = {**_grouped(layer, None, None, None), **_route("train-lora", options)}
    job = job_from_mapping("train-lora", {**{k: v for k, v in flat.items() if v is not None},
                                          "out": str(out)})  # fmt: skip
    return run_loaded_job(job, progress=_progress(progress))


def list_adapters() -> list[dict[str, Any]]:
    """Installed LoRA adapters (``$RS_SEG2ANY_ADAPTERS``, else ~/.local/share/rs_seg2any/
    adapters) and what each was trained for."""
    from .lora.adapter import list_adapters as listed

    return listed()


def _train_lora(job: Job, out: Path, progress: Progress | None) -> Result:
    from .lora.train import train_lora as train

    res = train(job.params, job.layer, out, progress=progress)
    return Result(out, dict(res.outputs))
