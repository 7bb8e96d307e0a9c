"""``rs-seg2any flood|plan|seasons|change|cloudfill|run``: the scenarios from the command line.

Each command takes its base either as an existing image (``--image``: outputs land on its
grid) or as a layout (``--layout`` plus grid options) rendered first. ``run JOB.yaml`` runs a
job file whose keys are the command's long options (``scenario: flood`` picks the command).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..options import LayerOptions, add_layer_options
from ..progress import Progress
from ..yamlio import load_yaml_file, load_yaml_text

COMMANDS = ("flood", "plan", "seasons", "change", "cloudfill")


def _layout_args(p: argparse.ArgumentParser, required: bool, flag: str = "--layout") -> None:
    g = p.add_argument_group("layout (polygons)")
    g.add_argument(flag, required=required, dest="layout", help="polygon layer of the scene")
    add_layer_options(g, class_field_required=False)


def add_scenario_parsers(sub: Any, add_grid: Any, add_generator: Any, add_job: Any) -> None:
    """Register the scenario subcommands on the main parser's subparsers."""
    fl = sub.add_parser("flood", help="flood an image: polygons, or a DEM and a water level")
    fl.add_argument("--image", help="base GeoTIFF (else the layout is rendered first)")
    _layout_args(fl, required=False)
    ext = fl.add_argument_group("flood extent (polygons, or DEM + level)")
    ext.add_argument("--flood-polygons", help="polygon layer of the flooded area")
    ext.add_argument("--dem", help="DEM GeoTIFF (metres)")
    ext.add_argument("--level", type=float, help="water surface elevation in metres")
    ext.add_argument("--seed-xy", action="append", default=[], metavar="X,Y",
                     help="where water enters, in the image CRS (repeatable)")  # fmt: skip
    ext.add_argument("--dem-resample", choices=["nearest", "bilinear", "cubic"],
                     help="resample a DEM that is on another grid (default: refuse)")  # fmt: skip
    ext.add_argument("--preset", default="flood", help="flood preset name or YAML path")

    pl = sub.add_parser("plan", help="inpaint planning zones (polygons + descriptions)")
    pl.add_argument("--image", help="base GeoTIFF (else the layout is rendered first)")
    _layout_args(pl, required=False)
    z = pl.add_argument_group("zones")
    z.add_argument("--zones", required=True, help="polygon layer of the planned zones")
    z.add_argument("--zone-description-field", required=True, help="zone description field")
    z.add_argument("--zone-class-field", help="optional zone class (else 'planned development')")
    z.add_argument("--preset", default="planning", help="planning preset name or YAML path")

    se = sub.add_parser("seasons", help="render one layout for several seasons (same seed)")
    _layout_args(se, required=True)
    se.add_argument("--seasons", default="spring,summer,autumn,winter", help="comma list")
    se.add_argument("--preset", default="seasons", help="seasons preset name or YAML path")

    ch = sub.add_parser("change", help="bi-temporal change pairs with change masks")
    _layout_args(ch, required=True)
    c = ch.add_argument_group("change")
    c.add_argument("--after", help="after layout (same fields as --layout)")
    c.add_argument("--after-like", help="grid raster of the after layout (must equal the before)")
    recipes = ["new_buildings", "demolition", "road_construction", "urban_growth"]
    c.add_argument("--recipe", choices=recipes, help="derive the after layout from a recipe")
    c.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe parameter, e.g. count=20, fraction=0.3, percent=15")  # fmt: skip
    c.add_argument("--roles", help="building,bare,road class names (default: from the preset)")
    c.add_argument("--pairs", type=int, default=1, help="how many pairs (recipe draws)")
    c.add_argument("--preset", default="change", help="change preset name or YAML path")

    cf = sub.add_parser("cloudfill", help="fill the clouds of a real image from a layout")
    cf.add_argument("--image", required=True, help="the real image (GeoTIFF)")
    cf.add_argument("--clouds", required=True, help="cloud mask GeoTIFF (same grid) or polygons")
    _layout_args(cf, required=True)

    for p in (fl, pl, se, ch, cf):
        if p is not cf:
            add_grid(p)
        add_generator(p)
        add_job(p, 256)

    run = sub.add_parser("run", help="run a scenario job file (YAML)")
    run.add_argument("job", help="YAML with 'scenario: flood|plan|seasons|change|cloudfill' "
                     "and the command's long options as keys")  # fmt: skip


def job_argv(path: str | Path) -> list[str]:
    """A job file as the argv of its command: ``{scenario: flood, level: 3}`` -> flood --level 3.

    Keys must be long options of the command and values of the right kind (true/false for
    switches, a list only for repeatable options), else a one-line error names the key.
    """
    p = Path(path)
    data = load_yaml_file(p, "job file")
    if not isinstance(data, dict) or data.get("scenario") not in COMMANDS:
        raise InputError(f"job file '{p}' needs 'scenario:' one of {', '.join(COMMANDS)}")
    data = dict(data)
    command = str(data.pop("scenario"))
    actions = _long_options(command)
    argv = [command]
    for key, value in data.items():
        flag = "--" + str(key).replace("_", "-")
        action = actions.get(flag)
        if action is None:
            known = ", ".join(sorted(k[2:] for k in actions))
            raise InputError(
                f"job file '{p}': unknown key '{key}' for scenario {command}; keys are: {known}"
            )
        argv += _job_values(p, str(key), flag, value, action)
    return argv


