# SPDX-License-Identifier: GPL-2.0-or-later
"""What the scenario dialogs share: a base (image or layout), the scenario's own group,
grid, generator and output; validation, remembered values, exports of file-less layers."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from qgis.core import QgsMapLayer, QgsMapLayerProxyModel, QgsRasterLayer
from qgis.gui import QgsFieldComboBox, QgsMapCanvas, QgsMessageBar
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QLabel,
    QRadioButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from .. import config
from ..layers import cli_source
from ..scenarios import ScenarioSpec
from ..widgets import (
    LAST,
    GeneratorBox,
    GridBox,
    LayoutBox,
    OutputBox,
    Remembered,
    layer_combo,
    layer_named,
)

RunJob = Callable[[ScenarioSpec, QgsMapLayer | None], object]


def raster_file_problems(layer: QgsMapLayer | None, what: str) -> list[str]:
    """The CLI reads rasters from files: a GDAL layer whose source is a file, with a CRS."""
    if not isinstance(layer, QgsRasterLayer):
        return [f"choose {what}"]
    if layer.providerType() != "gdal" or not os.path.isfile(layer.source()):
        return [f"{what} '{layer.name()}' must be a raster file (e.g. a GeoTIFF)"]
    if not layer.crs().isValid():
        return [f"{what} '{layer.name()}' has no CRS: set one in its properties"]
    return []


class ScenarioDialog(QDialog):
    """A base (image or layout), the scenario's own group, grid, generator and output."""

    command = ""
    title = ""
    intro = ""
    needs_layout = False  # seasons, change: the layout is the base, there is no image

    def __init__(
        self, canvas: QgsMapCanvas | None, on_run: RunJob, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"rs_seg2any - {self.title}")
        self.setWindowIcon(QIcon(config.icon_path()))
        self.canvas = canvas
        self.on_run = on_run
        self.remembered = Remembered(f"{LAST}{self.command}/")
        self._build()
        self._restore()
        self._base_changed()

    # -- widgets -------------------------------------------------------------------------
    def _build(self) -> None:
        top = QVBoxLayout(self)
        self.bar = QgsMessageBar(self)
        top.addWidget(self.bar)
        scroll = QScrollArea()  # the form is tall: it scrolls, the bar and buttons stay
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        content = QWidget()
        outer = QVBoxLayout(content)
        scroll.setWidget(content)
        top.addWidget(scroll)
        intro = QLabel(self.intro)
        intro.setWordWrap(True)
        outer.addWidget(intro)
        self.image = None
        if not self.needs_layout:
            base = QGroupBox("Base image")
            form = QFormLayout(base)
            self.image = layer_combo(
                QgsMapLayerProxyModel.RasterLayer,
                True,
                "The image to change; outputs land on its grid. Empty: "
                "the layout below is rendered first",
            )
            form.addRow("Image (GeoTIFF)", self.image)
            outer.addWidget(base)
            self.image.layerChanged.connect(self._base_changed)
        title = (
            "Layout" if self.needs_layout else "Layout (renders the base; optional with an image)"
        )
        self.source = LayoutBox(
            self.remembered, optional=not self.needs_layout, unknown=False, title=title
        )
        outer.addWidget(self.source)
        outer.addWidget(self._build_scenario())
        self.grid = GridBox(
            self.remembered,
            self.canvas,
            self.source.current,
            "Target grid (of the rendered layout)",
        )
        self.generator = GeneratorBox(self.remembered)
        self.output = OutputBox(self.remembered)
        for box in (self.grid, self.generator, self.output):
            outer.addWidget(box)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Run")
        self.buttons.accepted.connect(self.run)
        self.buttons.rejected.connect(self.reject)
        top.addWidget(self.buttons)
        bar_width = scroll.verticalScrollBar().sizeHint().width()
        self.resize(content.sizeHint().width() + bar_width + 24, 760)
        self.source.layer.layerChanged.connect(self._base_changed)
        # the shared widgets by name, as on the Generate dialog
        for name in ("class_field", "description_field", "taxonomy"):
            setattr(self, name, getattr(self.source, name))
        self.layer = self.source.layer
        self.out_dir = self.output.out_dir
        self.seed, self.steps = self.generator.seed, self.generator.steps
        self.tile_size, self.resolution = self.output.tile_size, self.grid.resolution

    def _build_scenario(self) -> QGroupBox:
        raise NotImplementedError

    def base_layer(self) -> QgsMapLayer | None:
        """The image when there is one, else the layout: names the job and its folder."""
        image = self.image.currentLayer() if self.image is not None else None
        return image or self.source.current()

    def _base_changed(self) -> None:
        image = self.image.currentLayer() if self.image is not None else None
        self.grid.setEnabled(image is None)
        base = self.base_layer()
        if base is not None:
            self.output.suggest(f"{base.name()}_{self.command}")
        self.grid.layer_changed()

    # -- remembered values ---------------------------------------------------------------
    def _restore(self) -> None:
        for box in (self.source, self.grid, self.generator, self.output):
            box.restore()
        if self.image is not None:
            self.image.setLayer(layer_named(self.remembered.str("image"), QgsRasterLayer))
        self._restore_scenario()

    def _restore_scenario(self) -> None:
        """The scenario's own widgets (subclasses)."""

    def _remember(self) -> None:
        for box in (self.source, self.grid, self.generator, self.output):
            box.remember()
        if self.image is not None:
            image = self.image.currentLayer()
            self.remembered.put({"image": image.name() if image is not None else ""})
        self._remember_scenario()

    def _remember_scenario(self) -> None:
        """The scenario's own widgets (subclasses)."""

    # -- run -----------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Everything wrong with the form, in words a user can act on."""
        image = self.image.currentLayer() if self.image is not None else None
        found: list[str] = []
        if image is not None:
            found += raster_file_problems(image, "the base image")
        elif not self.needs_layout and self.source.current() is None:
            found.append("choose a base image, or a layout to render one from")
        found += self.source.problems()
        found += self.scenario_problems()
        found += self.output.problems()
        if image is None:
            found += self.grid.problems()
        if config.cli_path() is None:
            found.append("no rs-seg2any backend found: set it in rs_seg2any > Settings")
        return found

    def scenario_problems(self) -> list[str]:
        return []

    def spec(self) -> ScenarioSpec:
        """The form as a job (file-less layers are exported at run time)."""
        spec = ScenarioSpec(command=self.command, out_dir=self.output.folder())
        image = self.image.currentLayer() if self.image is not None else None
        layout = self.source.current()
        spec.taxonomy = self.source.taxonomy.currentText().strip() or None
        if image is not None:
            spec.image = image.source()
        if layout is not None:
            spec.layout = layout.source()
            spec.class_field = self.source.class_field.currentField() or None
            spec.description_field = self.source.description_field.currentField() or None
            if image is None:
                self.grid.apply(spec)
        self.generator.apply(spec)
        self.output.apply(spec)
        self.apply_scenario(spec)
        return spec

    def apply_scenario(self, spec: ScenarioSpec) -> None:
        raise NotImplementedError

    def export_inputs(self, spec: ScenarioSpec, folder: Path) -> None:
        """Point the spec at files the CLI can read (exports of file-less layers)."""
        layout = self.source.current()
        if layout is not None:
            spec.layout, name = cli_source(layout, folder)
            spec.layer_name = name or None

    def run(self) -> None:
        """Validate, export file-less layers, and start the job (the dialog closes)."""
        self.bar.clearWidgets()
        problems = self.problems()
        if problems:
            self.bar.pushWarning("Cannot run yet", "; ".join(problems))
            return
        spec = self.spec()
        try:
            self.export_inputs(spec, Path(spec.out_dir) / "input")
        except OSError as exc:
            self.bar.pushCritical("Cannot export a layer", str(exc))
            return
        problems = spec.problems()
        if problems:
            self.bar.pushWarning("Cannot run yet", "; ".join(problems))
            return
        self._remember()
        self.on_run(spec, self.base_layer())
        self.accept()


def field_combo(optional: bool = False) -> QgsFieldComboBox:
    combo = QgsFieldComboBox()
    combo.setAllowEmptyFieldName(optional)
    return combo


def choice(first: QRadioButton, second: QRadioButton, on_change: Callable[[], None]) -> None:
    first.setChecked(True)
    first.toggled.connect(lambda _checked: on_change())
    second.toggled.connect(lambda _checked: on_change())
