"""The Detection dataset action end to end: dialog -> CLI -> boxes and instances in the project.

Real inputs, small: the 96 x 96 px RGB GeoTIFF at 0.5 m of the scenario tests, objects drawn
in a memory layer (the plugin must export it), 32 px chips; a generated background from the
demo town with small random weights. What is checked is what a user sees: the layers added,
their features against the objects drawn, and the trainer files beside them.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import wait_for
from qgis.core import (
    QgsApplication,
    QgsCategorizedSymbolRenderer,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsGeometry,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtWidgets import QDialogButtonBox
from test_scenario_actions import GRID, check_on_grid, group_layers, write_raster

# each object inside one 32 px (16 m) chip of GRID: fully visible, labelled once
OBJECTS = [
    ("building", "flat grey roof", (300002.0, 2780190.0, 300008.0, 2780195.0)),
    ("building", "red tiled roof", (300020.0, 2780170.0, 300030.0, 2780178.0)),
    ("ship", "white ferry", (300034.0, 2780152.0, 300046.0, 2780158.0)),
]
HALF_PIXEL = 0.25  # metres at 0.5 m


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """An RGB 'photo' on GRID: gradients, so the chips differ."""
    from osgeo import gdal

    cells = [(r, c) for r in range(96) for c in range(96)]
    bands = [[(r * 2) % 256 for r, _c in cells], [(c * 2) % 256 for _r, c in cells],
             [(r + c) % 256 for r, c in cells]]  # fmt: skip
    return write_raster(tmp_path / "photo.tif", bands, gdal.GDT_Byte)


@pytest.fixture
def objects() -> QgsVectorLayer:
    layer = QgsVectorLayer(
        "Polygon?crs=EPSG:32640&field=kind:string&field=text:string", "objects", "memory"
    )
    for kind, text, rect in OBJECTS:
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(*rect)))
        feature.setAttribute("kind", kind)
        feature.setAttribute("text", text)
        layer.dataProvider().addFeatures([feature])
    layer.updateExtents()
    QgsProject.instance().addMapLayer(layer)
    return layer


def fill(dialog: Any, objects: QgsVectorLayer, out: Path) -> None:
    dialog.objects.setLayer(objects)
    dialog.object_class_field.setField("kind")
    dialog.object_description_field.setField("text")
    dialog.chip_size.setValue(32)
    dialog.more.widget("split_block").setText("32")
    dialog.more.widget("split_buffer").setText("0")
    dialog.out_dir.setFilePath(str(out))


def assert_matches_objects(layer: QgsVectorLayer) -> None:
    """One feature per object, of its class, whose bounds are the object's (half a pixel)."""
    found = []
    for f in layer.getFeatures():
        r = f.geometry().boundingBox()
        found.append((f["category"], (r.xMinimum(), r.yMinimum(), r.xMaximum(), r.yMaximum())))
    found.sort(key=lambda item: item[1])
    expected = sorted(((kind, rect) for kind, _text, rect in OBJECTS), key=lambda item: item[1])
    assert [kind for kind, _ in found] == [kind for kind, _ in expected], layer.name()
    for (_, box), (_, rect) in zip(found, expected, strict=True):
        assert box == pytest.approx(rect, abs=HALF_PIXEL), layer.name()