def _long_options(command: str) -> dict[str, argparse.Action]:
    """The long options of one scenario command, by flag."""
    from ..cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {
        flag: action
        for action in sub.choices[command]._actions
        for flag in action.option_strings
        if flag.startswith("--") and flag not in ("--help", "--version")
    }


def _job_values(p: Path, key: str, flag: str, value: Any, action: argparse.Action) -> list[str]:
    """argv words for one job key; wrong kinds of value are refused, not stringified."""
    switch = action.nargs == 0
    where = f"job file '{p}': key '{key}'"
    if switch:
        if not isinstance(value, bool):
            raise InputError(f"{where} is a switch: use true or false (got {value!r})")
        return [flag] if value else []
    if value is None:
        return []
    repeatable = isinstance(action, argparse._AppendAction)
    values = value if isinstance(value, list) and repeatable else [value]
    out: list[str] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            kind = "a list" if isinstance(v, list) else type(v).__name__
            raise InputError(f"{where} must be a number or text, not {kind} ({v!r})")
        out.append(f"{flag}={v}")
    return out


def _opts(args: argparse.Namespace) -> Any:
    from ..cli import resolve_sampler
    from .common import GenOptions

    steps, guidance = resolve_sampler(args)
    return GenOptions(steps=steps, guidance=guidance, gamma=args.gamma, seed=args.seed,
                      tile_size=args.tile_size, overlap=args.overlap, caption=args.caption,
                      restart=args.restart)  # fmt: skip


def _polygons(args: argparse.Namespace, path: str, what: str) -> Any:
    from .common import Polygons

    return Polygons.read(path, options=LayerOptions.from_args(args), what=what)


def _grid(args: argparse.Namespace, layer: str, progress: Progress) -> Any:
    """The target grid of a layout from the grid options (as ``rs-seg2any layout``)."""
    from ..cli import _load_layout

    ns = argparse.Namespace(**vars(args))
    ns.layer_path = layer
    return _load_layout(ns, progress).grid


def run_scenario(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """Dispatch one scenario command; returns the ``{"out_dir", "outputs"}`` payload."""
    from ..cli import make_generator
    from ..geoio import ensure_writable_dir

    out = ensure_writable_dir(args.out)
    opts = _opts(args)
    cmd = args.command
    polys: Any = _polygons(args, args.layout, "--layout") if getattr(args, "layout", None) else None
    image = getattr(args, "image", None)
    grid: Any = None  # with --image, each scenario takes the image's grid
    if polys is not None and image is None and cmd != "cloudfill":
        grid = _grid(args, args.layout, progress)
    if cmd == "seasons":
        from .seasons import seasons

        names = [s.strip() for s in args.seasons.split(",") if s.strip()]
        res: Any = seasons(out, lambda lora: make_generator(args, [lora] if lora else []), polys,
                           grid, names, opts=opts, preset=args.preset,
                           progress=progress)  # fmt: skip
        return {"out_dir": str(out), "outputs": {k: str(v) for k, v in res.outputs().items()}}
    generator = make_generator(args)
    if cmd == "flood":
        from .flood import DemFlood, flood

        if bool(args.flood_polygons) == bool(args.dem):
            raise InputError("give --flood-polygons or --dem with --level (one of them)")
        extent: Any
        if args.dem:
            if args.level is None:
                raise InputError("--dem needs --level (water surface elevation in metres)")
            seeds = [_xy(s) for s in args.seed_xy]
            extent = DemFlood(Path(args.dem), args.level, seeds, args.dem_resample)
        else:
            extent = Path(args.flood_polygons)
        res = flood(out, generator, extent=extent, base_image=image, polygons=polys, grid=grid,
                    opts=opts, preset=args.preset, progress=progress)  # fmt: skip
    elif cmd == "plan":
        from .planning import plan

        res = plan(out, generator, Path(args.zones),
                   description_field=args.zone_description_field,
                   zone_class_field=args.zone_class_field, base_image=image, polygons=polys,
                   grid=grid, opts=opts, preset=args.preset, progress=progress)  # fmt: skip
    elif cmd == "change":
        from ..inputs import raster_grid
        from .change import change_pairs

        after = _polygons(args, args.after, "--after") if args.after else None
        params = dict(_kv(p) for p in args.param)
        after_grid = raster_grid(args.after_like, "--after-like") if args.after_like else None
        res = change_pairs(out, generator, polys, grid, after=after, after_grid=after_grid,
                           recipe=args.recipe, recipe_params=params, roles=args.roles,
                           pairs=args.pairs, opts=opts, preset=args.preset,
                           progress=progress)  # fmt: skip
    else:
        from .cloudfill import cloudfill

        job = cloudfill(out, generator, args.image, args.clouds, polys, opts=opts,
                        progress=progress)  # fmt: skip
        return job.to_dict()
    return {"out_dir": str(out), "outputs": {k: str(v) for k, v in res.outputs().items()}}


def _xy(text: str) -> tuple[float, float]:
    from ..limits import check_number_list

    x, y = check_number_list(text, "--seed-xy", 2)
    return x, y


def _kv(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise InputError(f"--param {text!r} must be KEY=VALUE")
    key, value = text.split("=", 1)
    parsed = load_yaml_text(value, f"--param {key.strip()}")
    if (isinstance(parsed, float) and parsed != parsed) or parsed in (float("inf"), -float("inf")):
        raise InputError(f"--param {key.strip()}={value} must be a finite number")
    return key.strip(), parsed
