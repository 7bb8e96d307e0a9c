# SPDX-License-Identifier: GPL-2.0-or-later
"""The Seasons dialog: one layout, the seasons to render."""

from __future__ import annotations

from qgis.PyQt.QtWidgets import QCheckBox, QGroupBox, QHBoxLayout

from ..scenarios import ScenarioSpec
from .base import ScenarioDialog


class SeasonsDialog(ScenarioDialog):
    command = "seasons"
    title = "Seasons"
    intro = (
        "Renders one layout once per season, with the same seed: the scene stays, its "
        "look follows the season (vegetation, snow, light)."
    )
    needs_layout = True
    image_role = ""
    own_dests = ("seasons",)

    def season_names(self) -> list[str]:
        """The seasons the backend renders by default (its ``--seasons`` default)."""
        if self.schema is None or not self.schema.has(self.command, "seasons"):
            return []
        default = self.schema.default(self.command, "seasons") or ""
        return [name.strip() for name in str(default).split(",") if name.strip()]

    def _build_scenario(self) -> QGroupBox:
        box = QGroupBox("Seasons")
        row = QHBoxLayout(box)
        self.season_boxes = {name: QCheckBox(name) for name in self.season_names()}
        for check in self.season_boxes.values():
            check.setChecked(True)
            row.addWidget(check)
        row.addStretch(1)
        return box

    def chosen(self) -> list[str]:
        return [name for name, check in self.season_boxes.items() if check.isChecked()]

    def scenario_problems(self) -> list[str]:
        return [] if self.chosen() else ["choose at least one season"]

    def apply_scenario(self, spec: ScenarioSpec) -> None:
        spec.seasons = self.chosen()

    def _restore_scenario(self) -> None:
        last = self.remembered.str("seasons")
        if last:
            for name, check in self.season_boxes.items():
                check.setChecked(name in last.split(","))

    def _remember_scenario(self) -> None:
        self.remembered.put({"seasons": ",".join(self.chosen())})
