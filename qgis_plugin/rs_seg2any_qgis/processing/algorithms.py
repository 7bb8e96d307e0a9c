# SPDX-License-Identifier: GPL-2.0-or-later
"""Processing algorithms: the CLI's ``layout`` and ``generate`` with proper parameters.

They run the same backend as the toolbar actions, synchronously in Processing's thread, so
they work in the model designer, batch mode and ``qgis_process``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
)
from qgis.PyQt.QtGui import QIcon

from .. import config
from ..backend import FALLBACK_TAXONOMIES, BackendError, Event, run_job
from ..jobs import UNKNOWN_CLASS_CHOICES, JobSpec
from ..layers import cli_source

INPUT = "INPUT"
CLASS_FIELD = "CLASS_FIELD"
DESCRIPTION_FIELD = "DESCRIPTION_FIELD"
TAXONOMY = "TAXONOMY"
TAXONOMY_FILE = "TAXONOMY_FILE"
UNKNOWN_CLASS = "UNKNOWN_CLASS"
LIKE = "LIKE"
RESOLUTION = "RESOLUTION"
CRS = "CRS"
EXTENT = "EXTENT"
TILE_SIZE = "TILE_SIZE"
RESTART = "RESTART"
OUTPUT = "OUTPUT"
MODEL = "MODEL"
STEPS = "STEPS"
GUIDANCE = "GUIDANCE"
GAMMA = "GAMMA"
SEED = "SEED"
CAPTION = "CAPTION"
THREADS = "THREADS"

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
        self.addParameter(
            QgsProcessingParameterVectorLayer(
                INPUT, "Polygon layer", [QgsProcessing.TypeVectorPolygon]
            )
        )
        self.addParameter(QgsProcessingParameterField(CLASS_FIELD, "Class field", None, INPUT))
        self.addParameter(
            QgsProcessingParameterField(
                DESCRIPTION_FIELD, "Description field", None, INPUT, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                TAXONOMY, "Taxonomy", options=list(FALLBACK_TAXONOMIES), defaultValue=0
            )
        )
        self.addParameter(
            QgsProcessingParameterFile(
                TAXONOMY_FILE,
                "Own taxonomy YAML (replaces the choice above)",
                extension="yaml",
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                UNKNOWN_CLASS,
                "Classes not in the taxonomy",
                options=list(UNKNOWN_CLASS_CHOICES),
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterLayer(
                LIKE, "Match the grid of this raster (CRS, extent, pixels)", optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                RESOLUTION,
                "Resolution (output CRS units; ignored with a grid raster)",
                QgsProcessingParameterNumber.Double,
                defaultValue=10.0,
                minValue=0.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterCrs(
                CRS, "Output CRS (default: the layer's; UTM for lon/lat)", optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterExtent(
                EXTENT, "Extent (default: the layer's bounds)", optional=True
            )
        )
        self._add_generator_parameters()
        tile = QgsProcessingParameterNumber(
            TILE_SIZE,
            "Tile size in pixels (0 = the CLI's default)",
            QgsProcessingParameterNumber.Integer,
            defaultValue=0,
            minValue=0,
        )
        restart = QgsProcessingParameterBoolean(
            RESTART, "Discard an unfinished job in the folder", defaultValue=False
        )
        for advanced in (tile, restart):
            advanced.setFlags(advanced.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(advanced)
        self.addParameter(QgsProcessingParameterFolderDestination(OUTPUT, "Output folder"))
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
        taxonomy = (
            self.parameterAsFile(parameters, TAXONOMY_FILE, context)
            or (FALLBACK_TAXONOMIES[self.parameterAsEnum(parameters, TAXONOMY, context)])
        )
        spec = JobSpec(
            command=self.command,
            layer_path=path,
            layer_name=name or None,
            class_field=self.parameterAsString(parameters, CLASS_FIELD, context),
            description_field=self.parameterAsString(parameters, DESCRIPTION_FIELD, context)
            or None,
            taxonomy=taxonomy,
            unknown_class=UNKNOWN_CLASS_CHOICES[
                self.parameterAsEnum(parameters, UNKNOWN_CLASS, context)
            ],
            out_dir=out_dir,
            tile_size=self.parameterAsInt(parameters, TILE_SIZE, context) or None,
            restart=self.parameterAsBool(parameters, RESTART, context),
        )
        like = self.parameterAsRasterLayer(parameters, LIKE, context)
        if like is not None:
            spec.like = like.source()
            return spec
        spec.resolution = self.parameterAsDouble(parameters, RESOLUTION, context)
        crs = self.parameterAsCrs(parameters, CRS, context)
        if crs.isValid():
            spec.crs = crs.authid() or crs.toWkt()
        if parameters.get(EXTENT):
            target = crs if crs.isValid() else layer.crs()
            if not crs.isValid() and layer.crs().isGeographic():
                raise QgsProcessingException(
                    "an extent on a lon/lat layer needs an output CRS (the grid would be UTM)"
                )
            rect = self.parameterAsExtent(parameters, EXTENT, context, target)
            if not rect.isEmpty():
                spec.extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
                spec.crs = spec.crs or target.authid() or target.toWkt()
        return spec

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        out_dir = self.parameterAsString(parameters, OUTPUT, context)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        spec = self._spec(parameters, context, out_dir)
        problems = spec.problems()
        if problems:
            raise QgsProcessingException("; ".join(problems))
        cli = config.cli_path()
        if cli is None:
            raise QgsProcessingException(
                "no rs-seg2any backend: set its path in the plugin's Settings "
                "or the RS_SEG2ANY_CLI environment variable"
            )
        args = spec.to_args()
        feedback.pushCommandInfo(" ".join([str(cli), *args]))

        def on_event(event: Event) -> None:
            kind = event.get("event")
            if kind == "stage":
                feedback.setProgressText(str(event.get("stage", "")))
            elif kind == "progress" and event.get("total"):
                feedback.setProgress(100.0 * float(event["done"]) / float(event["total"]))
            elif kind == "message":
                feedback.pushInfo(str(event.get("message", "")))

        try:
            result = run_job(cli, args, on_event=on_event, is_canceled=feedback.isCanceled)
        except BackendError as exc:
            raise QgsProcessingException(str(exc)) from exc
        for line in result.log:
            feedback.pushDebugInfo(line)
        if result.cancelled:
            raise QgsProcessingException(
                f"cancelled: {result.error_message or 'stopped'}; run it again to resume"
            )
        if not result.ok:
            raise QgsProcessingException(f"{result.error_type}: {result.summary()}")
        outputs = {OUTPUT: out_dir, "PREVIEW": result.outputs.get("preview")}
        for key in (*MAP_OUTPUTS, "image"):
            if key in result.outputs:
                outputs[key.upper()] = result.outputs[key]
        self._load_on_completion(result.outputs, context)
        return outputs

    def _load_on_completion(self, files: dict[str, str], context: QgsProcessingContext) -> None:
        """Ask the Processing GUI to add the image and the label map (its .qml is the default
        style QGIS finds next to label.tif)."""
        for key in ("label", "image"):
            if key in files:
                details = QgsProcessingContext.LayerDetails(key, context.project(), key.upper())
                context.addLayerToLoadOnCompletion(files[key], details)


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
        self.addParameter(
            QgsProcessingParameterFile(
                MODEL,
                "Model weights (default: the Settings' model, else the embedded one)",
                extension="safetensors",
                optional=True,
            )
        )
        number = QgsProcessingParameterNumber
        self.addParameter(number(SEED, "Seed", number.Integer, defaultValue=0, minValue=0))
        self.addParameter(number(STEPS, "Sampling steps", number.Integer, 10, minValue=1))
        advanced = [
            number(GUIDANCE, "Guidance scale", number.Double, defaultValue=2.0, minValue=0.0),
            number(GAMMA, "Shape strength (0 ignores shapes)", number.Double, 1.0, minValue=0.0),
            number(THREADS, "CPU threads (0 = all)", number.Integer, 0, minValue=0),
            QgsProcessingParameterString(CAPTION, "Global caption", optional=True),
        ]
        for param in advanced:
            param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(param)

    def _spec(
        self, parameters: dict[str, Any], context: QgsProcessingContext, out_dir: str
    ) -> JobSpec:
        spec = super()._spec(parameters, context, out_dir)
        spec.backend = "tiny"
        spec.model = self.parameterAsFile(parameters, MODEL, context) or config.default_model()
        spec.seed = self.parameterAsInt(parameters, SEED, context)
        spec.steps = self.parameterAsInt(parameters, STEPS, context)
        spec.guidance = self.parameterAsDouble(parameters, GUIDANCE, context)
        spec.gamma = self.parameterAsDouble(parameters, GAMMA, context)
        spec.threads = self.parameterAsInt(parameters, THREADS, context) or config.threads()
        spec.caption = self.parameterAsString(parameters, CAPTION, context) or None
        return spec
