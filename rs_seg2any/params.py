"""Typed parameters of every verb: the one schema shared by the API, job files and the CLI.

Each group is a frozen dataclass whose fields carry their help text (and, where the command
line spells them differently, their flag) in ``field(metadata=...)``. The CLI builds its
options from these fields (``rs_seg2any.cli``), job files load into them with
:func:`from_mapping`, and the Python API takes them directly, so a new option is added in one
place. Numbers are checked by the rules in :mod:`rs_seg2any.limits` on construction.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .errors import InputError
from .limits import check, check_crs, check_number_list, check_resolution, check_tiling

DEFAULT_TILE_SIZE = 256
"""Tile size of generate jobs and scenarios (pixels): the embedded model's training size."""
DEFAULT_OVERLAP = 64
"""Overlap of neighbouring tiles (pixels): room for the seamless fade between tiles."""
DEFAULT_LAYOUT_TILE = 2048
"""Tile size of ``layout`` jobs (pure rasterisation: big tiles are cheap)."""
DEFAULT_BACKEND = "exemplar"
"""The backend that renders when the user names none and asks for nothing only the embedded
network can do (see :func:`resolve_backend`)."""
AUTO_BACKEND = "auto"
NETWORK_BACKEND = "tiny"
"""The embedded network: what ``--model`` (its weights) and ``--lora`` (its adapters) adapt."""


def resolve_backend(backend: str | None, model: object = None, lora: object = ()) -> str:
    """``auto`` (or None) -> the default backend, or the embedded network ``tiny`` when a
    weights file (``model``) or LoRA adapters are given: those options only the network takes,
    so naming them picks it, as before the quilting backend became the default."""
    if backend not in (None, AUTO_BACKEND):
        return str(backend)
    return NETWORK_BACKEND if (model is not None or lora) else DEFAULT_BACKEND


T = TypeVar("T")


def meta(help: str, **extra: Any) -> dict[str, Any]:
    """Field metadata: ``help``; optional ``flag`` (CLI spelling), ``choices``, ``input`` (a
    file that must exist), ``required``, ``metavar``, ``group`` (help section)."""
    return {"help": help, **extra}


