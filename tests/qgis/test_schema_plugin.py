"""The plugin reads the backend's `rs-seg2any schema` and builds its forms and argv from it.

Every dialog's argv is checked by the backend's own parser (its Python, a real process);
the version messages come from stand-in backends, real scripts that print another schema.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from qgis.core import (
    QgsFeature,
    QgsGeometry,
    QgsProject,
    QgsRasterBandStats,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtWidgets import QDialogButtonBox
from test_scenario_actions import FLOOD_BOX, GRID, check_on_grid, group_layers, write_raster

PARSE = (
    "import json, sys\n"
    "from rs_seg2any.cli import parse_args\n"
    "print(json.dumps(vars(parse_args(sys.argv[1:])), default=str))\n"
)


def parsed_by_backend(cli: Path, argv: list[str]) -> dict[str, Any]:
    """``argv`` as the backend's own parser reads it (its Python, next to its CLI)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([str(cli.parent / "python"), "-c", PARSE, *argv], env=env,
                          capture_output=True, text=True, check=False, timeout=300)  # fmt: skip
    assert done.returncode == 0, (argv, done.stderr[-2000:])
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def stand_in_backend(folder: Path, body: str) -> Path:
    """An executable `rs-seg2any` that answers `--version` and runs ``body`` otherwise."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "rs-seg2any"
    path.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        "if sys.argv[1:] == ['--version']:\n    print('rs-seg2any 7.0.0'); sys.exit(0)\n"
        f"{body}\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def backend_setting() -> Iterator[Any]:
    """Set the Settings' backend for one test; the setting is cleared afterwards."""
    from rs_seg2any_qgis import config

    def use(path: Path) -> None:
        config.put(config.CLI, str(path))

    yield use
    config.put(config.CLI, "")


@pytest.fixture
def polygons() -> QgsVectorLayer:
    """A memory layer with one box on the grid (flood extent, zone, cloud) and a text field."""
    layer = QgsVectorLayer("Polygon?crs=EPSG:32640&field=desc:string", "box", "memory")
    feature = QgsFeature(layer.fields())
    feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(*FLOOD_BOX)))
    feature.setAttribute("desc", "a car park with white lines")
    layer.dataProvider().addFeatures([feature])
    layer.updateExtents()
    QgsProject.instance().addMapLayer(layer)
    return layer


@pytest.fixture
def rasters(tmp_path: Path) -> tuple[QgsRasterLayer, QgsRasterLayer]:
    """A 3-band base image and a DEM on GRID, as project layers."""
    from osgeo import gdal

    cells = [(r, c) for r in range(96) for c in range(96)]
    image = write_raster(tmp_path / "base.tif", [[(r + c) % 256 for r, c in cells]] * 3,
                         gdal.GDT_Byte)  # fmt: skip
    dem = write_raster(tmp_path / "dem.tif", [[c / 10.0 for _r, c in cells]], gdal.GDT_Float32)
    layers = (QgsRasterLayer(str(image), "base", "gdal"), QgsRasterLayer(str(dem), "dem", "gdal"))
    for layer in layers:
        QgsProject.instance().addMapLayer(layer)
    return layers


def test_the_schema_is_read_from_the_backend_cli(cli: Path) -> None:
    from rs_seg2any_qgis.backend import backend_versions
    from rs_seg2any_qgis.cli_schema import load_schema

    schema = load_schema(cli)
    assert schema.schema_version == 1
    assert schema.version == backend_versions(cli)["rs-seg2any"]
    assert {"layout", "generate", "flood", "plan", "seasons", "change", "cloudfill"} <= set(
        schema.commands
    )
    assert schema.choices("change", "recipe")[:2] == ["new_buildings", "demolition"]
    assert schema.argument("generate", "tile_size").type == "int"
    assert load_schema(cli) is schema  # asked once per backend install


