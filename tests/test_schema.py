"""``rs-seg2any schema``: the CLI as JSON, and argv built from it by the QGIS plugin's builder.

The plugin's schema module has no QGIS import, so its argv builder is checked here against
the real parser: whatever the plugin builds from the schema, ``parse_args`` accepts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rs_seg2any import __version__
from rs_seg2any.cli import build_parser, install_types, parse_args
from rs_seg2any.cli.schema import PATH_DESTS, SCHEMA_VERSION, TEXT_DESTS, cli_schema

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "qgis_plugin"))

from rs_seg2any_qgis.backend import SchemaMismatch  # noqa: E402
from rs_seg2any_qgis.cli_schema import CliSchema, check_schema_version  # noqa: E402
from rs_seg2any_qgis.jobs import JobSpec  # noqa: E402
from rs_seg2any_qgis.scenarios import COMMANDS, ScenarioSpec  # noqa: E402

KEYS = {"dest", "flag", "positional", "type", "choices", "default", "required", "repeatable",
        "help", "group"}  # fmt: skip


@pytest.fixture(scope="module")
def printed() -> dict[str, Any]:
    """The schema as the real CLI prints it, from a separate process."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "rs_seg2any.cli", "schema"], env=env,
                          capture_output=True, text=True, check=False, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


@pytest.fixture(scope="module")
def schema(printed: dict[str, Any]) -> CliSchema:
    return CliSchema(printed, "rs-seg2any")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_the_cli_prints_every_command_with_every_option(printed: dict[str, Any]) -> None:
    assert printed["schema_version"] == SCHEMA_VERSION == 1
    assert (printed["program"], printed["version"]) == ("rs-seg2any", __version__)
    parsers = subcommands(build_parser())
    assert set(printed["commands"]) == set(parsers)
    assert {"layout", "generate", "flood", "plan", "seasons", "change", "cloudfill", "run",
            "schema"} <= set(printed["commands"])  # fmt: skip
    for name, command in printed["commands"].items():
        assert command["help"], name
        dests = [a.dest for a in parsers[name]._actions if a.default != argparse.SUPPRESS]
        assert [a["dest"] for a in command["arguments"]] == dests, name
        for arg in command["arguments"]:
            assert set(arg) == KEYS, (name, arg)
            assert arg["positional"] == (arg["flag"] is None), (name, arg)
            assert arg["type"] in ("path", "text", "int", "float", "bool", "choice")
            assert (arg["choices"] is not None) == (arg["type"] == "choice"), (name, arg)


