# SPDX-License-Identifier: Apache-2.0
"""Where a job's tiles run, as typed params (``--workers``, ``--scheduler``, ``--attempts``).

Kept apart from :mod:`rs_seg2any.job.execute` so the job model and the CLI can offer these
options without importing the job machinery.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InputError
from ..limits import check
from ..params import opt

__all__ = ["AUTO", "DEFAULT_ATTEMPTS", "DEFAULT_GPU_RESOURCE", "NO_RESOURCE", "ExecParams"]

DEFAULT_ATTEMPTS = 2
"""Tries per tile: one retry absorbs a transient failure (a GPU out of memory while another
job held it, a flaky network disk) without tripling the cost of a tile that always fails."""

AUTO, NO_RESOURCE = "auto", "none"
DEFAULT_GPU_RESOURCE = "GPU"
"""The Dask resource a GPU tile holds when ``--gpu-resource`` is ``auto``: the name in the
Dask docs' own example (``dask worker ADDRESS --resources GPU=1``)."""

_RESOURCE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class ExecParams:
    """Where a job's tiles run: here (default), a local cluster, or an existing cluster."""

    workers: int | None = opt(
        None, "run tiles on a local Dask cluster of N worker processes (one thread each)"
    )
    scheduler: str | None = opt(
        None,
        "run tiles on an existing Dask cluster (tcp://HOST:8786); its workers must see --out",
        metavar="ADDRESS",
    )
    attempts: int = opt(DEFAULT_ATTEMPTS, "tries per tile before it is reported as failed")
    gpu_resource: str = opt(
        AUTO,
        "Dask resource each tile holds, one unit per tile, so it runs only on workers started "
        "with --resources NAME=1 (one tile at a time per GPU): auto (GPU when the generator "
        "runs on a GPU), none, or a resource NAME (always)",
        metavar="auto|none|NAME",
    )

    def __post_init__(self) -> None:
        check("workers", self.workers)  # one table of numeric rules: rs_seg2any.limits
        check("attempts", self.attempts)
        if not _RESOURCE_NAME.fullmatch(self.gpu_resource):
            raise InputError(
                f"--gpu-resource {self.gpu_resource!r}: give auto, none or a Dask resource "
                "name (letters, digits, _ . -), as in `dask worker --resources GPU=1`"
            )
        if self.workers is not None and self.scheduler:
            raise InputError("give --workers (a local cluster) or --scheduler, not both")

    @property
    def distributed(self) -> bool:
        return bool(self.workers or self.scheduler)

    def override(
        self,
        *,
        workers: int | None = None,
        scheduler: str | None = None,
        attempts: int | None = None,
        gpu_resource: str | None = None,
    ) -> ExecParams:
        """These params with what the caller gave (the command line over a job file):
        ``workers`` replaces a ``scheduler`` and the other way round."""
        if workers is None and scheduler is None and attempts is None and gpu_resource is None:
            return self
        return ExecParams(
            workers=workers if workers is not None else None if scheduler else self.workers,
            scheduler=scheduler if scheduler else None if workers is not None else self.scheduler,
            attempts=attempts if attempts is not None else self.attempts,
            gpu_resource=gpu_resource if gpu_resource is not None else self.gpu_resource,
        )
