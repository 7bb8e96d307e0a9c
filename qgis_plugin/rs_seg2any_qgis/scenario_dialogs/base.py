# SPDX-License-Identifier: GPL-2.0-or-later
"""What the scenario dialogs share: a base (image or layout), the scenario's own group,
grid, generator, output and the command's other options from the backend's schema;
validation, remembered values, exports of file-less layers."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from ..backend import SchemaMismatch
from ..job_export import JobExport
from ..layers import cli_source
from ..scenarios import ScenarioSpec
from ..schema_widgets import SchemaOptionsBox
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


MISMATCH_TITLE = "Plugin and backend do not fit together"


class ScenarioDialog(JobExport, QDialog):
    """A base (image or layout), the scenario's own group, grid, generator and output, and
    every other option of the command as the backend's schema describes it."""

    command = ""
    title = ""
    intro = ""
    needs_layout = False  # seasons, change, cloudfill: a layout is required
    image_role = "optional"  # "optional" (flood, plan), "required" (cloudfill), "" (none)
    has_grid = True  # cloudfill: outputs are on the image's grid, no grid options
    own_dests: tuple[str, ...] = ()  # the CLI options the scenario's own group sets

    def __init__(
        self, canvas: QgsMapCanvas | None, on_run: RunJob, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"rs_seg2any - {self.title}")
        self.setWindowIcon(QIcon(config.icon_path()))
        self.canvas = canvas
        self.on_run = on_run
        self.remembered = Remembered(f"{LAST}{self.command}/")
        self.schema, self.schema_error = config.schema_or_error()
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
        if self.image_role:
            base = QGroupBox("Base image" if self.image_role == "optional" else "Image")
            form = QFormLayout(base)
            tip = (
                "The image to change; outputs land on its grid. Empty: the layout below is "
                "rendered first"
                if self.image_role == "optional"
                else "The image to change; outputs land on its grid"
            )
            self.image = layer_combo(QgsMapLayerProxyModel.RasterLayer, True, tip)
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
        self.grid.setVisible(self.has_grid)
        self.generator = GeneratorBox(self.remembered)
        self.output = OutputBox(self.remembered)
        for box in (self.grid, self.generator, self.output):
            outer.addWidget(box)
        self.more: SchemaOptionsBox | None = None
        if self.schema is not None:
            self.more = SchemaOptionsBox(
                self.schema, self.command, self.shown_dests(), self.remembered
            )
            outer.addWidget(self.more)
        if self.schema_error is not None:
            self.bar.pushCritical(self.schema_title(), str(self.schema_error))
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Run")
        self.buttons.accepted.connect(self.run)
        self.buttons.rejected.connect(self.reject)
        self.add_export_button(self.buttons)
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

    def shown_dests(self) -> list[str]:
        """The CLI options this form sets with its own widgets (the rest go to "More")."""
        shown = [*self.source.dests, *self.generator.dests, *self.output.dests]
        shown += [*self.grid.dests] if self.has_grid else []
        return [*shown, *(["image"] if self.image_role else []), *self.own_dests]

    def schema_title(self) -> str:
        if isinstance(self.schema_error, SchemaMismatch):
            return MISMATCH_TITLE
        return "No rs-seg2any backend"

    def help_of(self, dest: str) -> str:
        """The backend's help of one of this command's options ("" without a schema)."""
        if self.schema is None or not self.schema.has(self.command, dest):
            return ""
        return self.schema.argument(self.command, dest).help

    def choices(self, dest: str) -> list[str]:
        """The backend's values for one of this command's options (none without a schema)."""
        if self.schema is None or not self.schema.has(self.command, dest):
            return []
        return self.schema.choices(self.command, dest)

    def base_layer(self) -> QgsMapLayer | None:
        """The image when there is one, else the layout: names the job and its folder."""
        image = self.image.currentLayer() if self.image is not None else None
        return image or self.source.current()

    def take_active(self, layer: QgsMapLayer) -> None:
        """The active polygon layer when the dialog opens: the layout of the scenarios that
        need one (for flood and planning, polygons may be the extent: left alone)."""
        if self.needs_layout:
            self.layer.setLayer(layer)

    def _base_changed(self) -> None:
        image = self.image.currentLayer() if self.image is not None else None
        self.grid.setEnabled(image is None)
        base = self.base_layer()
        if base is not None:
            self.output.suggest(f"{base.name()}_{self.command}")
        self.grid.layer_changed()

    # -- remembered values ---------------------------------------------------------------
    def boxes(self) -> list[Any]:
        return [self.source, self.grid, self.generator, self.output, *filter(None, [self.more])]

    def _restore(self) -> None:
        for box in self.boxes():
            box.restore()
        if self.image is not None:
            self.image.setLayer(layer_named(self.remembered.str("image"), QgsRasterLayer))
        self._restore_scenario()

    def _restore_scenario(self) -> None:
        """The scenario's own widgets (subclasses)."""

    def _remember(self) -> None:
        for box in self.boxes():
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
        elif self.image_role == "required":
            found.append("choose the image")
        elif not self.needs_layout and self.source.current() is None:
            found.append("choose a base image, or a layout to render one from")
        found += self.source.problems()
        found += self.scenario_problems()
        found += self.output.problems()
        if image is None and self.has_grid:
            found += self.grid.problems()
        if self.more is not None:
            found += self.more.problems()
        if config.cli_path() is None:
            found.append("no rs-seg2any backend found: set it in rs_seg2any > Settings")
        elif self.schema_error is not None:
            found.append(str(self.schema_error))
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
            if image is None and self.has_grid:
                self.grid.apply(spec)
        self.generator.apply(spec)
        self.output.apply(spec)
        self.apply_scenario(spec)
        if self.more is not None:
            spec.extra = self.more.values()
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
        if self.schema_error is not None and config.cli_path() is not None:
            self.bar.pushCritical(self.schema_title(), str(self.schema_error))
            return
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
        if not problems and self.schema is not None:
            try:
                spec.to_args(self.schema)  # the backend's own choices and types
            except ValueError as exc:
                problems.append(str(exc))
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
