# SPDX-License-Identifier: Apache-2.0
"""GPU tiles on Dask: the resource a tile holds, local workers with one GPU each, and a check
that some worker offers the resource before a tile is submitted.

Dask resources are abstract counters: a worker started with ``--resources GPU=1`` runs at
most one task holding ``GPU`` at a time, and a worker without it runs none. A tile that holds
one unit therefore gets a GPU to itself (no two tiles share one's memory) and CPU-only
workers of the same cluster never take a GPU job's tiles. Without the check, tiles asking for
a resource no worker has would wait forever; :func:`require_resource` turns that into a
:class:`~rs_seg2any.errors.ClusterError` after a short wait for workers still joining.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from typing import Any

from ..errors import ClusterError
from .execparams import AUTO, DEFAULT_GPU_RESOURCE, NO_RESOURCE

__all__ = [
    "RESOURCE_WAIT_S",
    "local_worker_specs",
    "require_resource",
    "runs_on_gpu",
    "tile_resource",
    "visible_gpus",
]

RESOURCE_WAIT_S = 30.0
"""How long a job waits for a worker offering its tiles' resource (workers of a cluster
that was just started, or of an adaptive one, join after the client)."""


def runs_on_gpu(generator: Any) -> bool:
    """Whether ``generator`` renders on a CUDA device: its ``device`` as loaded here, or the
    ``device`` its recipe asks workers for (``--device cuda``)."""
    if generator is None:
        return False
    device = getattr(generator, "device", None)
    if getattr(device, "type", str(device or "")).startswith("cuda"):
        return True
    recipe = getattr(generator, "_rs_recipe", None)
    options = recipe[3] if isinstance(recipe, tuple) and len(recipe) == 4 else {}
    return str(options.get("device", "")).startswith("cuda")


def tile_resource(setting: str, render: Any) -> str | None:
    """The resource each tile of ``render`` holds: ``setting`` is ``--gpu-resource`` (auto:
    GPU when the renderer's generator runs on a GPU; none: no resource; else that name)."""
    if setting == NO_RESOURCE:
        return None
    if setting == AUTO:
        gen = getattr(render, "generator", None)
        return DEFAULT_GPU_RESOURCE if runs_on_gpu(gen) else None
    return setting


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as ``CUDA_VISIBLE_DEVICES`` entries (empty
    without torch or a GPU): a local cluster gives one to each GPU worker."""
    if "torch" not in sys.modules and importlib.util.find_spec("torch") is None:
        return []
    import torch

    count = int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    if not count:
        return []
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [s.strip() for s in given.split(",") if s.strip()] if given else []
    return ids[:count] if len(ids) >= count else [str(i) for i in range(count)]


def local_worker_specs(
    base: dict[str, Any], n_workers: int, gpus: list[str], resource: str = DEFAULT_GPU_RESOURCE
) -> dict[int, dict[str, Any]]:
    """Worker specs of a local cluster (``base``: a LocalCluster's own spec): worker i < len
    (gpus) sees only GPU ``gpus[i]`` and offers ``resource=1``; the others see no GPU, so a
    GPU job's tiles go to one worker per GPU and a CPU job's to all."""
    options = dict(base["options"])
    env = dict(options.get("env") or {})
    specs: dict[int, dict[str, Any]] = {}
    for i in range(n_workers):
        mine = dict(options)
        if i < len(gpus):
            mine["env"] = {**env, "CUDA_VISIBLE_DEVICES": gpus[i]}
            mine["resources"] = {resource: 1}
        elif gpus:
            mine["env"] = {**env, "CUDA_VISIBLE_DEVICES": ""}
        specs[i] = {"cls": base["cls"], "options": mine}
    return specs


def offered(client: Any, resource: str) -> tuple[int, int]:
    """(workers offering ``resource``, all workers) of the cluster ``client`` talks to."""
    try:
        info = client.scheduler_info(n_workers=-1)  # all workers, not the first five
    except TypeError:  # distributed before 2025: always all of them
        info = client.scheduler_info()
    workers = info.get("workers", {})
    having = [w for w in workers.values() if (w.get("resources") or {}).get(resource, 0) >= 1]
    return len(having), len(workers)


def require_resource(client: Any, resource: str, where: str, wait: float | None = None) -> None:
    """Return once some worker offers one unit of ``resource``; raise ClusterError if none
    does within ``wait`` seconds (default :data:`RESOURCE_WAIT_S`)."""
    deadline = time.monotonic() + (RESOURCE_WAIT_S if wait is None else wait)
    while True:
        having, total = offered(client, resource)
        if having:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    raise ClusterError(
        f"none of the {total} workers of {where} offers the Dask resource '{resource}' each "
        f"tile holds; start GPU workers with `dask worker SCHEDULER --resources "
        f"{resource}=1`, or give --gpu-resource none to run tiles on any worker"
    )