def test_the_schema_is_asked_again_after_an_upgrade(tmp_path: Path) -> None:
    """Cached per backend path and installed version; an upgrade is seen without a restart."""
    from rs_seg2any_qgis.cli_schema import load_schema

    env = tmp_path / "env"
    version_file = env / "version.txt"
    body = (
        f"v = open({str(version_file)!r}).read()\n"
        "print(json.dumps({'schema_version': 1, 'program': 'rs-seg2any', 'version': v,"
        " 'commands': {'taxonomies': {'help': 'list', 'arguments': []}}}))"
    )
    cli = stand_in_backend(env / "bin", body)
    site = env / "lib" / "python3.11" / "site-packages"
    (site / "rs_seg2any-1.0.dist-info").mkdir(parents=True)
    version_file.write_text("1.0")
    first = load_schema(cli)
    assert first.version == "1.0" and load_schema(cli) is first
    version_file.write_text("2.0")
    assert load_schema(cli) is first  # same install: not asked again
    (site / "rs_seg2any-1.0.dist-info").rename(site / "rs_seg2any-2.0.dist-info")
    assert load_schema(cli).version == "2.0"


def fill(dialog: Any, key: str, rasters: Any, polygons: Any, town: Any, out: Path) -> None:
    """The smallest complete form of each scenario, using the backend's choices."""
    image, dem = rasters
    if key in ("seasons", "change", "cloudfill", "damage"):
        dialog.layer.setLayer(town)
        dialog.class_field.setField("landcover")
        dialog.taxonomy.setCurrentText("dubai_aerial")
    if key in ("seasons", "change"):
        dialog.resolution.setValue(0.5)
        dialog.grid.extent.setChecked(True)
        dialog.grid.extent.setOutputExtentFromUser(QgsRectangle(*GRID), dialog.grid.output_crs())
    if dialog.image is not None:
        dialog.image.setLayer(image)
    if key == "flood":
        dialog.by_dem.setChecked(True)
        dialog.dem.setLayer(dem)
        dialog.level.setValue(3.0)
        dialog.seed_xy.setText("300001,2780170")
        dialog.dem_resample.setCurrentIndex(dialog.dem_resample.findData("bilinear"))
    elif key == "planning":
        dialog.zones.setLayer(polygons)
        dialog.zone_description_field.setField("desc")
    elif key == "seasons":
        for name, check in dialog.season_boxes.items():
            check.setChecked(name == "winter")
    elif key == "change":
        dialog.by_recipe.setChecked(True)
        dialog.recipe.setCurrentIndex(dialog.recipe.findData("urban_growth"))
        dialog.params.setText("percent=15")
        dialog.pairs.setValue(2)
    elif key == "cloudfill":
        dialog.clouds.setLayer(polygons)
    elif key == "damage":
        dialog.by_recipe.setChecked(True)
        dialog.disaster.setCurrentIndex(dialog.disaster.findData("earthquake"))
        dialog.origin.setText("300010,2780170")
        dialog.params.setText("decay=0.3")
    elif key == "detection":
        dialog.objects.setLayer(polygons)
        dialog.object_class_field.setField("desc")
        dialog.chip_size.setValue(32)
        dialog.format_boxes["dota"].setChecked(False)
    dialog.steps.setValue(2)
    dialog.out_dir.setFilePath(str(out))


