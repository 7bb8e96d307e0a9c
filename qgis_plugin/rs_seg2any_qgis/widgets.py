# SPDX-License-Identifier: GPL-2.0-or-later
"""Form sections the Generate and scenario dialogs share, built from QGIS widgets.

Each section fills its part of a job (``apply``), says what is missing (``problems``) and
remembers its last values under its dialog's settings prefix (``restore`` / ``remember``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsMapLayer,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsRectangle,
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
    QgsProjectionSelectionWidget,
    QgsSpinBox,
)
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QFormLayout, QGroupBox, QLineEdit

from . import config
from .backend import list_taxonomies
from .jobs import CliOptions

LAST = "last/"
BACKENDS = (("exemplar", "Real texture from the exemplar bank (CPU, default)", ""),
            ("tiny", "Embedded network (CPU; the Settings' model)", ""),
            ("flux", "FLUX + LoRA (GPU)", "coming with the GPU backend (issue 4)"))  # fmt: skip

_taxonomy_cache: list[str] = []


def taxonomy_names() -> list[str]:
    """Names from the backend (asked once per session), else the shipped list."""
    if not _taxonomy_cache:
        _taxonomy_cache.extend(list_taxonomies(config.cli_path()))
    return list(_taxonomy_cache)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "layer"


class Remembered:
    """Settings under ``prefix``; the layout choices fall back to the Generate dialog's
    (``last/``) so a layer, class field or taxonomy picked once is offered everywhere."""

    SHARED = ("layer", "class_field", "description_field", "taxonomy")

    def __init__(self, prefix: str = LAST) -> None:
        self.prefix = prefix

    def _fallback(self, key: str) -> str | None:
        return LAST + key if key in self.SHARED and self.prefix != LAST else None

    def str(self, key: str, default: str = "") -> str:
        fallback = self._fallback(key)
        found = config.get_str(self.prefix + key)
        return found or (config.get_str(fallback, default) if fallback else default)

    def int(self, key: str, default: int = 0) -> int:
        return config.get_int(self.prefix + key, default)

    def float(self, key: str, default: float = 0.0) -> float:
        return config.get_float(self.prefix + key, default)

    def put(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            config.put(self.prefix + key, value)


def layer_named(name: str, kind: type) -> QgsMapLayer | None:
    for layer in QgsProject.instance().mapLayersByName(name) if name else []:
        if isinstance(layer, kind):
            return layer
    return None


def layer_combo(filters: Any, optional: bool = False, tip: str = "") -> QgsMapLayerComboBox:
    combo = QgsMapLayerComboBox()
    combo.setFilters(filters)
    if optional:
        combo.setAllowEmptyLayer(True)
        combo.setLayer(None)
    combo.setToolTip(tip)
    return combo


def vector_problems(layer: QgsMapLayer | None, what: str) -> list[str]:
    """A polygon layer the CLI can use: valid, with features and a CRS."""
    if not isinstance(layer, QgsVectorLayer):
        return [f"choose {what} (add a polygon layer to the project first)"]
    found = []
    if not layer.isValid():
        found.append(f"layer '{layer.name()}' is not valid")
    elif layer.featureCount() == 0:
        found.append(f"layer '{layer.name()}' has no features")
    if not layer.crs().isValid():
        found.append(f"layer '{layer.name()}' has no CRS: set one in its properties")
    return found


class LayoutBox(QGroupBox):
    """Polygon layer, class and description fields, taxonomy (and unknown classes)."""

    def __init__(
        self, remembered: Remembered, *, optional: bool = False, unknown: bool = True,
        title: str = "Layout",
    ) -> None:  # fmt: skip
        super().__init__(title)
        self.remembered = remembered
        self.optional = optional
        form = QFormLayout(self)
        self.layer = layer_combo(QgsMapLayerProxyModel.PolygonLayer, optional,
                                 "Polygon layer with a class per polygon")  # fmt: skip
        self.class_field = QgsFieldComboBox()
        self.description_field = QgsFieldComboBox()
        self.description_field.setAllowEmptyFieldName(True)
        self.taxonomy = QComboBox()
        self.taxonomy.setEditable(True)  # a path to an own taxonomy YAML also works
        self.taxonomy.addItems(taxonomy_names())
        self.taxonomy.setToolTip("A shipped taxonomy, or the path of your own YAML file")
        form.addRow("Polygon layer", self.layer)
        form.addRow("Class field", self.class_field)
        form.addRow("Description field", self.description_field)
        form.addRow("Taxonomy", self.taxonomy)
        #: the CLI options this section sets (the layer path is the command's own)
        self.dests = ("layout", "layer", "class_field", "description_field", "taxonomy")
        self.unknown: QComboBox | None = None
        if unknown:
            self.dests += ("unknown_class",)
            self.unknown = QComboBox()
            self.unknown.addItems(config.choices("generate", "unknown_class"))
            self.unknown.setToolTip(
                "Classes not in the taxonomy: stop with an error, leave them out, or draw "
                "them as class 0 (kept as entities)"
            )
            form.addRow("Unknown classes", self.unknown)
        self.form = form
        self.layer.layerChanged.connect(self.layer_changed)

    def current(self) -> QgsVectorLayer | None:
        layer = self.layer.currentLayer()
        return layer if isinstance(layer, QgsVectorLayer) else None

    def layer_changed(self) -> None:
        layer = self.current()
        for combo in (self.class_field, self.description_field):
            combo.setLayer(layer)
            combo.setEnabled(layer is not None)
        if layer is None:
            return
        names = layer.fields().names()
        for combo, key in ((self.class_field, "class_field"),
                           (self.description_field, "description_field")):  # fmt: skip
            last = self.remembered.str(key)
            if last in names:
                combo.setField(last)

    def problems(self) -> list[str]:
        if self.optional and self.current() is None:
            return []
        found = vector_problems(self.current(), "a polygon layer")
        if found and self.current() is None:
            return found
        if not self.class_field.currentField():
            found.append("choose the class field")
        if not self.taxonomy.currentText().strip():
            found.append("choose a taxonomy")
        return found

    def restore(self) -> None:
        layer = layer_named(self.remembered.str("layer"), QgsVectorLayer)
        if layer is not None:
            self.layer.setLayer(layer)
        taxonomy = self.remembered.str("taxonomy")
        if taxonomy:
            self.taxonomy.setCurrentText(taxonomy)
        if self.unknown is not None:
            self.unknown.setCurrentText(self.remembered.str("unknown_class", "error"))
        self.layer_changed()

    def remember(self) -> None:
        layer = self.current()
        values: dict[str, Any] = {"taxonomy": self.taxonomy.currentText().strip()}
        if layer is not None:
            values |= {"layer": layer.name(), "class_field": self.class_field.currentField(),
                       "description_field": self.description_field.currentField()}  # fmt: skip
        if self.unknown is not None:
            values["unknown_class"] = self.unknown.currentText()
        self.remembered.put(values)


class GridBox(QGroupBox):
    """The target grid: a raster's grid, or resolution + output CRS + extent."""

    dests = ("like", "resolution", "crs", "extent")

    def __init__(
        self,
        remembered: Remembered,
        canvas: QgsMapCanvas | None,
        layer_of: Callable[[], QgsMapLayer | None],
        title: str = "Target grid",
    ) -> None:
        super().__init__(title)
        self.remembered = remembered
        self.canvas = canvas
        self.layer_of = layer_of
        form = QFormLayout(self)
        self.like = layer_combo(
            QgsMapLayerProxyModel.RasterLayer,
            True,
            "Copy the CRS, extent and pixels of this raster",
        )
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
        if canvas is not None:
            self.extent.setMapCanvas(canvas)
        form.addRow("Match raster grid", self.like)
        form.addRow("Resolution", self.resolution)
        form.addRow("Output CRS", self.crs)
        form.addRow(self.extent)
        self.crs.crsChanged.connect(self.crs_changed)
        self.like.layerChanged.connect(self._like_changed)
        self.extent.clicked.connect(self._extent_checked)

    def layer_changed(self) -> None:
        layer = self.layer_of()
        if layer is not None:
            self.extent.setOriginalExtent(layer.extent(), layer.crs())
        if self.canvas is not None:
            self.extent.setCurrentExtent(
                self.canvas.extent(), self.canvas.mapSettings().destinationCrs()
            )
        self.crs_changed()

    def output_crs(self) -> QgsCoordinateReferenceSystem:
        """The grid's CRS as the CLI will choose it (set CRS, else the layer's)."""
        crs = self.crs.crs()
        if crs.isValid():
            return crs
        layer = self.layer_of()
        return layer.crs() if layer is not None else QgsCoordinateReferenceSystem()

    def crs_changed(self) -> None:
        crs = self.output_crs()
        if crs.isValid():
            self.extent.setOutputCrs(crs)
            unit = QgsUnitTypes.toAbbreviatedString(crs.mapUnits())
            geographic = crs.isGeographic() and not self.crs.crs().isValid()
            self.resolution.setSuffix(" m (UTM)" if geographic else f" {unit}")

    def _extent_checked(self, checked: bool) -> None:
        """Checking the box starts from the layer's bounds (setting it checks the box, so
        this cannot happen earlier)."""
        if checked and self.extent.outputExtent().isEmpty() and self.layer_of():
            self.extent.setOutputExtentFromOriginal()

    def _like_changed(self) -> None:
        free = self.like.currentLayer() is None
        for widget in (self.resolution, self.crs, self.extent):
            widget.setEnabled(free)

    def problems(self) -> list[str]:
        layer = self.layer_of()
        if self.like.currentLayer() is not None or layer is None or not self.extent.isChecked():
            return []
        found = []
        if layer.crs().isGeographic() and not self.crs.crs().isValid():
            found.append("a custom extent on a lon/lat layer needs an output CRS")
        if self.extent.outputExtent().isEmpty():
            found.append("the extent is empty")
        return found

    def apply(self, spec: CliOptions) -> None:
        like = self.like.currentLayer()
        if like is not None:
            spec.like = like.source()
            return
        spec.resolution = self.resolution.value()
        if self.crs.crs().isValid():
            spec.crs = self.crs.crs().authid() or self.crs.crs().toWkt()
        if self.extent.isChecked():
            rect: QgsRectangle = self.extent.outputExtent()
            spec.extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
            spec.crs = spec.crs or self.output_crs().authid() or self.output_crs().toWkt()

    def restore(self) -> None:
        self.resolution.setValue(self.remembered.float("resolution", 10.0))
        crs = self.remembered.str("crs")
        if crs:
            self.crs.setCrs(QgsCoordinateReferenceSystem(crs))

    def remember(self) -> None:
        crs = self.crs.crs()
        self.remembered.put({"resolution": self.resolution.value(),
                             "crs": crs.authid() if crs.isValid() else ""})  # fmt: skip


