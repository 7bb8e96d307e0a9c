"""``rs-seg2any flood|plan|seasons|change|cloudfill|run``: the scenarios from the command line.

Each command takes its base either as an existing image (``--image``: outputs land on its
grid) or as a layout (``--layout`` plus grid options) rendered first. ``run JOB.yaml`` runs a
job file whose keys are the command's long options (``scenario: flood`` picks the command).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError
from ..progress import Progress

COMMANDS = ("flood", "plan", "seasons", "change", "cloudfill")


def _layout_args(p: argparse.ArgumentParser, required: bool, flag: str = "--layout") -> None:
    g = p.add_argument_group("layout (polygons)")
    g.add_argument(flag, required=required, dest="layout", help="polygon layer of the scene")
    g.add_argument("--layer", dest="layer_name", help="layer name inside a multi-layer file")
    g.add_argument("--class-field", help="field holding each polygon's class")
    g.add_argument("--description-field", help="optional free-text description field")
    g.add_argument("--taxonomy", default="worldcover", help="taxonomy name or YAML path")


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
    """A job file as the argv of its command: ``{scenario: flood, level: 3}`` -> flood --level 3."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"job file not found: {p}")
    data = yaml.safe_load(p.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("scenario") not in COMMANDS:
        raise InputError(f"{p}: needs 'scenario:' one of {', '.join(COMMANDS)}")
    argv = [str(data.pop("scenario"))]
    for key, value in data.items():
        flag = "--" + str(key).replace("_", "-")
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v is True:
                argv.append(flag)
            elif v is False or v is None:
                continue
            else:
                argv += [flag, str(v)]
    return argv


def _opts(args: argparse.Namespace) -> Any:
    from ..cli import resolve_sampler
    from .common import GenOptions

    steps, guidance = resolve_sampler(args)
    return GenOptions(steps=steps, guidance=guidance, gamma=args.gamma, seed=args.seed,
                      tile_size=args.tile_size, overlap=args.overlap, caption=args.caption,
                      restart=args.restart)  # fmt: skip


def _polygons(args: argparse.Namespace, path: str | None = None) -> Any:
    from .common import Polygons

    if not args.class_field:
        raise InputError("--class-field is required with a layout")
    return Polygons.read(path or args.layout, args.class_field, layer=args.layer_name,
                         description_field=args.description_field,
                         taxonomy=args.taxonomy)  # fmt: skip


def _grid(args: argparse.Namespace, layer: str, progress: Progress) -> Any:
    """The target grid of a layout from the grid options (as ``rs-seg2any layout``)."""
    from ..cli import _load_layout

    ns = argparse.Namespace(**vars(args))
    ns.layer_path = layer
    ns.priority_field = None
    ns.unknown_class = "error"
    ns.layer_crs = None
    return _load_layout(ns, progress).grid


def run_scenario(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """Dispatch one scenario command; returns the ``{"out_dir", "outputs"}`` payload."""
    from ..cli import make_generator
    from ..geoio import ensure_writable_dir

    out = ensure_writable_dir(args.out)
    opts = _opts(args)
    cmd = args.command
    polys: Any = _polygons(args) if getattr(args, "layout", None) else None
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
        import geopandas as gpd

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
            if not Path(args.flood_polygons).exists():
                raise InputError(f"flood polygons not found: {args.flood_polygons}")
            extent = gpd.read_file(args.flood_polygons)
        res = flood(out, generator, extent=extent, base_image=image, polygons=polys, grid=grid,
                    opts=opts, preset=args.preset, progress=progress)  # fmt: skip
    elif cmd == "plan":
        import geopandas as gpd

        from .planning import plan

        if not Path(args.zones).exists():
            raise InputError(f"zones not found: {args.zones}")
        res = plan(out, generator, gpd.read_file(args.zones),
                   description_field=args.zone_description_field,
                   zone_class_field=args.zone_class_field, base_image=image, polygons=polys,
                   grid=grid, opts=opts, preset=args.preset, progress=progress)  # fmt: skip
    elif cmd == "change":
        from ..grid import grid_like
        from .change import change_pairs

        after = _polygons(args, args.after) if args.after else None
        params = dict(_kv(p) for p in args.param)
        after_grid = grid_like(args.after_like) if args.after_like else None
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
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise InputError(f"--seed-xy {text!r} must be X,Y") from exc
    return x, y


def _kv(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise InputError(f"--param {text!r} must be KEY=VALUE")
    key, value = text.split("=", 1)
    parsed = yaml.safe_load(value)
    return key.strip(), parsed
