# SPDX-License-Identifier: GPL-2.0-or-later
"""The Detection dataset dialog: an objects layer over a real or generated background, cut
into chips and exported in the formats detector trainers read."""

from __future__ import annotations

from pathlib import Path

from qgis.core import QgsMapLayer, QgsMapLayerProxyModel, QgsVectorLayer
from qgis.gui import QgsDoubleSpinBox, QgsSpinBox
from qgis.PyQt.QtWidgets import QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QWidget

from ..layers import single_layer_file
from ..scenarios import ScenarioSpec
from ..widgets import layer_combo, layer_named, vector_problems
from .base import ScenarioDialog, field_combo

#: the formats when the backend's schema does not list them (its default lists them all)
FORMATS = ("coco", "yolo", "dota", "vector")


class DetectionDialog(ScenarioDialog):
    command = "detection-set"
    title = "Detection dataset"
    intro = (
        "Builds a detection training set: every object of the objects layer becomes an "
        "instance mask with an axis-aligned and an oriented box, cut into chips over the "
        "background (a real image, or the layout rendered with the objects drawn in). "
        "Exports COCO, YOLO, DOTA and a GeoPackage of boxes, with spatial train/val/test "
        "splits, a filter report and a STAC catalog. Splits, rare-object insertion and the "
        "filter thresholds are among the other options below."
    )
    own_dests = ("objects", "object_class_field", "object_description_field", "chip_size",
                 "chip_stride", "min_visible", "formats", "segmentation")  # fmt: skip

    def _build_scenario(self) -> QGroupBox:
        assert self.image is not None
        self.image.setToolTip(
            "A real georeferenced image (GeoTIFF) the chips are cut from. Empty: the layout "
            "below is rendered, with the objects drawn on top"
        )
        box = QGroupBox("Objects and chips")
        form = QFormLayout(box)
        self.objects = layer_combo(
            QgsMapLayerProxyModel.PolygonLayer,
            True,
            "Polygons of the objects to label (buildings, ships, tanks...), any CRS",
        )
        self.object_class_field = field_combo()
        self.object_description_field = field_combo(optional=True)
        self.object_description_field.setToolTip(
            "Optional: a free-text description per object (rendered with a generated "
            "background; default: the class)"
        )
        self.chip_size = QgsSpinBox()
        self.chip_size.setRange(8, 8192)
        self.chip_size.setSuffix(" px")
        self.chip_size.setToolTip(self.help_of("chip_size"))
        self.chip_stride = QgsSpinBox()
        self.chip_stride.setRange(0, 8192)
        self.chip_stride.setSuffix(" px")
        self.chip_stride.setSpecialValueText("the chip size (no overlap)")
        self.chip_stride.setClearValue(0)
        self.chip_stride.setToolTip(self.help_of("chip_stride"))
        self.min_visible = QgsDoubleSpinBox()
        self.min_visible.setRange(0.0, 1.0)
        self.min_visible.setSingleStep(0.05)
        self.min_visible.setDecimals(2)
        self.min_visible.setToolTip(self.help_of("min_visible"))
        self.format_boxes: dict[str, QCheckBox] = {}
        row = QWidget()
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        for name in self.format_names():
            check = QCheckBox(name)
            check.setChecked(True)
            self.format_boxes[name] = check
            line.addWidget(check)
        row.setToolTip(self.help_of("formats"))
        self.segmentation = QComboBox()
        for name in self.choices("segmentation"):  # the backend's: rle, polygon
            self.segmentation.addItem(name, name)
        self.segmentation.setToolTip(self.help_of("segmentation"))
        form.addRow("Objects layer", self.objects)
        form.addRow("Class field", self.object_class_field)
        form.addRow("Description field", self.object_description_field)
        form.addRow("Chip size", self.chip_size)
        form.addRow("Chip stride", self.chip_stride)
        form.addRow("Min. visible fraction", self.min_visible)
        form.addRow("Formats", row)
        form.addRow("COCO masks", self.segmentation)
        self.objects.layerChanged.connect(self._objects_changed)
        self._objects_changed()
        return box

    def format_names(self) -> list[str]:
        """The export formats: the backend's default lists every one it writes."""
        default = self.schema.default(self.command, "formats") if self.has("formats") else None
        names = [n.strip() for n in str(default or "").split(",") if n.strip()]
        return names or list(FORMATS)

    def has(self, dest: str) -> bool:
        return self.schema is not None and self.schema.has(self.command, dest)

    def _default(self, dest: str, fallback: float) -> float:
        value = self.schema.default(self.command, dest) if self.has(dest) else None
        return float(value) if isinstance(value, int | float) else fallback

    def _objects_changed(self) -> None:
        layer = self.objects.currentLayer()
        for combo, key, default in (
            (self.object_class_field, "object_class_field", "class"),
            (self.object_description_field, "object_description_field", ""),
        ):
            combo.setLayer(layer)
            wanted = self.remembered.str(key) or default
            if layer is not None and wanted in layer.fields().names():
                combo.setField(wanted)
        if hasattr(self, "output"):  # built: the job is named after the objects
            self._base_changed()

    def take_active(self, layer: QgsMapLayer) -> None:
        """An active polygon layer is most likely the objects to label."""
        self.objects.setLayer(layer)

    def base_layer(self) -> QgsMapLayer | None:
        """The objects name the job and its folder (the background is secondary)."""
        return self.objects.currentLayer() or super().base_layer()

    def checked_formats(self) -> list[str]:
        return [name for name, check in self.format_boxes.items() if check.isChecked()]

    def scenario_problems(self) -> list[str]:
        found = []
        layer = self.objects.currentLayer()
        more = self.more.values() if self.more is not None else {}
        if layer is not None or not (more.get("insert") or more.get("insert_count")):
            found += vector_problems(layer, "the objects layer")
            if layer is not None and not self.object_class_field.currentField():
                found.append("choose the objects' class field")
        if not self.checked_formats():
            found.append("choose at least one export format")
        return found

    def apply_scenario(self, spec: ScenarioSpec) -> None:
        layer = self.objects.currentLayer()
        if layer is not None:
            spec.objects = layer.source()
            spec.object_class_field = self.object_class_field.currentField() or None
            spec.object_description_field = self.object_description_field.currentField() or None
        spec.chip_size = self.chip_size.value()
        spec.chip_stride = self.chip_stride.value() or None
        spec.min_visible = self.min_visible.value()
        spec.formats = self.checked_formats()
        spec.segmentation = self.segmentation.currentData()

    def export_inputs(self, spec: ScenarioSpec, folder: Path) -> None:
        super().export_inputs(spec, folder)
        layer = self.objects.currentLayer()
        if spec.objects and isinstance(layer, QgsVectorLayer):  # the CLI reads the first layer
            spec.objects = single_layer_file(layer, folder)

    def _restore_scenario(self) -> None:
        self.objects.setLayer(layer_named(self.remembered.str("objects"), QgsVectorLayer))
        self._objects_changed()
        size = int(self._default("chip_size", 256))
        self.chip_size.setValue(self.remembered.int("chip_size", size))
        self.chip_stride.setValue(self.remembered.int("chip_stride", 0))
        self.min_visible.setValue(
            self.remembered.float("min_visible", self._default("min_visible", 0.5))
        )
        chosen = self.remembered.str("formats")
        for name, check in self.format_boxes.items():
            check.setChecked(not chosen or name in chosen.split(","))
        index = self.segmentation.findData(self.remembered.str("segmentation") or None)
        self.segmentation.setCurrentIndex(max(0, index))

    def _remember_scenario(self) -> None:
        layer = self.objects.currentLayer()
        self.remembered.put(
            {
                "objects": layer.name() if layer is not None else "",
                "object_class_field": self.object_class_field.currentField(),
                "object_description_field": self.object_description_field.currentField(),
                "chip_size": self.chip_size.value(),
                "chip_stride": self.chip_stride.value(),
                "min_visible": self.min_visible.value(),
                "formats": ",".join(self.checked_formats()),
                "segmentation": self.segmentation.currentData() or "",
            }
        )