def opt(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field with a default and its metadata (immutable defaults only)."""
    return field(default=default, metadata=meta(help, **extra))


@dataclass(frozen=True)
class GridParams:
    """Where the outputs land: a raster's grid, or an extent at a resolution in a CRS."""

    like: str | None = opt(None, "copy the grid (CRS, transform, shape) of this raster", input=True)
    like_utm: bool = opt(
        False,
        "with a --like raster in degrees: render its footprint on the local UTM zone with "
        "square pixels at its ground resolution (or --resolution)",
    )
    resolution: str | None = opt(None, "pixel size in CRS units: 10 or 10,10")
    crs: str | None = opt(None, "output CRS (default: the layer's; UTM for lon/lat layers)")
    extent: str | None = opt(
        None, "xmin,ymin,xmax,ymax (default: the layer's bounds); in --extent-crs"
    )
    extent_crs: str | None = opt(
        None, "CRS of --extent (default: --crs when given, else the layer's CRS)"
    )
    no_snap: bool = opt(False, "start the grid at the extent corner (no snapping)")
    keep_geographic: bool = opt(False, "keep a lon/lat CRS instead of UTM")
    max_pixels: float | None = opt(None, "pixel budget (default 2.5e9)")

    def __post_init__(self) -> None:
        check_resolution(self.resolution)
        check("max_pixels", self.max_pixels)
        check_crs(self.crs, "--crs")
        check_crs(self.extent_crs, "--extent-crs")
        if self.extent is not None:
            from .errors import GridError

            check_number_list(self.extent, "--extent", 4, GridError)

    def layout_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`rs_seg2any.layout.load_layout` for this grid."""
        extent = None
        if self.extent is not None:
            from .errors import GridError

            extent = check_number_list(self.extent, "--extent", 4, GridError)
        return {
            "like": self.like,
            "like_utm": self.like_utm,
            "resolution": self.resolution,
            "crs": self.crs,
            "extent": extent,
            "extent_crs": self.extent_crs,
            "snap": not self.no_snap,
            "keep_geographic": self.keep_geographic,
            "max_pixels": int(self.max_pixels) if self.max_pixels else None,
        }


@dataclass(frozen=True)
class SamplerParams:
    """Which generator renders, and how: backend, weights, sampler, seed, caption."""

    backend: str = opt(
        AUTO_BACKEND,
        f"generator backend (see `rs-seg2any backends`); {AUTO_BACKEND}: {DEFAULT_BACKEND}, "
        f"or {NETWORK_BACKEND} when --model or --lora is given",
    )
    model: str | None = opt(None, "weights file or model folder (default: the embedded model)")
    steps: int | None = opt(None, "sampling steps (default: the backend's)")
    guidance: float | None = opt(None, "guidance scale (default: the backend's)")
    gamma: float = opt(1.0, "shape strength (0 = ignore shapes)")
    seed: int = opt(0, "job seed; each tile derives its own")
    caption: str | None = opt(None, "global caption (default: the classes of each tile)")
    threads: int | None = opt(
        None, "CPU threads per tile (default: 1, so pixels never depend on the machine)"
    )
    lora: tuple[str, ...] = opt(
        (),
        "LoRA file or Seg2Any checkpoint folder (repeatable)",
        metavar="PATH[:WEIGHT]",
        group="backend options",
    )
    device: str = opt("auto", "auto (GPU when present), cuda, cpu", group="backend options")
    dtype: str = opt("auto", "auto (bf16 on GPU), bf16, fp16, fp32", group="backend options")
    offload: bool = opt(False, "keep parts on the CPU until used", group="backend options")
    reference_image: str | None = opt(
        None,
        "a real GeoTIFF whose appearance the generator takes (backends that support it)",
        input=True,
        group="backend options",
    )
    reference_labels: str | None = opt(
        None,
        "the reference image's labels: a class raster on its grid, or polygons",
        input=True,
        group="backend options",
    )
    conditioning: str | None = opt(
        None,
        "model inputs: reference (published Seg2Any conventions, flux default) or project",
        choices=("reference", "project"),
        group="backend options",
    )

    def __post_init__(self) -> None:
        for name in ("steps", "guidance", "gamma", "seed", "threads"):
            check(name, getattr(self, name))
        # frozen: the one place the resolved backend is stored, so job.json records it
        object.__setattr__(self, "backend", resolve_backend(self.backend, self.model, self.lora))


@dataclass(frozen=True)
class TileParams:
    """How a job is cut into tiles and what happens to an earlier run in its folder."""

    tile_size: int = opt(DEFAULT_TILE_SIZE, "tile size in pixels")
    overlap: int = opt(DEFAULT_OVERLAP, "tile overlap in pixels")
    restart: bool = opt(False, "discard an earlier unfinished job")
    keep_tiles: bool = opt(False, "keep the tile cache when done")

    def __post_init__(self) -> None:
        check_tiling(self.tile_size, self.overlap)


@dataclass(frozen=True)
class EvaluateParams:
    """What ``evaluate`` scores: real scenes with their labels, and the candidates."""

    real: tuple[str, ...] = opt(
        (), "real RGB GeoTIFF of a scene (repeatable: one per scene)", input=True, required=True
    )
    labels: tuple[str, ...] = opt(
        (),
        "class raster on the real image's grid (repeatable, in the order of --real)",
        input=True,
        required=True,
    )
    taxonomy: str = opt("worldcover", "taxonomy of the label rasters' class ids")
    candidate: tuple[str, ...] = opt(
        (),
        "NAME=IMAGE[,IMAGE...]: generated images to score, one per scene (repeatable)",
        metavar="NAME=IMAGES",
    )
    no_generator: bool = opt(False, "score only the --candidate images, not the generator")
    no_classifier: bool = opt(False, "skip the real-vs-generated classifier (small scenes)")
    segmenter: str | None = opt(
        None,
        "segmenter weights for the fidelity column (default: the shipped one for dubai_aerial)",
        input=True,
    )
    copy_reference: tuple[str, ...] = opt(
        (),
        "imagery the generator drew from (training tiles, exemplar bank), repeatable: "
        "reports how close generated blocks come to it (copying), next to real's",
        input=True,
    )


# --- building params from plain values (job files, keyword arguments) ----------------------


def field_types(cls: type) -> dict[str, Any]:
    """The resolved annotation of every field of a params dataclass."""
    return typing.get_type_hints(cls)


def kind_of(annotation: Any) -> str:
    """``bool``, ``int``, ``float``, ``str``, ``list`` or ``dict``: what a field holds
    (``None`` allowed or not)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return kind_of(args[0]) if len(args) == 1 else "str"
    if origin in (tuple, list):
        return "list"
    if origin in (dict, Mapping) or annotation is dict:
        return "dict"
    for kind in (bool, int, float, str):
        if annotation is kind:
            name: str = kind.__name__
            return name
    return "str"


def check_value(kind: str, value: Any, where: str) -> Any:
    """``value`` converted to ``kind``, or a one-line :class:`InputError` naming ``where``."""
    if value is None:
        return None
    if kind == "bool":
        if not isinstance(value, bool):
            raise InputError(f"{where} is a switch: use true or false (got {value!r})")
        return value
    if kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InputError(f"{where} must be a number, not {_kind_name(value)} ({value!r})")
        try:
            number = float(value)
        except ValueError:
            raise InputError(f"{where} must be a number (got {value!r})") from None
        if kind == "int":
            return int(number) if number.is_integer() else value  # the rule names a fraction
        return number
    if kind == "list":
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise InputError(f"{where} must be text or a list of text, not {value!r}")
        return tuple(str(v) for v in items)
    if kind == "dict":
        if not isinstance(value, dict):
            raise InputError(f"{where} must be a mapping of KEY: VALUE, not {value!r}")
        return {str(k): v for k, v in value.items()}
    if isinstance(value, bool) or not isinstance(value, str | int | float | Path):
        raise InputError(f"{where} must be text, not {_kind_name(value)} ({value!r})")
    text: str = str(value)
    return text


def _kind_name(value: Any) -> str:
    return "a list" if isinstance(value, list) else f"{type(value).__name__}"


def from_mapping(cls: type[T], values: Mapping[str, Any], where: str = "") -> T:
    """An instance of the params dataclass ``cls`` from plain values (a job file's keys).

    Every value is checked against its field's kind first, so a wrong type is a one-line
    error naming the key (``where`` prefixes it, e.g. the job file), not a crash later.
    """
    kinds = field_types(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in values:
            label = f"{where}key '{f.name}'"
            kwargs[f.name] = check_value(kind_of(kinds[f.name]), values[f.name], label)
            choices = f.metadata.get("choices")
            if choices and kwargs[f.name] is not None and kwargs[f.name] not in choices:
                flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
                raise InputError(
                    f"{label} ({flag}) {kwargs[f.name]!r} is not one of "
                    f"{', '.join(map(str, choices))}"
                )
            if f.metadata.get("input") and kwargs[f.name] is not None:
                paths = kwargs[f.name] if isinstance(kwargs[f.name], tuple) else [kwargs[f.name]]
                for path in paths:
                    if not Path(path).exists():
                        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
                        raise InputError(f"{label} ({flag}): file '{path}' not found")
    try:
        return cls(**kwargs)
    except InputError as exc:
        raise type(exc)(f"{where}{exc}") from exc


def field_names(*classes: type) -> list[str]:
    """Every field name of ``classes`` in order (the keys a job file may use)."""
    return [f.name for cls in classes for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