def test_detection_action_on_a_real_image_adds_boxes_matching_the_objects(
    plugin: Any, qgis_iface: Any, photo: Path, objects: QgsVectorLayer, cli: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    image = QgsRasterLayer(str(photo), "base", "gdal")
    QgsProject.instance().addMapLayer(image)
    qgis_iface.setActiveLayer(objects)
    plugin.actions["detection"].trigger()
    dialog = plugin.scenario_dialogs["detection"]
    assert dialog.objects.currentLayer() == objects  # the active polygons are the objects
    dialog.image.setLayer(image)
    assert not dialog.grid.isEnabled()  # chips are cut on the image's grid
    out = tmp_path / "set"
    fill(dialog, objects, out)
    dialog.buttons.button(QDialogButtonBox.Ok).click()
    assert not dialog.isVisible(), dialog.bar.currentItem().text()

    from rs_seg2any_qgis.scenario_dialogs import DetectionDialog

    again = DetectionDialog(None, plugin.start_job)  # the values are remembered
    assert again.objects.currentLayer() == objects and again.image.currentLayer() == image
    assert (again.object_class_field.currentField(), again.chip_size.value()) == ("kind", 32)
    assert again.more.widget("split_buffer").text() == "0"
    again.deleteLater()

    task = plugin.tasks[-1]
    assert task.args[0] == "detection-set"
    assert task.args[task.args.index("--image") + 1] == str(photo)
    exported = Path(task.args[task.args.index("--objects") + 1])
    assert exported.parent == out / "input"  # the memory layer went out as a file
    wait_for(lambda: task in plugin.finished, timeout=300)
    assert task.result.ok, task.result.summary()

    layers = group_layers("detection-set objects")
    assert set(layers) == {"boxes", "oriented boxes", "instances"}  # the image is the user's
    for name in ("boxes", "oriented boxes", "instances"):
        layer = layers[name]
        assert layer.crs().authid() == "EPSG:32640", name
        assert isinstance(layer.renderer(), QgsCategorizedSymbolRenderer), name
        assert_matches_objects(layer)
    areas = sorted(f.geometry().area() for f in layers["instances"].getFeatures())
    assert areas == pytest.approx(sorted((r[2] - r[0]) * (r[3] - r[1]) for *_, r in OBJECTS))
    root = QgsProject.instance().layerTreeRoot()
    visible = {n.layer().name() for n in root.findLayers() if n.isVisible()}
    assert {"boxes", "instances"} <= visible and "oriented boxes" not in visible

    # the trainer files beside the layers: COCO (CRS and geotransform per image), YOLO
    outputs = task.result.outputs
    coco = [json.loads(Path(outputs[k]).read_text()) for k in outputs if k.startswith("coco_")]
    annotations = [a for c in coco for a in c["annotations"]]
    assert len(annotations) == len(OBJECTS)
    assert {c["name"] for c in coco[0]["categories"]} == {"building", "ship"}
    images = {i["id"]: i for c in coco for i in c["images"]}
    assert all("crs" in i and "geotransform" in i for i in images.values())
    ship_id = next(c["id"] for c in coco[0]["categories"] if c["name"] == "ship")
    ship = next(a for a in annotations if a["category_id"] == ship_id)
    assert ship["bbox"] == pytest.approx([4.0, 16.0, 24.0, 12.0])  # px in its chip
    data = yaml.safe_load(Path(outputs["yolo_detect"]).read_text())
    assert sorted(data["names"].values() if isinstance(data["names"], dict)
                  else data["names"]) == ["building", "ship"]  # fmt: skip
    report = json.loads(Path(outputs["report"]).read_text())
    assert report["summary"]["background"] == "real"


def test_detection_job_file_runs_headless(
    plugin: Any, photo: Path, objects: QgsVectorLayer, cli: Path, tmp_path: Path
) -> None:
    """Export job file: the same set built by `rs-seg2any run` on a server."""
    image = QgsRasterLayer(str(photo), "base", "gdal")
    QgsProject.instance().addMapLayer(image)
    dialog = plugin.show_scenario("detection")
    dialog.image.setLayer(image)
    out = tmp_path / "server_set"
    fill(dialog, objects, out)
    for check in dialog.format_boxes.values():
        check.setChecked(False)
    assert "choose at least one export format" in dialog.problems()
    assert dialog.export_job(tmp_path / "job.yaml") is None  # refused, with the reason
    dialog.format_boxes["vector"].setChecked(True)
    dialog.object_class_field.setField("")
    assert "choose the objects' class field" in dialog.problems()
    dialog.object_class_field.setField("kind")
    written = dialog.export_job(tmp_path / "server" / "job.yaml")
    assert written is not None and dialog.isVisible()
    job = yaml.safe_load(written.read_text())
    assert job["scenario"] == "detection-set" and job["formats"] == "vector"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([str(cli), "run", str(written)], env=env, capture_output=True,
                          text=True, check=False, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    boxes = QgsVectorLayer(f"{out / 'vector' / 'detection.gpkg'}|layername=boxes", "b", "ogr")
    assert boxes.isValid() and boxes.featureCount() == len(OBJECTS)
    assert not (out / "coco").exists()  # only the format chosen
    dialog.close()


def test_detection_action_on_a_generated_background(
    plugin: Any, objects: QgsVectorLayer, demo_town: Path, weights: Path, tmp_path: Path,
    add_layer: Any,
) -> None:  # fmt: skip
    from rs_seg2any_qgis import config

    config.put(config.MODEL, str(weights))
    town = add_layer(demo_town, "demo_town")
    dialog = plugin.show_scenario("detection")
    dialog.image.setLayer(None)
    dialog.layer.setLayer(town)
    dialog.class_field.setField("landcover")
    dialog.taxonomy.setCurrentText("dubai_aerial")
    dialog.resolution.setValue(0.5)
    dialog.grid.crs.setCrs(QgsCoordinateReferenceSystem())  # the layer's
    dialog.grid.extent.setChecked(True)
    dialog.grid.extent.setOutputExtentFromUser(QgsRectangle(*GRID), dialog.grid.output_crs())
    dialog.steps.setValue(2)
    dialog.tile_size.setValue(128)  # one tile: the whole 96 px scene
    fill(dialog, objects, tmp_path / "generated")
    dialog.buttons.button(QDialogButtonBox.Ok).click()
    assert not dialog.isVisible(), dialog.bar.currentItem().text()
    task = plugin.tasks[-1]
    assert "--layout" in task.args and "--image" not in task.args
    wait_for(lambda: task in plugin.finished, timeout=300)
    assert task.result.ok, task.result.summary()
    layers = group_layers("detection-set objects")
    assert set(layers) == {"boxes", "oriented boxes", "instances", "background"}
    check_on_grid(layers["background"])  # the rendered scene the chips were cut from
    assert layers["background"].bandCount() == 3
    assert_matches_objects(layers["boxes"])  # the objects drawn in are the ones labelled


def test_detection_set_via_processing(
    plugin: Any, qgis_processing: None, photo: Path, objects: QgsVectorLayer, tmp_path: Path
) -> None:
    import processing

    alg = QgsApplication.processingRegistry().algorithmById("rs_seg2any:detection_set")
    formats = alg.parameterDefinition("FORMATS").options()
    result = processing.run("rs_seg2any:detection_set", {
        "IMAGE": str(photo), "OBJECTS": objects, "OBJECT_CLASS_FIELD": "kind", "CHIP_SIZE": 32,
        "FORMATS": [formats.index("coco"), formats.index("vector")], "SPLIT_BLOCK": 32,
        "SPLIT_BUFFER": 0, "OUTPUT": str(tmp_path / "processing_set"),
    })  # fmt: skip
    for name in ("BOXES", "ORIENTED_BOXES", "INSTANCES"):
        layer = QgsVectorLayer(result[name], name, "ogr")
        assert layer.isValid(), result[name]
        assert_matches_objects(layer)
    coco = json.loads(Path(result["COCO_TRAIN"]).read_text())
    assert {c["name"] for c in coco["categories"]} == {"building", "ship"}
    assert "YOLO_DETECT" not in result  # not chosen
    assert not (tmp_path / "processing_set" / "yolo").exists()