def test_the_options_the_plugin_uses_have_the_right_types(printed: dict[str, Any]) -> None:
    def arg(command: str, dest: str) -> dict[str, Any]:
        found = [a for a in printed["commands"][command]["arguments"] if a["dest"] == dest]
        assert len(found) == 1, (command, dest)
        return found[0]

    expect = {
        ("generate", "layout"): ("path", None, True),
        ("generate", "out"): ("path", "--out", True),
        ("generate", "class_field"): ("text", "--class-field", True),
        ("generate", "layer"): ("text", "--layer", False),
        ("generate", "steps"): ("int", "--steps", False),
        ("generate", "guidance"): ("float", "--guidance", False),
        ("generate", "seed"): ("int", "--seed", False),
        ("generate", "tile_size"): ("int", "--tile-size", False),
        ("generate", "max_pixels"): ("float", "--max-pixels", False),
        ("generate", "restart"): ("bool", "--restart", False),
        ("generate", "resolution"): ("text", "--resolution", False),
        ("generate", "extent"): ("text", "--extent", False),
        ("generate", "unknown_class"): ("choice", "--unknown-class", False),
        ("flood", "image"): ("path", "--image", False),
        ("flood", "flood_polygons"): ("path", "--flood-polygons", False),
        ("flood", "dem"): ("path", "--dem", False),
        ("flood", "level"): ("float", "--level", False),
        ("flood", "seed_xy"): ("text", "--seed-xy", False),
        ("flood", "dem_resample"): ("choice", "--dem-resample", False),
        ("plan", "zones"): ("path", "--zones", True),
        ("plan", "zone_description_field"): ("text", "--zone-description-field", True),
        ("seasons", "layout"): ("path", "--layout", True),
        ("seasons", "seasons"): ("text", "--seasons", False),
        ("change", "recipe"): ("choice", "--recipe", False),
        ("change", "param"): ("text", "--param", False),
        ("change", "pairs"): ("int", "--pairs", False),
        ("cloudfill", "image"): ("path", "--image", True),
        ("cloudfill", "clouds"): ("path", "--clouds", True),
        ("cloudfill", "layout"): ("path", "--layout", True),
    }
    for (command, dest), (kind, flag, required) in expect.items():
        got = arg(command, dest)
        assert (got["type"], got["flag"], got["required"]) == (kind, flag, required), got
    assert arg("flood", "seed_xy")["repeatable"] and arg("change", "param")["repeatable"]
    assert not arg("flood", "level")["repeatable"]
    assert arg("flood", "dem_resample")["choices"] == ["nearest", "bilinear", "cubic"]
    assert arg("change", "recipe")["choices"] == ["new_buildings", "demolition",
                                                  "road_construction", "urban_growth"]  # fmt: skip
    assert arg("seasons", "seasons")["default"] == "spring,summer,autumn,winter"
    assert arg("generate", "tile_size")["default"] == 256
    assert arg("generate", "seed")["default"] == 0


def test_every_text_or_path_option_is_decided_by_the_table(printed: dict[str, Any]) -> None:
    """A new option that takes free text must be put in PATH_DESTS or TEXT_DESTS: a form
    offers a file picker only where the table says so."""
    undecided = {
        (name, a["dest"])
        for name, command in printed["commands"].items()
        for a in command["arguments"]
        if a["type"] in ("path", "text") and a["dest"] not in PATH_DESTS | TEXT_DESTS
    }
    assert not undecided, f"add these dests to PATH_DESTS or TEXT_DESTS: {sorted(undecided)}"


def test_types_come_from_the_actions_not_from_this_parser() -> None:
    """Any parser: switches, choices, plain and rule converters, Path types, repeats."""
    parser = argparse.ArgumentParser(prog="toy")
    sub = parser.add_subparsers(dest="command")
    toy = sub.add_parser("toy", help="a toy command")
    toy.add_argument("where", type=Path, help="100%% a path")
    group = toy.add_argument_group("numbers")
    group.add_argument("--tile-size", default=64)  # a rule of limits.RULES, installed below
    group.add_argument("--count", type=int)
    group.add_argument("--ratio", type=float, default=0.5)
    toy.add_argument("--mode", choices=("a", "b"), default="a")
    toy.add_argument("--fast", action="store_true")
    toy.add_argument("--tag", action="append", default=[])
    toy.add_argument("--note")
    install_types(parser)
    args = {a["dest"]: a for a in cli_schema(parser)["commands"]["toy"]["arguments"]}
    kinds = {dest: a["type"] for dest, a in args.items()}
    assert kinds == {"where": "path", "tile_size": "int", "count": "int", "ratio": "float",
                     "mode": "choice", "fast": "bool", "tag": "text", "note": "text"}  # fmt: skip
    assert args["where"]["positional"] and args["where"]["required"]
    assert args["where"]["help"] == "100% a path"
    assert args["tag"]["repeatable"] and args["tag"]["default"] == []
    assert args["tile_size"]["group"] == "numbers" and args["note"]["group"] == ""
    assert args["mode"]["choices"] == ["a", "b"] and args["ratio"]["default"] == 0.5