def test_every_scenario_dialog_builds_its_argv_from_the_schema(
    plugin: Any, cli: Path, schema: Any, rasters: Any, polygons: Any, demo_town: Path,
    add_layer: Any, tmp_path: Path,
) -> None:  # fmt: skip
    from rs_seg2any_qgis.scenario_dialogs import DIALOGS

    town = add_layer(demo_town, "demo_town")
    commands = {key: dialog.command for key, dialog in DIALOGS.items()}
    assert set(commands.values()) == {"flood", "plan", "seasons", "change", "cloudfill", "damage",
                                      "detection-set"}  # fmt: skip
    for key, command in commands.items():
        dialog = plugin.show_scenario(key)
        assert dialog.schema is schema
        # every option of the command has a widget: the scenario's own, or "More options"
        options = {a.dest for a in schema.arguments(command) if not a.positional} - {"progress"}
        assert options == set(dialog.more.rows) | (options & set(dialog.shown_dests())), key
        assert not set(dialog.more.rows) & set(dialog.shown_dests()), key
        fill(dialog, key, rasters, polygons, town, tmp_path / key)
        dialog.more.widget("keep_tiles").setChecked(True)  # a generic switch
        dialog.more.widget("gamma").setText("0.5")  # a generic number
        assert dialog.problems() == [], (key, dialog.problems())
        spec = dialog.spec()
        dialog.export_inputs(spec, tmp_path / key / "input")
        argv = spec.to_args(schema)
        args = parsed_by_backend(cli, argv)
        assert args["command"] == command and args["progress"] == "json"
        assert (args["steps"], args["gamma"], args["keep_tiles"]) == (2, 0.5, True), key
        if key == "flood":
            assert (args["dem_resample"], args["level"], args["seed_xy"]) == (
                "bilinear", 3.0, ["300001,2780170"])  # fmt: skip
        elif key == "planning":
            assert args["zone_description_field"] == "desc" and Path(args["zones"]).is_file()
        elif key == "seasons":
            assert args["seasons"] == "winter"
        elif key == "change":
            assert (args["recipe"], args["param"], args["pairs"]) == (
                "urban_growth", ["percent=15"], 2)  # fmt: skip
        elif key == "damage":
            assert (args["disaster"], args["origin"], args["param"]) == (
                "earthquake", "300010,2780170", ["decay=0.3"])  # fmt: skip
            assert args["image"].endswith("base.tif") and args["damage_layer"] is None
        elif key == "detection":
            assert Path(args["objects"]).is_file() and args["object_class_field"] == "desc"
            assert (args["chip_size"], args["formats"]) == (32, "coco,yolo,vector")
            assert args["image"].endswith("base.tif") and "--resolution" not in argv
        else:
            assert Path(args["clouds"]).is_file() and args["image"].endswith("base.tif")
            assert "like" not in args and args["layout"] == str(demo_town)  # no grid options
        dialog.close()


def test_generate_dialog_offers_every_option_and_builds_an_accepted_argv(
    plugin: Any, cli: Path, schema: Any, demo_town: Path, add_layer: Any, tmp_path: Path
) -> None:
    dialog = plugin.show_generate()
    options = {a.dest for a in schema.arguments("generate") if not a.positional} - {"progress"}
    shown = {*dialog.source.dests, *dialog.grid.dests, *dialog.generator_box.dests,
             *dialog.output.dests}  # fmt: skip
    assert set(dialog.more.rows) == options - shown
    assert {"gamma", "guidance", "overlap", "no_snap", "keep_tiles"} <= set(dialog.more.rows)
    dialog.layer.setLayer(add_layer(demo_town, "demo_town"))
    dialog.class_field.setField("landcover")
    dialog.out_dir.setFilePath(str(tmp_path / "gen"))
    dialog.more.widget("gamma").setText("0.25")  # generate only
    dialog.more.widget("no_snap").setChecked(True)  # both commands
    for mode, gamma in (("generate", 0.25), ("layout", None)):
        dialog.mode.setCurrentIndex(dialog.mode.findData(mode))
        assert dialog.problems() == [], dialog.problems()
        args = parsed_by_backend(cli, dialog.spec().to_args(schema))
        assert (args["command"], args.get("gamma"), args["no_snap"]) == (mode, gamma, True)
    dialog.more.widget("gamma").setText("a lot")
    assert any("Gamma: 'a lot' is not a number" in p for p in dialog.problems())
    dialog.close()


