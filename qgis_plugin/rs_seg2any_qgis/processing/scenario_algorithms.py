# SPDX-License-Identifier: GPL-2.0-or-later
"""Processing algorithms for the scenarios: flood, planning zones, seasons, change pair,
cloud fill, damage pair.

Same backend and parameters as the layout/generate algorithms (``params``), plus each
scenario's own, plus every other option of the command from the backend's schema (advanced);
choices (DEM resampling, seasons, recipes) are the backend's. The outputs are the layers the
toolbar actions add (``result_layers``).
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
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterEnum,
    QgsProcessingParameterField,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QIcon

from .. import config
from ..layers import cli_source, same_named_sources, single_layer_file
from ..scenarios import ScenarioSpec, parse_params, parse_points, result_layers
from .params import (
    CLASS_FIELD,
    DESCRIPTION_FIELD,
    GENERATOR_DESTS,
    GRID_DESTS,
    INPUT,
    JOB_DESTS,
    LAYOUT_DESTS,
    OUTPUT,
    Params,
    add_generator_params,
    add_grid_params,
    add_job_params,
    add_layout_params,
    add_schema_params,
    advanced,
    load_on_completion,
    output_folder,
    read_generator,
    read_grid,
    read_job,
    read_schema_params,
    read_taxonomy,
    run_backend,
)

IMAGE = "IMAGE"
POLYGON = [QgsProcessing.TypeVectorPolygon]


def _vector(name: str, label: str, optional: bool = True) -> QgsProcessingParameterVectorLayer:
    return QgsProcessingParameterVectorLayer(name, label, POLYGON, optional=optional)


class _ScenarioAlgorithm(QgsProcessingAlgorithm):
    """Base image or layout, the scenario's parameters, grid, generator and job."""

    command = ""
    needs_layout = False  # seasons, change, cloudfill: a layout is required
    image_role = "optional"  # "optional" (flood, plan), "required" (cloudfill), "" (none)
    has_grid = True  # cloudfill: the image's grid
    own_dests: tuple[str, ...] = ()  # the CLI options the scenario's own parameters set
    #: (output name, its keys in the CLI's ``done`` event (the first found wins), description)
    results: tuple[tuple[str, tuple[str, ...], str], ...] = ()

    def icon(self) -> QIcon:
        return QIcon(config.icon_path())

    def group(self) -> str:
        return "Scenarios"

    def groupId(self) -> str:
        return "scenarios"

    def createInstance(self) -> _ScenarioAlgorithm:
        return type(self)()

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        when = ""
        if self.image_role == "optional":
            self.addParameter(
                QgsProcessingParameterRasterLayer(
                    IMAGE, "Base image (empty: the layout is rendered first)", optional=True
                )
            )
            when = " [rendered layout]"
        elif self.image_role == "required":
            self.addParameter(QgsProcessingParameterRasterLayer(IMAGE, "Image (GeoTIFF)"))
        label = "Layout (polygons)" if self.needs_layout else "Layout (polygons; its labels)"
        add_layout_params(self, optional=not self.needs_layout, label=label)
        self.add_scenario_params()
        if self.has_grid:
            add_grid_params(self, when)
        add_generator_params(self)
        add_job_params(self)
        shown = [*LAYOUT_DESTS, *GENERATOR_DESTS, *JOB_DESTS, *self.own_dests, "image"]
        add_schema_params(self, self.command, shown + (list(GRID_DESTS) if self.has_grid else []))
        self.add_outputs()

    def add_outputs(self) -> None:
        """The outputs: rasters (the detection set's are vector layers and files)."""
        for name, _keys, description in self.result_defs():
            self.addOutput(QgsProcessingOutputRasterLayer(name, description))

    def result_defs(self) -> tuple[tuple[str, tuple[str, ...], str], ...]:
        return self.results

    def add_scenario_params(self) -> None:
        raise NotImplementedError

    def read_scenario(
        self, parameters: Params, context: QgsProcessingContext, spec: ScenarioSpec, folder: Path
    ) -> None:
        raise NotImplementedError

    def spec(self, parameters: Params, context: QgsProcessingContext, out_dir: str) -> ScenarioSpec:
        spec = ScenarioSpec(command=self.command, out_dir=out_dir)
        folder = Path(out_dir) / "input"
        spec.taxonomy = read_taxonomy(self, parameters, context)
        image = None
        if self.image_role:
            image = self.parameterAsRasterLayer(parameters, IMAGE, context)
        if image is not None:
            spec.image = image.source()
        layout = self.parameterAsVectorLayer(parameters, INPUT, context)
        if layout is not None:
            spec.layout, name = cli_source(layout, folder)
            spec.layer_name = name or None
            spec.class_field = self.parameterAsString(parameters, CLASS_FIELD, context) or None
            spec.description_field = (
                self.parameterAsString(parameters, DESCRIPTION_FIELD, context) or None
            )
            if image is None and self.has_grid:
                read_grid(self, parameters, context, spec, layout)
        read_generator(self, parameters, context, spec)
        read_job(self, parameters, context, spec)
        spec.extra = read_schema_params(self, parameters, context)
        try:
            self.read_scenario(parameters, context, spec, folder)
        except ValueError as exc:
            raise QgsProcessingException(str(exc)) from exc
        return spec

    def processAlgorithm(
        self, parameters: Params, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        out_dir = output_folder(self, parameters, context)
        spec = self.spec(parameters, context, out_dir)
        result = run_backend(spec.problems(), spec.to_args, feedback)
        outputs: dict[str, Any] = {OUTPUT: out_dir}
        for name, keys, _description in self.result_defs():
            found = [result.outputs[k] for k in keys if result.outputs.get(k)]
            if found:
                outputs[name] = found[0]
        layers = result_layers(self.command, result.outputs)
        load_on_completion(context, result.outputs, [(r.key, r.name) for r in layers])
        return outputs


FLOOD_POLYGONS, DEM, LEVEL = "FLOOD_POLYGONS", "DEM", "LEVEL"
SEED_XY, DEM_RESAMPLE = "SEED_XY", "DEM_RESAMPLE"


class FloodAlgorithm(_ScenarioAlgorithm):
    """``rs-seg2any flood``: flood water inside polygons, or below a water level on a DEM."""

    command = "flood"
    own_dests = ("flood_polygons", "dem", "level", "seed_xy", "dem_resample")
    results = (
        ("BEFORE", ("before",), "Before (base image)"),
        ("IMAGE", ("image",), "After (flooded image)"),
        ("LABEL", ("label",), "Label map after the flood"),
        ("FLOOD_MASK", ("flood_mask",), "Flood mask (1 = flooded)"),
        ("FLOOD_DEPTH", ("flood_depth",), "Flood depth in metres (DEM floods)"),
    )

    def name(self) -> str:
        return "flood"

    def displayName(self) -> str:
        return "Flood"

    def shortHelpString(self) -> str:
        return (
            "Generates flood water only inside a flood extent, over a base image (or one "
            "rendered from the layout first); every other pixel is copied from the base. The "
            "extent is a polygon layer, or a DEM and a water level: low ground connected to "
            "the layout's water (or to the entry points) floods. Outputs: the before and after "
            "images, the label map after the flood, the flood mask and, for DEM floods, the "
            "depth. Give FLOOD_POLYGONS, or DEM and LEVEL."
        )

    def add_scenario_params(self) -> None:
        self.dem_methods = config.choices(self.command, "dem_resample")  # the backend's
        self.addParameter(_vector(FLOOD_POLYGONS, "Flood polygons"))
        self.addParameter(
            QgsProcessingParameterRasterLayer(
                DEM, "DEM (metres; instead of polygons)", optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                LEVEL,
                "Water level (metres, the DEM's datum)",
                QgsProcessingParameterNumber.Double,
                optional=True,
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterString(
                    SEED_XY, "Entry points: x,y; x,y (output CRS)", optional=True
                )
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterEnum(
                    DEM_RESAMPLE,
                    "Resample a DEM on another grid",
                    options=["no: the DEM must be on the output grid", *self.dem_methods],
                    defaultValue=0,
                )
            )
        )

    def read_scenario(
        self, parameters: Params, context: QgsProcessingContext, spec: ScenarioSpec, folder: Path
    ) -> None:
        polygons = self.parameterAsVectorLayer(parameters, FLOOD_POLYGONS, context)
        if polygons is not None:
            spec.flood_polygons = single_layer_file(polygons, folder)
        dem = self.parameterAsRasterLayer(parameters, DEM, context)
        if dem is not None:
            spec.dem = dem.source()
        if parameters.get(LEVEL) not in (None, ""):
            spec.level = self.parameterAsDouble(parameters, LEVEL, context)
        spec.seed_xy = parse_points(self.parameterAsString(parameters, SEED_XY, context) or "")
        resample = self.parameterAsEnum(parameters, DEM_RESAMPLE, context)
        spec.dem_resample = self.dem_methods[resample - 1] if resample > 0 else None


ZONES, ZONE_DESCRIPTION_FIELD, ZONE_CLASS_FIELD = (
    "ZONES",
    "ZONE_DESCRIPTION_FIELD",
    "ZONE_CLASS_FIELD",
)


class PlanningZonesAlgorithm(_ScenarioAlgorithm):
    """``rs-seg2any plan``: planned zones inpainted from their descriptions."""

    command = "plan"
    own_dests = ("zones", "zone_description_field", "zone_class_field")
    results = (
        ("BEFORE", ("before",), "Before (base image)"),
        ("IMAGE", ("image",), "After (with the planned zones)"),
        ("LABEL", ("label",), "Label map after"),
    )

    def name(self) -> str:
        return "planning_zones"

    def displayName(self) -> str:
        return "Planning zones"

    def shortHelpString(self) -> str:
        return (
            "Inpaints planned zones into a base image (or one rendered from the layout "
            "first): each zone is generated from its own description, the rest of the image "
            "stays. A zone's label is its class field value (a class of the taxonomy), else "
            "'planned development'."
        )

    def add_scenario_params(self) -> None:
        self.addParameter(_vector(ZONES, "Planned zones", optional=False))
        self.addParameter(
            QgsProcessingParameterField(
                ZONE_DESCRIPTION_FIELD, "Zone description field", None, ZONES
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                ZONE_CLASS_FIELD, "Zone class field", None, ZONES, optional=True
            )
        )

    def read_scenario(
        self, parameters: Params, context: QgsProcessingContext, spec: ScenarioSpec, folder: Path
    ) -> None:
        zones = self.parameterAsVectorLayer(parameters, ZONES, context)
        if zones is not None:
            spec.zones = single_layer_file(zones, folder)
        spec.zone_description_field = (
            self.parameterAsString(parameters, ZONE_DESCRIPTION_FIELD, context) or None
        )
        spec.zone_class_field = (
            self.parameterAsString(parameters, ZONE_CLASS_FIELD, context) or None
        )


SEASONS_PARAM = "SEASONS"


class SeasonsAlgorithm(_ScenarioAlgorithm):
    """``rs-seg2any seasons``: one layout rendered per season, with the same seed."""

    command = "seasons"
    needs_layout = True
    image_role = ""
    own_dests = ("seasons",)

    def season_names(self) -> list[str]:
        """The seasons the backend renders by default (its ``--seasons`` default)."""
        schema, _error = config.schema_or_error()
        if schema is None or not schema.has(self.command, "seasons"):
            return []
        default = schema.default(self.command, "seasons") or ""
        return [name.strip() for name in str(default).split(",") if name.strip()]

    def result_defs(self) -> tuple[tuple[str, tuple[str, ...], str], ...]:
        return tuple(
            (f"{season.upper()}_{kind.upper()}", (f"{season}_{kind}",), f"{season.title()} {kind}")
            for season in self.season_names()
            for kind in ("image", "label")
        )

    def name(self) -> str:
        return "seasons"

    def displayName(self) -> str:
        return "Seasons"

    def shortHelpString(self) -> str:
        return (
            "Renders one layout once per chosen season with the same seed: the scene stays, "
            "its look follows the season. Each season gets its image and label map."
        )

    def add_scenario_params(self) -> None:
        self.seasons = self.season_names()
        self.addParameter(
            QgsProcessingParameterEnum(
                SEASONS_PARAM,
                "Seasons",
                options=self.seasons,
                allowMultiple=True,
                defaultValue=list(range(len(self.seasons))),
            )
        )

    def read_scenario(
        self, parameters: Params, context: QgsProcessingContext, spec: ScenarioSpec, folder: Path
    ) -> None:
        chosen = self.parameterAsEnums(parameters, SEASONS_PARAM, context)
        spec.seasons = [self.seasons[i] for i in sorted(chosen)]


RECIPE, PARAMS, PAIRS, ROLES, AFTER = "RECIPE", "PARAMS", "PAIRS", "ROLES", "AFTER"


class ChangePairAlgorithm(_ScenarioAlgorithm):
    """``rs-seg2any change``: T1 and T2 images with the change mask between them."""

    command = "change"
    needs_layout = True
    image_role = ""
    own_dests = ("after", "recipe", "param", "pairs", "roles")
    results = (
        ("T1_IMAGE", ("t1_image",), "T1 image (before)"),
        ("T1_LABEL", ("t1_label",), "T1 label map"),
        ("T2_IMAGE", ("t2_image", "t2_000_image"), "T2 image (after; the first pair)"),
        ("T2_LABEL", ("t2_label", "t2_000_label"), "T2 label map (the first pair)"),
        ("CHANGE_MASK", ("change_mask", "000_change_mask"), "Change mask (the first pair)"),
        (
            "CHANGE_FROMTO",
            ("change_fromto", "000_change_fromto"),
            "Change from-to codes, from * 256 + to (the first pair)",
        ),
    )

    def name(self) -> str:
        return "change_pair"

    def displayName(self) -> str:
        return "Change pair"

    def shortHelpString(self) -> str:
        recipes = ", ".join(config.choices(self.command, "recipe")) or "(from the backend)"
        return (
            "Renders the layout as T1, then T2 changed only where the after layout differs: "
            "a second layout (AFTER, same fields), or one drawn by a change recipe. The change "
            "mask marks the changed pixels; the from-to raster codes each as from * 256 + to "
            f"(change_classes.csv). Recipes: {recipes}; PARAMS e.g. count=20, fraction=0.3, "
            "percent=15 (the preset's defaults otherwise). With PAIRS > 1 "
            "each pair lands in pair_NNN/ (the outputs name the first)."
        )

    def add_scenario_params(self) -> None:
        self.recipes = config.choices(self.command, "recipe")  # the backend's recipes
        self.addParameter(
            QgsProcessingParameterEnum(
                RECIPE, "Change recipe", options=self.recipes, defaultValue=0
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                PARAMS, "Recipe parameters: key=value, ... (default: the preset's)", optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                PAIRS, "Pairs (recipe draws)", QgsProcessingParameterNumber.Integer, 1, minValue=1
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterString(
                    ROLES,
                    "Roles: building,bare,road classes (default: the preset's)",
                    optional=True,
                )
            )
        )
        self.addParameter(_vector(AFTER, "After layout (replaces the recipe)"))

    def read_scenario(
        self, parameters: Params, context: QgsProcessingContext, spec: ScenarioSpec, folder: Path
    ) -> None:
        after = self.parameterAsVectorLayer(parameters, AFTER, context)
        layout = self.parameterAsVectorLayer(parameters, INPUT, context)
        if after is not None and layout is not None:
            spec.layout, spec.after, name = same_named_sources(layout, after, folder)
            spec.layer_name = name or None
            return
        if not self.recipes:
            raise ValueError("the backend lists no change recipes")
        spec.recipe = self.recipes[self.parameterAsEnum(parameters, RECIPE, context)]
        spec.params = parse_params(self.parameterAsString(parameters, PARAMS, context) or "")
        spec.pairs = self.parameterAsInt(parameters, PAIRS, context)
        spec.roles = self.parameterAsString(parameters, ROLES, context) or None


CLOUDS = "CLOUDS"


class CloudFillAlgorithm(_ScenarioAlgorithm):
    """``rs-seg2any cloudfill``: the clouds of a real image filled from a layout."""

    command = "cloudfill"
    needs_layout = True
    image_role = "required"
    has_grid = False
    own_dests = ("clouds",)
    results = (
        ("IMAGE", ("image",), "Cloud-free image"),
        ("LABEL", ("label",), "Label map (the layout on the image's grid)"),
    )

    def name(self) -> str:
        return "cloud_fill"

    def displayName(self) -> str:
        return "Cloud fill"

    def shortHelpString(self) -> str:
        return (
            "Fills the clouds of a real image: the pixels under the cloud mask (a raster on "
            "the image's grid, non-zero = cloud, or cloud polygons) are generated from the "
            "layout, which says what lies below; every other pixel is copied bit for bit. "
            "Outputs are on the image's grid."
        )

    def add_scenario_params(self) -> None:
        self.addParameter(
            QgsProcessingParameterMapLayer(
                CLOUDS,
                "Cloud mask (raster on the image's grid, or polygons)",
                types=[QgsProcessing.TypeRaster, QgsProcessing.TypeVectorPolygon],
            )
        )

    def read_scenario(
        self, parameters: Params, context: QgsProcessingContext, spec: ScenarioSpec, folder: Path
    ) -> None:
        layer = self.parameterAsLayer(parameters, CLOUDS, context)
        if isinstance(layer, QgsVectorLayer):
            spec.clouds = single_layer_file(layer, folder)
        elif layer is not None:
            spec.clouds = layer.source()


DAMAGE_LAYER, DISASTER = "DAMAGE_LAYER", "DISASTER"
LEVEL_FIELD, TYPE_FIELD, ORIGIN = "LEVEL_FIELD", "TYPE_FIELD", "ORIGIN"


class DamagePairAlgorithm(_ScenarioAlgorithm):
    """``rs-seg2any damage``: the post-event image of a damage layer or a disaster recipe."""

    command = "damage"
    own_dests = ("disaster", "damage_layer", "damage_level_field", "damage_type_field",
                 "origin", "param")  # fmt: skip
    results = (
        ("BEFORE", ("before",), "Pre-event image"),
        ("IMAGE", ("image",), "Post-event image"),
        ("LABEL", ("label",), "Label map after the disaster"),
        ("DAMAGE_LEVEL", ("damage_level",), "Damage level per pixel (1 = no damage .. 4)"),
    )

    def name(self) -> str:
        return "damage_pair"

    def displayName(self) -> str:
        return "Damage pair"

    def shortHelpString(self) -> str:
        return (
            "Renders the post-event image of a disaster over a base image (or one rendered "
            "from the layout first): damaged buildings and areas are re-rendered with the "
            "preset's damage descriptions, every other pixel is copied. The damage comes from "
            "DAMAGE_LAYER (polygons with a level: no-damage, minor-damage, major-damage, "
            "destroyed, and an optional type), or from the DISASTER's recipe drawn from the "
            "layout's buildings (fire front, earthquake from ORIGIN, or a DEM flood: DEM and "
            "LEVEL among the advanced options). Outputs: pre- and post-event images, the label "
            "map, the damage-level raster, and damage.gpkg with one polygon per building."
        )

    def add_scenario_params(self) -> None:
        self.disasters = config.choices(self.command, "disaster") or ["fire"]
        self.addParameter(
            QgsProcessingParameterEnum(
                DISASTER, "Disaster (preset and recipe)", options=self.disasters, defaultValue=0
            )
        )
        self.addParameter(_vector(DAMAGE_LAYER, "Damage layer (empty: the recipe draws it)"))
        self.addParameter(
            QgsProcessingParameterField(
                LEVEL_FIELD, "Damage level field", "level", DAMAGE_LAYER, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                TYPE_FIELD, "Damage type field", "type", DAMAGE_LAYER, optional=True
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterString(
                    ORIGIN, "Earthquake epicentre: x,y (output CRS)", optional=True
                )
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterString(
                    PARAMS, "Recipe parameters: key=value, ...", optional=True
                )
            )
        )

    def read_scenario(
        self, parameters: Params, context: QgsProcessingContext, spec: ScenarioSpec, folder: Path
    ) -> None:
        spec.disaster = self.disasters[self.parameterAsEnum(parameters, DISASTER, context)]
        layer = self.parameterAsVectorLayer(parameters, DAMAGE_LAYER, context)
        if layer is not None:
            spec.damage_layer = single_layer_file(layer, folder)
            spec.damage_level_field = (
                self.parameterAsString(parameters, LEVEL_FIELD, context) or None
            )
            spec.damage_type_field = self.parameterAsString(parameters, TYPE_FIELD, context) or None
            return
        points = parse_points(self.parameterAsString(parameters, ORIGIN, context) or "")
        spec.origin = points[0] if points else None
        spec.params = parse_params(self.parameterAsString(parameters, PARAMS, context) or "")


SCENARIO_ALGORITHMS = (
    FloodAlgorithm,
    PlanningZonesAlgorithm,
    SeasonsAlgorithm,
    ChangePairAlgorithm,
    CloudFillAlgorithm,
    DamagePairAlgorithm,
)
