# SPDX-License-Identifier: GPL-2.0-or-later
"""The Flood dialog: flood polygons, or a DEM and a water level."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsMapLayerProxyModel, QgsRasterBandStats, QgsRasterLayer, QgsVectorLayer
from qgis.gui import QgsDoubleSpinBox
from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QLineEdit, QRadioButton

from ..layers import single_layer_file
from ..scenarios import ScenarioSpec, parse_points
from ..widgets import layer_combo, layer_named, vector_problems
from .base import ScenarioDialog, choice, raster_file_problems


class FloodDialog(ScenarioDialog):
    command = "flood"
    title = "Flood"
    intro = (
        "Generates flood water only inside a flood extent (polygons, or the low ground "
        "below a water level on a DEM); every other pixel is copied from the base image."
    )
    own_dests = ("flood_polygons", "dem", "level", "seed_xy", "dem_resample")

    def _build_scenario(self) -> QGroupBox:
        box = QGroupBox("Flood extent")
        form = QFormLayout(box)
        self.by_polygons = QRadioButton("Flood polygons")
        self.by_dem = QRadioButton("DEM and water level")
        self.flood_polygons = layer_combo(
            QgsMapLayerProxyModel.PolygonLayer, True, "Polygons of the flooded area (any CRS)"
        )
        self.dem = layer_combo(
            QgsMapLayerProxyModel.RasterLayer, True, "Terrain heights in metres (GeoTIFF)"
        )
        self.level = QgsDoubleSpinBox()
        self.level.setRange(-500.0, 9000.0)
        self.level.setDecimals(2)
        self.level.setSuffix(" m")
        self.level.setClearValue(0.0)
        self.level.setToolTip("Water surface elevation, in the DEM's height datum")
        self.dem_range = QLabel("")
        self.seed_xy = QLineEdit()
        self.seed_xy.setPlaceholderText("optional: x,y; x,y (output CRS): where the water enters")
        self.dem_resample = QComboBox()
        self.dem_resample.addItem("none: the DEM must be on the output grid", None)
        for method in self.choices("dem_resample"):  # the backend's methods
            self.dem_resample.addItem(method, method)
        form.addRow(self.by_polygons)
        form.addRow("Flood polygons", self.flood_polygons)
        form.addRow(self.by_dem)
        form.addRow("DEM", self.dem)
        form.addRow("Water level", self.level)
        form.addRow("", self.dem_range)
        form.addRow("Entry points", self.seed_xy)
        form.addRow("Resample the DEM", self.dem_resample)
        choice(self.by_polygons, self.by_dem, self._mode_changed)
        self.dem.layerChanged.connect(self._dem_changed)
        self._mode_changed()
        return box

    def _mode_changed(self) -> None:
        dem = self.by_dem.isChecked()
        self.flood_polygons.setEnabled(not dem)
        for widget in (self.dem, self.level, self.seed_xy, self.dem_resample):
            widget.setEnabled(dem)

    def _dem_changed(self) -> None:
        dem = self.dem.currentLayer()
        text = ""
        if isinstance(dem, QgsRasterLayer):
            stats = dem.dataProvider().bandStatistics(
                1, QgsRasterBandStats.Min | QgsRasterBandStats.Max, dem.extent(), 250000
            )
            text = f"DEM heights: {stats.minimumValue:.2f} m to {stats.maximumValue:.2f} m"
        self.dem_range.setText(text)

    def scenario_problems(self) -> list[str]:
        if self.by_polygons.isChecked():
            return vector_problems(self.flood_polygons.currentLayer(), "the flood polygons")
        found = raster_file_problems(self.dem.currentLayer(), "a DEM")
        try:
            parse_points(self.seed_xy.text())
        except ValueError as exc:
            found.append(f"entry points: {exc}")
        return found

    def apply_scenario(self, spec: ScenarioSpec) -> None:
        if self.by_polygons.isChecked():
            polygons = self.flood_polygons.currentLayer()
            spec.flood_polygons = polygons.source() if polygons is not None else None
            return
        dem = self.dem.currentLayer()
        spec.dem = dem.source() if dem is not None else None
        spec.level = self.level.value()
        spec.seed_xy = parse_points(self.seed_xy.text())
        spec.dem_resample = self.dem_resample.currentData()

    def export_inputs(self, spec: ScenarioSpec, folder: Path) -> None:
        super().export_inputs(spec, folder)
        polygons = self.flood_polygons.currentLayer()
        if spec.flood_polygons and polygons is not None:
            spec.flood_polygons = single_layer_file(polygons, folder)

    def _restore_scenario(self) -> None:
        (
            self.by_dem if self.remembered.str("extent_from") == "dem" else self.by_polygons
        ).setChecked(True)
        self.flood_polygons.setLayer(
            layer_named(self.remembered.str("flood_polygons"), QgsVectorLayer)
        )
        self.dem.setLayer(layer_named(self.remembered.str("dem"), QgsRasterLayer))
        self.level.setValue(self.remembered.float("level", 0.0))
        self.seed_xy.setText(self.remembered.str("seed_xy"))
        index = self.dem_resample.findData(self.remembered.str("dem_resample") or None)
        self.dem_resample.setCurrentIndex(max(0, index))

    def _remember_scenario(self) -> None:
        polygons, dem = self.flood_polygons.currentLayer(), self.dem.currentLayer()
        self.remembered.put(
            {
                "extent_from": "dem" if self.by_dem.isChecked() else "polygons",
                "flood_polygons": polygons.name() if polygons is not None else "",
                "dem": dem.name() if dem is not None else "",
                "level": self.level.value(),
                "seed_xy": self.seed_xy.text(),
                "dem_resample": self.dem_resample.currentData() or "",
            }
        )
