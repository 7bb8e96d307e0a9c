"""The ``flux`` backend: diffusers' FLUX transformer with Seg2Any conditioning and LoRA.

Import-light: torch and diffusers load only when :class:`FluxBackend` is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backend import FluxBackend, FluxSettings

__all__ = ["FluxBackend", "FluxSettings"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import backend

        return getattr(backend, name)
    raise AttributeError(name)