class GeneratorBox(QGroupBox):
    """Backend, seed, steps and caption (model and threads come from the Settings)."""

    dests = ("backend", "model", "threads", "seed", "steps", "caption")

    def __init__(self, remembered: Remembered, title: str = "Generator") -> None:
        super().__init__(title)
        self.remembered = remembered
        form = QFormLayout(self)
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
        self.seed.setToolTip("The same seed and inputs give the same images")
        self.steps = QgsSpinBox()
        self.steps.setRange(1, 1000)
        self.steps.setValue(8)
        self.steps.setClearValue(8)
        self.caption = QLineEdit()
        self.caption.setPlaceholderText("optional: default is the classes of each tile")
        form.addRow("Backend", self.backend)
        form.addRow("Seed", self.seed)
        form.addRow("Steps", self.steps)
        form.addRow("Caption", self.caption)
        self.form = form

    def set_active(self, active: bool) -> None:
        for widget in (self.backend, self.seed, self.steps, self.caption):
            widget.setEnabled(active)

    def apply(self, spec: CliOptions) -> None:
        spec.backend = self.backend.currentData()
        # weights are the network's option: the exemplar backend refuses --model
        spec.model = config.default_model() if spec.backend == "tiny" else None
        spec.threads = config.threads()
        spec.seed = self.seed.value()
        spec.steps = self.steps.value()
        spec.caption = self.caption.text().strip() or None

    def restore(self) -> None:
        self.seed.setValue(self.remembered.int("seed", 0))
        self.steps.setValue(self.remembered.int("steps", 10))
        self.caption.setText(self.remembered.str("caption"))

    def remember(self) -> None:
        self.remembered.put({"seed": self.seed.value(), "steps": self.steps.value(),
                             "caption": self.caption.text()})  # fmt: skip


