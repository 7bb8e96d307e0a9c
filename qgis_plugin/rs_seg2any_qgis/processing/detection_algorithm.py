# SPDX-License-Identifier: GPL-2.0-or-later
"""Processing algorithm ``rs_seg2any:detection_set``: the Detection dataset dialog's run for
the toolbox, models and qgis_process.

Its outputs are vector layers (boxes, oriented boxes, instance polygons: layers of the set's
GeoPackage) and files (COCO, YOLO, report), not rasters like the other scenarios'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterEnum,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
)

from .. import config
from ..layers import single_layer_file
from ..scenarios import ScenarioSpec, result_layers
from .params import OUTPUT, Params, advanced, load_on_completion, output_folder, run_backend
from .scenario_algorithms import _ScenarioAlgorithm, _vector

OBJECTS, OBJECT_CLASS_FIELD = "OBJECTS", "OBJECT_CLASS_FIELD"
OBJECT_DESCRIPTION_FIELD = "OBJECT_DESCRIPTION_FIELD"
CHIP_SIZE, CHIP_STRIDE, MIN_VISIBLE = "CHIP_SIZE", "CHIP_STRIDE", "MIN_VISIBLE"
FORMATS, SEGMENTATION = "FORMATS", "SEGMENTATION"
#: when the backend's schema does not list them (its default lists every format)
DEFAULT_FORMATS = ("coco", "yolo", "dota", "vector")
VECTOR_LAYERS = ("boxes", "oriented_boxes", "instances")


def _schema_default(dest: str) -> Any:
    schema, _error = config.schema_or_error()
    if schema is None or not schema.has("detection-set", dest):
        return None
    return schema.default("detection-set", dest)


class DetectionSetAlgorithm(_ScenarioAlgorithm):
    """``rs-seg2any detection-set``: objects over a real or rendered background, in chips."""

    command = "detection-set"
    own_dests = ("objects", "object_class_field", "object_description_field", "chip_size",
                 "chip_stride", "min_visible", "formats", "segmentation")  # fmt: skip
    #: (output, keys in the ``done`` event, description); the three vector outputs are the
    #: GeoPackage's layers of those names (the event's keys of the same names are GeoJSON)
    results = (
        ("BOXES", ("boxes",), "Boxes (one per chip and object, map CRS)"),
        ("ORIENTED_BOXES", ("oriented_boxes",), "Oriented boxes (minimum-area rectangles)"),
        ("INSTANCES", ("instances",), "Instance polygons (the visible pixels)"),
        ("IMAGE", ("image",), "Background the chips were cut from"),
        ("COCO_TRAIN", ("coco_train",), "COCO JSON of the train split"),
        ("YOLO_DETECT", ("yolo_detect",), "YOLO data.yaml (detect)"),
        ("REPORT", ("report",), "Filter report (JSON)"),
    )

    def name(self) -> str:
        return "detection_set"

    def displayName(self) -> str:
        return "Detection dataset"

    def shortHelpString(self) -> str:
        return (
            "Builds a detection training set: every polygon of OBJECTS (with its class field) "
            "becomes an instance mask with an axis-aligned and an oriented box, cut into chips "
            "of CHIP_SIZE pixels over the background: the base image, or the layout rendered "
            "with the objects drawn in. An object cut by a chip border is labelled when at "
            "least MIN_VISIBLE of it shows. Exports COCO, YOLO, DOTA and a GeoPackage of boxes "
            "and instances in the map CRS, with spatially separate train/val/test splits, a "
            "filter report and a STAC catalog; splits, rare-object insertion and the filter "
            "thresholds are among the advanced options."
        )

    def add_scenario_params(self) -> None:
        self.addParameter(_vector(OBJECTS, "Objects (polygons to label)"))
        self.addParameter(
            QgsProcessingParameterField(
                OBJECT_CLASS_FIELD, "Objects' class field", "class", OBJECTS, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                OBJECT_DESCRIPTION_FIELD, "Objects' description field", None, OBJECTS,
                optional=True,
            )
        )  # fmt: skip
        size = _schema_default("chip_size")
        self.addParameter(
            QgsProcessingParameterNumber(
                CHIP_SIZE, "Chip size (pixels)", QgsProcessingParameterNumber.Integer,
                size if isinstance(size, int) else 256, minValue=8,
            )
        )  # fmt: skip
        self.addParameter(
            QgsProcessingParameterNumber(
                CHIP_STRIDE, "Chip stride (pixels; 0 = the chip size)",
                QgsProcessingParameterNumber.Integer, 0, minValue=0,
            )
        )  # fmt: skip
        visible = _schema_default("min_visible")
        self.addParameter(
            QgsProcessingParameterNumber(
                MIN_VISIBLE, "Minimum visible fraction of a cut object",
                QgsProcessingParameterNumber.Double,
                visible if isinstance(visible, float) else 0.5, minValue=0.0, maxValue=1.0,
            )
        )  # fmt: skip
        default = str(_schema_default("formats") or "")
        self.formats = [n.strip() for n in default.split(",") if n.strip()] or list(DEFAULT_FORMATS)
        self.addParameter(
            QgsProcessingParameterEnum(
                FORMATS, "Export formats", options=self.formats, allowMultiple=True,
                defaultValue=list(range(len(self.formats))),
            )
        )  # fmt: skip
        self.segmentations = config.choices(self.command, "segmentation") or ["rle"]
        self.addParameter(
            advanced(
                QgsProcessingParameterEnum(
                    SEGMENTATION, "COCO masks", options=self.segmentations, defaultValue=0
                )
            )
        )

    def add_outputs(self) -> None:
        for name, keys, description in self.results:
            if keys[0] in VECTOR_LAYERS:
                self.addOutput(QgsProcessingOutputVectorLayer(name, description))
            elif keys[0] == "image":
                self.addOutput(QgsProcessingOutputRasterLayer(name, description))
            else:
                self.addOutput(QgsProcessingOutputFile(name, description))

    def read_scenario(
        self, parameters: Params, context: QgsProcessingContext, spec: ScenarioSpec, folder: Path
    ) -> None:
        layer = self.parameterAsVectorLayer(parameters, OBJECTS, context)
        if layer is not None:
            spec.objects = single_layer_file(layer, folder)  # the CLI reads the first layer
            spec.object_class_field = (
                self.parameterAsString(parameters, OBJECT_CLASS_FIELD, context) or None
            )
            spec.object_description_field = (
                self.parameterAsString(parameters, OBJECT_DESCRIPTION_FIELD, context) or None
            )
        spec.chip_size = self.parameterAsInt(parameters, CHIP_SIZE, context)
        spec.chip_stride = self.parameterAsInt(parameters, CHIP_STRIDE, context) or None
        spec.min_visible = self.parameterAsDouble(parameters, MIN_VISIBLE, context)
        chosen = self.parameterAsEnums(parameters, FORMATS, context)
        spec.formats = [self.formats[i] for i in chosen]
        spec.segmentation = self.segmentations[
            self.parameterAsEnum(parameters, SEGMENTATION, context)
        ]

    def processAlgorithm(
        self, parameters: Params, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        out_dir = output_folder(self, parameters, context)
        spec = self.spec(parameters, context, out_dir)
        result = run_backend(spec.problems(), spec.to_args, feedback)
        files = dict(result.outputs)
        layers = result_layers(self.command, files)
        for entry in layers:  # a layer of the GeoPackage, as QGIS opens it
            if entry.sublayer:
                files[entry.sublayer] = f"{files[entry.key]}|layername={entry.sublayer}"
        outputs: dict[str, Any] = {OUTPUT: out_dir}
        for name, keys, _description in self.results:
            if files.get(keys[0]):
                outputs[name] = files[keys[0]]
        load_on_completion(context, files, [(r.sublayer or r.key, r.name) for r in layers])
        return outputs
