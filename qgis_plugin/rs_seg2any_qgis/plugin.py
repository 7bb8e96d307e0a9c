# SPDX-License-Identifier: GPL-2.0-or-later
"""The plugin object: toolbar, menu, Processing provider, and the jobs it starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsMapLayer,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from . import config
from ._tools import custom_logging, messages, resources
from .backend import BackendError, SchemaMismatch
from .dialogs import GenerateDialog, SettingsDialog
from .jobs import JobSpec
from .layers import add_results
from .processing.provider import RsSeg2AnyProvider
from .scenario_dialogs import DIALOGS, ScenarioDialog
from .scenarios import ScenarioSpec
from .task import CliJobTask

MENU = "&rs_seg2any"
POLYGON = QgsWkbTypes.PolygonGeometry


@dataclass(frozen=True)
class ActionDef:
    """A toolbar/menu entry. ``coming`` names the issue that brings a missing backend."""

    key: str
    text: str
    icon: str
    coming: str = ""


ACTIONS = (
    ActionDef("generate", "Generate imagery from layer…", "icon.svg"),
    ActionDef("flood", "Flood…", "flood.svg"),
    ActionDef("planning", "Planning zones…", "planning.svg"),
    ActionDef("seasons", "Seasons…", "seasons.svg"),
    ActionDef("change", "Change pair…", "change.svg"),
    ActionDef("cloudfill", "Cloud fill…", "cloudfill.svg"),
    ActionDef("damage", "Damage pair…", "damage.svg"),
    ActionDef("detection", "Detection dataset…", "detection.svg"),
    ActionDef("settings", "Settings…", "settings.svg"),
)  # fmt: skip


class RsSeg2AnyPlugin:
    """Created by ``classFactory``; QGIS calls ``initGui`` / ``unload``."""

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.actions: dict[str, QAction] = {}
        self.toolbar: Any = None
        self.provider: RsSeg2AnyProvider | None = None
        self.dialog: GenerateDialog | None = None
        self.scenario_dialogs: dict[str, ScenarioDialog] = {}
        self.tasks: list[CliJobTask] = []
        self.finished: list[CliJobTask] = []  # Python side only: QGIS deletes the C++ task
        self.logger_name = resources.plugin_name()
        self.bar = messages.MessageBarLogger(self.logger_name)

    # -- QGIS hooks ----------------------------------------------------------------------
    def initProcessing(self) -> None:
        if self.provider is None:
            self.provider = RsSeg2AnyProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        custom_logging.setup_logger(self.logger_name, self.iface)
        self.initProcessing()
        self.toolbar = self.iface.addToolBar("rs_seg2any")
        self.toolbar.setObjectName("rs_seg2any_toolbar")
        slots = {"generate": self.show_generate, "settings": self.show_settings}
        for key in DIALOGS:
            slots[key] = lambda _checked=False, key=key: self.show_scenario(key)
        for spec in ACTIONS:
            action = QAction(QIcon(config.icon_path(spec.icon)), spec.text, self.iface.mainWindow())
            action.setObjectName(f"rs_seg2any_{spec.key}")
            if spec.coming:
                action.setEnabled(False)
                action.setToolTip(f"{spec.text.rstrip('…')}: {spec.coming}")
                action.setStatusTip(spec.coming)
            else:
                action.triggered.connect(slots[spec.key])
            self.toolbar.addAction(action)
            self.iface.addPluginToMenu(MENU, action)
            self.actions[spec.key] = action

    def unload(self) -> None:
        for task in list(self.tasks):  # jobs stop cleanly and resume when run again
            task.on_finished = None
            task.cancel()
        self.tasks.clear()
        remove_menu = getattr(self.iface, "removePluginMenu", None)
        for action in self.actions.values():
            if remove_menu is not None:
                remove_menu(MENU, action)
            self.iface.removeToolBarIcon(action)
            action.deleteLater()
        self.actions.clear()
        if self.toolbar is not None:
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        for dialog in [self.dialog, *self.scenario_dialogs.values()]:
            if dialog is not None:
                dialog.deleteLater()
        self.dialog = None
        self.scenario_dialogs.clear()
        custom_logging.teardown_logger(self.logger_name)

    # -- actions -------------------------------------------------------------------------
    def show_generate(self) -> GenerateDialog:
        """Open (or raise) the modeless Generate dialog (built again for another backend)."""
        if self.dialog is not None and self.dialog.schema is not config.schema_or_error()[0]:
            self.dialog.deleteLater()
            self.dialog = None
        if self.dialog is None:
            self.dialog = GenerateDialog(
                self.iface.mapCanvas(), self.start_job, self.iface.mainWindow()
            )
        active = self.iface.activeLayer()
        if isinstance(active, QgsVectorLayer):
            self.dialog.layer.setLayer(active)
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def show_scenario(self, key: str) -> ScenarioDialog:
        """Open (or raise) the modeless dialog of a scenario: flood, planning, seasons, change,
        cloudfill, damage, detection.

        The active layer is taken as the base image (a raster, for flood, planning, cloud
        fill and detection) or the layout (a polygon layer, for seasons, change and cloud
        fill; the objects for detection). A dialog
        built for another backend (or before one was readable) is built again.
        """
        dialog = self.scenario_dialogs.get(key)
        if dialog is not None and dialog.schema is not config.schema_or_error()[0]:
            dialog.deleteLater()
            dialog = None
        if dialog is None:
            dialog = DIALOGS[key](self.iface.mapCanvas(), self.start_job, self.iface.mainWindow())
            self.scenario_dialogs[key] = dialog
        active = self.iface.activeLayer()
        polygons = isinstance(active, QgsVectorLayer) and active.geometryType() == POLYGON
        if isinstance(active, QgsRasterLayer) and dialog.image is not None:
            dialog.image.setLayer(active)
        elif polygons:  # the layout, or the objects of a detection set
            dialog.take_active(active)
        dialog.show()
        dialog.raise_()
        return dialog

    def show_settings(self) -> SettingsDialog:
        dialog = SettingsDialog(self.iface.mainWindow())
        dialog.show()
        return dialog

    # -- jobs ----------------------------------------------------------------------------
    def start_job(
        self, spec: JobSpec | ScenarioSpec, layer: QgsMapLayer | None = None
    ) -> CliJobTask | None:
        """Run ``spec`` as a background task; results land in the project when it ends.

        ``layer`` names the job (else the input file does).
        """
        cli = config.cli_path()
        if cli is None:
            self.bar.error(
                "rs_seg2any: no backend",
                "set the path of rs-seg2any in rs_seg2any > Settings",
                duration=0,
            )
            return None
        busy = [t for t in self.tasks if getattr(t, "out_dir", None) == spec.out_dir]
        if busy:  # two processes on one job folder would fight over its tiles
            self.bar.warning(
                "rs_seg2any: that output folder is busy",
                f"a job is still running in {spec.out_dir}: wait for it, cancel it, "
                "or choose another folder",
            )
            return None
        try:
            args = spec.to_args(config.schema())
        except SchemaMismatch as exc:
            self.bar.error("rs_seg2any: plugin and backend do not fit together", str(exc),
                           duration=0)  # fmt: skip
            return None
        except (BackendError, ValueError) as exc:
            self.bar.error("rs_seg2any: cannot run", str(exc), duration=0)
            return None
        name = layer.name() if layer is not None else spec.input_name()
        task = CliJobTask(f"rs_seg2any: {spec.verb()} for {name}", cli, args, self._done)
        what = "" if isinstance(spec, JobSpec) else f"{spec.command} "
        task.title = f"{what}{name} ({Path(spec.out_dir).name})"  # type: ignore[attr-defined]
        task.out_dir = spec.out_dir  # type: ignore[attr-defined]
        self.tasks.append(task)
        QgsApplication.taskManager().addTask(task)
        return task

    def _done(self, task: CliJobTask) -> None:
        """GUI thread: add the layers, or say why not (with the CLI's own message)."""
        if task in self.tasks:
            self.tasks.remove(task)
        self.finished = [*self.finished[-19:], task]  # recent outcomes, for inspection
        result = task.result
        assert result is not None
        if result.ok:
            _group, added, problems = add_results(
                result.outputs,
                f"rs_seg2any: {task.title}",  # type: ignore[attr-defined]
                QgsProject.instance(),
                command=task.args[0],
            )
            resumed = f" ({result.tiles_resumed} tiles resumed)" if result.tiles_resumed else ""
            if problems:
                self.bar.warning("rs_seg2any: some outputs did not load", "; ".join(problems))
            self.bar.info(
                "rs_seg2any: done",
                f"{len(added)} layers added from {result.out_dir}{resumed}",
                success=True,
            )
        elif result.cancelled:
            self.bar.info(
                "rs_seg2any: cancelled",
                (result.error_message or "stopped") + " (run it again to resume)",
            )
        else:
            self.bar.error(
                f"rs_seg2any: {result.error_type or 'failed'}", result.summary(), duration=0
            )
