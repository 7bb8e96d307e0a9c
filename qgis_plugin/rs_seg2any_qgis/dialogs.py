# SPDX-License-Identifier: GPL-2.0-or-later
"""The Generate dialog and the Settings dialog, built from QGIS widgets.

The Generate dialog is modeless: it validates, turns its widgets into a ``JobSpec`` and
hands it to the plugin, which runs it as a background task.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsTask, QgsVectorLayer
from qgis.gui import QgsFileWidget, QgsMapCanvas, QgsMessageBar, QgsSpinBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from . import config
from .backend import (
    BackendError,
    SchemaMismatch,
    backend_versions,
    checkout_root,
    create_environment,
)
from .job_export import JobExport
from .jobs import JobSpec
from .layers import cli_source
from .schema_widgets import SchemaOptionsBox
from .widgets import (
    LAST,
    GeneratorBox,
    GridBox,
    LayoutBox,
    OutputBox,
    Remembered,
    _taxonomy_cache,
    taxonomy_names,
)

MODES = (("generate", "Imagery (image + label, instance, contour maps)"),
         ("layout", "Label, instance and contour maps only (no model)"))  # fmt: skip

__all__ = ["LAST", "GenerateDialog", "SettingsDialog", "taxonomy_names"]


class GenerateDialog(JobExport, QDialog):
    """Choose a polygon layer, its class field, the grid and the generator; then run."""

    def __init__(
        self,
        canvas: QgsMapCanvas | None,
        on_run: Callable[[JobSpec, QgsVectorLayer], object],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("rs_seg2any - Generate imagery from layer")
        self.setWindowIcon(QIcon(config.icon_path()))
        self.canvas = canvas
        self.on_run = on_run
        self.remembered = Remembered(LAST)
        self.schema, self.schema_error = config.schema_or_error()
        self._build()
        self._restore()
        self._layer_changed()

    # -- widgets -------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        self.bar = QgsMessageBar(self)
        outer.addWidget(self.bar)
        self.source = LayoutBox(self.remembered)
        self.grid = GridBox(self.remembered, self.canvas, self.source.current)
        self.generator_box = GeneratorBox(self.remembered)
        self.mode = QComboBox()
        for key, label in MODES:
            self.mode.addItem(label, key)
        self.generator_box.form.insertRow(0, "Make", self.mode)
        self.output = OutputBox(self.remembered)
        for box in (self.source, self.grid, self.generator_box, self.output):
            outer.addWidget(box)
        self.more: SchemaOptionsBox | None = None
        if self.schema is not None:  # every other option of `generate` (those of `layout` too)
            shown = [*self.source.dests, *self.grid.dests, *self.generator_box.dests,
                     *self.output.dests]  # fmt: skip
            self.more = SchemaOptionsBox(self.schema, "generate", shown, self.remembered)
            outer.addWidget(self.more)
        if self.schema_error is not None:
            title = (
                "Plugin and backend do not fit together"
                if isinstance(self.schema_error, SchemaMismatch)
                else "No rs-seg2any backend"
            )
            self.bar.pushCritical(title, str(self.schema_error))
        # the widgets by name, for the plugin's tools and tests
        for box, names in (
            (self.source, ("layer", "class_field", "description_field", "taxonomy", "unknown")),
            (self.grid, ("like", "resolution", "crs", "extent")),
            (self.generator_box, ("backend", "seed", "steps", "caption")),
            (self.output, ("out_dir", "tile_size", "restart")),
        ):
            for name in names:
                setattr(self, name, getattr(box, name))

        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Run")
        self.buttons.accepted.connect(self.run)
        self.buttons.rejected.connect(self.reject)
        self.add_export_button(self.buttons)
        outer.addWidget(self.buttons)

        self.layer.layerChanged.connect(self._layer_changed)
        self.mode.currentIndexChanged.connect(self._mode_changed)

    # -- reactions -----------------------------------------------------------------------
    def _layer_changed(self) -> None:
        layer = self.source.current()
        if layer is not None:
            self.output.suggest(layer.name())
        self.grid.layer_changed()

    def output_crs(self) -> QgsCoordinateReferenceSystem:
        """The grid's CRS as the CLI will choose it (set CRS, else the layer's)."""
        return self.grid.output_crs()

    def _mode_changed(self) -> None:
        self.generator_box.set_active(self.mode.currentData() == "generate")

    # -- remembered values ---------------------------------------------------------------
    def boxes(self) -> list[Any]:
        return [self.source, self.grid, self.generator_box, self.output,
                *filter(None, [self.more])]  # fmt: skip

    def _restore(self) -> None:
        for box in self.boxes():
            box.restore()
        self.mode.setCurrentIndex(max(0, self.mode.findData(self.remembered.str("mode"))))
        self._mode_changed()

    def _remember(self) -> None:
        for box in self.boxes():
            box.remember()
        self.remembered.put({"mode": self.mode.currentData()})

    # -- run -----------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Everything wrong with the form, in words a user can act on."""
        found = self.source.problems()
        if self.source.current() is None:
            return found
        found += self.output.problems() + self.grid.problems()
        if self.more is not None:
            found += self.more.problems()
        if config.cli_path() is None:
            found.append("no rs-seg2any backend found: set it in rs_seg2any > Settings")
        elif self.schema_error is not None:
            found.append(str(self.schema_error))
        return found

    def spec(self) -> JobSpec:
        """The form as a job (the layer is exported at run time if it has no file)."""
        layer = self.source.current()
        mode = self.mode.currentData()
        spec = JobSpec(
            command=mode,
            layer_path=layer.source() if layer is not None else "",
            class_field=self.class_field.currentField(),
            description_field=self.description_field.currentField() or None,
            taxonomy=self.taxonomy.currentText().strip(),
            unknown_class=self.unknown.currentText(),
            out_dir=self.output.folder(),
        )
        self.output.apply(spec)
        self.grid.apply(spec)
        if mode == "generate":
            self.generator_box.apply(spec)
        if self.more is not None and self.schema is not None:  # those the command has
            spec.extra = {k: v for k, v in self.more.values().items() if self.schema.has(mode, k)}
        return spec

    def export_inputs(self, spec: JobSpec, folder: Path) -> None:
        """Point the spec at a file the CLI can read (an export of a file-less layer)."""
        spec.layer_path, name = cli_source(self.source.current(), folder)
        spec.layer_name = name or None

    def run(self) -> None:
        """Validate, export a file-less layer, and start the job (the dialog closes)."""
        self.bar.clearWidgets()
        problems = self.problems()
        if problems:
            self.bar.pushWarning("Cannot run yet", "; ".join(problems))
            return
        layer = self.source.current()
        spec = self.spec()
        try:
            self.export_inputs(spec, Path(spec.out_dir) / "input")
        except OSError as exc:
            self.bar.pushCritical("Cannot export the layer", str(exc))
            return
        problems = spec.problems()
        if problems:
            self.bar.pushWarning("Cannot run yet", "; ".join(problems))
            return
        self._remember()
        self.on_run(spec, layer)
        self.accept()


