"""The scenario commands (``flood``, ``plan``, ``seasons``, ``change``, ``cloudfill``,
``damage``, ``detection-set``) as one value, and which of their outputs become layers.

Like ``jobs``, free of QGIS imports: the dialogs, the Processing algorithms and the tests
build a ``ScenarioSpec``; its ``values`` are keyed by the CLI's dests and the backend's schema
(``cli_schema``) turns them into arguments, choices included: no flag is spelled here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cli_schema import CliSchema
from .jobs import CliOptions, merge_values

#: command -> what the task manager shows while it runs
COMMANDS = {
    "flood": "Flood scenario",
    "plan": "Planning zones",
    "seasons": "Seasons",
    "change": "Change pair",
    "cloudfill": "Cloud fill",
    "damage": "Damage pair",
    "detection-set": "Detection dataset",
}
#: commands whose base is a layout only (no image), and the one that needs both
LAYOUT_ONLY = ("seasons", "change")
IMAGE_AND_LAYOUT = ("cloudfill",)


@dataclass
class ScenarioSpec(CliOptions):
    """One scenario run. The base is ``image`` (outputs land on its grid) or ``layout``
    (rendered first on the grid options); seasons and change always need a layout, cloud
    fill an image and a layout."""

    command: str
    out_dir: str
    image: str | None = None
    layout: str | None = None
    layer_name: str | None = None
    class_field: str | None = None
    description_field: str | None = None
    taxonomy: str | None = None
    # flood: polygons, or a DEM and a water level
    flood_polygons: str | None = None
    dem: str | None = None
    level: float | None = None
    seed_xy: list[tuple[float, float]] = field(default_factory=list)
    dem_resample: str | None = None
    # plan
    zones: str | None = None
    zone_description_field: str | None = None
    zone_class_field: str | None = None
    # seasons
    seasons: list[str] = field(default_factory=list)
    # change: an after layout, or a recipe
    after: str | None = None
    recipe: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    pairs: int | None = None
    roles: str | None = None
    # cloudfill: a mask raster or polygons
    clouds: str | None = None
    # damage: a damage layer (levels, types), or the disaster's recipe (params, origin; the
    # flood recipe reads dem, level and seed_xy)
    damage_layer: str | None = None
    damage_level_field: str | None = None
    damage_type_field: str | None = None
    disaster: str | None = None
    origin: tuple[float, float] | None = None
    # detection-set: the objects layer and how the scene is chipped and exported
    objects: str | None = None
    object_class_field: str | None = None
    object_description_field: str | None = None
    chip_size: int | None = None
    chip_stride: int | None = None
    min_visible: float | None = None
    formats: list[str] | None = None  # None: the CLI's default
    segmentation: str | None = None

    def problems(self) -> list[str]:
        """Mistakes the CLI would reject, caught before a process is started."""
        found = []
        if self.command not in COMMANDS:
            return [f"unknown scenario {self.command!r}"]
        if not self.out_dir:
            found.append("choose an output folder")
        if self.command in LAYOUT_ONLY + IMAGE_AND_LAYOUT and not self.layout:
            found.append("choose a layout (polygon layer)")
        elif not (self.image or self.layout):
            found.append("choose a base image, or a layout to render one from")
        if self.command in IMAGE_AND_LAYOUT and not self.image:
            found.append("choose the image (GeoTIFF)")
        if self.layout and not self.class_field:
            found.append("choose the layout's class field")
        if self.layout and not self.image:
            found += self.grid_problems()
        if self.steps is not None and self.steps < 1:
            found.append("steps must be at least 1")
        found += getattr(self, f"_{self._name()}_problems")()
        return found

    def _flood_problems(self) -> list[str]:
        if bool(self.flood_polygons) == bool(self.dem):
            return ["give flood polygons, or a DEM and a water level (one of them)"]
        if self.dem and self.level is None:
            return ["a DEM flood needs a water level (metres)"]
        return []

    def _plan_problems(self) -> list[str]:
        found = []
        if not self.zones:
            found.append("choose the zones (polygon layer)")
        if not self.zone_description_field:
            found.append("choose the zones' description field")
        return found

    def _seasons_problems(self) -> list[str]:
        return [] if self.seasons else ["choose at least one season"]

    def _change_problems(self) -> list[str]:
        if bool(self.after) == bool(self.recipe):
            return ["give an after layout or a change recipe (one of them)"]
        if self.pairs is not None and self.pairs < 1:
            return ["make at least one pair"]
        return []

    def _cloudfill_problems(self) -> list[str]:
        return [] if self.clouds else ["choose the cloud mask (raster or polygons)"]

    def _damage_problems(self) -> list[str]:
        if self.damage_layer:
            return []
        if not self.layout:
            return ["choose a damage layer, or a layout for the recipe to draw buildings from"]
        return []

    def _detection_set_problems(self) -> list[str]:
        found = []
        if not self.objects and not any(self.extra.get(k) for k in ("insert", "insert_count")):
            found.append("choose the objects layer (or rare objects to insert)")
        if self.objects and not self.object_class_field:
            found.append("choose the objects' class field")
        if self.chip_size is not None and self.chip_size < 1:
            found.append("the chip size must be at least 1 pixel")
        if self.chip_stride is not None and self.chip_stride < 1:
            found.append("the chip stride must be at least 1 pixel")
        if self.min_visible is not None and not 0.0 <= self.min_visible <= 1.0:
            found.append("the minimum visible fraction must be within 0 and 1")
        if self.formats is not None and not self.formats:
            found.append("choose at least one export format")
        return found

    def _name(self) -> str:
        """The command as a method suffix (``detection-set`` -> ``detection_set``)."""
        return self.command.replace("-", "_")

    def verb(self) -> str:
        return COMMANDS.get(self.command, self.command)

    def input_name(self) -> str:
        return Path(self.layout or self.image or self.out_dir).stem

    def values(self, schema: CliSchema) -> dict[str, Any]:
        """The run by CLI dest, in command-line order (the schema spells the flags)."""
        values: dict[str, Any] = {"image": self.image}
        if self.layout:
            values |= {"layout": self.layout, "layer": self.layer_name,
                       "class_field": self.class_field,
                       "description_field": self.description_field}  # fmt: skip
        values["taxonomy"] = self.taxonomy
        values |= getattr(self, f"_{self._name()}_values")()
        if self.layout and not self.image:
            values |= self.grid_values()
        values |= self.generator_values(schema, self.command)
        return merge_values(values, self.job_values(self.out_dir))

    def to_args(self, schema: CliSchema) -> list[str]:
        """The CLI arguments, always with ``--progress json`` for the plugin to read."""
        return schema.build_argv(self.command, self.values(schema))

    def to_job(self, schema: CliSchema) -> dict[str, Any]:
        """The same run as a job file's mapping (``rs-seg2any run``, ``rs.run``)."""
        return schema.build_job(self.command, self.values(schema), "scenario")

    def _flood_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {"flood_polygons": self.flood_polygons, "dem": self.dem}
        if self.dem:
            values |= {"level": self.level, "seed_xy": list(self.seed_xy),
                       "dem_resample": self.dem_resample}  # fmt: skip
        return values

    def _plan_values(self) -> dict[str, Any]:
        return {"zones": self.zones, "zone_description_field": self.zone_description_field,
                "zone_class_field": self.zone_class_field}  # fmt: skip

    def _seasons_values(self) -> dict[str, Any]:
        return {"seasons": list(self.seasons)}

    def _change_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {"after": self.after, "recipe": self.recipe}
        if self.recipe:
            values["param"] = [f"{k}={v}" for k, v in self.params.items()]
            values["roles"] = self.roles
        values["pairs"] = self.pairs
        return values

    def _cloudfill_values(self) -> dict[str, Any]:
        return {"clouds": self.clouds}

    def _damage_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {"disaster": self.disaster, "damage_layer": self.damage_layer}
        if self.damage_layer:
            values |= {"damage_level_field": self.damage_level_field,
                       "damage_type_field": self.damage_type_field}  # fmt: skip
            return values
        values["param"] = [f"{k}={v}" for k, v in self.params.items()]
        values["origin"] = self.origin  # x,y as the CLI writes numbers
        if self.dem:
            values |= {"dem": self.dem, "level": self.level, "seed_xy": list(self.seed_xy),
                       "dem_resample": self.dem_resample}  # fmt: skip
        return values

    def _detection_set_values(self) -> dict[str, Any]:
        return {
            "objects": self.objects,
            "object_class_field": self.object_class_field,
            "object_description_field": self.object_description_field,
            "chip_size": self.chip_size,
            "chip_stride": self.chip_stride,
            "min_visible": self.min_visible,
            "formats": ",".join(self.formats) if self.formats else None,
            "segmentation": self.segmentation,
        }


