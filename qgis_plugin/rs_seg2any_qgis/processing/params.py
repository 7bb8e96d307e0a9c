# SPDX-License-Identifier: GPL-2.0-or-later
"""Parameters and the backend run that every rs_seg2any algorithm shares.

The layout, grid, generator and job parameters are defined once here, read into a
``JobSpec`` or ``ScenarioSpec`` (both ``CliOptions``), and ``run_backend`` runs the CLI in
Processing's thread with progress, cancel and the CLI's own error message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
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
    QgsVectorLayer,
)

from .. import config
from ..backend import FALLBACK_TAXONOMIES, BackendError, Event, JobResult, SchemaMismatch, run_job
from ..cli_schema import Argument, CliSchema
from ..jobs import CliOptions
from ..schema_widgets import LIST_SEPARATOR, PLUGIN_SET

INPUT = "INPUT"
CLASS_FIELD = "CLASS_FIELD"
DESCRIPTION_FIELD = "DESCRIPTION_FIELD"
TAXONOMY = "TAXONOMY"
TAXONOMY_FILE = "TAXONOMY_FILE"
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

Params = dict[str, Any]

#: the CLI options (dests) that the shared parameters below set
LAYOUT_DESTS = ("layout", "layer", "class_field", "description_field", "taxonomy")
GRID_DESTS = ("like", "resolution", "crs", "extent")
GENERATOR_DESTS = ("backend", "model", "seed", "steps", "guidance", "gamma", "threads", "caption")
JOB_DESTS = ("tile_size", "restart", "out")


def advanced(param: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return param


def add_layout_params(alg: QgsProcessingAlgorithm, optional: bool = False, label: str = "") -> None:
    """INPUT (polygons), CLASS_FIELD, DESCRIPTION_FIELD, TAXONOMY and TAXONOMY_FILE."""
    alg.addParameter(
        QgsProcessingParameterVectorLayer(
            INPUT, label or "Polygon layer", [QgsProcessing.TypeVectorPolygon], optional=optional
        )
    )
    alg.addParameter(
        QgsProcessingParameterField(CLASS_FIELD, "Class field", None, INPUT, optional=optional)
    )
    alg.addParameter(
        QgsProcessingParameterField(
            DESCRIPTION_FIELD, "Description field", None, INPUT, optional=True
        )
    )
    alg.addParameter(
        QgsProcessingParameterEnum(
            TAXONOMY, "Taxonomy", options=list(FALLBACK_TAXONOMIES), defaultValue=0
        )
    )
    alg.addParameter(
        QgsProcessingParameterFile(
            TAXONOMY_FILE,
            "Own taxonomy YAML (replaces the choice above)",
            extension="yaml",
            optional=True,
        )
    )


def add_grid_params(alg: QgsProcessingAlgorithm, when: str = "") -> None:
    """LIKE, RESOLUTION, CRS and EXTENT (``when``: a note on when the grid applies)."""
    alg.addParameter(
        QgsProcessingParameterRasterLayer(
            LIKE, f"Match the grid of this raster (CRS, extent, pixels){when}", optional=True
        )
    )
    alg.addParameter(
        QgsProcessingParameterNumber(
            RESOLUTION,
            f"Resolution (output CRS units; ignored with a grid raster){when}",
            QgsProcessingParameterNumber.Double,
            defaultValue=10.0,
            minValue=0.0,
        )
    )
    alg.addParameter(
        QgsProcessingParameterCrs(
            CRS, f"Output CRS (default: the layer's; UTM for lon/lat){when}", optional=True
        )
    )
    alg.addParameter(
        QgsProcessingParameterExtent(
            EXTENT, f"Extent (default: the layer's bounds){when}", optional=True
        )
    )


def add_generator_params(alg: QgsProcessingAlgorithm) -> None:
    """MODEL, SEED, STEPS; GUIDANCE, GAMMA, THREADS and CAPTION (advanced)."""
    alg.addParameter(
        QgsProcessingParameterFile(
            MODEL,
            "Network weights (runs the tiny network; empty: the Settings' model, else the "
            "default exemplar backend)",
            extension="safetensors",
            optional=True,
        )
    )
    number = QgsProcessingParameterNumber
    alg.addParameter(number(SEED, "Seed", number.Integer, defaultValue=0, minValue=0))
    alg.addParameter(number(STEPS, "Sampling steps", number.Integer, 8, minValue=1))
    for param in (
        number(GUIDANCE, "Guidance scale", number.Double, defaultValue=4.0, minValue=0.0),
        number(GAMMA, "Shape strength (0 ignores shapes)", number.Double, 1.0, minValue=0.0),
        number(THREADS, "CPU threads (0 = all)", number.Integer, 0, minValue=0),
        QgsProcessingParameterString(CAPTION, "Global caption", optional=True),
    ):
        alg.addParameter(advanced(param))


def add_job_params(alg: QgsProcessingAlgorithm) -> None:
    """TILE_SIZE and RESTART (advanced), then the OUTPUT folder."""
    alg.addParameter(
        advanced(
            QgsProcessingParameterNumber(
                TILE_SIZE,
                "Tile size in pixels (0 = the CLI's default)",
                QgsProcessingParameterNumber.Integer,
                defaultValue=0,
                minValue=0,
            )
        )
    )
    alg.addParameter(
        advanced(
            QgsProcessingParameterBoolean(
                RESTART, "Discard an unfinished job in the folder", defaultValue=False
            )
        )
    )
    alg.addParameter(QgsProcessingParameterFolderDestination(OUTPUT, "Output folder"))


def read_taxonomy(alg: QgsProcessingAlgorithm, parameters: Params, context: Any) -> str:
    return (
        alg.parameterAsFile(parameters, TAXONOMY_FILE, context)
        or (FALLBACK_TAXONOMIES[alg.parameterAsEnum(parameters, TAXONOMY, context)])
    )


def read_grid(
    alg: QgsProcessingAlgorithm,
    parameters: Params,
    context: QgsProcessingContext,
    spec: CliOptions,
    layer: QgsVectorLayer,
) -> None:
    """The grid parameters into ``spec`` (``layer``: the layout, for the default CRS)."""
    like = alg.parameterAsRasterLayer(parameters, LIKE, context)
    if like is not None:
        spec.like = like.source()
        return
    spec.resolution = alg.parameterAsDouble(parameters, RESOLUTION, context)
    crs = alg.parameterAsCrs(parameters, CRS, context)
    if crs.isValid():
        spec.crs = crs.authid() or crs.toWkt()
    if parameters.get(EXTENT):
        target = crs if crs.isValid() else layer.crs()
        if not crs.isValid() and layer.crs().isGeographic():
            raise QgsProcessingException(
                "an extent on a lon/lat layer needs an output CRS (the grid would be UTM)"
            )
        rect = alg.parameterAsExtent(parameters, EXTENT, context, target)
        if not rect.isEmpty():
            spec.extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
            spec.crs = spec.crs or target.authid() or target.toWkt()


def read_generator(
    alg: QgsProcessingAlgorithm, parameters: Params, context: Any, spec: CliOptions
) -> None:
    spec.model = alg.parameterAsFile(parameters, MODEL, context) or config.default_model()
    # weights name the embedded network; without them the CLI's default backend renders
    spec.backend = "tiny" if spec.model else None
    spec.seed = alg.parameterAsInt(parameters, SEED, context)
    spec.steps = alg.parameterAsInt(parameters, STEPS, context)
    spec.guidance = alg.parameterAsDouble(parameters, GUIDANCE, context)
    spec.gamma = alg.parameterAsDouble(parameters, GAMMA, context)
    spec.threads = alg.parameterAsInt(parameters, THREADS, context) or config.threads()
    spec.caption = alg.parameterAsString(parameters, CAPTION, context) or None


def read_job(alg: QgsProcessingAlgorithm, parameters: Params, context: Any, spec: Any) -> None:
    spec.tile_size = alg.parameterAsInt(parameters, TILE_SIZE, context) or None
    spec.restart = alg.parameterAsBool(parameters, RESTART, context)


def output_folder(alg: QgsProcessingAlgorithm, parameters: Params, context: Any) -> str:
    out_dir = alg.parameterAsString(parameters, OUTPUT, context)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return out_dir


def add_schema_params(alg: QgsProcessingAlgorithm, command: str, shown: Any) -> None:
    """Every other option of ``command`` from the backend's schema, as an advanced parameter
    named after its dest (``PRESET``, ``NO_SNAP``...); none without a readable backend."""
    schema, _error = config.schema_or_error()
    alg.schema_params = []  # type: ignore[attr-defined]
    if schema is None or command not in schema.commands:
        return
    skip = {*shown, *PLUGIN_SET}
    for arg in schema.arguments(command):
        name = arg.dest.upper()
        if arg.positional or arg.dest in skip or alg.parameterDefinition(name) is not None:
            continue
        alg.addParameter(advanced(_schema_param(name, arg)))
        alg.schema_params.append((name, arg))  # type: ignore[attr-defined]


def _schema_param(name: str, arg: Argument) -> QgsProcessingParameterDefinition:
    label = f"{arg.label} ({arg.flag}): {arg.help}"
    number = QgsProcessingParameterNumber
    if arg.type == "bool":
        return QgsProcessingParameterBoolean(name, label, defaultValue=False, optional=True)
    if arg.type == "choice":
        options = ["(the backend's default)", *(arg.choices or ())]
        return QgsProcessingParameterEnum(name, label, options=options, defaultValue=0,
                                          optional=True)  # fmt: skip
    if arg.type in ("int", "float"):
        kind = number.Integer if arg.type == "int" else number.Double
        return number(name, label, kind, defaultValue=None, optional=True)
    if arg.type == "path" and not arg.repeatable:
        return QgsProcessingParameterFile(name, label, optional=True)
    tip = f" ({LIST_SEPARATOR}-separated)" if arg.repeatable else ""
    return QgsProcessingParameterString(name, label + tip, optional=True)


def read_schema_params(
    alg: QgsProcessingAlgorithm, parameters: Params, context: Any
) -> dict[str, Any]:
    """The values of the parameters ``add_schema_params`` added, by dest (unset: left out)."""
    found: dict[str, Any] = {}
    for name, arg in getattr(alg, "schema_params", []):
        if parameters.get(name) in (None, ""):
            continue
        if arg.type == "bool":
            value: Any = alg.parameterAsBool(parameters, name, context)
        elif arg.type == "choice":
            index = alg.parameterAsEnum(parameters, name, context)
            value = (arg.choices or ())[index - 1] if index > 0 else None
        elif arg.type == "int":
            value = alg.parameterAsInt(parameters, name, context)
        elif arg.type == "float":
            value = alg.parameterAsDouble(parameters, name, context)
        else:
            value = alg.parameterAsString(parameters, name, context).strip() or None
            if value and arg.repeatable:
                value = [v.strip() for v in value.split(LIST_SEPARATOR) if v.strip()]
        found[arg.dest] = value
    return found


def run_backend(
    problems: list[str], args: Callable[[CliSchema], list[str]], feedback: QgsProcessingFeedback
) -> JobResult:
    """Run the CLI for a checked spec (``args`` builds its argv from the backend's schema);
    a QgsProcessingException with the words of what went wrong on failure."""
    if problems:
        raise QgsProcessingException("; ".join(problems))
    cli = config.cli_path()
    if cli is None:
        raise QgsProcessingException(
            "no rs-seg2any backend: set its path in the plugin's Settings "
            "or the RS_SEG2ANY_CLI environment variable"
        )
    try:
        argv = args(config.schema())
    except SchemaMismatch as exc:
        raise QgsProcessingException(f"plugin and backend do not fit together: {exc}") from exc
    except (BackendError, ValueError) as exc:
        raise QgsProcessingException(str(exc)) from exc
    feedback.pushCommandInfo(" ".join([str(cli), *argv]))

    def on_event(event: Event) -> None:
        kind = event.get("event")
        if kind == "stage":
            feedback.setProgressText(str(event.get("stage", "")))
        elif kind == "progress" and event.get("total"):
            feedback.setProgress(100.0 * float(event["done"]) / float(event["total"]))
        elif kind == "message":
            feedback.pushInfo(str(event.get("message", "")))

    try:
        result = run_job(cli, argv, on_event=on_event, is_canceled=feedback.isCanceled)
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
    return result


def load_on_completion(
    context: QgsProcessingContext, files: dict[str, str], layers: list[tuple[str, str]]
) -> None:
    """Ask the Processing GUI to add ``(key, name)`` layers of ``files`` (a label's .qml is
    the default style QGIS finds next to it)."""
    for key, name in layers:
        if files.get(key):
            details = QgsProcessingContext.LayerDetails(name, context.project(), key.upper())
            context.addLayerToLoadOnCompletion(files[key], details)
