"""Typed errors of the FLUX backend, each with the fix a user can apply.

They subclass the package's error types so the CLI prints one line and a stable exit code
instead of a torch or diffusers traceback.
"""

from __future__ import annotations

from ...errors import InputError, RsSeg2AnyError


class DeviceError(RsSeg2AnyError):
    """The requested device (a GPU) is not available on this machine."""

    exit_code = 12


class ModelFolderError(InputError):
    """A FLUX model folder lacks parts the backend needs (they are listed)."""


class LoraMismatchError(InputError):
    """A LoRA file whose layers or shapes do not fit the loaded transformer."""


class GpuOutOfMemoryError(RsSeg2AnyError):
    """The accelerator ran out of memory; the message suggests what to shrink."""

    exit_code = 10
