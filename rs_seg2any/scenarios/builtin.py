"""The shipped scenarios as registry entries: each one's typed params and a short ``run``.

The params dataclasses are the scenario's own options (the layout, grid, sampler and tiling
options are common to every scenario); the CLI flags, the job-file keys and the QGIS dialogs
are built from their fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..detection.params import DetectionParams
from ..errors import InputError
from ..limits import check, check_number_list
from ..params import meta, opt
from ..yamlio import load_yaml_text
from .change_recipes import RECIPES
from .spec import ScenarioInputs, ScenarioSpec

BASE_IMAGE_HELP = "base GeoTIFF (else the layout is rendered first)"
CHANGE_RECIPES = tuple(RECIPES)  # the recipe names, from the one table of recipes
DAMAGE_DISASTERS = ("fire", "earthquake", "flood")  # damage_presets.DISASTERS


@dataclass(frozen=True)
class FloodParams:
    """A flood: polygons of the flooded area, or a DEM and a water level."""

    image: str | None = opt(None, BASE_IMAGE_HELP, input=True)
    flood_polygons: str | None = opt(
        None,
        "polygon layer of the flooded area",
        input=True,
        group="flood extent (polygons, or DEM + level)",
    )
    dem: str | None = opt(
        None, "DEM GeoTIFF (metres)", input=True, group="flood extent (polygons, or DEM + level)"
    )
    level: float | None = opt(
        None, "water surface elevation in metres", group="flood extent (polygons, or DEM + level)"
    )
    seed_xy: tuple[str, ...] = opt(
        (),
        "where water enters, in the image CRS (repeatable)",
        metavar="X,Y",
        group="flood extent (polygons, or DEM + level)",
    )
    dem_resample: str | None = opt(
        None,
        "resample a DEM that is on another grid (default: refuse)",
        choices=("nearest", "bilinear", "cubic"),
        group="flood extent (polygons, or DEM + level)",
    )
    preset: str = opt("flood", "flood preset name or YAML path")

    def __post_init__(self) -> None:
        check("level", self.level)
        for xy in self.seed_xy:
            check_number_list(xy, "--seed-xy", 2)
        if bool(self.flood_polygons) == bool(self.dem):
            raise InputError("give --flood-polygons or --dem with --level (one of them)")
        if self.dem and self.level is None:
            raise InputError("--dem needs --level (water surface elevation in metres)")


def _flood(inputs: ScenarioInputs, p: FloodParams) -> Any:
    from .flood import DemFlood, flood

    extent: Any
    if p.dem:
        seeds = []
        for xy in p.seed_xy:
            x, y = check_number_list(xy, "--seed-xy", 2)
            seeds.append((x, y))
        extent = DemFlood(Path(p.dem), float(p.level or 0.0), seeds, p.dem_resample)
    else:
        extent = Path(str(p.flood_polygons))
    return flood(
        inputs.out,
        inputs.generator(),
        extent=extent,
        base_image=p.image,
        polygons=inputs.polygons,
        grid=inputs.grid,
        opts=inputs.options(),
        preset=p.preset,
        progress=inputs.progress,
    )


@dataclass(frozen=True)
class PlanParams:
    """Planning zones (polygons with free-text descriptions) inpainted into a scene."""

    zones: str = opt(
        "", "polygon layer of the planned zones", input=True, required=True, group="zones"
    )
    zone_description_field: str = opt("", "zone description field", required=True, group="zones")
    zone_class_field: str | None = opt(
        None, "optional zone class (else 'planned development')", group="zones"
    )
    image: str | None = opt(None, BASE_IMAGE_HELP, input=True)
    preset: str = opt("planning", "planning preset name or YAML path")

    def __post_init__(self) -> None:
        if not self.zones or not self.zone_description_field:
            raise InputError("plan needs --zones and --zone-description-field")


def _plan(inputs: ScenarioInputs, p: PlanParams) -> Any:
    from .planning import plan

    return plan(
        inputs.out,
        inputs.generator(),
        Path(p.zones),
        description_field=p.zone_description_field,
        zone_class_field=p.zone_class_field,
        base_image=p.image,
        polygons=inputs.polygons,
        grid=inputs.grid,
        opts=inputs.options(),
        preset=p.preset,
        progress=inputs.progress,
    )


@dataclass(frozen=True)
class SeasonsParams:
    """One layout rendered for several seasons with the same seed."""

    seasons: str = opt("spring,summer,autumn,winter", "comma list of seasons")
    preset: str = opt("seasons", "seasons preset name or YAML path")

    def names(self) -> list[str]:
        return [s.strip() for s in self.seasons.split(",") if s.strip()]


def _seasons(inputs: ScenarioInputs, p: SeasonsParams) -> Any:
    from .seasons import seasons

    if inputs.polygons is None or inputs.grid is None:
        raise InputError("seasons needs --layout (a polygon layer) and its grid")
    return seasons(
        inputs.out,
        lambda lora: inputs.generator([lora] if lora else []),
        inputs.polygons,
        inputs.grid,
        p.names(),
        opts=inputs.options(),
        preset=p.preset,
        progress=inputs.progress,
    )


@dataclass(frozen=True)
class ChangeParams:
    """Bi-temporal change pairs: an after layout, or a recipe that derives one."""

    after: str | None = opt(
        None, "after layout (same fields as --layout)", input=True, group="change"
    )
    after_like: str | None = opt(
        None,
        "grid raster of the after layout (must equal the before)",
        input=True,
        group="change",
    )
    recipe: str | None = opt(
        None, "derive the after layout from a recipe", choices=CHANGE_RECIPES, group="change"
    )
    param: dict[str, Any] | None = field(
        default=None,
        metadata=meta(
            "recipe parameter, e.g. count=20, fraction=0.3, percent=15",
            metavar="KEY=VALUE",
            group="change",
        ),
    )
    roles: str | None = opt(
        None, "building,bare,road class names (default: from the preset)", group="change"
    )
    pairs: int = opt(1, "how many pairs (recipe draws)", group="change")
    preset: str = opt("change", "change preset name or YAML path")

    def __post_init__(self) -> None:
        check("pairs", self.pairs)


def _change(inputs: ScenarioInputs, p: ChangeParams) -> Any:
    from ..inputs import raster_grid
    from .change import change_pairs
    from .common import Polygons

    after = None
    if p.after:
        after = Polygons.read(p.after, options=inputs.layer_options, what="--after")
    after_grid = raster_grid(p.after_like, "--after-like") if p.after_like else None
    if inputs.polygons is None or inputs.grid is None:
        raise InputError("change needs --layout (a polygon layer) and its grid")
    return change_pairs(
        inputs.out,
        inputs.generator(),
        inputs.polygons,
        inputs.grid,
        after=after,
        after_grid=after_grid,
        recipe=p.recipe,
        recipe_params=dict(p.param or {}),
        roles=p.roles,
        pairs=p.pairs,
        opts=inputs.options(),
        preset=p.preset,
        progress=inputs.progress,
    )


@dataclass(frozen=True)
class CloudfillParams:
    """The clouds of a real image filled from a layout; clear pixels are kept exactly."""

    image: str = opt("", "the real image (GeoTIFF)", input=True, required=True)
    clouds: str = opt("", "cloud mask GeoTIFF (same grid) or polygons", input=True, required=True)

    def __post_init__(self) -> None:
        if not self.image or not self.clouds:
            raise InputError("cloudfill needs --image and --clouds")


def _cloudfill(inputs: ScenarioInputs, p: CloudfillParams) -> Any:
    from .cloudfill import cloudfill

    return cloudfill(
        inputs.out,
        inputs.generator(),
        p.image,
        p.clouds,
        inputs.polygons,
        opts=inputs.options(),
        progress=inputs.progress,
    )


@dataclass(frozen=True)
class DamageParams:
    """Disaster damage: a damage layer (levels and types), or the disaster's recipe."""

    image: str | None = opt(None, BASE_IMAGE_HELP, input=True)
    disaster: str = opt(
        "fire", "disaster: its preset's levels, types and recipe", choices=DAMAGE_DISASTERS
    )
    damage_layer: str | None = opt(
        None,
        "polygons (buildings, areas) with a damage level and type (else the recipe draws them)",
        input=True,
        group="damage layer",
    )
    damage_level_field: str = opt(
        "level",
        "level field: no-damage, minor-damage, major-damage, destroyed (or 1-4)",
        group="damage layer",
    )
    damage_type_field: str | None = opt(
        "type",
        "type field: roof damage, collapse, burnt, debris... (empty: by level)",
        group="damage layer",
    )
    damage_description_field: str | None = opt(
        None, "optional description field (else the preset's)", group="damage layer"
    )
    origin: str | None = opt(
        None,
        "earthquake epicentre in the image CRS (default: drawn by seed)",
        metavar="X,Y",
        group="recipe",
    )
    param: dict[str, Any] | None = field(
        default=None,
        metadata=meta(
            "recipe parameter, e.g. direction_deg=45, front=0.6, decay=0.3",
            metavar="KEY=VALUE",
            group="recipe",
        ),
    )
    dem: str | None = opt(None, "flood recipe: DEM GeoTIFF (metres)", input=True, group="recipe")
    level: float | None = opt(None, "flood recipe: water surface elevation (m)", group="recipe")
    seed_xy: tuple[str, ...] = opt(
        (), "flood recipe: where water enters (repeatable)", metavar="X,Y", group="recipe"
    )
    dem_resample: str | None = opt(
        None,
        "flood recipe: resample a DEM on another grid (default: refuse)",
        choices=("nearest", "bilinear", "cubic"),
        group="recipe",
    )
    preset: str | None = opt(
        None, "damage preset: fire, earthquake, flood or a YAML path (default: --disaster)"
    )

    def __post_init__(self) -> None:
        check("level", self.level)
        for xy in (*self.seed_xy, *([self.origin] if self.origin else [])):
            check_number_list(xy, "--seed-xy or --origin", 2)
        if self.dem and self.level is None:
            raise InputError("--dem needs --level (water surface elevation in metres)")


