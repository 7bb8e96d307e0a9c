"""The ``flux`` backend: diffusers' FLUX transformer with Seg2Any conditioning and LoRA.

Needs the ``flux`` extra: checked here, before any submodule imports torch or diffusers, so
a missing one is a typed error naming the extra. (diffusers and transformers import lazily:
their modules load only when :class:`FluxBackend` is used.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...deps import require

for _module in ("torch", "safetensors", "diffusers", "transformers"):
    require(_module, "flux", user="the flux backend")

if TYPE_CHECKING:
    from .backend import FluxBackend, FluxSettings

__all__ = ["FluxBackend", "FluxSettings"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import backend

        return getattr(backend, name)
    raise AttributeError(name)
