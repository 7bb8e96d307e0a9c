# SPDX-License-Identifier: Apache-2.0
"""Many areas in one job file: a list of layers (``areas:``) or a folder of them (``layers:``).

Batch augmentation runs the same recipe over many places. A job file with ``areas:`` holds
one mapping per area, each overriding the file's top-level keys (its own layer, class field,
taxonomy, grid, backend, command or scenario, seed...); ``layers: FOLDER`` makes one area of
every polygon file in the folder with the top-level keys. Each area is an ordinary job in
``<out>/<area name>/`` (``name:``, else the layer file's name), validated before anything
runs. All areas share one tile backend, so a cluster starts once and each worker loads a
generator once for all of them. An area whose tiles partly fail does not stop the others;
the run then ends with PartialJobError naming them.

On the local backend the areas run one after another (the reference run). On a Dask cluster
(``--workers`` / ``--scheduler``) several run at once, as many as the cluster's worker
threads (at least 2, :data:`MIN_AREAS_AT_ONCE`; areas of a GPU backend one at a time,
:data:`CLIENT_HEAVY_DEVICES`), each on a client thread
(:mod:`rs_seg2any.areapool`): inpainting
orders an area's tiles in waves, so a small area alone keeps few workers busy (a 3 x 3 grid:
9 tiles in 7 waves, 1.29x on 2 workers at best), while independent areas' tiles can fill
each other's gaps. Tiles and outputs are byte-identical either way (a tile's pixels depend
on its neighbours, not on when it ran). Errors keep the same contract: a partial area does
not stop the others; any other error stops starting areas, lets the running ones finish,
then is raised naming its area; Ctrl-C / SIGTERM cancel every running area's tiles and end
with Cancelled, and a rerun resumes each area from its manifest. Progress: see
:mod:`rs_seg2any.areaprogress`.

    command: generate
    out: runs/coast
    resolution: 0.5
    taxonomy: dubai_aerial
    class_field: landcover
    areas:
      - {name: north, layout: north.gpkg, seed: 1}
      - {name: south, layout: south.gpkg, backend: exemplar}
      - {name: harbour, scenario: flood, layout: harbour.gpkg, dem: dem.tif, level: 3}
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import InputError, PartialJobError, RsSeg2AnyError
from .job.execparams import ExecParams
from .jobmodel import Job, available_commands, job_from_mapping, job_keys

__all__ = ["AreasJob", "is_areas_file", "load_areas"]

LAYER_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".fgb", ".parquet")
_CLUSTER_KEYS = tuple(f.name for f in fields(ExecParams))


@dataclass(frozen=True)
class AreasJob(Job):
    """Several jobs, one per area, each writing into ``out/<name>``."""

    areas: tuple[tuple[str, Job], ...] = field(default_factory=tuple)


def is_areas_file(path: str | Path) -> bool:
    """Whether a job file lists areas (``areas:`` or ``layers:``)."""
    from .yamlio import load_yaml_file

    data = load_yaml_file(Path(path), "job file")
    return isinstance(data, dict) and ("areas" in data or "layers" in data)


def load_areas(path: str | Path) -> AreasJob:
    """The areas of a job file, each checked like a job of its own (errors name the area)."""
    from .yamlio import load_yaml_file

    p = Path(path)
    where = f"job file '{p}': "
    data = dict(load_yaml_file(p, "job file"))
    if "areas" in data and "layers" in data:
        raise InputError(f"{where}give 'areas:' (a list) or 'layers:' (a folder), not both")
    out = data.pop("out", None)
    if not out:
        raise InputError(f"{where}key 'out' is required: the folder of the areas' folders")
    progress = str(data.pop("progress", None) or "bar")
    cluster_values = {k: data.pop(k) for k in _CLUSTER_KEYS if k in data}
    try:
        cluster = ExecParams(**cluster_values)
    except TypeError as exc:
        raise InputError(f"{where}{exc}") from exc
    entries = _entries(data, where)
    jobs: list[tuple[str, Job]] = []
    used: set[str] = set()
    for i, entry in enumerate(entries):
        command = entry.get("command") or entry.get("scenario") or data.get("command")
        command = command or data.get("scenario") or "generate"
        if command not in available_commands():
            raise InputError(f"{where}area {i + 1}: unknown command or scenario {command!r}")
        fits = set(job_keys(str(command)))  # top-level keys apply where the command takes them
        used |= fits
        values = {k: v for k, v in data.items() if k in fits}
        values.update(entry)
        name = str(values.pop("name", "") or _name_of(values.get("layout"), i))
        if any(k in entry for k in _CLUSTER_KEYS):
            raise InputError(f"{where}area '{name}': set {', '.join(_CLUSTER_KEYS)} once, at "
                             "the top of the file")  # fmt: skip
        if not name.replace("-", "_").replace(".", "_").isidentifier():
            raise InputError(f"{where}area name {name!r} must be a plain folder name")
        values.pop("command", None)
        values.pop("scenario", None)
        values["out"] = str(Path(str(out)) / name)
        values["progress"] = progress
        jobs.append((name, job_from_mapping(str(command), values, f"{where}area '{name}': ")))
    stray = sorted(set(data) - used - {"command", "scenario"})
    if stray:
        raise InputError(f"{where}no area's command takes the key(s) {', '.join(stray)}")
    names = [n for n, _ in jobs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"{where}two areas are called {', '.join(dup)}; give each a 'name:'")
    return AreasJob("areas", Path(str(out)), progress=progress, cluster=cluster,
                    areas=tuple(jobs))  # fmt: skip


def _entries(data: dict[str, Any], where: str) -> list[dict[str, Any]]:
    if "layers" in data:
        folder = Path(str(data.pop("layers")))
        if not folder.is_dir():
            raise InputError(f"{where}key 'layers': folder '{folder}' not found")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in LAYER_SUFFIXES)
        if not files:
            raise InputError(f"{where}key 'layers': no polygon files ({', '.join(LAYER_SUFFIXES)}) "
                             f"in '{folder}'")  # fmt: skip
        return [{"layout": str(f)} for f in files]
    areas = data.pop("areas")
    if not isinstance(areas, list) or not areas or not all(isinstance(a, dict) for a in areas):
        raise InputError(f"{where}key 'areas' must be a non-empty list of mappings (one per area)")
    return [dict(a) for a in areas]


def _name_of(layout: Any, i: int) -> str:
    return Path(str(layout)).stem if layout else f"area{i + 1}"


MIN_AREAS_AT_ONCE = 2
"""Areas in flight on a cluster: its worker threads, at least this many, so that one area's
client-side steps (reading and validating its layer, assembling its GeoTIFFs) overlap
another's tiles even on one worker. Not more than the worker threads: on the 2-core
machine (another job using one core) 2 workers took 60.6 / 69.9 s for 6 areas of 3 x 3
tiles with 2 areas at once, 74.4 / 79.8 s with 3 (the extra client thread competes with the
workers for the cores), 70.0 / 72.6 s one at a time; 1 worker with 2 at once took
64.8 / 66.0 s (``bench/bench_dask.py --sections areas``, two runs)."""


CLIENT_HEAVY_DEVICES = frozenset({"cuda"})
"""Backends (by their ``device`` capability) whose areas run one at a time on a cluster:
each area in flight loads its generator on the client too, and a GPU backend's (FLUX:
gigabytes of weights) must not be loaded there once per area. Their tiles still spread over
the workers, and such areas are big enough to keep them busy."""


def area_slots(executor: Any, areas: int, backends: Sequence[str] = ()) -> int:
    """How many areas run at once on ``executor``: 1 on the local backend (the reference
    run, one area after another) or when any of the areas' ``backends`` is a GPU one
    (:data:`CLIENT_HEAVY_DEVICES`), else the cluster's worker threads, at least
    MIN_AREAS_AT_ONCE."""
    slots = getattr(executor, "slots", None)
    if slots is None or areas < 2 or any(_client_heavy(b) for b in set(backends)):
        return 1
    return int(min(areas, max(MIN_AREAS_AT_ONCE, slots())))


def _client_heavy(backend: str) -> bool:
    from .generators.registry import backend_spec

    device = backend_spec(backend).capabilities.get("device")
    return device in CLIENT_HEAVY_DEVICES


def run_areas(job: AreasJob, run_one: Any, progress: Any) -> dict[str, Any]:
    """Run every area with ``run_one(job, progress) -> Result``, one after another, or
    several at once when the tiles run on a Dask cluster (:mod:`rs_seg2any.areapool`); a
    partial area does not stop the others. Returns the outputs (``area/name``) and the
    totals; raises PartialJobError at the end if some area was partial."""
    from .job.execute import current
    from .job.jobdir import folder_lock

    started = time.monotonic()
    executor, _ = current()
    with folder_lock(job.out):
        backends = [area.sampler.backend for _, area in job.areas]
        slots = area_slots(executor, len(job.areas), backends)
        if slots > 1:
            done = _concurrent(job, run_one, progress, executor, slots)
        else:
            done = _sequential(job, run_one, progress)
    outputs: dict[str, Path] = {}
    tiles = resumed = 0
    for name, _ in job.areas:  # in the file's order, whatever order the areas ended in
        res = done.results.get(name)
        if res is not None:
            outputs.update({f"{name}/{k}": v for k, v in res.outputs.items()})
            tiles += res.tiles_total
            resumed += res.tiles_resumed
    partial = [f"{n}: {done.partial[n]}" for n, _ in job.areas if n in done.partial]
    summary = {"areas": len(job.areas), "partial": len(partial), "tiles": tiles,
               "seconds": round(time.monotonic() - started, 3), "at_once": slots}  # fmt: skip
    if progress is not None:
        progress.message(f"{len(job.areas) - len(partial)} of {len(job.areas)} areas done, "
                         f"{tiles} tiles, {summary['seconds']:.1f} s", level="info",
                         summary=summary)  # fmt: skip
    if partial:
        raise PartialJobError(f"{len(partial)} of {len(job.areas)} areas are partial; "
                              + " | ".join(partial))  # fmt: skip
    return {"outputs": outputs, "tiles_total": tiles, "tiles_resumed": resumed}


def _sequential(job: AreasJob, run_one: Any, progress: Any) -> Any:
    from .areapool import AreasOutcome

    done = AreasOutcome()
    for i, (name, area) in enumerate(job.areas, 1):
        if progress is not None:
            progress.message(f"area {name} ({i} of {len(job.areas)})", area=name)
        try:
            done.results[name] = run_one(area, progress)
        except PartialJobError as exc:
            done.partial[name] = exc
        except RsSeg2AnyError as exc:
            raise type(exc)(f"area '{name}': {exc}") from exc
    return done


def _concurrent(job: AreasJob, run_one: Any, progress: Any, executor: Any, slots: int) -> Any:
    """The areas on client threads sharing ``executor``; on any error or interrupt, the
    cluster closes here, before the folder lock is released."""
    from .areapool import run_concurrently

    try:
        with executor.shared():
            return run_concurrently(job.areas, run_one, slots, executor.stop, progress)
    except BaseException:
        executor.close()
        raise
