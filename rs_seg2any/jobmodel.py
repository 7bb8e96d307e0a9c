"""One job, typed: what to run (layout, generate or a scenario) with all its parameters.

A :class:`Job` is what the CLI parses into, what a job file (YAML) loads into and what the
API verbs build from keyword arguments; :func:`rs_seg2any.api.run_loaded_job` is the one
place that executes it. Keys are the fields of the command's params dataclasses (one flat
namespace per command), plus ``out``, ``layout`` and ``progress``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .critics.params import RefineParams
from .errors import InputError, RsSeg2AnyError
from .job.execparams import ExecParams
from .options import LayerOptions
from .params import (
    DEFAULT_LAYOUT_TILE,
    EvaluateParams,
    GridParams,
    SamplerParams,
    TileParams,
    check_value,
    field_types,
    from_mapping,
    kind_of,
)

TOP_KEYS = ("out", "layout", "progress")
"""Keys of every job besides its params' fields."""
PROGRESS_MODES = ("bar", "json", "none")


@dataclass(frozen=True)
class Job:
    """A command with its parameters; ``params`` holds a scenario's own options."""

    command: str
    out: Path
    layout: Any = None  # a path, a GeoDataFrame or a Layout (API); a path in job files
    layer: LayerOptions = field(default_factory=LayerOptions)
    grid: GridParams = field(default_factory=GridParams)
    sampler: SamplerParams = field(default_factory=SamplerParams)
    tiles: TileParams = field(default_factory=TileParams)
    params: Any = None
    progress: str = "bar"
    refine: RefineParams = field(default_factory=RefineParams)
    cluster: ExecParams = field(default_factory=ExecParams)


def command_groups(command: str) -> dict[str, type]:
    """The params dataclasses a command takes, by the Job attribute that holds them."""
    if command == "layout":
        return {"layer": LayerOptions, "grid": GridParams, "tiles": TileParams,
                "cluster": ExecParams}  # fmt: skip
    if command == "generate":
        return {
            "layer": LayerOptions,
            "grid": GridParams,
            "sampler": SamplerParams,
            "tiles": TileParams,
            "refine": RefineParams,
            "cluster": ExecParams,
        }
    if command == "evaluate":
        return {"params": EvaluateParams, "sampler": SamplerParams, "tiles": TileParams}
    if command == "train-lora":
        from .lora.params import LoraTrainParams

        return {"params": LoraTrainParams, "layer": LayerOptions}
    from .scenarios.registry import scenario_spec

    spec = scenario_spec(command)
    groups: dict[str, type] = {"params": spec.params, "layer": LayerOptions}
    if spec.grid:
        groups["grid"] = GridParams
    groups = {**groups, "sampler": SamplerParams, "tiles": TileParams, "cluster": ExecParams}
    if spec.refine:
        groups["refine"] = RefineParams
    return groups


def job_keys(command: str) -> list[str]:
    """Every key a job of ``command`` accepts."""
    keys = list(TOP_KEYS)
    for name, cls in command_groups(command).items():
        keys += [f.name for f in dataclasses.fields(cls) if not _hidden(command, name, f.name)]
    return keys


def _hidden(command: str, group: str, name: str) -> bool:
    """Fields a command does not offer (a layout job has no overlap)."""
    return command == "layout" and group == "tiles" and name == "overlap"


def job_from_mapping(command: str, values: Mapping[str, Any], where: str = "") -> Job:
    """A :class:`Job` from flat key/values (a job file, parsed CLI options, keywords).

    Unknown keys, wrong kinds of value, bad choices, missing required keys and missing input
    files are one-line :class:`InputError`s naming the key; ``where`` prefixes them (the job
    file). The scenario's own params are checked last: they may depend on the others.
    """
    groups = command_groups(command)
    known = set(job_keys(command))
    for key in values:
        if key not in known:
            raise InputError(f"{where}unknown key '{key}' for {command}; keys are: "
                             f"{', '.join(sorted(known))}")  # fmt: skip
    progress = check_value("str", values.get("progress") or "bar", f"{where}key 'progress'")
    if progress not in PROGRESS_MODES:
        raise InputError(f"{where}key 'progress' must be one of {', '.join(PROGRESS_MODES)}")
    layout = values.get("layout")
    if layout is not None and not _is_loaded(layout):
        layout = check_value("str", layout, f"{where}key 'layout'")
        if not Path(layout).exists():
            flag = "LAYER" if command in ("layout", "generate") else "--layout"
            raise InputError(f"{where}key 'layout' ({flag}): file '{layout}' not found")
    for cls in groups.values():  # every value of the right kind, before any other check
        kinds = field_types(cls)
        for f in dataclasses.fields(cls):
            if f.name in values:
                check_value(kind_of(kinds[f.name]), values[f.name], f"{where}key '{f.name}'")
    built: dict[str, Any] = {}
    for name in sorted(groups, key=lambda n: n == "params"):
        cls = groups[name]
        mine = {f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values}
        if name == "tiles" and command == "layout":
            mine.setdefault("tile_size", DEFAULT_LAYOUT_TILE)
            mine.setdefault("overlap", 0)
        if name == "params":
            _check_out(values, where)
        for f in dataclasses.fields(cls):
            if f.metadata.get("required") and not mine.get(f.name):
                raise InputError(f"{where}key '{f.name}' is required for {command}")
        try:
            built[name] = from_mapping(cls, mine, where)
        except RsSeg2AnyError:
            raise
        except (TypeError, ValueError) as exc:  # a plug-in's own checks
            raise InputError(f"{where}{command}: {exc}") from exc
    out = _check_out(values, where)
    return Job(command, Path(out), layout, progress=progress, **built)


def _check_out(values: Mapping[str, Any], where: str) -> str:
    out = values.get("out")
    if out is None or out == "":
        raise InputError(f"{where}key 'out' (--out) is required: the output folder")
    text: str = check_value("str", out, f"{where}key 'out'")
    return text


def _is_loaded(layout: Any) -> bool:
    """A layout given as an object (a Layout or a GeoDataFrame), not as a path."""
    return not isinstance(layout, str | Path)


def load_job(path: str | Path) -> Job:
    """A job file: YAML (``safe_load``, bounded) whose ``command:`` (or ``scenario:``) names
    the command and whose other keys are its parameters."""
    from .yamlio import load_yaml_file

    p = Path(path)
    data = load_yaml_file(p, "job file")
    where = f"job file '{p}': "
    commands = available_commands()
    need = f"{where}needs 'scenario:' (or 'command:') one of {', '.join(commands)}"
    if not isinstance(data, dict):
        raise InputError(f"{need}, in a mapping of keys to values")
    data = dict(data)
    command = data.pop("command", None) or data.pop("scenario", None)
    if command not in commands:
        raise InputError(need)
    try:
        return job_from_mapping(str(command), data, where)
    except RsSeg2AnyError as exc:
        if str(exc).startswith(where):
            raise
        raise type(exc)(f"{where}{exc}") from exc


def available_commands() -> list[str]:
    """Commands a job can run: layout, generate, evaluate and every registered scenario."""
    from .scenarios.registry import scenarios

    return ["layout", "generate", "evaluate", "train-lora", *scenarios()]