def scenario_specs(tmp: str) -> dict[str, ScenarioSpec]:
    """One spec per scenario with every option the plugin's forms set, plus extras."""
    layout = {"layout": f"{tmp}/town.gpkg", "layer_name": "town", "class_field": "landcover",
              "description_field": "desc", "taxonomy": "dubai_aerial"}  # fmt: skip
    grid = {"resolution": 0.5, "crs": "EPSG:32640", "extent": (300000.0, -10.5, 300048.0, 38.0)}
    gen = {"backend": "tiny", "model": f"{tmp}/w.safetensors", "steps": 2, "guidance": 4.5,
           "seed": 7, "caption": "-a caption that starts with a dash", "threads": 1,
           "tile_size": 64, "restart": True}  # fmt: skip
    return {
        "flood": ScenarioSpec(command="flood", out_dir=f"{tmp}/f", **layout, **grid, **gen,
                              dem=f"{tmp}/dem.tif", level=-3.5,
                              seed_xy=[(300001.0, -5.0), (300002.5, 6.0)],
                              dem_resample="bilinear",
                              extra={"preset": "flood", "no_snap": True, "max_pixels": 1e6,
                                     "priority_field": "prio"}),
        "plan": ScenarioSpec(command="plan", out_dir=f"{tmp}/p", image=f"{tmp}/b.tif", **gen,
                             zones=f"{tmp}/z.gpkg", zone_description_field="desc",
                             zone_class_field="cls", extra={"gamma": 0.5}),
        "seasons": ScenarioSpec(command="seasons", out_dir=f"{tmp}/s", **layout, **grid, **gen,
                                seasons=["summer", "winter"], extra={"keep_tiles": True}),
        "change": ScenarioSpec(command="change", out_dir=f"{tmp}/c", **layout, **grid, **gen,
                               recipe="demolition", params={"fraction": "0.3"}, pairs=3,
                               roles="building,bare,road",
                               extra={"after_like": f"{tmp}/a.tif", "overlap": 8}),
        "cloudfill": ScenarioSpec(command="cloudfill", out_dir=f"{tmp}/cf",
                                  image=f"{tmp}/b.tif", clouds=f"{tmp}/clouds.tif",
                                  **layout, **gen, extra={"unknown_class": "skip"}),
        "damage": ScenarioSpec(command="damage", out_dir=f"{tmp}/d", **layout, **grid, **gen,
                               disaster="earthquake", origin=(300010.0, 2.5),
                               params={"decay": "0.3"},
                               extra={"damage_description_field": "note"}),
        "detection-set": ScenarioSpec(command="detection-set", out_dir=f"{tmp}/ds", **layout,
                                      **grid, **gen, objects=f"{tmp}/obj.gpkg",
                                      object_class_field="kind", chip_size=32, chip_stride=16,
                                      min_visible=0.3, formats=["coco", "vector"],
                                      segmentation="polygon", extra={"split_block": 32}),
    }  # fmt: skip


def test_every_scenario_argv_built_from_the_schema_is_accepted(schema: CliSchema) -> None:
    specs = scenario_specs("/data")
    assert set(specs) == set(COMMANDS)
    for command, spec in specs.items():
        argv = spec.to_args(schema)
        args = parse_args(argv)
        assert args.command == command
        assert (args.out, args.progress) == (spec.out_dir, "json")
        assert argv[-4:] == ["--out", spec.out_dir, "--progress", "json"]
        assert (args.steps, args.seed, args.tile_size, args.restart) == (2, 7, 64, True)
        assert args.caption == "-a caption that starts with a dash"
        for dest, value in spec.extra.items():
            assert getattr(args, dest) == value, (command, dest)
        if command != "plan":
            assert (args.layout, args.layer, args.class_field, args.taxonomy) == (
                "/data/town.gpkg",
                "town",
                "landcover",
                "dubai_aerial",
            )
    flood = parse_args(specs["flood"].to_args(schema))
    assert (flood.dem, flood.level, flood.dem_resample) == ("/data/dem.tif", -3.5, "bilinear")
    assert flood.seed_xy == ["300001,-5", "300002.5,6"]
    assert flood.extent == "300000,-10.5,300048,38" and flood.resolution == "0.5"
    seasons = parse_args(specs["seasons"].to_args(schema))
    assert seasons.seasons == "summer,winter"
    change = parse_args(specs["change"].to_args(schema))
    assert (change.recipe, change.param, change.pairs) == ("demolition", ["fraction=0.3"], 3)
    assert change.overlap == 8
    cloudfill = parse_args(specs["cloudfill"].to_args(schema))
    assert (cloudfill.image, cloudfill.clouds) == ("/data/b.tif", "/data/clouds.tif")
    damage = parse_args(specs["damage"].to_args(schema))
    assert (damage.disaster, damage.origin, damage.param) == (
        "earthquake", "300010,2.5", ["decay=0.3"])  # fmt: skip
    det = parse_args(specs["detection-set"].to_args(schema))
    assert (det.objects, det.object_class_field, det.chip_size, det.chip_stride) == (
        "/data/obj.gpkg", "kind", 32, 16)  # fmt: skip
    assert (det.min_visible, det.formats, det.segmentation) == (0.3, "coco,vector", "polygon")