def _damage(inputs: ScenarioInputs, p: DamageParams) -> Any:
    from .damage import damage
    from .flood import DemFlood

    flood = None
    if p.dem:
        seeds = [tuple(check_number_list(xy, "--seed-xy", 2)) for xy in p.seed_xy]
        flood = DemFlood(Path(p.dem), float(p.level or 0.0), seeds, p.dem_resample)  # type: ignore[arg-type]
    origin = tuple(check_number_list(p.origin, "--origin", 2)) if p.origin else None
    return damage(
        inputs.out,
        inputs.generator(),
        damage_layer=p.damage_layer,
        disaster=p.disaster,
        level_field=p.damage_level_field,
        type_field=p.damage_type_field,
        description_field=p.damage_description_field,
        recipe_params=dict(p.param or {}),
        origin=origin,  # type: ignore[arg-type]
        flood=flood,
        base_image=p.image,
        polygons=inputs.polygons,
        grid=inputs.grid,
        opts=inputs.options(),
        preset=p.preset,
        progress=inputs.progress,
    )


def _detection_set(inputs: ScenarioInputs, p: Any) -> Any:
    from ..detection.build import run_detection_set

    return run_detection_set(inputs, p)


def parse_param(text: str) -> tuple[str, Any]:
    """One ``KEY=VALUE`` recipe parameter from the command line (the value read as YAML)."""
    if "=" not in text:
        raise InputError(f"--param {text!r} must be KEY=VALUE")
    key, value = text.split("=", 1)
    parsed = load_yaml_text(value, f"--param {key.strip()}")
    if (isinstance(parsed, float) and parsed != parsed) or parsed in (float("inf"), -float("inf")):
        raise InputError(f"--param {key.strip()}={value} must be a finite number")
    return key.strip(), parsed


