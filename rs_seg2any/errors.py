"""Typed errors: every failure a user can cause maps to one of these, with an actionable message.

The CLI turns any ``RsSeg2AnyError`` into a one-line message and a distinct exit code, so
callers (the QGIS plugin, batch jobs) never have to parse a GDAL or torch traceback.
"""

from __future__ import annotations


class RsSeg2AnyError(Exception):
    """Base class of all errors a user can cause and fix."""

    exit_code: int = 2


class InputError(RsSeg2AnyError):
    """An input file, layer or raster is missing, unreadable or of the wrong kind."""

    exit_code = 3


class LayoutError(RsSeg2AnyError):
    """The polygon layer cannot be turned into a layout (fields, classes, geometries, CRS)."""

    exit_code = 4


class TaxonomyError(RsSeg2AnyError):
    """A taxonomy file is missing or malformed."""

    exit_code = 5


class GridError(RsSeg2AnyError):
    """The requested target grid is impossible or absurd (resolution, size, extent, CRS)."""

    exit_code = 6


class WeightsError(InputError):
    """A weights file is unreadable, corrupt (truncated, bad bytes, NaN/Inf) or does not fit
    the model it is loaded into (missing tensors, wrong shapes or dtypes)."""


class GenerationError(RsSeg2AnyError):
    """A generator produced unusable pixels (NaN/Inf); nothing is written for that tile."""

    exit_code = 11


class OutputError(RsSeg2AnyError):
    """Outputs cannot be written (folder not writable, disk full, existing files)."""

    exit_code = 7


class JobError(RsSeg2AnyError):
    """A job directory is inconsistent with the job being run (e.g. resumed with other inputs)."""

    exit_code = 8


class ScenarioError(RsSeg2AnyError):
    """A scenario's inputs contradict each other (a water level below all terrain, zones
    outside the image, a change pair whose layouts lie on different grids)."""

    exit_code = 9


class MissingDependencyError(RsSeg2AnyError):
    """An optional dependency (torch, diffusers, ...) is not installed; the message names the
    extra that brings it (``pip install 'rs-seg2any[model]'``)."""

    exit_code = 13


class PartialJobError(RsSeg2AnyError):
    """Some tiles failed after every attempt; the others finished and are kept, and the job's
    manifest lists each failed tile with its error. Rerunning retries only those."""

    exit_code = 14


class Cancelled(RsSeg2AnyError):
    """The user interrupted a job; finished tiles are kept and a rerun resumes."""

    exit_code = 130


def one_line(exc: BaseException, limit: int | None = None) -> str:
    """An exception's text on one line, for messages built from library errors: whitespace
    collapsed, an OSError's own reason (not its repr), the type's name if it has no text, cut
    at ``limit`` characters."""
    raw = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    text = " ".join(str(raw).split()) or type(exc).__name__
    return text[:limit] + "..." if limit and len(text) > limit else text


class AdapterMismatchError(WeightsError):
    """A LoRA adapter trained for another backend, base model, band set or class set."""


class ClusterError(InputError):
    """The Dask cluster cannot run the job as asked: no worker offers the resource each tile
    needs (a GPU), so the tiles would wait forever."""


class RecipeError(WeightsError):
    """A Dask worker refuses to rebuild the client's generator: a file the recipe names is
    missing or has another sha256 than the client saw, or the recipe is malformed."""


class SegmenterMismatchError(WeightsError):
    """Segmenter weight files that cannot be averaged: another architecture (arch, width,
    depth, classes, input scale) or other tensor names or shapes."""
