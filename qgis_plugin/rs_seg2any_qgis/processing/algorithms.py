# SPDX-License-Identifier: GPL-2.0-or-later
"""Processing algorithms: the CLI's ``layout`` and ``generate`` with proper parameters.

They run the same backend as the toolbar actions, synchronously in Processing's thread, so
they work in the model designer, batch mode and ``qgis_process``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterEnum,
)
from qgis.PyQt.QtGui import QIcon

from .. import config
from ..jobs import JobSpec
from ..layers import cli_source
from .params import (
    CLASS_FIELD,
    DESCRIPTION_FIELD,
    GENERATOR_DESTS,
    GRID_DESTS,
    INPUT,
    JOB_DESTS,
    LAYOUT_DESTS,
    OUTPUT,
    add_generator_params,
    add_grid_params,
    add_job_params,
    add_layout_params,
    add_schema_params,
    load_on_completion,
    output_folder,
    read_generator,
    read_grid,
    read_job,
    read_schema_params,
    read_taxonomy,
    run_backend,
)

UNKNOWN_CLASS = "UNKNOWN_CLASS"
MAP_OUTPUTS = ("label", "instance", "contour")


class _CliAlgorithm(QgsProcessingAlgorithm):
    """Shared layer, grid and job parameters; subclasses add their own and the command."""

    command = "layout"

    def icon(self) -> QIcon:
        return QIcon(config.icon_path())

    def group(self) -> str:
        return ""

    def groupId(self) -> str:
        return ""

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        add_layout_params(self)
        self.unknown_choices = config.choices(self.command, "unknown_class")  # the backend's
        self.addParameter(
            QgsProcessingParameterEnum(
                UNKNOWN_CLASS,
                "Classes not in the taxonomy",
                options=self.unknown_choices,
                defaultValue=0,
            )
        )
        add_grid_params(self)
        self._add_generator_parameters()
        add_job_params(self)
        generator = GENERATOR_DESTS if self.command == "generate" else ()
        shown = [*LAYOUT_DESTS, "unknown_class", *GRID_DESTS, *generator, *JOB_DESTS]
        add_schema_params(self, self.command, shown)
        for key in MAP_OUTPUTS:
            self.addOutput(QgsProcessingOutputRasterLayer(key.upper(), f"{key.title()} map"))
        self.addOutput(QgsProcessingOutputFile("PREVIEW", "Preview PNG"))

    def _add_generator_parameters(self) -> None:
        """Generator parameters (none for the layout)."""

    def _spec(
        self, parameters: dict[str, Any], context: QgsProcessingContext, out_dir: str
    ) -> JobSpec:
        layer = self.parameterAsVectorLayer(parameters, INPUT, context)
        if layer is None:
            raise QgsProcessingException("the polygon layer did not load")
        path, name = cli_source(layer, Path(out_dir) / "input")
        spec = JobSpec(
            command=self.command,
            layer_path=path,
            layer_name=name or None,
            class_field=self.parameterAsString(parameters, CLASS_FIELD, context),
            description_field=self.parameterAsString(parameters, DESCRIPTION_FIELD, context)
            or None,
            taxonomy=read_taxonomy(self, parameters, context),
            unknown_class=self._unknown_class(parameters, context),
            out_dir=out_dir,
        )
        read_job(self, parameters, context, spec)
        spec.extra = read_schema_params(self, parameters, context)
        read_grid(self, parameters, context, spec, layer)
        return spec

    def _unknown_class(self, parameters: dict[str, Any], context: QgsProcessingContext) -> Any:
        index = self.parameterAsEnum(parameters, UNKNOWN_CLASS, context)
        return self.unknown_choices[index] if index < len(self.unknown_choices) else None

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        out_dir = output_folder(self, parameters, context)
        spec = self._spec(parameters, context, out_dir)
        result = run_backend(spec.problems(), spec.to_args, feedback)
        outputs = {OUTPUT: out_dir, "PREVIEW": result.outputs.get("preview")}
        for key in (*MAP_OUTPUTS, "image"):
            if key in result.outputs:
                outputs[key.upper()] = result.outputs[key]
        load_on_completion(context, result.outputs, [("label", "label"), ("image", "image")])
        return outputs


class RasteriseLayoutAlgorithm(_CliAlgorithm):
    """``rs-seg2any layout``: label, instance and contour maps on a grid, no model."""

    command = "layout"

    def name(self) -> str:
        return "rasterise_layout"

    def displayName(self) -> str:
        return "Rasterise layout"

    def shortHelpString(self) -> str:
        return (
            "Rasterises a polygon layer onto a grid (the layer's bounds at a resolution, an "
            "extent, or the grid of a raster): label.tif (class ids with a colour table and a "
            "paletted style), instance.tif (one id per polygon part) and contour.tif (entity "
            "outlines). Runs the rs-seg2any command of the backend set in the plugin's "
            "Settings; cancelling keeps finished tiles, and running it again resumes."
        )

    def createInstance(self) -> RasteriseLayoutAlgorithm:
        return RasteriseLayoutAlgorithm()


class GenerateImageryAlgorithm(_CliAlgorithm):
    """``rs-seg2any generate``: an RGB image plus the layout maps, from a generator."""

    command = "generate"

    def name(self) -> str:
        return "generate_imagery"

    def displayName(self) -> str:
        return "Generate imagery"

    def shortHelpString(self) -> str:
        return (
            "Renders a realistic RGB image of a polygon layer with the embedded generator, on "
            "the same grid as its label, instance and contour maps. The seed makes a run "
            "reproducible. Runs in the backend environment set in the plugin's Settings; "
            "cancelling keeps finished tiles, and running it again resumes."
        )

    def createInstance(self) -> GenerateImageryAlgorithm:
        return GenerateImageryAlgorithm()

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        super().initAlgorithm(configuration)
        self.addOutput(QgsProcessingOutputRasterLayer("IMAGE", "Image"))

    def _add_generator_parameters(self) -> None:
        add_generator_params(self)

    def _spec(
        self, parameters: dict[str, Any], context: QgsProcessingContext, out_dir: str
    ) -> JobSpec:
        spec = super()._spec(parameters, context, out_dir)
        read_generator(self, parameters, context, spec)
        return spec
