# SPDX-License-Identifier: GPL-2.0-or-later
"""The Damage pair dialog: a damage layer (levels and types), or the disaster's recipe."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsMapLayerProxyModel, QgsVectorLayer
from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLineEdit, QRadioButton

from ..layers import single_layer_file
from ..scenarios import ScenarioSpec, parse_params, parse_points
from ..widgets import layer_combo, layer_named, vector_problems
from .base import ScenarioDialog, choice, field_combo


class DamageDialog(ScenarioDialog):
    command = "damage"
    title = "Damage pair"
    intro = (
        "Renders the post-event image of a disaster: damaged buildings and areas are "
        "re-rendered with damage descriptions, every other pixel is copied from the base. "
        "Labels: damage polygons with level and type, and a damage-level raster. The flood "
        "recipe's DEM and water level are among the other options below."
    )
    own_dests = ("disaster", "damage_layer", "damage_level_field", "damage_type_field",
                 "origin", "param")  # fmt: skip

    def _build_scenario(self) -> QGroupBox:
        box = QGroupBox("Damage")
        form = QFormLayout(box)
        self.disaster = QComboBox()
        for name in self.choices("disaster"):  # the backend's presets
            self.disaster.addItem(name, name)
        self.by_layer = QRadioButton("Damage layer")
        self.by_recipe = QRadioButton("Recipe (drawn from the layout's buildings by seed)")
        self.damage_layer = layer_combo(
            QgsMapLayerProxyModel.PolygonLayer,
            True,
            "Buildings and areas with a damage level (no-damage, minor-damage, major-damage, "
            "destroyed or 1-4) and an optional type",
        )
        self.level_field = field_combo()
        self.type_field = field_combo(optional=True)
        self.origin = QLineEdit()
        self.origin.setPlaceholderText("optional: x,y (output CRS): the earthquake's epicentre")
        self.params = QLineEdit()
        self.params.setPlaceholderText("optional: direction_deg=45, front=0.6 (key=value)")
        form.addRow("Disaster", self.disaster)
        form.addRow(self.by_layer)
        form.addRow("Damage layer", self.damage_layer)
        form.addRow("Level field", self.level_field)
        form.addRow("Type field", self.type_field)
        form.addRow(self.by_recipe)
        form.addRow("Epicentre", self.origin)
        form.addRow("Recipe parameters", self.params)
        choice(self.by_layer, self.by_recipe, self._mode_changed)
        self.damage_layer.layerChanged.connect(self._layer_changed)
        self._layer_changed()
        self._mode_changed()
        return box

    def _mode_changed(self) -> None:
        drawn = self.by_layer.isChecked()
        for widget in (self.damage_layer, self.level_field, self.type_field):
            widget.setEnabled(drawn)
        for other in (self.origin, self.params):
            other.setEnabled(not drawn)

    def _layer_changed(self) -> None:
        layer = self.damage_layer.currentLayer()
        for combo, key, default in ((self.level_field, "damage_level_field", "level"),
                                    (self.type_field, "damage_type_field", "type")):  # fmt: skip
            combo.setLayer(layer)
            wanted = self.remembered.str(key) or default
            if layer is not None and wanted in layer.fields().names():
                combo.setField(wanted)

    def scenario_problems(self) -> list[str]:
        if self.by_layer.isChecked():
            found = vector_problems(self.damage_layer.currentLayer(), "the damage layer")
            if not found and not self.level_field.currentField():
                found.append("choose the damage layer's level field")
            return found
        found = []
        try:
            if len(parse_points(self.origin.text())) > 1:
                found.append("epicentre: one point x,y")
        except ValueError as exc:
            found.append(f"epicentre: {exc}")
        try:
            parse_params(self.params.text())
        except ValueError as exc:
            found.append(f"recipe parameters: {exc}")
        return found

    def apply_scenario(self, spec: ScenarioSpec) -> None:
        spec.disaster = self.disaster.currentData()
        if self.by_layer.isChecked():
            layer = self.damage_layer.currentLayer()
            spec.damage_layer = layer.source() if layer is not None else None
            spec.damage_level_field = self.level_field.currentField() or None
            spec.damage_type_field = self.type_field.currentField() or None
            return
        points = parse_points(self.origin.text())
        spec.origin = points[0] if points else None
        spec.params = parse_params(self.params.text())

    def export_inputs(self, spec: ScenarioSpec, folder: Path) -> None:
        super().export_inputs(spec, folder)
        layer = self.damage_layer.currentLayer()
        if spec.damage_layer and layer is not None:
            spec.damage_layer = single_layer_file(layer, folder)

    def _restore_scenario(self) -> None:
        (self.by_recipe if self.remembered.str("damage_from") == "recipe"
         else self.by_layer).setChecked(True)  # fmt: skip
        index = self.disaster.findData(self.remembered.str("disaster") or None)
        self.disaster.setCurrentIndex(max(0, index))
        name = self.remembered.str("damage_layer")
        self.damage_layer.setLayer(layer_named(name, QgsVectorLayer))
        self._layer_changed()
        self.origin.setText(self.remembered.str("origin"))
        self.params.setText(self.remembered.str("params"))

    def _remember_scenario(self) -> None:
        layer = self.damage_layer.currentLayer()
        self.remembered.put(
            {
                "damage_from": "layer" if self.by_layer.isChecked() else "recipe",
                "disaster": self.disaster.currentData() or "",
                "damage_layer": layer.name() if layer is not None else "",
                "damage_level_field": self.level_field.currentField(),
                "damage_type_field": self.type_field.currentField(),
                "origin": self.origin.text(),
                "params": self.params.text(),
            }
        )