SHIPPED: tuple[ScenarioSpec, ...] = (
    ScenarioSpec(
        "flood",
        FloodParams,
        _flood,
        help="flood an image: polygons, or a DEM and a water level",
        presets=("flood",),
        refine=True,
    ),
    ScenarioSpec(
        "plan",
        PlanParams,
        _plan,
        help="inpaint planning zones (polygons + descriptions)",
        presets=("planning",),
        refine=True,
    ),
    ScenarioSpec(
        "seasons",
        SeasonsParams,
        _seasons,
        layout="required",
        help="render one layout for several seasons (same seed)",
        presets=("seasons",),
        refine=True,
    ),
    ScenarioSpec(
        "change",
        ChangeParams,
        _change,
        layout="required",
        help="bi-temporal change pairs with change masks",
        presets=("change",),
        refine=True,
    ),
    ScenarioSpec(
        "cloudfill",
        CloudfillParams,
        _cloudfill,
        layout="required",
        grid=False,
        help="fill the clouds of a real image from a layout",
        refine=True,
    ),
    ScenarioSpec(
        "damage",
        DamageParams,
        _damage,
        help="disaster damage pairs (fire, earthquake, flood) with per-building damage labels",
        presets=("damage_fire", "damage_earthquake", "damage_flood"),
        refine=True,
    ),
    ScenarioSpec(
        "detection-set",
        DetectionParams,
        _detection_set,
        help="detection training set: objects over a real or generated background, rare "
        "objects inserted, chips in COCO, YOLO, DOTA and GeoJSON, filter report, STAC",
        refine=True,
    ),
)
"""The shipped scenarios, in the order the CLI lists them."""
