"""Choosing and loading a generator backend by name; the embedded ``tiny`` model is the default.

torch is imported only here (and in the backends), when something is actually generated, so
the geo paths of the package stay usable without a deep-learning stack.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import InputError
from .base import DEFAULT_GUIDANCE, DEFAULT_STEPS, Generator, TileCondition, weights_digest

BACKENDS = ("tiny", "flux")
DEFAULT_BACKEND = "tiny"
FLUX_STEPS, FLUX_GUIDANCE = 28, 3.5  # the usual FLUX sampling; the tiny model's are measured


def sampler_defaults(backend: str) -> tuple[int, float]:
    """Steps and guidance a backend runs with when the user does not say."""
    if backend == "flux":
        return FLUX_STEPS, FLUX_GUIDANCE
    return DEFAULT_STEPS, DEFAULT_GUIDANCE


SHIPPED_WEIGHTS = "tiny_base.safetensors"


def shipped_weights() -> Path:
    """Path of the embedded model's weights inside the installed package."""
    return Path(str(resources.files("rs_seg2any.generators.tiny") / "weights" / SHIPPED_WEIGHTS))


class TinyBackend:
    """The embedded CPU model behind the Generator protocol."""

    name = "tiny"
    bands = 3
    supports_inpainting = True

    def __init__(self, weights: str | Path | None = None, *, threads: int | None = None) -> None:
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

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "weights": self.weights.name,
            "weights_sha256": self._sha,
            "config": self._impl.model.cfg.to_dict(),
        }

    def generate(
        self, cond: TileCondition, *, steps: int, guidance: float, gamma: float, seed: int
    ) -> NDArray[np.uint8]:
        return self._impl.generate(
            cond.instances,
            list(cond.descriptions),
            cond.caption,
            steps=steps,
            guidance=guidance,
            gamma=gamma,
            seed=seed,
            known=cond.known,
            edit_mask=cond.edit_mask,
            feather=cond.feather,
        )


def load_generator(
    backend: str = DEFAULT_BACKEND, model: str | Path | None = None, **options: Any
) -> Generator:
    """A ready generator: ``tiny`` (embedded weights, or ``model`` = a weights file)."""
    from ..limits import check

    check("threads", options.get("threads"))
    if backend == "tiny":
        return TinyBackend(model, **options)
    if backend == "flux":  # diffusers FLUX + Seg2Any; ``model`` = a FLUX folder or hub id
        if model is None:
            raise InputError("the flux backend needs --model: a FLUX folder or hub id")
        from .flux.backend import FluxBackend

        return FluxBackend(model, **options)
    raise InputError(f"unknown backend '{backend}'; available: {', '.join(BACKENDS)}")
