"""The ``rs-seg2any`` command.

Every user-caused failure prints one line ``error: <message>`` (and, with ``--progress json``,
an ``{"event": "error", ...}`` line) and exits with the error's code; nothing half-written is
left behind. Ctrl-C stops a job cleanly: rerunning the same command resumes it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__
from .errors import Cancelled, InputError, RsSeg2AnyError
from .generators.base import DEFAULT_GUIDANCE, DEFAULT_STEPS
from .limits import check_tiling, install_types
from .options import add_layer_options
from .progress import Progress, make_progress

_NUMBER_LIST = re.compile(r"^-(\d|\.\d|inf|nan)[\w.+,: -]*$", re.IGNORECASE)
"""A negative number or a comma list starting with one (``-100,5079244,...``, ``-73.5,40.7``)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser for which negative numbers and comma lists of numbers are values,
    never options: west and south coordinates are everyday values.

    While a job file is parsed, usage errors raise InputError (one line naming the file)
    instead of printing usage for options the user never typed.
    """

    raise_errors = False

    def error(self, message: str) -> Any:
        if _Parser.raise_errors:
            raise InputError(" ".join(message.split()))
        return super().error(message)

    def _parse_optional(self, arg_string: str) -> Any:
        if _NUMBER_LIST.match(arg_string):
            return None
        return super()._parse_optional(arg_string)


def _add_layer_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("layer")
    g.add_argument(
        "layer_path", metavar="LAYER", help="polygon file (GPKG, SHP, GeoJSON, FGB, Parquet)"
    )
    add_layer_options(g, class_field_required=True)


def _add_grid_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("target grid (give --like, or --resolution)")
    g.add_argument("--like", help="copy the grid (CRS, transform, shape) of this raster")
    g.add_argument(
        "--like-utm",
        action="store_true",
        help="with a --like raster in degrees: render its footprint on the local UTM zone "
        "with square pixels at its ground resolution (or --resolution)",
    )
    g.add_argument("--resolution", help="pixel size in CRS units: 10 or 10,10")
    g.add_argument("--crs", help="output CRS (default: the layer's; UTM for lon/lat layers)")
    g.add_argument(
        "--extent",
        help="xmin,ymin,xmax,ymax (default: the layer's bounds); in --extent-crs",
    )
    g.add_argument(
        "--extent-crs",
        help="CRS of --extent (default: --crs when given, else the layer's CRS)",
    )
    g.add_argument("--no-snap", action="store_true", help="start the grid at the extent corner")
    g.add_argument(
        "--keep-geographic", action="store_true", help="keep a lon/lat CRS instead of UTM"
    )
    g.add_argument("--max-pixels", type=float, help="pixel budget (default 2.5e9)")


def _add_job_args(p: argparse.ArgumentParser, tile_default: int) -> None:
    g = p.add_argument_group("job")
    g.add_argument("--out", required=True, help="output folder (created if needed)")
    g.add_argument("--tile-size", type=int, default=tile_default, help="tile size in pixels")
    g.add_argument("--restart", action="store_true", help="discard an earlier unfinished job")
    g.add_argument("--keep-tiles", action="store_true", help="keep the tile cache when done")
    g.add_argument(
        "--progress",
        choices=["bar", "json", "none"],
        default="bar",
        help="progress on stderr: a bar, JSON lines (for programs), or nothing",
    )


def add_generator_args(gen: argparse.ArgumentParser) -> None:
    g = gen.add_argument_group("generator")
    g.add_argument("--backend", default="tiny", help="generator backend (default: tiny)")
    g.add_argument("--model", help="weights file or model folder (default: the embedded model)")
    g.add_argument("--steps", type=int,
                   help=f"sampling steps (default: tiny {DEFAULT_STEPS}, flux 28)")  # fmt: skip
    g.add_argument("--guidance", type=float,
                   help=f"guidance scale (default: tiny {DEFAULT_GUIDANCE}, flux 3.5)")  # fmt: skip
    g.add_argument("--gamma", type=float, default=1.0, help="shape strength (0 = ignore shapes)")
    g.add_argument("--seed", type=int, default=0, help="job seed; each tile derives its own")
    g.add_argument("--caption", help="global caption (default: the classes of each tile)")
    g.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels")
    g.add_argument("--threads", type=int, help="CPU threads for the model (default: all)")
    f = gen.add_argument_group("flux backend")
    f.add_argument("--lora", action="append", metavar="PATH[:WEIGHT]",
                   help="LoRA file or Seg2Any checkpoint folder (repeatable)")  # fmt: skip
    f.add_argument("--device", default="auto", help="auto (GPU when present), cuda, cpu")
    f.add_argument("--dtype", default="auto", help="auto (bf16 on GPU), bf16, fp16, fp32")
    f.add_argument("--offload", action="store_true", help="keep parts on the CPU until used")


def build_parser() -> argparse.ArgumentParser:
    from .runner import DEFAULT_LAYOUT_TILE

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
    _add_layer_args(lay)
    _add_grid_args(lay)
    _add_job_args(lay, DEFAULT_LAYOUT_TILE)

    gen = sub.add_parser(
        "generate",
        help="render imagery from a polygon layer (plus its label, instance and contour maps)",
        description="Render a polygon layer into a georeferenced image with a generator "
        "(default: the embedded CPU model): image.tif (RGB COG) plus label.tif, instance.tif, "
        "contour.tif, label.qml, preview.png, entities.csv and layout.json, all on one grid.",
    )
    _add_layer_args(gen)
    _add_grid_args(gen)
    add_generator_args(gen)
    _add_job_args(gen, 256)

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

    from .scenarios.cli import add_scenario_parsers

    add_scenario_parsers(sub, _add_grid_args, add_generator_args, _add_job_args)

    sub.add_parser("taxonomies", help="list the shipped taxonomies and their classes")

    demo = sub.add_parser("demo-layer", help="write the demo town layout (GeoPackage)")
    demo.add_argument("path", help="where to write the GeoPackage")
    sub.add_parser("schema", help="print the commands and their options as JSON (for programs)")
    install_types(parser)
    return parser


def _load_layout(args: argparse.Namespace, progress: Progress) -> Any:
    from .layout import load_layout

    extent = None
    if args.extent:
        try:
            extent = [float(v) for v in args.extent.replace(" ", ",").split(",") if v]
        except ValueError as exc:
            from .errors import GridError

            raise GridError(f"--extent {args.extent!r} must be four numbers") from exc
        if len(extent) != 4:
            from .errors import GridError

            raise GridError(f"--extent {args.extent!r} must be four numbers: xmin,ymin,xmax,ymax")
    return load_layout(
        args.layer_path,
        args.class_field,
        layer=args.layer_name,
        description_field=args.description_field,
        priority_field=args.priority_field,
        taxonomy=args.taxonomy,
        unknown_class=args.unknown_class,
        like=args.like,
        resolution=args.resolution,
        crs=args.crs,
        extent=extent,
        extent_crs=getattr(args, "extent_crs", None),
        snap=not args.no_snap,
        keep_geographic=args.keep_geographic,
        like_utm=getattr(args, "like_utm", False),
        layer_crs=args.layer_crs,
        max_pixels=int(args.max_pixels) if args.max_pixels else None,
        progress=progress,
    )


def _cmd_layout(args: argparse.Namespace, progress: Progress) -> int:
    from .geoio import ensure_writable_dir
    from .runner import run_layout_job

    ensure_writable_dir(args.out)  # fail before the (possibly long) validation pass
    layout = _load_layout(args, progress)
    result = run_layout_job(
        layout,
        args.out,
        tile_size=args.tile_size,
        restart=args.restart,
        keep_tiles=args.keep_tiles,
        progress=progress,
    )
    _report_done(args, result.to_dict())
    return 0


def resolve_sampler(args: argparse.Namespace) -> tuple[int, float]:
    """``--steps``/``--guidance``, or the backend's defaults where they were not given."""
    from .generators.registry import sampler_defaults

    steps, guidance = sampler_defaults(args.backend)
    return (
        args.steps if args.steps is not None else steps,
        args.guidance if args.guidance is not None else guidance,
    )


