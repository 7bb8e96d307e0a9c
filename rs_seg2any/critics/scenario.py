"""``--refine`` on the scenarios: the loop run on each render a scenario makes.

Every scenario renders through the generate job: a whole layout (a scenario's base from a
layout, seasons, a change pair's T1, a detection set's scene) or an edit over a base image
(flood, plan, T2, cloudfill, damage, inserted objects). :func:`generate_or_refine` is that
job plus, when the scenario's :class:`~.params.RefineParams` ask for it, the refine loop over
what the job generated: the whole grid for a render, only the edit mask for an edit. In an
edit, entities are clipped to the mask before they are judged or repaired, so no pixel the
edit kept from the base image can change (nodata pixels of the base are left out too).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from numpy.typing import NDArray

from ..generators.base import Generator
from ..job.generate_job import EditRegion, run_generate_job
from ..job.runner import JobResult
from ..layout import Layout
from .loop import CountingGenerator, Settings
from .params import RefineParams


def edit_region(edit: EditRegion, image: Path) -> NDArray[np.bool_]:
    """The pixels an edit may have changed: its mask, less the image's nodata pixels."""
    with rasterio.open(edit.mask) as src:
        region: NDArray[np.bool_] = src.read(1) != 0
    with rasterio.open(image) as src:
        if src.nodata is not None:
            region &= ~(src.read() == src.nodata).all(axis=0)
    return region


def generate_or_refine(
    layout: Layout,
    out: Path,
    generator: Generator,
    opts: Any,
    progress: Any = None,
    *,
    edit: EditRegion | None = None,
    **changes: Any,
) -> JobResult:
    """``run_generate_job`` with ``opts`` (a :class:`~rs_seg2any.scenarios.common.GenOptions`;
    ``changes`` override some of its settings), refined when ``opts.refine`` says so."""
    params: RefineParams | None = getattr(opts, "refine", None)
    kwargs = opts.job_kwargs(**changes)
    if params is None or not params.refine:
        return run_generate_job(layout, out, generator, progress=progress, edit=edit, **kwargs)
    from .run import refine_outputs

    counted = CountingGenerator(generator)
    t0 = time.perf_counter()
    res = run_generate_job(layout, out, counted, progress=progress, edit=edit, **kwargs)
    settings = Settings(
        steps=kwargs["steps"],
        guidance=kwargs["guidance"],
        gamma=kwargs["gamma"],
        seed=kwargs["seed"],
        plain_calls=counted.calls or res.tiles_total,
        plain_seconds=time.perf_counter() - t0 if counted.calls else 0.0,
    )
    region = edit_region(edit, Path(res.outputs["image"])) if edit is not None else None
    res.outputs.update(
        refine_outputs(
            res.out_dir,
            layout,
            generator,
            params,
            settings=settings,
            tile_size=kwargs["tile_size"],
            overlap=kwargs["overlap"],
            caption=kwargs["caption"],
            region=region,
        )
    )
    return res