def parse_params(text: str) -> dict[str, str]:
    """``"count=20, fraction=0.3"`` -> ``{"count": "20", "fraction": "0.3"}``; ValueError else."""
    params = {}
    for part in re.split(r"[,;\s]+", text.strip()):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"'{part}' is not key=value")
        params[key.strip()] = value.strip()
    return params


def parse_points(text: str) -> list[tuple[float, float]]:
    """``"x,y; x,y"`` -> points; ValueError on anything else."""
    points = []
    for part in text.split(";"):
        if not part.strip():
            continue
        values = [v for v in re.split(r"[,\s]+", part.strip()) if v]
        if len(values) != 2:
            raise ValueError(f"'{part.strip()}' is not x,y")
        points.append((float(values[0]), float(values[1])))
    return points


# -- which outputs become layers ---------------------------------------------------------


@dataclass(frozen=True)
class ResultLayer:
    """One output of a run as a layer: its key in the ``done`` event, its name in the group,
    how it is styled (image, label, contour, mask, depth, fromto; vector: a layer of a
    vector file, ``sublayer``) and whether it shows."""

    key: str
    name: str
    kind: str
    visible: bool = False
    sublayer: str = ""


_CHANGE_KEY = re.compile(r"^(?:t2_(?P<t2>\d{3})_|(?P<pair>\d{3})_)?(?P<rest>.+)$")