def make_generator(args: argparse.Namespace, extra_lora: Sequence[str] = ()) -> Any:
    """The generator the generator options ask for (``extra_lora``: e.g. a season adapter)."""
    from .errors import InputError
    from .generators.registry import load_generator

    options: dict[str, Any] = {"threads": args.threads} if args.threads else {}
    lora = [*(args.lora or []), *extra_lora]
    if args.backend == "flux":
        options.update(lora=lora, device=args.device, dtype=args.dtype, offload=args.offload)
    elif lora or args.offload or args.device != "auto" or args.dtype != "auto":
        raise InputError(
            "LoRA adapters (--lora, season adapters), --device, --dtype and --offload apply to "
            f"--backend flux, not to {args.backend}"
        )
    return load_generator(args.backend, args.model, **options)


def _cmd_generate(args: argparse.Namespace, progress: Progress) -> int:
    from .generate_job import run_generate_job
    from .geoio import ensure_writable_dir

    ensure_writable_dir(args.out)
    layout = _load_layout(args, progress)
    generator = make_generator(args)
    steps, guidance = resolve_sampler(args)
    result = run_generate_job(
        layout,
        args.out,
        generator,
        steps=steps,
        guidance=guidance,
        gamma=args.gamma,
        seed=args.seed,
        tile_size=args.tile_size,
        overlap=args.overlap,
        caption=args.caption,
        restart=args.restart,
        keep_tiles=args.keep_tiles,
        progress=progress,
    )
    _report_done(args, result.to_dict())
    return 0


