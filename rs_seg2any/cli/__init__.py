"""The ``rs-seg2any`` command.

Every user-caused failure prints one line ``error: <message>`` (and, with ``--progress json``,
an ``{"event": "error", ...}`` line) and exits with the error's code; nothing half-written is
left behind. Ctrl-C stops a job cleanly: rerunning the same command resumes it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..critics.params import RefineParams
from ..errors import Cancelled, RsSeg2AnyError
from ..interrupts import install_handlers
from ..job.execparams import ExecParams
from ..jobmodel import PROGRESS_MODES, Job, command_groups, job_from_mapping, load_job
from ..limits import EXTRA_TYPES, RULES, argtype, check_tiling
from ..options import LayerOptions
from ..params import (
    DEFAULT_LAYOUT_TILE,
    GridParams,
    SamplerParams,
    TileParams,
    field_types,
    kind_of,
)
from ..progress import Progress, make_progress

_NUMBER_LIST = re.compile(r"^-(\d|\.\d|inf|nan)[\w.+,: -]*$", re.IGNORECASE)
"""A negative number or a comma list starting with one (``-100,5079244,...``, ``-73.5,40.7``)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser for which negative numbers and comma lists of numbers are values,
    never options: west and south coordinates are everyday values."""

    def _parse_optional(self, arg_string: str) -> Any:
        if _NUMBER_LIST.match(arg_string):
            return None
        return super()._parse_optional(arg_string)


def _help(f: dataclasses.Field[Any], default: Any) -> str:
    text = str(f.metadata.get("help", ""))
    if default not in (None, False, True, (), "") and not f.metadata.get("required"):
        text += f" (default: {default})"
    return text


def add_params(
    container: argparse._ActionsContainer,
    cls: type,
    *,
    defaults: dict[str, Any] | None = None,
    skip: Sequence[str] = (),
    required: Sequence[str] = (),
) -> None:
    """Options generated from a params dataclass: one flag per field, its help, choices and
    kind from the field (``defaults`` override a command's defaults; ``skip`` hides fields)."""
    kinds = field_types(cls)
    groups: dict[str, argparse._ActionsContainer] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        title = f.metadata.get("group")
        target = container
        if title and isinstance(container, argparse.ArgumentParser):
            target = groups.setdefault(title, container.add_argument_group(title))
        default = (defaults or {}).get(f.name, f.default)
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        kind = kind_of(kinds[f.name])
        common: dict[str, Any] = {"dest": f.name, "help": _help(f, default)}
        if kind == "bool":
            target.add_argument(flag, action="store_true", default=default, **common)
            continue
        if f.metadata.get("metavar"):
            common["metavar"] = f.metadata["metavar"]
        if f.metadata.get("choices"):
            common["choices"] = list(f.metadata["choices"])
        must = bool(f.metadata.get("required")) or f.name in required
        if kind in ("list", "dict"):
            target.add_argument(flag, action="append", default=None, required=must, **common)
            continue
        convert: Any = {"int": int, "float": float}.get(kind)
        target.add_argument(
            flag, type=convert, default=None if must else default, required=must, **common
        )


def _add_job_args(p: argparse.ArgumentParser, command: str, layout: str) -> None:
    """The options of one job command, from the params it takes (see ``command_groups``)."""
    if layout == "positional":
        p.add_argument(
            "layout", metavar="LAYER", help="polygon file (GPKG, SHP, GeoJSON, FGB, Parquet)"
        )
    groups = command_groups(command)
    if "params" in groups:
        add_params(p, groups["params"])
    if "layer" in groups:
        lay = p.add_argument_group("layout (polygons)" if layout != "positional" else "layer")
        if layout != "positional":
            lay.add_argument(
                "--layout", required=layout == "required", help="polygon layer of the scene"
            )
        required = ("class_field",) if layout == "positional" else ()
        add_params(lay, LayerOptions, required=required)
    if "grid" in groups:
        add_params(p.add_argument_group("target grid (give --like, or --resolution)"), GridParams)
    if "sampler" in groups:
        add_params(p.add_argument_group("generator"), SamplerParams)
    if "refine" in groups:
        add_params(p.add_argument_group("refine (critics and a bounded repair loop)"), RefineParams)
    if "cluster" in groups:
        add_params(p.add_argument_group("execution (where tiles run)"), ExecParams)
    job = p.add_argument_group("job")
    job.add_argument("--out", required=True, help="output folder (created if needed)")
    if command == "layout":
        add_params(job, TileParams, defaults={"tile_size": DEFAULT_LAYOUT_TILE}, skip=("overlap",))
    else:
        add_params(job, TileParams)
    job.add_argument(
        "--progress",
        choices=list(PROGRESS_MODES),
        default="bar",
        help="progress on stderr: a bar, JSON lines (for programs), or nothing",
    )


def install_types(parser: Any) -> None:
    """Give every option of ``parser`` and its subcommands whose dest has a rule its
    ``type=``: one table, so no subcommand can forget a check."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                install_types(sub)
        elif not action.option_strings or action.type not in (None, int, float, str):
            continue  # positionals, and options with a converter of their own, stay as they are
        elif action.dest in RULES:
            action.type = argtype(action.dest)
        elif action.dest in EXTRA_TYPES:
            action.type = EXTRA_TYPES[action.dest]


def build_parser() -> argparse.ArgumentParser:
    """The ``rs-seg2any`` parser: job commands generated from their params and the registry."""
    from ..scenarios.registry import scenarios

    parser = _Parser(
        prog="rs-seg2any",
        description="Georeferenced land-cover polygons -> label, instance and contour maps "
        "and realistic imagery, on exactly the grid you ask for.",
    )
    parser.add_argument("--version", action="version", version=f"rs-seg2any {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    lay = sub.add_parser(
        "layout",
        help="rasterise a polygon layer into label, instance and contour GeoTIFFs",
        description="Rasterise a polygon layer onto a grid: label.tif (uint8 classes with a "
        "colour table), instance.tif (one id per polygon part), contour.tif (entity outlines), "
        "label.qml (QGIS style), preview.png, entities.csv, layout.json.",
    )
    _add_job_args(lay, "layout", "positional")

    gen = sub.add_parser(
        "generate",
        help="render imagery from a polygon layer (plus its label, instance and contour maps)",
        description="Render a polygon layer into a georeferenced image with a generator "
        "(default: the embedded CPU model): image.tif (RGB COG) plus label.tif, instance.tif, "
        "contour.tif, label.qml, preview.png, entities.csv and layout.json, all on one grid.",
    )
    _add_job_args(gen, "generate", "positional")

    for spec in scenarios().values():
        sp = sub.add_parser(spec.name, help=spec.help, description=spec.help)
        _add_job_args(sp, spec.name, spec.layout)

    ev = sub.add_parser(
        "evaluate",
        help="score a generator (and/or generated images) against real imagery and its labels",
        description="Render each real scene's labels with the generator and score it against "
        "the real image: real-vs-generated classifier (C2ST), per-class colour, saturation, "
        "texture, tile and token-grid lines, optional segmenter fidelity, with flat-paint, "
        "blurred-real and real-vs-real controls. Writes report.json and picture.png.",
    )
    _add_job_args(ev, "evaluate", "none")

    run = sub.add_parser("run", help="run a job file (YAML)")
    run.add_argument(
        "job",
        help="YAML with 'command:' (or 'scenario:') layout, generate or a "
        "scenario, and the command's long options as keys",
    )
    add_params(run.add_argument_group("execution (overrides the job file)"), ExecParams,
               defaults={"attempts": None, "gpu_resource": None})  # fmt: skip

    train = sub.add_parser(
        "train-base",
        help="train the embedded tiny generator on the Dubai aerial data",
        description="Train the embedded generator from a YAML config (geoconf/train/*.yaml): "
        "EMA, safetensors checkpoints, resume, loss log.",
    )
    train.add_argument("--config", required=True, help="training config YAML")
    train.add_argument("--out", help="override the output folder")
    train.add_argument("--minutes", type=float, help="override the time budget")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")

    _add_train_lora(sub)
    sub.add_parser("adapters", help="list the installed LoRA adapters (JSON)")

    sub.add_parser("taxonomies", help="list the shipped taxonomies and their classes")
    sub.add_parser("backends", help="list the generator backends (JSON)")
    sub.add_parser("scenarios", help="list the scenarios (JSON)")

    demo = sub.add_parser("demo-layer", help="write the demo town layout (GeoPackage)")
    demo.add_argument("path", help="where to write the GeoPackage")
    sub.add_parser("schema", help="print the commands and their options as JSON (for programs)")
    install_types(parser)
    return parser


def _add_train_lora(sub: Any) -> None:
    """``train-lora``: options from LoraTrainParams and LayerOptions (a job-file kind too)."""
    from ..lora.params import LoraTrainParams

    p = sub.add_parser(
        "train-lora",
        help="adapt a generator to your own imagery and polygons (LoRA)",
        description="Train a LoRA adapter of the tiny (CPU) or flux (GPU) backend on your "
        "georeferenced images and their polygon layer (rasterised on each image's grid; nodata, "
        "borders and --ignore-mask left out of the loss), validated on a held-out side of each "
        "image. Writes a peft adapter, its card, a validation grid and metrics into --out; use "
        "it with --lora OUT[:WEIGHT].",
    )
    p.add_argument("--images", nargs="+", action="extend", required=True, metavar="IMAGE",
                   help="georeferenced images (GeoTIFF)")  # fmt: skip
    add_params(p, LoraTrainParams, skip=("images",))
    add_params(p.add_argument_group("labels (polygons)"), LayerOptions, required=("class_field",))
    job = p.add_argument_group("job")
    job.add_argument("--out", required=True, help="adapter folder (created if needed)")
    job.add_argument(
        "--progress",
        choices=list(PROGRESS_MODES),
        default="bar",
        help="progress on stderr: a bar, JSON lines (for programs), or nothing",
    )


def _cmd_adapters() -> int:
    from ..api import list_adapters

    print(json.dumps(list_adapters(), indent=2, sort_keys=True))
    return 0


def job_of(args: argparse.Namespace) -> Job:
    """The typed job of a parsed command line (the only place a Namespace is read)."""
    values = {k: v for k, v in vars(args).items() if k not in ("command",) and v is not None}
    if "param" in values:
        from ..scenarios.builtin import parse_param

        values["param"] = dict(parse_param(text) for text in values["param"])
    return job_from_mapping(args.command, values)


def _cmd_job(job: Job, progress: Progress) -> int:
    from ..api import run_loaded_job

    _report_done(job.progress, run_loaded_job(job, progress=progress).to_dict())
    return 0


def _cmd_train_base(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from ..train.base import train_base

    overrides: dict[str, object] = {}
    if args.out:
        overrides["out"] = args.out
    if args.minutes is not None:
        overrides["minutes"] = args.minutes
    print(train_base(args.config, progress=not args.no_progress, **overrides))
    return 0


def _cmd_taxonomies() -> int:
    from ..taxonomy import load_taxonomy, shipped_taxonomies

    for name in shipped_taxonomies():
        tax = load_taxonomy(name)
        print(f"{name}: {tax.title}")
        for c in tax.classes:
            alias = f"  (aliases: {', '.join(c.aliases)})" if c.aliases else ""
            print(f"  {c.id:>3}  {c.name}{alias}")
    return 0


def _cmd_list(what: str) -> int:
    from ..api import list_backends, list_scenarios

    table = list_backends() if what == "backends" else list_scenarios()
    print(json.dumps(table, indent=2, sort_keys=True))
    return 0


def _cmd_schema() -> int:
    from .schema import print_schema

    return print_schema(build_parser())


def _cmd_demo_layer(args: argparse.Namespace) -> int:
    from ..demo import write_demo_layer

    path = write_demo_layer(args.path)
    print(path)
    return 0


def _report_done(mode: str, payload: dict[str, Any]) -> None:
    if mode == "json":
        sys.stderr.write(json.dumps({"event": "done", **payload}, sort_keys=True) + "\n")
        sys.stderr.flush()
    outputs = payload.get("outputs", {})
    print(f"outputs in {payload['out_dir']}:")
    for name, path in outputs.items():
        print(f"  {name:<9} {path}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse and check the numbers that only make sense together (tile size and overlap)."""
    args = build_parser().parse_args(argv)
    if getattr(args, "overlap", None) is not None and getattr(args, "tile_size", None):
        check_tiling(args.tile_size, args.overlap)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parse_args(argv)
        job = None
        if args.command == "run":
            from ..areas import is_areas_file, load_areas

            job = load_areas(args.job) if is_areas_file(args.job) else load_job(args.job)
            cluster = job.cluster.override(
                workers=args.workers, scheduler=args.scheduler, attempts=args.attempts,
                gpu_resource=args.gpu_resource,
            )  # fmt: skip
            job = dataclasses.replace(job, cluster=cluster)
        elif args.command not in _TOOLS:
            job = job_of(args)
    except RsSeg2AnyError as exc:  # a bad number or job file: one line, not argparse's usage
        return _report_error(exc, _progress_mode(words))
    if argv is None:  # a real process, not a library call of main([...])
        install_handlers()
    if job is not None:
        return _run(job.progress, lambda p: _cmd_job(job, p))
    tools = {
        "taxonomies": lambda: _cmd_taxonomies(),
        "backends": lambda: _cmd_list("backends"),
        "scenarios": lambda: _cmd_list("scenarios"),
        "demo-layer": lambda: _cmd_demo_layer(args),
        "schema": lambda: _cmd_schema(),
        "train-base": lambda: _cmd_train_base(args),
        "adapters": lambda: _cmd_adapters(),
    }
    return _run("none", lambda _p: tools[args.command]())


_TOOLS = (
    "taxonomies",
    "backends",
    "scenarios",
    "schema",
    "demo-layer",
    "train-base",
    "adapters",
)
"""Commands that are not jobs (no output folder, no progress)."""


def _run(mode: str, body: Any) -> int:
    progress = make_progress(mode)
    try:
        code: int = body(progress)
        return code
    except (RsSeg2AnyError, KeyboardInterrupt) as exc:
        progress.close()
        err = exc if isinstance(exc, RsSeg2AnyError) else Cancelled("interrupted; rerun to resume")
        return _report_error(err, mode)
    finally:
        progress.close()


def _report_error(err: RsSeg2AnyError, mode: str) -> int:
    """One ``error:`` line (and the JSON ``error`` event programs wait for); the exit code."""
    if mode == "json":
        event = {"event": "error", "type": type(err).__name__, "message": str(err)}
        sys.stderr.write(json.dumps(event) + "\n")
    sys.stderr.write(f"error: {err}\n")
    sys.stderr.flush()
    return err.exit_code


def _progress_mode(argv: Sequence[str]) -> str:
    """``--progress`` as typed, for errors found while the arguments are still being parsed."""
    words = list(argv)
    for i, word in enumerate(words):
        if word.startswith("--progress="):
            return word.split("=", 1)[1]
        if word == "--progress" and i + 1 < len(words):
            return words[i + 1]
    return "bar"