def result_layers(command: str, outputs: dict[str, str]) -> list[ResultLayer]:
    """The outputs of ``command`` that go into the layer tree, top of the group first.

    One image is visible (the one a run is for: after, the first season, T2); the other
    layers are there to compare with, switched off.
    """
    if command == "seasons":
        return _seasons_layers(outputs)
    if command == "change":
        return _change_layers(outputs)
    if command == "detection-set":
        return _detection_layers(outputs)
    if command == "damage":
        plan = [
            ResultLayer("damage_level", "damage level", "label"),
            ResultLayer("label", "label (post-event)", "label"),
            ResultLayer("image", "post-event", "image", True),
            ResultLayer("before_label", "label (pre-event)", "label"),
            ResultLayer("before", "pre-event", "image"),
        ]
    elif command == "cloudfill":
        plan = [
            ResultLayer("label", "label (filled)", "label"),
            ResultLayer("image", "cloud-free", "image", True),
        ]
    elif command in ("flood", "plan"):
        plan = [
            ResultLayer("flood_mask", "flood mask", "mask"),
            ResultLayer("flood_depth", "flood depth (m)", "depth"),
            ResultLayer("label", "label (after)", "label"),
            ResultLayer("image", "after", "image", True),
            ResultLayer("before", "before", "image"),
        ]
    else:  # layout, generate: as before the scenarios (the label hides under an image)
        plan = [
            ResultLayer("contour", "contour", "contour", True),
            ResultLayer("label", "label", "label", "image" not in outputs),
            ResultLayer("image", "image", "image", True),
        ]
    return [r for r in plan if outputs.get(r.key)]


def _seasons_layers(outputs: dict[str, str]) -> list[ResultLayer]:
    names = [k.removesuffix("_image") for k in outputs if k.endswith("_image")]
    images = [ResultLayer(f"{s}_image", s, "image", i == 0) for i, s in enumerate(names)]
    labels = [ResultLayer(f"{s}_label", f"{s} label", "label") for s in names]
    return [r for r in images + labels if outputs.get(r.key)]


def _change_layers(outputs: dict[str, str]) -> list[ResultLayer]:
    """t1_*, then per pair t2[_NNN]_*, [NNN_]change_mask and [NNN_]change_fromto."""
    pairs: dict[str, dict[str, str]] = {}
    for key in outputs:
        if key.startswith("t1_"):
            continue
        match = _CHANGE_KEY.match(key)
        assert match is not None
        tag = match.group("t2") or match.group("pair") or ""
        rest = match.group("rest") if tag else match.group("rest").removeprefix("t2_")
        pairs.setdefault(tag, {})[rest] = key
    plan: list[ResultLayer] = []
    for n, tag in enumerate(sorted(pairs)):
        keys = pairs[tag]
        suffix = f" #{tag}" if tag else ""
        for rest, name, kind in (("change_mask", "change mask", "mask"),
                                 ("change_fromto", "change from-to", "fromto"),
                                 ("label", "T2 label", "label"),
                                 ("image", "T2 (after)", "image")):  # fmt: skip
            if rest in keys:
                shown = rest == "image" and n == 0
                plan.append(ResultLayer(keys[rest], name + suffix, kind, shown))
    plan += [ResultLayer("t1_label", "T1 label", "label"),
             ResultLayer("t1_image", "T1 (before)", "image")]  # fmt: skip
    return [r for r in plan if outputs.get(r.key)]


def _detection_layers(outputs: dict[str, str]) -> list[ResultLayer]:
    """Boxes, oriented boxes and instance polygons from the GeoPackage, over the background
    when it was generated (a real background is the user's own layer already)."""
    plan = [
        ResultLayer("gpkg", "boxes", "vector", True, "boxes"),
        ResultLayer("gpkg", "oriented boxes", "vector", False, "oriented_boxes"),
        ResultLayer("gpkg", "instances", "vector", True, "instances"),
    ]
    folder = outputs.get("classes") or outputs.get("report")
    image = outputs.get("image")
    if image and folder and Path(image).is_relative_to(Path(folder).parent):
        plan.append(ResultLayer("image", "background", "image", True))
    return [r for r in plan if outputs.get(r.key)]