SCENARIOS = ("flood", "plan", "seasons", "change", "cloudfill")


def _cmd_scenario(args: argparse.Namespace, progress: Progress) -> int:
    from .scenarios.cli import run_scenario

    _report_done(args, run_scenario(args, progress))
    return 0


def _cmd_train_base(args: argparse.Namespace) -> int:
    from .train.__main__ import main as train_main

    argv = ["train-base", "--config", args.config]
    if args.out:
        argv += ["--out", args.out]
    if args.minutes is not None:
        argv += ["--minutes", str(args.minutes)]
    if args.no_progress:
        argv.append("--no-progress")
    return train_main(argv)


def _cmd_taxonomies() -> int:
    from .taxonomy import load_taxonomy, shipped_taxonomies

    for name in shipped_taxonomies():
        tax = load_taxonomy(name)
        print(f"{name}: {tax.title}")
        for c in tax.classes:
            alias = f"  (aliases: {', '.join(c.aliases)})" if c.aliases else ""
            print(f"  {c.id:>3}  {c.name}{alias}")
    return 0


def _cmd_demo_layer(args: argparse.Namespace) -> int:
    from .demo import write_demo_layer

    path = write_demo_layer(args.path)
    print(path)
    return 0


def _report_done(args: argparse.Namespace, payload: dict[str, Any]) -> None:
    if args.progress == "json":
        sys.stderr.write(json.dumps({"event": "done", **payload}, sort_keys=True) + "\n")
        sys.stderr.flush()
    outputs = payload.get("outputs", {})
    print(f"outputs in {payload['out_dir']}:")
    for name, path in outputs.items():
        print(f"  {name:<9} {path}")


def _interrupt_on_signals() -> None:
    """SIGTERM (and SIGINT, even if a parent ignored it) stop a job like Ctrl-C: cleanly,
    keeping finished tiles, so schedulers and the QGIS plugin can cancel and resume."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse and check the numbers that only make sense together (tile size and overlap)."""
    args = build_parser().parse_args(argv)
    if getattr(args, "overlap", None) is not None and getattr(args, "tile_size", None):
        check_tiling(args.tile_size, args.overlap)
    return args


def _job_args(path: str) -> argparse.Namespace:
    """A job file parsed as its command line; every error names the file."""
    from .scenarios.cli import job_argv

    argv = job_argv(path)
    _Parser.raise_errors = True
    try:
        return parse_args(argv)
    except RsSeg2AnyError as exc:
        raise type(exc)(f"job file '{path}': {exc}") from exc
    finally:
        _Parser.raise_errors = False


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        if args.command == "run":
            args = _job_args(args.job)
    except RsSeg2AnyError as exc:  # a bad number or job file: one line, not argparse's usage
        return _report_error(exc, _progress_mode(sys.argv[1:] if argv is None else argv))
    if argv is None:  # a real process, not a library call of main([...])
        _interrupt_on_signals()
    if args.command == "taxonomies":
        return _run(args, lambda _p: _cmd_taxonomies())
    if args.command == "schema":
        from .schema import print_schema

        return print_schema()
    if args.command == "demo-layer":
        return _run(args, lambda _p: _cmd_demo_layer(args))
    if args.command == "generate":
        return _run(args, lambda p: _cmd_generate(args, p))
    if args.command == "train-base":
        return _run(args, lambda _p: _cmd_train_base(args))
    if args.command in SCENARIOS:
        return _run(args, lambda p: _cmd_scenario(args, p))
    return _run(args, lambda p: _cmd_layout(args, p))


def _run(args: argparse.Namespace, body: Any) -> int:
    mode = getattr(args, "progress", "none")
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
