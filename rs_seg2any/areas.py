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


def run_areas(job: AreasJob, run_one: Any, progress: Any) -> dict[str, Any]:
    """Run every area with ``run_one(job) -> Result``; a partial area does not stop the
    others. Returns the outputs (``area/name``) and the totals; raises PartialJobError at
    the end if some area was partial."""
    from .job.jobdir import folder_lock

    started = time.monotonic()
    outputs: dict[str, Path] = {}
    partial: list[str] = []
    tiles = resumed = 0
    with folder_lock(job.out):
        for i, (name, area) in enumerate(job.areas, 1):
            if progress is not None:
                progress.message(f"area {name} ({i} of {len(job.areas)})", area=name)
            try:
                res = run_one(area)
            except PartialJobError as exc:
                partial.append(f"{name}: {exc}")
                continue
            except RsSeg2AnyError as exc:
                raise type(exc)(f"area '{name}': {exc}") from exc
            outputs.update({f"{name}/{k}": v for k, v in res.outputs.items()})
            tiles += res.tiles_total
            resumed += res.tiles_resumed
    summary = {"areas": len(job.areas), "partial": len(partial), "tiles": tiles,
               "seconds": round(time.monotonic() - started, 3)}  # fmt: skip
    if progress is not None:
        progress.message(f"{len(job.areas) - len(partial)} of {len(job.areas)} areas done, "
                         f"{tiles} tiles, {summary['seconds']:.1f} s", level="info",
                         summary=summary)  # fmt: skip
    if partial:
        raise PartialJobError(f"{len(partial)} of {len(job.areas)} areas are partial; "
                              + " | ".join(partial))  # fmt: skip
    return {"outputs": outputs, "tiles_total": tiles, "tiles_resumed": resumed}
