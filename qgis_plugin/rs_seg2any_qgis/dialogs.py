# SPDX-License-Identifier: GPL-2.0-or-later
"""The Generate dialog and the Settings dialog, built from QGIS widgets.

The Generate dialog is modeless: it validates, turns its widgets into a ``JobSpec`` and
hands it to the plugin, which runs it as a background task.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsRectangle,
    QgsTask,
    QgsUnitTypes,
    QgsVectorLayer,
)
from qgis.gui import (
    QgsCollapsibleGroupBox,
    QgsDoubleSpinBox,
    QgsExtentGroupBox,
    QgsFieldComboBox,
    QgsFileWidget,
    QgsMapCanvas,
    QgsMapLayerComboBox,
    QgsMessageBar,
    QgsProjectionSelectionWidget,
    QgsSpinBox,
)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from . import config
from .backend import (
    BackendError,
    backend_versions,
    checkout_root,
    create_environment,
    list_taxonomies,
)
from .jobs import UNKNOWN_CLASS_CHOICES, JobSpec
from .layers import cli_source

MODES = (("generate", "Imagery (image + label, instance, contour maps)"),
         ("layout", "Label, instance and contour maps only (no model)"))  # fmt: skip
BACKENDS = (("tiny", "Embedded model (CPU)", ""),
            ("flux", "FLUX + LoRA (GPU)", "coming with the GPU backend (issue 4)"))  # fmt: skip
LAST = "last/"

_taxonomy_cache: list[str] = []


def taxonomy_names() -> list[str]:
    """Names from the backend (asked once per session), else the shipped list."""
    if not _taxonomy_cache:
        _taxonomy_cache.extend(list_taxonomies(config.cli_path()))
    return list(_taxonomy_cache)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "layer"


class GenerateDialog(QDialog):
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
        self._build()
        self._restore()
        self._layer_changed()

    # -- widgets -------------------------------------------------------------------------
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        self.bar = QgsMessageBar(self)
        outer.addWidget(self.bar)

        source = QGroupBox("Layout")
        form = QFormLayout(source)
        self.layer = QgsMapLayerComboBox()
        self.layer.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        self.class_field = QgsFieldComboBox()
        self.description_field = QgsFieldComboBox()
        self.description_field.setAllowEmptyFieldName(True)
        self.taxonomy = QComboBox()
        self.taxonomy.setEditable(True)  # a path to an own taxonomy YAML also works
        self.taxonomy.addItems(taxonomy_names())
        self.taxonomy.setToolTip("A shipped taxonomy, or the path of your own YAML file")
        self.unknown = QComboBox()
        self.unknown.addItems(UNKNOWN_CLASS_CHOICES)
        self.unknown.setToolTip(
            "Classes not in the taxonomy: stop with an error, leave them out, or draw them "
            "as class 0 (kept as entities)"
        )
        form.addRow("Polygon layer", self.layer)
        form.addRow("Class field", self.class_field)
        form.addRow("Description field", self.description_field)
        form.addRow("Taxonomy", self.taxonomy)
        form.addRow("Unknown classes", self.unknown)
        outer.addWidget(source)

        grid = QGroupBox("Target grid")
        gform = QFormLayout(grid)
        self.like = QgsMapLayerComboBox()
        self.like.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.like.setAllowEmptyLayer(True)
        self.like.setLayer(None)
        self.like.setToolTip("Copy CRS, extent and pixel grid of this raster exactly")
        self.resolution = QgsDoubleSpinBox()
        self.resolution.setDecimals(4)
        self.resolution.setRange(0.0001, 1e6)
        self.resolution.setValue(10.0)
        self.resolution.setClearValue(10.0)
        self.crs = QgsProjectionSelectionWidget()
        self.crs.setOptionVisible(QgsProjectionSelectionWidget.CrsNotSet, True)
        self.crs.setNotSetText("Layer CRS (UTM for a lon/lat layer)")
        self.crs.setCrs(QgsCoordinateReferenceSystem())
        self.extent = QgsExtentGroupBox()
        self.extent.setTitleBase("Extent (unchecked: the layer's bounds)")
        self.extent.setCheckable(True)
        self.extent.setChecked(False)
        if self.canvas is not None:
            self.extent.setMapCanvas(self.canvas)
        gform.addRow("Match raster grid", self.like)
        gform.addRow("Resolution", self.resolution)
        gform.addRow("Output CRS", self.crs)
        gform.addRow(self.extent)
        outer.addWidget(grid)

        gen = QGroupBox("Generator")
        genform = QFormLayout(gen)
        self.mode = QComboBox()
        for key, label in MODES:
            self.mode.addItem(label, key)
        self.backend = QComboBox()
        for key, label, coming in BACKENDS:
            self.backend.addItem(label if not coming else f"{label} - {coming}", key)
            if coming:  # visible, but not selectable: not a fake
                item = self.backend.model().item(self.backend.count() - 1)
                item.setEnabled(False)
                item.setToolTip(coming)
        self.seed = QgsSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setClearValue(0)
        self.steps = QgsSpinBox()
        self.steps.setRange(1, 1000)
        self.steps.setValue(10)
        self.steps.setClearValue(10)
        self.caption = QLineEdit()
        self.caption.setPlaceholderText("optional: default is the classes of each tile")
        genform.addRow("Make", self.mode)
        genform.addRow("Backend", self.backend)
        genform.addRow("Seed", self.seed)
        genform.addRow("Steps", self.steps)
        genform.addRow("Caption", self.caption)
        self.generator_box = gen
        outer.addWidget(gen)

        job = QgsCollapsibleGroupBox("Output")
        jform = QFormLayout(job)
        self.out_dir = QgsFileWidget()
        self.out_dir.setStorageMode(QgsFileWidget.GetDirectory)
        self.tile_size = QgsSpinBox()
        self.tile_size.setRange(0, 65536)
        self.tile_size.setSpecialValueText("default")
        self.tile_size.setClearValue(0)
        self.restart = QCheckBox("Discard an unfinished job in this folder")
        self.restart.setToolTip(
            "Unchecked, an interrupted job with the same inputs resumes where it stopped"
        )
        jform.addRow("Output folder", self.out_dir)
        jform.addRow("Tile size (px)", self.tile_size)
        jform.addRow("", self.restart)
        outer.addWidget(job)

        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Run")
        self.buttons.accepted.connect(self.run)
        self.buttons.rejected.connect(self.reject)
        outer.addWidget(self.buttons)

        self.layer.layerChanged.connect(self._layer_changed)
        self.crs.crsChanged.connect(self._crs_changed)
        self.like.layerChanged.connect(self._like_changed)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.extent.clicked.connect(self._extent_checked)

    # -- reactions -----------------------------------------------------------------------
    def _layer_changed(self) -> None:
        layer = self.layer.currentLayer()
        self.class_field.setLayer(layer)
        self.description_field.setLayer(layer)
        if isinstance(layer, QgsVectorLayer):
            names = layer.fields().names()
            for combo, key in ((self.class_field, "class_field"),
                               (self.description_field, "description_field")):  # fmt: skip
                last = config.get_str(LAST + key)
                if last in names:
                    combo.setField(last)
            self.extent.setOriginalExtent(layer.extent(), layer.crs())
            current = self.out_dir.filePath()
            if not current or current == self._suggested_out:  # never overwrite a user's choice
                self._suggested_out = str(config.output_root() / _safe_name(layer.name()))
                self.out_dir.setFilePath(self._suggested_out)
        if self.canvas is not None:
            self.extent.setCurrentExtent(
                self.canvas.extent(), self.canvas.mapSettings().destinationCrs()
            )
        self._crs_changed()

    _suggested_out = ""

    def output_crs(self) -> QgsCoordinateReferenceSystem:
        """The grid's CRS as the CLI will choose it (set CRS, else the layer's)."""
        crs = self.crs.crs()
        if crs.isValid():
            return crs
        layer = self.layer.currentLayer()
        return layer.crs() if layer is not None else QgsCoordinateReferenceSystem()

    def _crs_changed(self) -> None:
        crs = self.output_crs()
        if crs.isValid():
            self.extent.setOutputCrs(crs)
            unit = QgsUnitTypes.toAbbreviatedString(crs.mapUnits())
            geographic = crs.isGeographic() and not self.crs.crs().isValid()
            self.resolution.setSuffix(" m (UTM)" if geographic else f" {unit}")

    def _extent_checked(self, checked: bool) -> None:
        """Checking the box starts from the layer's bounds (setting it checks the box, so
        this cannot happen earlier)."""
        if checked and self.extent.outputExtent().isEmpty() and self.layer.currentLayer():
            self.extent.setOutputExtentFromOriginal()

    def _like_changed(self) -> None:
        free = self.like.currentLayer() is None
        for widget in (self.resolution, self.crs, self.extent):
            widget.setEnabled(free)

    def _mode_changed(self) -> None:
        generate = self.mode.currentData() == "generate"
        for widget in (self.backend, self.seed, self.steps, self.caption):
            widget.setEnabled(generate)

    # -- remembered values ---------------------------------------------------------------
    def _restore(self) -> None:
        last_layer = config.get_str(LAST + "layer")
        for layer in QgsProject.instance().mapLayersByName(last_layer) if last_layer else []:
            if isinstance(layer, QgsVectorLayer):
                self.layer.setLayer(layer)
                break
        taxonomy = config.get_str(LAST + "taxonomy")
        if taxonomy:
            self.taxonomy.setCurrentText(taxonomy)
        self.unknown.setCurrentText(config.get_str(LAST + "unknown_class", "error"))
        self.resolution.setValue(config.get_float(LAST + "resolution", 10.0))
        crs = config.get_str(LAST + "crs")
        if crs:
            self.crs.setCrs(QgsCoordinateReferenceSystem(crs))
        self.mode.setCurrentIndex(max(0, self.mode.findData(config.get_str(LAST + "mode"))))
        self.seed.setValue(config.get_int(LAST + "seed", 0))
        self.steps.setValue(config.get_int(LAST + "steps", 10))
        self.caption.setText(config.get_str(LAST + "caption"))
        self.tile_size.setValue(config.get_int(LAST + "tile_size", 0))
        self._mode_changed()

    def _remember(self, spec: JobSpec, layer: QgsVectorLayer) -> None:
        values: dict[str, str | int | float] = {
            "layer": layer.name(),
            "class_field": spec.class_field,
            "description_field": spec.description_field or "",
            "taxonomy": spec.taxonomy or "",
            "unknown_class": spec.unknown_class or "error",
            "resolution": self.resolution.value(),
            "crs": self.crs.crs().authid() if self.crs.crs().isValid() else "",
            "mode": spec.command,
            "seed": self.seed.value(),
            "steps": self.steps.value(),
            "caption": self.caption.text(),
            "tile_size": self.tile_size.value(),
        }
        for key, value in values.items():
            config.put(LAST + key, value)
        config.put(config.OUTPUT_ROOT, str(Path(spec.out_dir).parent))

    # -- run -----------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Everything wrong with the form, in words a user can act on."""
        found = []
        layer = self.layer.currentLayer()
        if not isinstance(layer, QgsVectorLayer):
            return ["choose a polygon layer (add one to the project first)"]
        if not layer.isValid():
            found.append(f"layer '{layer.name()}' is not valid")
        if layer.featureCount() == 0:
            found.append(f"layer '{layer.name()}' has no features")
        if not layer.crs().isValid():
            found.append(f"layer '{layer.name()}' has no CRS: set one in its properties")
        if not self.class_field.currentField():
            found.append("choose the class field")
        if not self.taxonomy.currentText().strip():
            found.append("choose a taxonomy")
        if not self.out_dir.filePath().strip():
            found.append("choose an output folder")
        if self.like.currentLayer() is None and self.extent.isChecked():
            if layer.crs().isGeographic() and not self.crs.crs().isValid():
                found.append("a custom extent on a lon/lat layer needs an output CRS")
            rect = self.extent.outputExtent()
            if rect.isEmpty():
                found.append("the extent is empty")
        if config.cli_path() is None:
            found.append("no rs-seg2any backend found: set it in rs_seg2any > Settings")
        return found

    def spec(self) -> JobSpec:
        """The form as a job (the layer is exported at run time if it has no file)."""
        layer = self.layer.currentLayer()
        mode = self.mode.currentData()
        spec = JobSpec(
            command=mode,
            layer_path=layer.source() if layer is not None else "",
            class_field=self.class_field.currentField(),
            description_field=self.description_field.currentField() or None,
            taxonomy=self.taxonomy.currentText().strip(),
            unknown_class=self.unknown.currentText(),
            out_dir=self.out_dir.filePath().strip(),
            tile_size=self.tile_size.value() or None,
            restart=self.restart.isChecked(),
        )
        like = self.like.currentLayer()
        if like is not None:
            spec.like = like.source()
        else:
            spec.resolution = self.resolution.value()
            if self.crs.crs().isValid():
                spec.crs = self.crs.crs().authid() or self.crs.crs().toWkt()
            if self.extent.isChecked():
                rect: QgsRectangle = self.extent.outputExtent()
                spec.extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
                spec.crs = spec.crs or self.output_crs().authid() or self.output_crs().toWkt()
        if mode == "generate":
            spec.backend = self.backend.currentData()
            spec.model = config.default_model()
            spec.threads = config.threads()
            spec.seed = self.seed.value()
            spec.steps = self.steps.value()
            spec.caption = self.caption.text().strip() or None
        return spec

    def run(self) -> None:
        """Validate, export a file-less layer, and start the job (the dialog closes)."""
        self.bar.clearWidgets()
        problems = self.problems()
        if problems:
            self.bar.pushWarning("Cannot run yet", "; ".join(problems))
            return
        layer = self.layer.currentLayer()
        spec = self.spec()
        try:
            spec.layer_path, name = cli_source(layer, Path(spec.out_dir) / "input")
        except OSError as exc:
            self.bar.pushCritical("Cannot export the layer", str(exc))
            return
        spec.layer_name = name or None
        problems = spec.problems()
        if problems:
            self.bar.pushWarning("Cannot run yet", "; ".join(problems))
            return
        self._remember(spec, layer)
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