class OutputBox(QgsCollapsibleGroupBox):
    """Output folder (suggested from the input's name until the user picks one), tile size,
    restart."""

    dests = ("out", "tile_size", "restart")

    def __init__(self, remembered: Remembered, title: str = "Output") -> None:
        super().__init__(title)
        self.remembered = remembered
        self.suggested = ""
        form = QFormLayout(self)
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
        form.addRow("Output folder", self.out_dir)
        form.addRow("Tile size (px)", self.tile_size)
        form.addRow("", self.restart)

    def suggest(self, name: str) -> None:
        """Output root / ``name``, unless the user chose a folder (never overwrite that)."""
        current = self.out_dir.filePath()
        if not current or current == self.suggested:
            self.suggested = str(config.output_root() / safe_name(name))
            self.out_dir.setFilePath(self.suggested)

    def folder(self) -> str:
        return self.out_dir.filePath().strip()

    def problems(self) -> list[str]:
        return [] if self.folder() else ["choose an output folder"]

    def apply(self, spec: CliOptions) -> None:
        spec.tile_size = self.tile_size.value() or None
        spec.restart = self.restart.isChecked()

    def restore(self) -> None:
        self.tile_size.setValue(self.remembered.int("tile_size", 0))

    def remember(self) -> None:
        self.remembered.put({"tile_size": self.tile_size.value()})
        config.put(config.OUTPUT_ROOT, str(Path(self.folder()).parent))
