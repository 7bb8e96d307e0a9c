"""Generator backends by name: a registry, open to other packages through entry points.

A backend is a :class:`BackendSpec`: its name, a loader, its sampler defaults and the
options it accepts. The embedded ``tiny`` model and the ``flux`` backend are registered
here; another package adds one by declaring an entry point in the group
``rs_seg2any.backends`` that names a ``BackendSpec`` (or a function returning one), without
editing this package. torch is imported only by the loaders, when something is generated,
so the geo paths stay usable without a deep-learning stack.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import InputError
from ..params import AUTO_BACKEND, SamplerParams, resolve_backend
from ..plugins import Registry
from .base import DEFAULT_GUIDANCE, DEFAULT_STEPS, Generator, TileCondition, weights_digest

ENTRY_POINT_GROUP = "rs_seg2any.backends"
FLUX_STEPS, FLUX_GUIDANCE = 28, 3.5  # the usual FLUX sampling; the tiny model's are measured
BACKEND_OPTIONS = ("lora", "device", "dtype", "offload", "conditioning")
"""Options only some backends take (every backend takes ``model`` and ``threads``)."""


@dataclass(frozen=True)
class BackendSpec:
    """What the registry knows about a backend before loading it (no heavy imports)."""

    name: str
    load: Callable[..., Generator]
    """``load(model, threads=None, **options) -> Generator``; ``options`` from ``options``."""
    help: str = ""
    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    options: frozenset[str] = frozenset()
    capabilities: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary (``rs-seg2any backends``, the QGIS plugin)."""
        return {
            "name": self.name,
            "help": self.help,
            "steps": self.steps,
            "guidance": self.guidance,
            "options": sorted(self.options),
            "capabilities": dict(self.capabilities),
        }


BACKENDS: Registry[BackendSpec] = Registry(BackendSpec, ENTRY_POINT_GROUP, "backend")


def register_backend(spec: BackendSpec) -> BackendSpec:
    """Add (or replace) a backend; returns ``spec`` so it can be used as a module constant."""
    return BACKENDS.register(spec)


def backends() -> dict[str, BackendSpec]:
    """Every backend: the shipped ones, then those other packages declare as entry points."""
    return BACKENDS.all()


def backend_spec(name: str) -> BackendSpec:
    """The backend called ``name``, or a one-line error listing those available."""
    return BACKENDS.get(name)


def resolve_sampler(params: SamplerParams) -> tuple[int, float]:
    """Steps and guidance of ``params``: as given, else its backend's defaults."""
    spec = backend_spec(params.backend)
    return (
        params.steps if params.steps is not None else spec.steps,
        params.guidance if params.guidance is not None else spec.guidance,
    )


def sampler_defaults(backend: str) -> tuple[int, float]:
    """Steps and guidance a backend runs with when the user does not say."""
    spec = backend_spec(backend)
    return spec.steps, spec.guidance


SHIPPED_WEIGHTS = "tiny_base.safetensors"


def shipped_weights() -> Path:
    """Path of the embedded model's weights inside the installed package."""
    return Path(str(resources.files("rs_seg2any.generators.tiny") / "weights" / SHIPPED_WEIGHTS))


class TinyBackend:
    """The embedded CPU model behind the Generator protocol."""

    name = "tiny"
    bands = 3
    supports_inpainting = True

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        threads: int | None = None,
        lora: Sequence[str] = (),
    ) -> None:
        from ..deps import require

        require("torch", "model", user="the tiny backend")
        import torch

        from .tiny.generator import TinyGenerator

        path = Path(weights) if weights is not None else shipped_weights()
        if not path.is_file():
            if weights is not None:
                raise InputError(f"tiny-model weights not found at '{path}'")
            raise InputError(
                "this installation has no embedded model weights yet; pass --model WEIGHTS "
                "(train them with `rs-seg2any train-base --config "
                "geoconf/train/tiny_base.yaml`) or use --backend flux"
            )
        if threads:
            torch.set_num_threads(threads)
        self.weights = path
        self._sha = weights_digest(path)
        self._impl = TinyGenerator.from_file(path)
        self.tile_multiple = int(self._impl.tile_multiple)
        self._lora: Any = None
        if lora:  # LoRA adapters (rs_seg2any.lora): checked, injected, weights combined
            require("peft", "lora", user="LoRA adapters")
            from ..lora.runtime import AdaptedTiny

            self._lora = AdaptedTiny.attach(self._impl, self._sha, lora)
            self.bands = self._lora.n_bands()
            self.band_descriptions = self._lora.band_descriptions()

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "weights": self.weights.name,
            "weights_sha256": self._sha,
            "config": self._impl.model.cfg.to_dict(),
            **({"loras": self._lora.describe()} if self._lora else {}),
        }

    def check_layout(self, layout: Any) -> None:
        """Refuse a layout whose taxonomy or classes an attached adapter was not trained for."""
        if self._lora:
            from ..lora.runtime import layout_classes

            self._lora.check_layout(layout.taxonomy.name, layout_classes(layout))

    def generate(
        self, cond: TileCondition, *, steps: int, guidance: float, gamma: float, seed: int
    ) -> NDArray[np.uint8]:
        band_lora = self._lora is not None and self._lora.bands is not None
        known = cond.known
        if band_lora and known is not None:
            known = self._lora.to_rgb(known)
        out = self._impl.generate(
            cond.instances,
            list(cond.descriptions),
            cond.caption,
            steps=steps,
            guidance=guidance,
            gamma=gamma,
            seed=seed,
            known=known,
            edit_mask=cond.edit_mask,
            feather=cond.feather,
        )
        if band_lora:
            out = self._lora.to_bands(out)
            if cond.known is not None and cond.edit_mask is not None:
                out = np.where(cond.edit_mask[..., None], out, cond.known).astype(np.uint8)
        return out


