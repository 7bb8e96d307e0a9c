# SPDX-License-Identifier: GPL-2.0-or-later
"""The Change pair dialog: a change recipe, or an after layout."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsMapLayerProxyModel, QgsVectorLayer
from qgis.gui import QgsSpinBox
from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLineEdit, QRadioButton

from ..layers import same_named_sources
from ..scenarios import ScenarioSpec, parse_params
from ..widgets import layer_combo, layer_named, vector_problems
from .base import ScenarioDialog, choice


class ChangeDialog(ScenarioDialog):
    command = "change"
    title = "Change pair"
    intro = (
        "Renders the layout (T1), then T2 changed only where the after layout differs: "
        "a second layout, or one drawn by a change recipe. The change mask marks the "
        "changed pixels."
    )
    needs_layout = True
    image_role = ""
    own_dests = ("after", "recipe", "param", "pairs", "roles")

    def _build_scenario(self) -> QGroupBox:
        box = QGroupBox("Change")
        form = QFormLayout(box)
        self.by_recipe = QRadioButton("A change recipe")
        self.by_after = QRadioButton("An after layout (same fields as the layout)")
        self.recipe = QComboBox()
        for name in self.choices("recipe"):  # the backend's recipes
            self.recipe.addItem(name.replace("_", " "), name)
        self.params = QLineEdit()
        self.params.setPlaceholderText("optional, key=value, ... (default: the preset's)")
        self.params.setToolTip(
            f"Recipe parameters as key=value, separated by commas. {self.help_of('param')}"
        )
        self.pairs = QgsSpinBox()
        self.pairs.setRange(1, 1000)
        self.pairs.setClearValue(1)
        self.pairs.setToolTip("How many T2 images (recipe draws), each with its change mask")
        self.roles = QLineEdit()
        self.roles.setPlaceholderText(
            "optional: building,bare,road classes (default: the preset's)"
        )
        self.after = layer_combo(
            QgsMapLayerProxyModel.PolygonLayer, True, "The layout after the change"
        )
        form.addRow(self.by_recipe)
        form.addRow("Recipe", self.recipe)
        form.addRow("Parameters", self.params)
        form.addRow("Pairs", self.pairs)
        form.addRow("Roles", self.roles)
        form.addRow(self.by_after)
        form.addRow("After layout", self.after)
        choice(self.by_recipe, self.by_after, self._mode_changed)
        self._mode_changed()
        return box

    def _mode_changed(self) -> None:
        recipe = self.by_recipe.isChecked()
        for widget in (self.recipe, self.params, self.pairs, self.roles):
            widget.setEnabled(recipe)
        self.after.setEnabled(not recipe)

    def scenario_problems(self) -> list[str]:
        if self.by_after.isChecked():
            return vector_problems(self.after.currentLayer(), "the after layout")
        try:
            parse_params(self.params.text())
        except ValueError as exc:
            return [f"recipe parameters: {exc}"]
        return []

    def apply_scenario(self, spec: ScenarioSpec) -> None:
        if self.by_after.isChecked():
            after = self.after.currentLayer()
            spec.after = after.source() if after is not None else None
            return
        spec.recipe = self.recipe.currentData()
        spec.params = parse_params(self.params.text())
        spec.pairs = self.pairs.value()
        spec.roles = self.roles.text().strip() or None

    def export_inputs(self, spec: ScenarioSpec, folder: Path) -> None:
        after, layout = self.after.currentLayer(), self.source.current()
        if spec.after and after is not None and layout is not None:
            spec.layout, spec.after, name = same_named_sources(layout, after, folder)
            spec.layer_name = name or None
        else:
            super().export_inputs(spec, folder)

    def _restore_scenario(self) -> None:
        (
            self.by_after if self.remembered.str("change_from") == "after" else self.by_recipe
        ).setChecked(True)
        self.recipe.setCurrentIndex(max(0, self.recipe.findData(self.remembered.str("recipe"))))
        self.params.setText(self.remembered.str("params"))
        self.pairs.setValue(self.remembered.int("pairs", 1))
        self.roles.setText(self.remembered.str("roles"))
        self.after.setLayer(layer_named(self.remembered.str("after"), QgsVectorLayer))

    def _remember_scenario(self) -> None:
        after = self.after.currentLayer()
        self.remembered.put(
            {
                "change_from": "after" if self.by_after.isChecked() else "recipe",
                "recipe": self.recipe.currentData(),
                "params": self.params.text(),
                "pairs": self.pairs.value(),
                "roles": self.roles.text(),
                "after": after.name() if after is not None else "",
            }
        )