def test_the_dialogs_offer_the_backends_choices(plugin: Any, schema: Any) -> None:
    flood = plugin.show_scenario("flood")
    methods = [flood.dem_resample.itemData(i) for i in range(flood.dem_resample.count())]
    assert methods == [None, *schema.choices("flood", "dem_resample")]
    change = plugin.show_scenario("change")
    recipes = [change.recipe.itemData(i) for i in range(change.recipe.count())]
    assert recipes == schema.choices("change", "recipe")
    seasons = plugin.show_scenario("seasons")
    assert list(seasons.season_boxes) == schema.default("seasons", "seasons").split(",")
    more = flood.more.widget("unknown_class")
    assert [more.itemData(i) for i in range(more.count())] == [None, "error", "skip",
                                                                "background"]  # fmt: skip


def test_cloud_fill_action_fills_the_clouds(
    plugin: Any, qgis_iface: Any, rasters: Any, polygons: Any, demo_town: Path, weights: Path,
    add_layer: Any, tmp_path: Path,
) -> None:  # fmt: skip
    from rs_seg2any_qgis import config

    config.put(config.MODEL, str(weights))
    town = add_layer(demo_town, "demo_town")
    image = rasters[0]
    qgis_iface.setActiveLayer(image)
    plugin.actions["cloudfill"].trigger()
    dialog = plugin.scenario_dialogs["cloudfill"]
    assert dialog.isVisible() and dialog.windowTitle() == "rs_seg2any - Cloud fill"
    assert dialog.image.currentLayer() == image and not dialog.grid.isVisibleTo(dialog)
    dialog.layer.setLayer(town)
    dialog.class_field.setField("landcover")
    dialog.taxonomy.setCurrentText("dubai_aerial")
    dialog.clouds.setLayer(polygons)
    dialog.steps.setValue(2)
    dialog.tile_size.setValue(64)
    dialog.out_dir.setFilePath(str(tmp_path / "cloudfill"))
    dialog.buttons.button(QDialogButtonBox.Ok).click()
    assert not dialog.isVisible(), dialog.bar.currentItem().text()
    task = plugin.tasks[-1]
    assert task.args[0] == "cloudfill"
    wait_for(lambda: task in plugin.finished, timeout=300)
    assert task.result.ok, task.result.summary()
    layers = group_layers("cloudfill base")
    assert set(layers) == {"cloud-free", "label (filled)"}
    for layer in layers.values():
        check_on_grid(layer)
    filled = layers["cloud-free"].dataProvider()
    base = image.dataProvider()
    outside = QgsRectangle(GRID[0], GRID[1], GRID[0] + 4.0, GRID[1] + 4.0)  # far from the box
    for band in (1, 2, 3):
        got = filled.bandStatistics(band, QgsRasterBandStats.All, outside)
        want = base.bandStatistics(band, QgsRasterBandStats.All, outside)
        assert (got.sum, got.minimumValue) == (want.sum, want.minimumValue)  # copied


def test_processing_cloud_fill_has_every_option_of_the_backend(plugin: Any, schema: Any) -> None:
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById("rs_seg2any:cloud_fill")
    names = {p.name() for p in alg.parameterDefinitions()}
    assert {"IMAGE", "CLOUDS", "INPUT", "KEEP_TILES", "OVERLAP", "UNKNOWN_CLASS",
            "LORA"} <= names  # fmt: skip
    assert "RESOLUTION" not in names  # the image's grid
    flood = QgsApplication.processingRegistry().algorithmById("rs_seg2any:flood")
    assert {"PRESET", "NO_SNAP", "MAX_PIXELS", "EXTENT_CRS"} <= {
        p.name() for p in flood.parameterDefinitions()}  # fmt: skip


