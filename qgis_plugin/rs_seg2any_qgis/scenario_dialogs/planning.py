# SPDX-License-Identifier: GPL-2.0-or-later
"""The Planning zones dialog: zones with a description each."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsMapLayerProxyModel, QgsVectorLayer
from qgis.PyQt.QtWidgets import QFormLayout, QGroupBox

from ..layers import single_layer_file
from ..scenarios import ScenarioSpec
from ..widgets import layer_combo, layer_named, vector_problems
from .base import ScenarioDialog, field_combo


class PlanDialog(ScenarioDialog):
    command = "plan"
    title = "Planning zones"
    intro = (
        "Inpaints planned zones into the base image: each zone is generated from its own "
        "description (e.g. 'high-rise towers with rooftop pools'); the rest stays."
    )
    own_dests = ("zones", "zone_description_field", "zone_class_field")

    def _build_scenario(self) -> QGroupBox:
        box = QGroupBox("Planned zones")
        form = QFormLayout(box)
        self.zones = layer_combo(
            QgsMapLayerProxyModel.PolygonLayer,
            True,
            "Polygons of the planned zones, with a description each",
        )
        self.zone_description_field = field_combo()
        self.zone_class_field = field_combo(optional=True)
        self.zone_class_field.setToolTip(
            "A class of the taxonomy per zone; empty: the preset's 'planned development'"
        )
        form.addRow("Zones", self.zones)
        form.addRow("Description field", self.zone_description_field)
        form.addRow("Class field", self.zone_class_field)
        self.zones.layerChanged.connect(self._zones_changed)
        self._zones_changed()
        return box

    def _zones_changed(self) -> None:
        layer = self.zones.currentLayer()
        for combo, key in (
            (self.zone_description_field, "zone_description_field"),
            (self.zone_class_field, "zone_class_field"),
        ):
            combo.setLayer(layer)
            last = self.remembered.str(key)
            if layer is not None and last in layer.fields().names():
                combo.setField(last)

    def scenario_problems(self) -> list[str]:
        found = vector_problems(self.zones.currentLayer(), "the zones")
        if not found and not self.zone_description_field.currentField():
            found.append("choose the zones' description field")
        return found

    def apply_scenario(self, spec: ScenarioSpec) -> None:
        zones = self.zones.currentLayer()
        spec.zones = zones.source() if zones is not None else None
        spec.zone_description_field = self.zone_description_field.currentField() or None
        spec.zone_class_field = self.zone_class_field.currentField() or None

    def export_inputs(self, spec: ScenarioSpec, folder: Path) -> None:
        super().export_inputs(spec, folder)
        zones = self.zones.currentLayer()
        if zones is not None:
            spec.zones = single_layer_file(zones, folder)

    def _restore_scenario(self) -> None:
        self.zones.setLayer(layer_named(self.remembered.str("zones"), QgsVectorLayer))
        self._zones_changed()

    def _remember_scenario(self) -> None:
        zones = self.zones.currentLayer()
        self.remembered.put(
            {
                "zones": zones.name() if zones is not None else "",
                "zone_description_field": self.zone_description_field.currentField(),
                "zone_class_field": self.zone_class_field.currentField(),
            }
        )
