"""The Generate action end to end: dialog -> background task -> CLI -> layers in a group.

Uses the real embedded backend (rs-seg2any generate --backend tiny) with small random
weights set as the plugin's default model, on real polygon layers.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsFeatureRequest,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtWidgets import QDialogButtonBox

# 64 m x 32 m of the demo town at 0.5 m: 128 x 64 px, aligned to the pixel grid.
EXTENT = (300000.0, 2780150.0, 300064.0, 2780182.0)


def fill_dialog(
    dialog: Any,
    *,
    field: str,
    taxonomy: str,
    resolution: float,
    out: Path,
    extent: tuple[float, float, float, float] | None = None,
    mode: str = "generate",
    steps: int = 2,
    tile: int = 64,
) -> None:
    dialog.class_field.setField(field)
    dialog.taxonomy.setCurrentText(taxonomy)
    dialog.resolution.setValue(resolution)
    dialog.mode.setCurrentIndex(dialog.mode.findData(mode))
    dialog.steps.setValue(steps)
    dialog.seed.setValue(7)
    dialog.tile_size.setValue(tile)
    dialog.out_dir.setFilePath(str(out))
    if extent is not None:
        dialog.extent.setChecked(True)
        dialog.extent.setOutputExtentFromUser(QgsRectangle(*extent), dialog.output_crs())


def run_dialog(plugin: Any, timeout: float = 300) -> Any:
    """Press Run and wait for the task the dialog started."""
    plugin.dialog.buttons.button(QDialogButtonBox.Ok).click()
    assert not plugin.dialog.isVisible(), plugin.dialog.bar.currentItem().text()
    task = plugin.tasks[-1]
    wait_for(lambda: task in plugin.finished, timeout=timeout)
    assert task.result.ok, task.result.summary()
    return task


def result_layers(title_part: str) -> dict[str, QgsRasterLayer]:
    root = QgsProject.instance().layerTreeRoot()
    groups = [g for g in root.findGroups() if title_part in g.name()]
    assert groups, [g.name() for g in root.findGroups()]
    return {node.layer().name(): node.layer() for node in groups[0].findLayers()}


def assert_on_grid(layer: QgsRasterLayer, crs: str, extent: tuple[float, ...], res: float) -> None:
    assert layer.isValid()
    assert layer.crs().authid() == crs
    got = layer.extent()
    for a, b in zip((got.xMinimum(), got.yMinimum(), got.xMaximum(), got.yMaximum()), extent,
                    strict=True):  # fmt: skip
        assert a == pytest.approx(b, abs=1e-6)
    assert layer.rasterUnitsPerPixelX() == pytest.approx(res)
    assert layer.rasterUnitsPerPixelY() == pytest.approx(res)


def test_generate_action_on_demo_town_adds_valid_layers(
    plugin: Any, qgis_iface: Any, demo_town: Path, weights: Path, tmp_path: Path, add_layer: Any
) -> None:
    from rs_seg2any_qgis import config

    config.put(config.MODEL, str(weights))  # the Settings' default model
    layer = add_layer(demo_town, "demo_town")
    qgis_iface.setActiveLayer(layer)
    plugin.actions["generate"].trigger()
    dialog = plugin.dialog
    assert dialog.isVisible() and dialog.layer.currentLayer() == layer
    fill_dialog(dialog, field="landcover", taxonomy="dubai_aerial", resolution=0.5,
                out=tmp_path / "out", extent=EXTENT)  # fmt: skip
    dialog.description_field.setField("description")
    backends = dialog.generator_box.backend
    assert backends.currentData() == "exemplar"  # the default backend comes first
    backends.setCurrentIndex(backends.findData("tiny"))  # the network, with the Settings' model

    task = run_dialog(plugin)
    assert "--progress" in task.args and "--model" in task.args
    assert task.args[task.args.index("--backend") + 1] == "tiny"
    assert any(e.get("event") == "progress" for e in task.events)
    assert task.percent == pytest.approx(100.0)  # what the task manager's bar showed

    layers = result_layers("demo_town")
    assert set(layers) == {"image", "label", "contour"}
    for lyr in layers.values():
        assert_on_grid(lyr, "EPSG:32640", EXTENT, 0.5)
    assert layers["image"].bandCount() == 3
    label = layers["label"]
    assert isinstance(label.renderer(), QgsPalettedRasterRenderer)  # from label.qml
    assert len(label.renderer().classes()) >= 6
    assert label.dataProvider().dataType(1) == Qgis.Byte
    assert any("done" in m for m in qgis_iface.messageBar().get_messages(Qgis.Success))


def test_dialog_remembers_last_values(
    plugin: Any, demo_town: Path, weights: Path, tmp_path: Path, add_layer: Any
) -> None:
    from rs_seg2any_qgis import config
    from rs_seg2any_qgis.dialogs import GenerateDialog

    config.put(config.MODEL, str(weights))
    add_layer(demo_town, "demo_town")
    dialog = plugin.show_generate()
    fill_dialog(dialog, field="landcover", taxonomy="dubai_aerial", resolution=0.5,
                out=tmp_path / "remember", extent=EXTENT, mode="layout")  # fmt: skip
    dialog.seed.setValue(42)
    run_dialog(plugin)
    again = GenerateDialog(None, plugin.start_job)
    assert again.class_field.currentField() == "landcover"
    assert again.taxonomy.currentText() == "dubai_aerial"
    assert again.resolution.value() == 0.5
    assert again.seed.value() == 42
    assert again.mode.currentData() == "layout"
    assert again.out_dir.filePath().startswith(str(tmp_path))


def test_dialog_validates_before_running(
    plugin: Any, demo_town: Path, tmp_path: Path, add_layer: Any
) -> None:
    dialog = plugin.show_generate()
    assert "choose a polygon layer" in " ".join(dialog.problems())
    add_layer(demo_town, "demo_town")
    dialog.layer.setLayer(QgsProject.instance().mapLayersByName("demo_town")[0])
    dialog.class_field.setField("")
    dialog.out_dir.setFilePath("")
    problems = " ".join(dialog.problems())
    assert "class field" in problems and "output folder" in problems
    dialog.buttons.button(QDialogButtonBox.Ok).click()
    assert dialog.isVisible()  # not accepted
    assert plugin.tasks == []
    assert "class field" in dialog.bar.currentItem().text()


@pytest.mark.shared_data
def test_generate_action_on_slovenian_lulc(
    plugin: Any, lulc: Path, weights: Path, tmp_path: Path, add_layer: Any
) -> None:
    from rs_seg2any_qgis import config

    config.put(config.MODEL, str(weights))
    layer = add_layer(lulc, "LULC")
    dialog = plugin.show_generate()
    dialog.layer.setLayer(layer)
    dialog.unknown.setCurrentText("background")  # 4 polygons have an empty class
    fill_dialog(dialog, field="LULC_NAME", taxonomy="eolearn_slovenia", resolution=10.0,
                out=tmp_path / "lulc", tile=256)  # fmt: skip
    run_dialog(plugin)

    bounds = layer.extent()  # the grid: layer bounds snapped outwards to 10 m
    down = [math.floor(v / 10) * 10 for v in (bounds.xMinimum(), bounds.yMinimum())]
    up = [math.ceil(v / 10) * 10 for v in (bounds.xMaximum(), bounds.yMaximum())]
    expected = (*down, *up)
    layers = result_layers("LULC")
    assert set(layers) == {"image", "label", "contour"}
    for lyr in layers.values():
        assert_on_grid(lyr, "EPSG:32633", expected, 10.0)


def test_memory_layer_is_exported_and_the_export_reused(
    plugin: Any, demo_town: Path, tmp_path: Path
) -> None:
    source = QgsVectorLayer(str(demo_town), "town", "ogr")
    memory = source.materialize(QgsFeatureRequest())
    memory.setName("scratch")
    QgsProject.instance().addMapLayer(memory)
    assert memory.providerType() == "memory"
    out = tmp_path / "mem"
    for _ in range(2):
        dialog = plugin.show_generate()
        dialog.layer.setLayer(memory)
        fill_dialog(dialog, field="landcover", taxonomy="dubai_aerial", resolution=0.5,
                    out=out, extent=EXTENT, mode="layout")  # fmt: skip
        task = run_dialog(plugin)
    exports = list((out / "input").glob("input_*.gpkg"))
    assert len(exports) == 1  # the second run found the first export
    assert exports[0].as_posix() in task.args
    layers = result_layers("scratch")
    assert set(layers) == {"label", "contour"}  # layout mode: no image
    assert_on_grid(layers["label"], "EPSG:32640", EXTENT, 0.5)


def test_cli_error_is_shown_in_the_message_bar(
    plugin: Any, qgis_iface: Any, demo_town: Path, tmp_path: Path
) -> None:
    from rs_seg2any_qgis.jobs import JobSpec

    spec = JobSpec("layout", str(demo_town), "no_such_field", str(tmp_path / "err"),
                   taxonomy="dubai_aerial", resolution=0.5)  # fmt: skip
    task = plugin.start_job(spec)
    wait_for(lambda: task in plugin.finished)
    assert not task.result.ok and task.result.error_type not in (None, "Cancelled")
    wait_for(lambda: bool(qgis_iface.messageBar().get_messages(Qgis.Critical)), timeout=10)
    message = qgis_iface.messageBar().get_messages(Qgis.Critical)[-1]
    assert "no_such_field" in message  # the CLI's own words
    assert "landcover" in message  # ...which list the fields that exist


def test_generate_with_the_default_backend_and_no_settings_model(
    plugin: Any, demo_town: Path, tmp_path: Path, add_layer: Any
) -> None:
    from rs_seg2any_qgis import config

    config.put(config.MODEL, "")  # no Settings' model
    add_layer(demo_town, "demo_town")
    dialog = plugin.show_generate()
    fill_dialog(dialog, field="landcover", taxonomy="dubai_aerial", resolution=0.5,
                out=tmp_path / "shipped", extent=EXTENT, steps=4, tile=256)  # fmt: skip
    task = run_dialog(plugin, timeout=600)
    assert "--model" not in task.args  # the default backend (exemplar) takes no weights
    assert task.args[task.args.index("--backend") + 1] == "exemplar"
    assert_on_grid(result_layers("demo_town")["image"], "EPSG:32640", EXTENT, 0.5)


def test_output_crs_and_extent_follow_the_dialog(
    plugin: Any, demo_town: Path, weights: Path, tmp_path: Path, add_layer: Any
) -> None:
    add_layer(demo_town, "demo_town")
    dialog = plugin.show_generate()
    dialog.crs.setCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    fill_dialog(dialog, field="landcover", taxonomy="dubai_aerial", resolution=1.0,
                out=tmp_path / "merc", mode="layout")  # fmt: skip
    spec = dialog.spec()
    assert spec.crs == "EPSG:3857" and spec.extent is None
    run_dialog(plugin)
    label = result_layers("demo_town")["label"]
    assert label.crs().authid() == "EPSG:3857"
    assert label.rasterUnitsPerPixelX() == pytest.approx(1.0)
    assert os.path.isfile(label.source())