@pytest.mark.parametrize(
    ("body", "title", "words"),
    [
        ("print(json.dumps({'schema_version': 2, 'program': 'rs-seg2any', 'version': '7.0.0',"
         " 'commands': {}}))",
         "do not fit", ["backend 7.0.0", "schema version 2, newer than this plugin (0.1.0)",
                        "upgrade the rs_seg2any plugin"]),
        ("print(json.dumps({'program': 'rs-seg2any', 'version': '7.0.0', 'commands': {}}))",
         "do not fit", ["backend 7.0.0", "no schema version, older than this plugin",
                        "upgrade rs-seg2any in the backend environment"]),
        ("print(\"usage: rs-seg2any ...\\nrs-seg2any: error: argument command: invalid choice:"
         " 'schema'\", file=sys.stderr); sys.exit(2)",
         "do not fit", ["backend 7.0.0", "has no 'schema' command", "plugin (0.1.0)",
                        "-m pip install -U rs-seg2any"]),
    ],
)  # fmt: skip
def test_a_backend_that_does_not_fit_is_named_in_the_dialog(
    plugin: Any, backend_setting: Any, tmp_path: Path, body: str, title: str, words: list[str]
) -> None:
    from rs_seg2any_qgis.backend import SchemaMismatch
    from rs_seg2any_qgis.cli_schema import load_schema

    backend = stand_in_backend(tmp_path / "env" / "bin", body)
    with pytest.raises(SchemaMismatch) as caught:
        load_schema(backend)
    assert caught.value.backend_version == "7.0.0"
    backend_setting(backend)
    dialog = plugin.show_scenario("cloudfill")
    assert dialog.schema is None and dialog.more is None
    item = dialog.bar.currentItem()
    assert title in item.title(), item.title()
    for word in words:
        assert word in item.text(), (word, item.text())
    assert str(backend) in item.text()
    dialog.buttons.button(QDialogButtonBox.Ok).click()
    assert dialog.isVisible() and plugin.tasks == []  # refused, with the same message
    assert words[1] in dialog.bar.currentItem().text()


LOAD_JOB = (
    "import json, sys\nfrom rs_seg2any import load_job\n"
    "j = load_job(sys.argv[1])\n"
    "print(json.dumps({'command': j.command, 'steps': j.sampler.steps, 'gamma': j.sampler.gamma}))"
)


def test_dialogs_export_a_job_file_the_backend_runs_headless(
    plugin: Any, cli: Path, schema: Any, rasters: Any, polygons: Any, demo_town: Path,
    add_layer: Any, tmp_path: Path,
) -> None:  # fmt: skip
    """Deepness users' request: the dialog's settings as a job file to send to a server."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    town = add_layer(demo_town, "demo_town")
    dialog = plugin.show_generate()
    dialog.layer.setLayer(town)
    dialog.class_field.setField("landcover")
    dialog.mode.setCurrentIndex(dialog.mode.findData("layout"))
    dialog.out_dir.setFilePath(str(tmp_path / "layout_out"))
    written = dialog.export_job(tmp_path / "server" / "layout.yaml")
    assert written is not None and written.is_file()
    assert dialog.isVisible()  # exporting does not run or close the dialog
    assert not (tmp_path / "layout_out").exists()
    done = subprocess.run([str(cli), "run", str(written)], env=env, capture_output=True,
                          text=True, check=False, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "layout_out" / "label.tif").is_file()
    dialog.close()

    from rs_seg2any_qgis.scenario_dialogs import DIALOGS

    scen = plugin.show_scenario("seasons")
    fill(scen, "seasons", rasters, polygons, town, tmp_path / "seasons")
    scen.more.widget("gamma").setText("0.5")
    job_file = scen.export_job(tmp_path / "server" / "seasons.yaml")
    assert job_file is not None and DIALOGS["seasons"].command == "seasons"
    loaded = subprocess.run([str(cli.parent / "python"), "-c", LOAD_JOB, str(job_file)], env=env,
                            capture_output=True, text=True, check=False, timeout=300)  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert json.loads(loaded.stdout) == {"command": "seasons", "steps": 2, "gamma": 0.5}
    scen.close()
