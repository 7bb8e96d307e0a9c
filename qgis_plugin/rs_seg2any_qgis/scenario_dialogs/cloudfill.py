# SPDX-License-Identifier: GPL-2.0-or-later
"""The Cloud fill dialog: a real image, its cloud mask, and the layout of what lies below."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsMapLayerProxyModel, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtWidgets import QFormLayout, QGroupBox

from ..layers import single_layer_file
from ..scenarios import ScenarioSpec
from ..widgets import layer_combo, layer_named, vector_problems
from .base import ScenarioDialog, raster_file_problems


class CloudfillDialog(ScenarioDialog):
    command = "cloudfill"
    title = "Cloud fill"
    intro = (
        "Fills the clouds of a real image: pixels under the cloud mask are generated from "
        "the layout (what lies below the clouds); every other pixel is copied bit for bit."
    )
    needs_layout = True
    image_role = "required"
    has_grid = False  # the image's grid
    own_dests = ("clouds",)

    def _build_scenario(self) -> QGroupBox:
        box = QGroupBox("Clouds")
        form = QFormLayout(box)
        self.clouds = layer_combo(
            QgsMapLayerProxyModel.RasterLayer | QgsMapLayerProxyModel.PolygonLayer,
            True,
            "A cloud mask raster on the image's grid (non-zero = cloud), or cloud polygons",
        )
        form.addRow("Cloud mask", self.clouds)
        return box

    def scenario_problems(self) -> list[str]:
        layer = self.clouds.currentLayer()
        if isinstance(layer, QgsVectorLayer):
            return vector_problems(layer, "the cloud polygons")
        return raster_file_problems(layer, "the cloud mask (a raster or polygons)")

    def apply_scenario(self, spec: ScenarioSpec) -> None:
        layer = self.clouds.currentLayer()
        spec.clouds = layer.source() if layer is not None else None

    def export_inputs(self, spec: ScenarioSpec, folder: Path) -> None:
        super().export_inputs(spec, folder)
        layer = self.clouds.currentLayer()
        if isinstance(layer, QgsVectorLayer):
            spec.clouds = single_layer_file(layer, folder)

    def _restore_scenario(self) -> None:
        name = self.remembered.str("clouds")
        self.clouds.setLayer(layer_named(name, QgsRasterLayer) or layer_named(name, QgsVectorLayer))

    def _remember_scenario(self) -> None:
        layer = self.clouds.currentLayer()
        self.remembered.put({"clouds": layer.name() if layer is not None else ""})