class SettingsDialog(QDialog):
    """Backend environment, default model, device and threads, with a version check."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("rs_seg2any - Settings")
        self.setWindowIcon(QIcon(config.icon_path()))
        outer = QVBoxLayout(self)
        form = QFormLayout()
        self.cli = QgsFileWidget()
        self.cli.setStorageMode(QgsFileWidget.GetFile)
        self.cli.setFilePath(config.get_str(config.CLI))
        found = config.cli_path()
        self.cli.lineEdit().setPlaceholderText(
            f"found: {found}" if found else "path of rs-seg2any in the backend environment"
        )
        self.cli.setToolTip(
            "The rs-seg2any command of a Python environment with rs_seg2any and torch "
            "(e.g. <env>/bin/rs-seg2any). Empty: $RS_SEG2ANY_CLI, then PATH."
        )
        check_row = QHBoxLayout()
        self.check_button = QPushButton("Check")
        self.check_button.clicked.connect(self.check)
        self.check_result = QLabel("")
        self.check_result.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.check_result.setWordWrap(True)
        self.create_button = QPushButton("Create environment…")
        self.create_button.setToolTip(
            "Make a new Python environment and pip-install rs_seg2any into it "
            "(give the rs_seg2any source folder or a wheel)"
        )
        self.create_button.clicked.connect(self.ask_create_environment)
        check_row.addWidget(self.check_button)
        check_row.addWidget(self.create_button)
        check_row.addWidget(self.check_result, 1)
        self.env_task: QgsTask | None = None
        self.model = QgsFileWidget()
        self.model.setStorageMode(QgsFileWidget.GetFile)
        self.model.setFilter("Weights (*.safetensors)")
        self.model.setFilePath(config.get_str(config.MODEL))
        self.model.lineEdit().setPlaceholderText("the embedded model's weights")
        self.device = QComboBox()
        self.device.addItem("CPU", "cpu")
        self.device.addItem("GPU (CUDA) - coming with the GPU backend (issue 4)", "cuda")
        self.device.model().item(1).setEnabled(False)
        self.threads = QgsSpinBox()
        self.threads.setRange(0, 512)
        self.threads.setSpecialValueText("all cores")
        self.threads.setClearValue(0)
        self.threads.setValue(config.get_int(config.THREADS, 0))
        form.addRow("Backend rs-seg2any", self.cli)
        form.addRow("", check_row)
        form.addRow("Default model", self.model)
        form.addRow("Device", self.device)
        form.addRow("CPU threads", self.threads)
        outer.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        outer.addWidget(buttons)

    def check(self) -> str:
        """Ask the chosen backend for its versions; the text is shown and returned."""
        from .backend import discover_cli

        cli = discover_cli(self.cli.filePath().strip() or None)
        if cli is None:
            text = "No rs-seg2any found: give the path of the backend's rs-seg2any."
        else:
            try:
                versions = backend_versions(cli)
                text = f"{cli}\n" + ", ".join(f"{k} {v}" for k, v in versions.items())
            except BackendError as exc:
                text = f"Not working: {exc}"
        self.check_result.setText(text)
        return text

    def ask_create_environment(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the new backend environment")
        if not folder:
            return
        source = checkout_root()
        package, ok = QInputDialog.getText(
            self,
            "rs_seg2any package",
            "pip installs this (the rs_seg2any source folder, a wheel, or a requirement):",
            text=str(source) if source else "",
        )
        if ok and package.strip():
            self.create_environment(str(Path(folder) / "rs_seg2any_env"), package.strip())

    def create_environment(self, folder: str, package: str) -> QgsTask:
        """Create the environment in a background task; its CLI fills the path field."""
        log: list[str] = []

        def work(_task: QgsTask) -> str:
            return str(create_environment(folder, package, on_line=log.append))

        def done(exception: Exception | None, cli: str | None = None) -> None:
            self.create_button.setEnabled(True)
            if exception is not None or cli is None:
                self.check_result.setText(f"Not created: {exception}\n" + "\n".join(log[-5:]))
                return
            self.cli.setFilePath(cli)
            self.check()

        self.create_button.setEnabled(False)
        self.check_result.setText(f"Creating {folder} (pip install {package})…")
        self.env_task = QgsTask.fromFunction(
            "rs_seg2any: create backend environment", work, on_finished=done
        )
        QgsApplication.taskManager().addTask(self.env_task)
        return self.env_task

    def save(self) -> None:
        config.put(config.CLI, self.cli.filePath().strip())
        config.put(config.MODEL, self.model.filePath().strip())
        config.put(config.DEVICE, self.device.currentData())
        config.put(config.THREADS, self.threads.value())
        _taxonomy_cache.clear()  # another backend may ship other taxonomies
        self.accept()