def load_generator(
    backend: str = AUTO_BACKEND,
    model: str | Path | None = None,
    *,
    threads: int | None = None,
    **options: Any,
) -> Generator:
    """A ready generator: ``exemplar`` (the default), ``tiny`` (embedded weights, or
    ``model`` = a weights file), ``flux`` (``model`` = a FLUX folder or hub id) or any
    registered backend; ``auto`` picks as :func:`~rs_seg2any.params.resolve_backend`.
    ``options`` (``lora``, ``device``, ``dtype``, ``offload``) go to backends that take them."""
    from ..limits import check

    check("threads", threads)
    backend = resolve_backend(backend, model, options.get("lora"))
    spec = backend_spec(backend)
    foreign = sorted(set(options) - set(spec.options))
    if foreign:
        raise InputError(
            f"backend {backend} does not take {', '.join(foreign)}"
            + (f"; it takes {', '.join(sorted(spec.options))}" if spec.options else "")
        )
    generator = spec.load(model, threads=threads, **options)
    with contextlib.suppress(AttributeError):  # how a Dask worker loads the same generator
        generator._rs_recipe = (backend, model, threads, dict(options))  # type: ignore[attr-defined]
    return generator


def generator_from(params: SamplerParams, extra_lora: Sequence[str] = ()) -> Generator:
    """The generator a :class:`~rs_seg2any.params.SamplerParams` asks for (``extra_lora``:
    e.g. a season adapter). Backend options left at their defaults are not passed on."""
    spec = backend_spec(params.backend)
    given: dict[str, Any] = {}
    lora = [*params.lora, *extra_lora]
    if lora:
        given["lora"] = lora
    for name, default in (
        ("device", "auto"),
        ("dtype", "auto"),
        ("offload", False),
        ("reference_image", None),
        ("reference_labels", None),
        ("conditioning", None),
    ):
        if getattr(params, name) != default or name in spec.options:
            given[name] = getattr(params, name)
    foreign = sorted(set(given) - set(spec.options))
    if foreign:
        flags = ", ".join("--" + n.replace("_", "-") for n in foreign if n != "lora")
        what = ", ".join(
            x
            for x in ("LoRA adapters (--lora, season adapters)" if "lora" in foreign else "", flags)
            if x
        )
        takers = [n for n, s in backends().items() if set(foreign) <= s.options]
        where = " or ".join(f"--backend {n}" for n in takers) or "no installed backend"
        raise InputError(f"{what} apply to {where}, not to --backend {params.backend}")
    return load_generator(params.backend, params.model, threads=params.threads, **given)


def _load_tiny(
    model: str | Path | None, threads: int | None = None, lora: Sequence[str] = ()
) -> Generator:
    return TinyBackend(model, threads=threads, lora=lora)


def _load_exemplar(
    model: str | Path | None, threads: int | None = None, **options: Any
) -> Generator:
    from .exemplar.backend import ExemplarBackend

    if model is not None:
        raise InputError("the exemplar backend takes no --model (its bank ships inside)")
    return ExemplarBackend(options.get("reference_image"), options.get("reference_labels"))


def _load_flux(model: str | Path | None, threads: int | None = None, **options: Any) -> Generator:
    if options.get("lora"):  # an adapter trained for another backend: a clear refusal
        from ..lora.runtime import refuse_foreign_backend

        refuse_foreign_backend("flux", options["lora"])
    if model is None:
        raise InputError("the flux backend needs --model: a FLUX folder or hub id")
    from .flux.backend import FluxBackend

    if threads:
        options["threads"] = threads
    return FluxBackend(model, **options)


register_backend(
    BackendSpec(
        "tiny",
        _load_tiny,
        help="the embedded CPU model (weights inside the package)",
        options=frozenset({"lora"}),
        capabilities={"inpainting": True, "bands": 3, "device": "cpu", "lora": True},
    )
)
register_backend(
    BackendSpec(
        "flux",
        _load_flux,
        help="diffusers FLUX + Seg2Any conditioning + LoRA (GPU; --model FOLDER or hub id)",
        steps=FLUX_STEPS,
        guidance=FLUX_GUIDANCE,
        options=frozenset(BACKEND_OPTIONS),
        capabilities={"inpainting": True, "bands": 3, "device": "cuda", "lora": True},
    )
)
register_backend(
    BackendSpec(
        "exemplar",
        _load_exemplar,
        help="real texture quilted per class from an exemplar bank (CPU, no network): the "
        "shipped Dubai bank (0.5 m) or --reference-image/--reference-labels",
        options=frozenset({"reference_image", "reference_labels"}),
        capabilities={"inpainting": True, "bands": 3, "device": "cpu", "text": False},
    )
)
