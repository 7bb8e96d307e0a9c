"""The scenario actions and algorithms end to end: dialog or Processing -> CLI -> layers.

Real inputs, small: a 96 x 96 px RGB GeoTIFF at 0.5 m on the demo town (UTM 40N), the demo
town's polygons and a flood polygon drawn in a memory layer; the embedded backend with
small random weights (the Settings' default model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsGeometry,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterBandStats,
    QgsRasterLayer,
    QgsRectangle,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorLayer,
)
from qgis.PyQt.QtWidgets import QDialogButtonBox

GRID = (300000.0, 2780150.0, 300048.0, 2780198.0)  # 96 x 96 px at 0.5 m
EXTENT = "300000,300048,2780150,2780198 [EPSG:32640]"  # Processing's order: x, x, y, y
FLOOD_BOX = (300010.0, 2780160.0, 300030.0, 2780180.0)
SCENARIOS = {"flood": "Flood", "planning": "Planning zones", "seasons": "Seasons",
             "change": "Change pair", "cloudfill": "Cloud fill",
             "damage": "Damage pair", "detection": "Detection dataset"}  # fmt: skip


def write_raster(path: Path, bands: list[list[float]], data_type: int) -> Path:
    """A 96 x 96 GeoTIFF on GRID (EPSG:32640), one list of row-major values per band."""
    import struct

    from osgeo import gdal, osr

    ds = gdal.GetDriverByName("GTiff").Create(str(path), 96, 96, len(bands), data_type)
    ds.SetGeoTransform((GRID[0], 0.5, 0.0, GRID[3], 0.0, -0.5))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32640)
    ds.SetProjection(srs.ExportToWkt())
    fmt = "f" if data_type == gdal.GDT_Float32 else "B"
    for i, values in enumerate(bands, start=1):
        ds.GetRasterBand(i).WriteRaster(0, 0, 96, 96, struct.pack(f"{len(values)}{fmt}", *values))
    ds = None
    return path


@pytest.fixture
def base_image(tmp_path: Path) -> Path:
    """An RGB 'photo': gradients, so every band has structure."""
    from osgeo import gdal

    cells = [(r, c) for r in range(96) for c in range(96)]
    bands = [[(r * 2) % 256 for r, _c in cells], [(c * 2) % 256 for _r, c in cells],
             [(r + c) % 256 for r, c in cells]]  # fmt: skip
    return write_raster(tmp_path / "base.tif", bands, gdal.GDT_Byte)


@pytest.fixture
def flood_layer() -> QgsVectorLayer:
    """A flood polygon drawn by hand: a memory layer (the plugin must export it)."""
    layer = QgsVectorLayer("Polygon?crs=EPSG:32640&field=name:string", "flood area", "memory")
    feature = QgsFeature(layer.fields())
    feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(*FLOOD_BOX)))
    feature.setAttribute("name", "river overflow")
    layer.dataProvider().addFeatures([feature])
    layer.updateExtents()
    QgsProject.instance().addMapLayer(layer)
    return layer


def check_on_grid(layer: QgsRasterLayer) -> None:
    assert layer.isValid(), layer.source()
    assert layer.crs().authid() == "EPSG:32640"
    rect = layer.extent()
    got = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
    assert got == pytest.approx(GRID)
    assert (layer.width(), layer.height()) == (96, 96)


def group_layers(part: str) -> dict[str, QgsRasterLayer]:
    root = QgsProject.instance().layerTreeRoot()
    groups = [g for g in root.findGroups() if part in g.name()]
    assert len(groups) == 1, [g.name() for g in root.findGroups()]
    return {node.layer().name(): node.layer() for node in groups[0].findLayers()}


def test_scenario_actions_open_their_dialogs(plugin: Any) -> None:
    for key, title in SCENARIOS.items():
        action = plugin.actions[key]
        assert action.isEnabled(), key
        action.trigger()
        dialog = plugin.scenario_dialogs[key]
        assert dialog.isVisible(), key
        assert dialog.windowTitle() == f"rs_seg2any - {title}"
        assert dialog.problems(), key  # an empty project: nothing to run on yet
        dialog.close()
    assert (plugin.scenario_dialogs["flood"].image is not None) and (
        plugin.scenario_dialogs["seasons"].image is None  # seasons render a layout
    )


def test_flood_action_on_a_raster_and_polygons_adds_valid_layers(
    plugin: Any, qgis_iface: Any, base_image: Path, flood_layer: QgsVectorLayer,
    demo_town: Path, weights: Path, tmp_path: Path, add_layer: Any,
) -> None:  # fmt: skip
    from rs_seg2any_qgis import config

    config.put(config.MODEL, str(weights))
    image = QgsRasterLayer(str(base_image), "base", "gdal")
    QgsProject.instance().addMapLayer(image)
    add_layer(demo_town, "demo_town")
    qgis_iface.setActiveLayer(image)
    plugin.actions["flood"].trigger()
    dialog = plugin.scenario_dialogs["flood"]
    assert dialog.image.currentLayer() == image  # the active raster is the base
    assert not dialog.grid.isEnabled()  # outputs land on the image's grid
    dialog.layer.setLayer(QgsProject.instance().mapLayersByName("demo_town")[0])
    dialog.class_field.setField("landcover")
    dialog.taxonomy.setCurrentText("dubai_aerial")
    dialog.by_polygons.setChecked(True)
    dialog.flood_polygons.setLayer(flood_layer)
    dialog.steps.setValue(2)
    dialog.seed.setValue(5)
    dialog.tile_size.setValue(64)
    out = tmp_path / "flood"
    dialog.out_dir.setFilePath(str(out))
    dialog.buttons.button(QDialogButtonBox.Ok).click()
    assert not dialog.isVisible(), dialog.bar.currentItem().text()

    task = plugin.tasks[-1]
    assert task.args[0] == "flood" and "--image" in task.args
    exported = task.args[task.args.index("--flood-polygons") + 1]
    assert Path(exported).parent == out / "input"  # the memory layer went out as a file
    wait_for(lambda: task in plugin.finished, timeout=300)
    assert task.result.ok, task.result.summary()

    layers = group_layers("flood base")
    assert set(layers) == {"after", "before", "label (after)", "flood mask"}
    for layer in layers.values():
        check_on_grid(layer)
    assert layers["after"].bandCount() == 3
    assert isinstance(layers["label (after)"].renderer(), QgsPalettedRasterRenderer)
    mask = layers["flood mask"]
    assert isinstance(mask.renderer(), QgsPalettedRasterRenderer)
    stats = mask.dataProvider().bandStatistics(1, QgsRasterBandStats.All)
    assert stats.maximumValue == 1  # 40 x 40 px of the polygon flooded
    assert stats.sum == pytest.approx(40 * 40)
    root = QgsProject.instance().layerTreeRoot()
    visible = [n.layer().name() for n in root.findLayers() if n.isVisible()]
    assert "after" in visible and "before" not in visible


def test_flood_dialog_validates_and_remembers(
    plugin: Any, base_image: Path, tmp_path: Path
) -> None:
    from rs_seg2any_qgis.scenario_dialogs import FloodDialog

    dialog = plugin.show_scenario("flood")
    assert any("base image, or a layout" in p for p in dialog.problems())
    image = QgsRasterLayer(str(base_image), "base", "gdal")
    QgsProject.instance().addMapLayer(image)
    dialog.image.setLayer(image)
    dialog.by_polygons.setChecked(True)
    assert any("flood polygons" in p for p in dialog.problems())
    dialog.by_dem.setChecked(True)
    dialog.seed_xy.setText("1,2,3")
    problems = " ".join(dialog.problems())
    assert "choose a DEM" in problems and "entry points" in problems
    dialog.buttons.button(QDialogButtonBox.Ok).click()
    assert dialog.isVisible() and plugin.tasks == []  # not run
    assert "DEM" in dialog.bar.currentItem().text()

    dialog.level.setValue(4.5)
    dialog.seed_xy.setText("300020,2780170")
    dialog.dem_resample.setCurrentIndex(dialog.dem_resample.findData("bilinear"))
    dialog._remember()
    again = FloodDialog(None, plugin.start_job)
    assert again.by_dem.isChecked() and again.level.value() == 4.5
    assert again.seed_xy.text() == "300020,2780170"
    assert again.dem_resample.currentData() == "bilinear"
    assert again.image.currentLayer() == image


def test_flood_from_a_dem_via_processing(
    plugin: Any, qgis_processing: None, base_image: Path, weights: Path, tmp_path: Path
) -> None:
    """A DEM rising west to east (0 to 9.5 m); water at 3 m enters at the west edge."""
    import processing
    from osgeo import gdal

    dem = write_raster(tmp_path / "dem.tif", [[c / 10.0 for _r in range(96) for c in range(96)]],
                       gdal.GDT_Float32)  # fmt: skip
    result = processing.run("rs_seg2any:flood", {
        "IMAGE": str(base_image), "DEM": str(dem), "LEVEL": 3.0, "SEED_XY": "300001,2780170",
        "MODEL": str(weights), "STEPS": 2, "TILE_SIZE": 64, "OUTPUT": str(tmp_path / "dem_flood"),
    })  # fmt: skip
    for key in ("IMAGE", "LABEL", "FLOOD_MASK", "FLOOD_DEPTH"):
        check_on_grid(QgsRasterLayer(result[key], key, "gdal"))
    assert result["BEFORE"] == str(base_image)
    depth = QgsRasterLayer(result["FLOOD_DEPTH"], "depth", "gdal")
    stats = depth.dataProvider().bandStatistics(1, QgsRasterBandStats.All)
    assert 2.9 <= stats.maximumValue <= 3.0  # level minus the lowest ground (0 m)

    from rs_seg2any_qgis.layers import add_results

    files = {k.lower(): result[k] for k in ("BEFORE", "IMAGE", "LABEL", "FLOOD_MASK",
                                            "FLOOD_DEPTH")}  # fmt: skip
    _group, added, problems = add_results(files, "dem flood", command="flood")
    assert not problems
    styled = {layer.name(): layer for layer in added}
    assert isinstance(styled["flood depth (m)"].renderer(), QgsSingleBandPseudoColorRenderer)
    assert styled["flood depth (m)"].renderer().classificationMax() == pytest.approx(
        stats.maximumValue
    )
    assert isinstance(styled["flood mask"].renderer(), QgsPalettedRasterRenderer)


def test_change_pair_via_processing(
    plugin: Any, qgis_processing: None, demo_town: Path, weights: Path, tmp_path: Path
) -> None:
    import processing

    result = processing.run("rs_seg2any:change_pair", {
        "INPUT": str(demo_town), "CLASS_FIELD": "landcover", "TAXONOMY": 0,
        "RECIPE": 1, "RESOLUTION": 0.5, "EXTENT": EXTENT,  # demolition
        "MODEL": str(weights), "SEED": 0, "STEPS": 2, "TILE_SIZE": 64,
        "OUTPUT": str(tmp_path / "change"),
    })  # fmt: skip
    mask = QgsRasterLayer(result["CHANGE_MASK"], "change mask", "gdal")
    check_on_grid(mask)
    stats = mask.dataProvider().bandStatistics(1, QgsRasterBandStats.All)
    assert stats.maximumValue == 1 and stats.sum > 0  # some buildings were demolished
    for key in ("T1_IMAGE", "T2_IMAGE", "T1_LABEL", "T2_LABEL", "CHANGE_FROMTO"):
        check_on_grid(QgsRasterLayer(result[key], key, "gdal"))

    from rs_seg2any_qgis.layers import add_results

    files = {k.lower(): result[k] for k in ("T1_IMAGE", "T2_IMAGE", "CHANGE_MASK",
                                            "CHANGE_FROMTO")}  # fmt: skip
    _group, added, problems = add_results(files, "change", command="change")
    assert not problems
    fromto = {layer.name(): layer for layer in added}["change from-to"]
    classes = fromto.renderer().classes()  # named from change_classes.csv
    assert classes and all("→" in c.label for c in classes)


def test_planning_zones_via_processing(
    plugin: Any, qgis_processing: None, base_image: Path, weights: Path, tmp_path: Path
) -> None:
    import processing

    zones = QgsVectorLayer("Polygon?crs=EPSG:32640&field=desc:string", "zones", "memory")
    feature = QgsFeature(zones.fields())
    feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(*FLOOD_BOX)))
    feature.setAttribute("desc", "a car park with white lines")
    zones.dataProvider().addFeatures([feature])
    result = processing.run("rs_seg2any:planning_zones", {
        "IMAGE": str(base_image), "ZONES": zones, "ZONE_DESCRIPTION_FIELD": "desc",
        "MODEL": str(weights), "STEPS": 2, "TILE_SIZE": 64, "OUTPUT": str(tmp_path / "plan"),
    })  # fmt: skip
    check_on_grid(QgsRasterLayer(result["IMAGE"], "after", "gdal"))
    check_on_grid(QgsRasterLayer(result["LABEL"], "label", "gdal"))


def test_damage_pair_via_processing(
    plugin: Any, qgis_processing: None, base_image: Path, weights: Path, tmp_path: Path
) -> None:
    import processing

    damaged = QgsVectorLayer("Polygon?crs=EPSG:32640&field=level:string&field=type:string",
                             "assessed", "memory")  # fmt: skip
    feature = QgsFeature(damaged.fields())
    feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(*FLOOD_BOX)))
    feature.setAttribute("level", "destroyed")
    feature.setAttribute("type", "collapse")
    damaged.dataProvider().addFeatures([feature])
    result = processing.run("rs_seg2any:damage_pair", {
        "IMAGE": str(base_image), "DISASTER": 1, "DAMAGE_LAYER": damaged,  # earthquake
        "LEVEL_FIELD": "level", "TYPE_FIELD": "type", "MODEL": str(weights), "STEPS": 2,
        "TILE_SIZE": 64, "OUTPUT": str(tmp_path / "damage"),
    })  # fmt: skip
    level = QgsRasterLayer(result["DAMAGE_LEVEL"], "damage level", "gdal")
    check_on_grid(level)
    stats = level.dataProvider().bandStatistics(1, QgsRasterBandStats.All)
    assert stats.maximumValue == 4  # destroyed
    check_on_grid(QgsRasterLayer(result["IMAGE"], "post", "gdal"))

    from rs_seg2any_qgis.layers import add_results

    files = {k.lower(): result[k] for k in ("IMAGE", "DAMAGE_LEVEL")}
    _group, added, problems = add_results(files, "damage", command="damage")
    assert not problems
    styled = {layer.name(): layer for layer in added}["damage level"]
    labels = {c.label for c in styled.renderer().classes()}  # from damage_level.qml
    assert {"no-damage", "destroyed"} <= labels


def test_seasons_action_adds_one_image_per_season(
    plugin: Any, demo_town: Path, weights: Path, tmp_path: Path, add_layer: Any
) -> None:
    from rs_seg2any_qgis import config

    config.put(config.MODEL, str(weights))
    town = add_layer(demo_town, "demo_town")
    dialog = plugin.show_scenario("seasons")
    dialog.layer.setLayer(town)
    dialog.class_field.setField("landcover")
    dialog.taxonomy.setCurrentText("dubai_aerial")
    for name, check in dialog.season_boxes.items():
        check.setChecked(name in ("summer", "winter"))
    dialog.resolution.setValue(0.5)
    dialog.grid.crs.setCrs(QgsCoordinateReferenceSystem())  # the layer's
    dialog.grid.extent.setChecked(True)
    dialog.grid.extent.setOutputExtentFromUser(QgsRectangle(*GRID), dialog.grid.output_crs())
    dialog.steps.setValue(2)
    dialog.tile_size.setValue(64)
    dialog.out_dir.setFilePath(str(tmp_path / "seasons"))
    dialog.buttons.button(QDialogButtonBox.Ok).click()
    assert not dialog.isVisible(), dialog.bar.currentItem().text()
    task = plugin.tasks[-1]
    wait_for(lambda: task in plugin.finished, timeout=300)
    assert task.result.ok, task.result.summary()
    layers = group_layers("seasons demo_town")
    assert set(layers) == {"summer", "winter", "summer label", "winter label"}
    for layer in layers.values():
        check_on_grid(layer)