def test_layout_and_generate_argv_built_from_the_schema_are_accepted(schema: CliSchema) -> None:
    spec = JobSpec("generate", "/d/town.gpkg", "landcover", "/o", layer_name="town",
                   taxonomy="worldcover", unknown_class="skip", like="/grid.tif", seed=3,
                   steps=2, tile_size=64)  # fmt: skip
    argv = spec.to_args(schema)
    assert argv[:4] == ["generate", "/d/town.gpkg", "--class-field", "landcover"]
    assert "--taxonomy" not in argv and "--seed" in argv  # the CLI's default is left out
    args = parse_args(argv)
    assert (args.like, args.unknown_class, args.overlap, args.seed) == ("/grid.tif", "skip", 16, 3)
    layout = parse_args(JobSpec("layout", "/a.gpkg", "c", "/o", resolution=10).to_args(schema))
    assert (layout.command, layout.resolution, layout.layout) == ("layout", "10", "/a.gpkg")


def test_the_builder_refuses_what_the_backend_would(schema: CliSchema) -> None:
    bad_recipe = ScenarioSpec(command="change", out_dir="/o", layout="/l", class_field="c",
                              resolution=1.0, recipe="earthquake")  # fmt: skip
    with pytest.raises(ValueError, match="--recipe must be one of new_buildings"):
        bad_recipe.to_args(schema)
    with pytest.raises(ValueError, match="--pairs must be an integer"):
        schema.build_argv("change", {"layout": "/l", "pairs": "two", "out": "/o"})
    with pytest.raises(ValueError, match="--zones is required"):
        schema.build_argv("plan", {"zone_description_field": "d", "out": "/o"})
    with pytest.raises(SchemaMismatch, match=r"has no option 'wings'.*upgrade rs-seg2any"):
        schema.build_argv("flood", {"wings": 2})
    with pytest.raises(SchemaMismatch, match="no 'teleport' command"):
        schema.build_argv("teleport", {})


@pytest.mark.parametrize(
    ("version", "upgrade", "words"),
    [(2, "plugin", "newer than this plugin"), (0, "backend", "older than this plugin"),
     (None, "backend", "no schema version"), ("1", "backend", "schema version 1, older")],
)  # fmt: skip
def test_schema_versions_that_do_not_fit(version: object, upgrade: str, words: str) -> None:
    data = {"program": "rs-seg2any", "version": "9.9", "commands": {}}
    if version is not None:
        data["schema_version"] = version
    with pytest.raises(SchemaMismatch, match=words) as caught:
        check_schema_version(data, "/env/bin/rs-seg2any")
    assert caught.value.upgrade == upgrade
    advice = "upgrade the rs_seg2any plugin" if upgrade == "plugin" else "upgrade rs-seg2any in"
    assert "9.9" in str(caught.value) and advice in str(caught.value)
    check_schema_version({**data, "schema_version": 1})  # the one this plugin reads
