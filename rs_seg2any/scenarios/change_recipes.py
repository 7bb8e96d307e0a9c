"""Change recipes: derive a T2 polygon layout from a T1 layout, for synthetic change pairs.

A change detector learns from pairs of images whose only differences are real land-cover
changes. Generating both images from layouts that differ by a known, controlled edit (new
buildings, demolition, a new road, urban growth) gives such pairs with exact change labels.

Every recipe takes a GeoDataFrame in a projected CRS (metres), the name of its class column and
the :class:`ChangeRoles` naming the classes of the taxonomy it works with, and returns a new
frame: the input is never modified, the CRS and all columns are kept and the index is reset.
New geometry only takes *bare* land (never water, vegetation, roads or buildings), and is cut
out of the polygons it replaces, so the T2 layer has no overlaps that T1 did not have (the
rasteriser would resolve them by priority anyway, but an explicit layer is easier to audit).
Class names are compared case-insensitively after stripping, as the layout loader does.
"""

from __future__ import annotations

import inspect
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely import affinity
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from ..errors import ScenarioError

__all__ = [
    "DUBAI_AERIAL_ROLES",
    "RECIPES",
    "ChangeRoles",
    "apply_recipe",
    "demolition",
    "new_buildings",
    "road_construction",
    "urban_growth",
]

_POLYGONAL = ("Polygon", "MultiPolygon")
# Growth only keeps pieces of bare land within this distance of their building, so a building
# never "jumps" over a road or a canal into the bare land on the other side.
_TOUCH_TOL_M = 1.0
# Bisection steps that refine the last growth step (step_m / 2**12: millimetres).
_REFINE_STEPS = 12
# Placement tries per requested building before new_buildings gives up.
_TRIES_PER_BUILDING = 300


def _norm(value: Any) -> str:
    """Class name as compared: stripped and case-folded; missing values compare as ''."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip().casefold()


@dataclass(frozen=True)
class ChangeRoles:
    """Class names a recipe works with, for one taxonomy (e.g. dubai_aerial: building/land/road).

    ``bare`` is the land that new buildings, roads and growth may take; every other class
    (water, vegetation, ...) is left alone by all recipes.
    """

    building: str
    bare: str
    road: str

    def __post_init__(self) -> None:
        names = {"building": self.building, "bare": self.bare, "road": self.road}
        for role, name in names.items():
            if not isinstance(name, str) or not _norm(name):
                raise ScenarioError(f"change roles: the {role} class name is empty")
        # building and road may share a class (WorldCover's "built-up" holds both); the bare
        # class must differ from both, or a recipe would take what it builds
        if _norm(self.bare) in {_norm(self.building), _norm(self.road)}:
            raise ScenarioError(
                f"change roles: the bare class must differ from the building and road classes, "
                f"got {self.building!r}, {self.bare!r}, {self.road!r}"
            )


DUBAI_AERIAL_ROLES = ChangeRoles(building="building", bare="land", road="road")
"""The roles of the ``dubai_aerial`` taxonomy (its bare class is ``land``)."""


# --------------------------------------------------------------------------------------------
# Shared plumbing
# --------------------------------------------------------------------------------------------


def _polygonal(geom: BaseGeometry | None) -> BaseGeometry:
    """The areal part of a geometry (overlays of touching polygons can yield lines/points)."""
    if geom is None or geom.is_empty:
        return shapely.Polygon()
    if geom.geom_type in _POLYGONAL:
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in _POLYGONAL]
    if not parts:
        return shapely.Polygon()
    return _polygonal(shapely.union_all(parts))


def _repair(geoms: np.ndarray) -> np.ndarray:
    """Valid polygonal copies of the geometries, for computation only (None stays None).

    Overlays raise on invalid input (self-intersections are common in digitised layers); the
    rows a recipe does not touch keep their original geometry.
    """
    out = geoms.copy()
    present = ~shapely.is_missing(out)
    invalid = present & ~shapely.is_valid(out)
    if invalid.any():
        out[invalid] = shapely.make_valid(out[invalid])
    for i in np.flatnonzero(present):
        if out[i].geom_type not in _POLYGONAL:
            out[i] = _polygonal(out[i])
    return out


def _check_crs(crs: Any, what: str) -> None:
    """Sizes, widths and steps are metres: refuse layers whose coordinates are not."""
    if crs is None:
        raise ScenarioError(
            f"{what}: the layer has no CRS; sizes are in metres, so set its projected CRS "
            f"(e.g. gdf.set_crs('EPSG:32640')) before applying a change recipe"
        )
    if crs.is_geographic:
        raise ScenarioError(
            f"{what}: the layer is in a geographic CRS ({crs.name}, degrees); sizes are in "
            f"metres, so reproject it to a projected CRS first, e.g. "
            f"gdf.to_crs(gdf.estimate_utm_crs())"
        )
    units = {ax.unit_name for ax in crs.axis_info[:2]} if crs.axis_info else set()
    if not units <= {"metre", "meter", "m"}:
        raise ScenarioError(
            f"{what}: the layer's CRS ({crs.name}) is in {', '.join(sorted(units)) or 'unknown'}"
            f" units; sizes are in metres, so reproject it to a projected CRS in metres first"
        )


class _Layer:
    """A working copy of the input frame with normalised classes and repaired geometries."""

    def __init__(
        self, gdf: gpd.GeoDataFrame, class_field: str, roles: ChangeRoles, what: str
    ) -> None:
        if not isinstance(gdf, gpd.GeoDataFrame):
            raise ScenarioError(f"{what}: expected a GeoDataFrame, got {type(gdf).__name__}")
        if class_field not in gdf.columns:
            raise ScenarioError(
                f"{what}: the layer has no class column {class_field!r}; its columns are "
                f"{', '.join(map(str, gdf.columns))}"
            )
        _check_crs(gdf.crs, what)
        self.what = what
        self.roles = roles
        self.class_field = class_field
        self.frame: gpd.GeoDataFrame = gdf.copy().reset_index(drop=True)
        self.frame.attrs = dict(gdf.attrs)
        self.raw_classes = self.frame[class_field].tolist()
        self.classes = np.array([_norm(v) for v in self.raw_classes], dtype=object)
        self.geoms = _repair(np.asarray(self.frame.geometry.values, dtype=object))
        has_area = ~shapely.is_missing(self.geoms)
        has_area[has_area] = ~shapely.is_empty(self.geoms[has_area])
        self.has_area = has_area

    def mask(self, name: str) -> np.ndarray:
        """Rows of one class (by name) that have a geometry."""
        return np.asarray((self.classes == _norm(name)) & self.has_area, dtype=bool)

    def union(self, mask: np.ndarray) -> BaseGeometry:
        """Union of the (repaired) geometries of the masked rows."""
        if not mask.any():
            return shapely.Polygon()
        return _polygonal(shapely.union_all(self.geoms[mask]))

    def spelling(self, name: str) -> str:
        """The class value as the layer writes it (e.g. 'Building'), else the role's name."""
        found = Counter(
            str(raw)
            for raw, c in zip(self.raw_classes, self.classes, strict=True)
            if c == _norm(name)
        )
        return found.most_common(1)[0][0] if found else name

    def present(self) -> str:
        """The classes of the layer, for error messages."""
        names = sorted(
            {str(v).strip() for v, c in zip(self.raw_classes, self.classes, strict=True) if c}
        )
        return ", ".join(names[:12]) + (", ..." if len(names) > 12 else "") if names else "none"

    def require(self, name: str, role: str) -> np.ndarray:
        """Rows of a role's class, or a ScenarioError naming the classes that are there."""
        mask = self.mask(name)
        if not mask.any():
            raise ScenarioError(
                f"{self.what}: the layer has no {role} (class {name!r} in column "
                f"{self.class_field!r}); classes present: {self.present()}"
            )
        return mask

    def bare_available(self) -> BaseGeometry:
        """Bare land not covered by any other polygon: the only land recipes may take."""
        bare = self.require(self.roles.bare, "bare land")
        others = self.has_area & ~bare
        free = self.union(bare)
        if others.any():
            free = _polygonal(free.difference(self.union(others)))
        if free.is_empty:
            raise ScenarioError(
                f"{self.what}: all bare land (class {self.roles.bare!r}) is covered by other "
                f"polygons; there is no free bare land to change"
            )
        return free

    def set_geometries(self, rows: dict[int, BaseGeometry]) -> None:
        """Replace the geometry of some rows (keeping the others' original objects)."""
        if not rows:
            return
        col = np.asarray(self.frame.geometry.values, dtype=object).copy()
        for i, geom in rows.items():
            col[i] = geom
            self.geoms[i] = geom
        name = self.frame.geometry.name
        self.frame[name] = gpd.GeoSeries(list(col), index=self.frame.index, crs=self.frame.crs)

    def cut(self, mask: np.ndarray, cutter: BaseGeometry) -> None:
        """Cut ``cutter`` out of the masked rows; rows left empty are dropped at the end."""
        if cutter.is_empty:
            return
        shapely.prepare(cutter)
        changed: dict[int, BaseGeometry] = {}
        for i in np.flatnonzero(mask):
            if cutter.intersects(self.geoms[i]):
                changed[int(i)] = _polygonal(self.geoms[i].difference(cutter))
        self.set_geometries(changed)

    def set_values(self, rows: np.ndarray, column: str, value: Any) -> None:
        """Write one value into some rows (adding it to a categorical's categories if needed)."""
        if column not in self.frame.columns:
            self.frame[column] = pd.Series([None] * len(self.frame), dtype=object)
        series = self.frame[column]
        if isinstance(series.dtype, pd.CategoricalDtype) and value is not None:
            if value not in series.cat.categories:
                self.frame[column] = series.cat.add_categories([value])
        elif isinstance(value, str) and pd.api.types.is_numeric_dtype(series.dtype):
            self.frame[column] = series.astype(object)
        self.frame.loc[rows, column] = value

    def append(
        self,
        geoms: list[BaseGeometry],
        class_value: str,
        description: str | None,
        description_field: str | None,
    ) -> None:
        """Append rows with a geometry and a class; other columns get None (NaN if numeric)."""
        if not geoms:
            return
        if description_field is not None and description_field not in self.frame.columns:
            self.frame[description_field] = pd.Series([None] * len(self.frame), dtype=object)
        n, k = len(self.frame), len(geoms)
        attrs = dict(self.frame.attrs)
        frame = self.frame.reindex(range(n + k))
        new = np.arange(n, n + k)
        for column in frame.columns:
            if frame[column].dtype == object and column != frame.geometry.name:
                frame.loc[new, column] = None
        self.frame = frame
        name = frame.geometry.name
        col = np.asarray(frame.geometry.values, dtype=object).copy()
        col[n:] = geoms
        self.frame[name] = gpd.GeoSeries(list(col), index=frame.index, crs=frame.crs)
        self.set_values(new, self.class_field, class_value)
        if description_field is not None:
            self.set_values(new, description_field, description)
        self.frame.attrs = attrs
        self.raw_classes += [class_value] * k
        self.classes = np.concatenate(
            [self.classes, np.array([_norm(class_value)] * k, dtype=object)]
        )
        self.geoms = np.concatenate([self.geoms, np.array(geoms, dtype=object)])
        self.has_area = np.concatenate([self.has_area, np.ones(k, dtype=bool)])

    def result(self) -> gpd.GeoDataFrame:
        """The edited copy: rows emptied by cutting dropped, index reset."""
        attrs = dict(self.frame.attrs)
        geoms = np.asarray(self.frame.geometry.values, dtype=object)
        emptied = ~shapely.is_missing(geoms) & self.has_area
        emptied[emptied] = shapely.is_empty(geoms[emptied])
        out = self.frame.loc[~emptied].reset_index(drop=True)
        out.attrs = attrs
        return out


def _check_description(description: str | None, description_field: str | None) -> None:
    if description is not None and description_field is None:
        raise ScenarioError(
            "a description was given without description_field: name the column it goes in"
        )


def _random_point(geom: BaseGeometry, rng: np.random.Generator) -> tuple[float, float] | None:
    """A point uniformly distributed over a polygonal geometry (by area), or None if degenerate."""
    parts = shapely.get_parts(geom)
    areas = shapely.area(parts)
    total = float(areas.sum())
    if total <= 0:
        return None
    part = parts[rng.choice(len(parts), p=areas / total)]
    x0, y0, x1, y1 = part.bounds
    shapely.prepare(part)
    for _ in range(20):
        xs = rng.uniform(x0, x1, 64)
        ys = rng.uniform(y0, y1, 64)
        inside = np.flatnonzero(shapely.contains_xy(part, xs, ys))
        if inside.size:
            return float(xs[inside[0]]), float(ys[inside[0]])
    return None


# --------------------------------------------------------------------------------------------
# Recipes
# --------------------------------------------------------------------------------------------


def new_buildings(
    gdf: gpd.GeoDataFrame,
    class_field: str,
    roles: ChangeRoles,
    *,
    count: int,
    rng: np.random.Generator,
    size_m: tuple[float, float] = (8.0, 25.0),
    rotate: bool = False,
    description: str | None = None,
    description_field: str | None = None,
) -> gpd.GeoDataFrame:
    """Add ``count`` rectangular buildings on free bare land (construction on vacant plots).

    Each side is drawn uniformly from ``size_m`` (metres); ``rotate`` turns each rectangle by a
    random angle. A rectangle lies entirely inside bare land that no other polygon covers, does
    not overlap the other new ones, and is cut out of the bare polygons. Raises ScenarioError if
    the bare land cannot hold ``count`` such rectangles (after a bounded number of tries).
    """
    what = "new_buildings"
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 1:
        raise ScenarioError(f"{what}: count must be a whole number >= 1, got {count!r}")
    lo, hi = (float(v) for v in size_m)
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise ScenarioError(f"{what}: size_m must be (min, max) with 0 < min <= max, got {size_m}")
    _check_description(description, description_field)
    layer = _Layer(gdf, class_field, roles, what)
    bare = layer.require(roles.bare, "bare land")
    free = layer.bare_available()
    shapely.prepare(free)
    placed: list[BaseGeometry] = []
    for _ in range(_TRIES_PER_BUILDING * int(count)):
        if len(placed) == count:
            break
        centre = _random_point(free, rng)
        if centre is None:
            break
        x, y = centre
        w, h = rng.uniform(lo, hi, 2)
        rect: BaseGeometry = box(x - w / 2, y - h / 2, x + w / 2, y + h / 2)
        if rotate:
            rect = affinity.rotate(rect, float(rng.uniform(0.0, 180.0)), origin=(x, y))
        if free.contains(rect):
            placed.append(rect)
            free = _polygonal(free.difference(rect))
            shapely.prepare(free)
    if len(placed) < count:
        raise ScenarioError(
            f"{what}: only {len(placed)} of {count} buildings of {lo:g}-{hi:g} m fit on the free "
            f"bare land (class {roles.bare!r}); ask for fewer or smaller buildings"
        )
    layer.cut(bare, shapely.union_all(placed))
    layer.append(placed, layer.spelling(roles.building), description, description_field)
    return layer.result()


def demolition(
    gdf: gpd.GeoDataFrame,
    class_field: str,
    roles: ChangeRoles,
    *,
    fraction: float,
    rng: np.random.Generator,
    description: str | None = None,
    description_field: str | None = None,
) -> gpd.GeoDataFrame:
    """Demolish a random ``fraction`` of the buildings: they become bare land, same footprint.

    ``round(fraction * n)`` buildings (at least one) are reclassified in place; the cleared plot
    keeps its exact outline, which is what a change mask of a demolition looks like. With a
    ``description_field`` their description becomes ``description`` (a building's own text
    would otherwise describe land as a building).
    """
    what = "demolition"
    if not (isinstance(fraction, int | float | np.floating) and 0 < fraction <= 1):
        raise ScenarioError(f"{what}: fraction must be in (0, 1], got {fraction!r}")
    layer = _Layer(gdf, class_field, roles, what)
    rows = np.flatnonzero(layer.require(roles.building, "buildings to demolish"))
    k = max(1, round(float(fraction) * len(rows)))
    chosen = np.sort(rng.choice(rows, size=k, replace=False))
    layer.set_values(chosen, class_field, layer.spelling(roles.bare))
    if description_field is not None:
        layer.set_values(chosen, description_field, description)
    return layer.result()


def _random_line(layer: _Layer, rng: np.random.Generator) -> shapely.LineString:
    """A straight line through a random point of free bare land, crossing the whole layer."""
    centre = _random_point(layer.bare_available(), rng)
    if centre is None:
        raise ScenarioError(f"{layer.what}: the free bare land has no area to put a road on")
    x0, y0, x1, y1 = (float(v) for v in layer.frame.total_bounds)
    half = math.hypot(x1 - x0, y1 - y0) + 1.0
    angle = float(rng.uniform(0.0, math.pi))
    dx, dy = half * math.cos(angle), half * math.sin(angle)
    x, y = centre
    return shapely.LineString([(x - dx, y - dy), (x + dx, y + dy)])


def road_construction(
    gdf: gpd.GeoDataFrame,
    class_field: str,
    roles: ChangeRoles,
    *,
    rng: np.random.Generator,
    width_m: float = 12.0,
    line: BaseGeometry | None = None,
    description: str | None = None,
    description_field: str | None = None,
) -> gpd.GeoDataFrame:
    """Build a road of ``width_m`` metres along ``line`` (or a random straight line).

    The line is buffered by half the width with flat caps and clipped to the layer's bounds.
    Roads do not demolish anything: the new road polygon only takes free bare land (it is cut
    where it would cross buildings, water or existing roads, which stay as they are), and is
    cut out of the bare polygons. A random line passes through bare land and crosses the layer.
    """
    what = "road_construction"
    if not (isinstance(width_m, int | float | np.floating) and 0 < width_m < math.inf):
        raise ScenarioError(f"{what}: width_m must be a positive number of metres, got {width_m!r}")
    _check_description(description, description_field)
    layer = _Layer(gdf, class_field, roles, what)
    bare = layer.require(roles.bare, "bare land")
    if line is None:
        line = _random_line(layer, rng)
    elif (
        not isinstance(line, BaseGeometry)
        or line.geom_type not in ("LineString", "MultiLineString")
        or line.length <= 0
    ):
        raise ScenarioError(f"{what}: line must be a LineString of non-zero length, got {line!r}")
    bounds = box(*(float(v) for v in layer.frame.total_bounds))
    corridor = shapely.buffer(line, float(width_m) / 2, cap_style="flat")
    road = _polygonal(
        shapely.intersection(shapely.intersection(corridor, bounds), layer.bare_available())
    )
    if road.is_empty or road.area <= 0:
        raise ScenarioError(
            f"{what}: the road corridor crosses no free bare land (class {roles.bare!r}); "
            f"give a line through bare land"
        )
    layer.cut(bare, road)
    layer.append([road], layer.spelling(roles.road), description, description_field)
    return layer.result()


def _growth(buildings: np.ndarray, free: BaseGeometry, distance: float) -> list[BaseGeometry]:
    """The bare land each building takes when it grows by ``distance`` (mitre joins).

    Pieces farther than _TOUCH_TOL_M from their building are dropped (no jumping over roads);
    where two buildings reach the same land, the earlier feature takes it, so pieces never
    overlap each other.
    """
    reach = shapely.intersection(shapely.buffer(buildings, distance, join_style="mitre"), free)

    def near(piece: BaseGeometry, building: BaseGeometry) -> BaseGeometry:
        parts = [
            p
            for p in shapely.get_parts(_polygonal(piece))
            if p.area > 0 and p.distance(building) <= _TOUCH_TOL_M
        ]
        return _polygonal(shapely.union_all(parts)) if parts else shapely.Polygon()

    kept = [near(piece, b) for piece, b in zip(reach, buildings, strict=True)]
    tree = shapely.STRtree(kept)
    pieces: list[BaseGeometry] = []
    for i, piece in enumerate(kept):
        if not piece.is_empty:
            earlier = [pieces[j] for j in tree.query(piece) if j < i and not pieces[j].is_empty]
            if earlier:
                piece = near(piece.difference(shapely.union_all(earlier)), buildings[i])
        pieces.append(piece)
    return pieces


def urban_growth(
    gdf: gpd.GeoDataFrame,
    class_field: str,
    roles: ChangeRoles,
    *,
    percent: float,
    rng: np.random.Generator,
    step_m: float = 2.0,
) -> gpd.GeoDataFrame:
    """Grow the built area by ``percent`` % by extending buildings outward into bare land.

    Buildings are buffered (mitre joins, so rectangles stay rectangular) into free bare land
    only, by a distance increased in ``step_m`` steps until the built area reaches the target
    or stops growing; the last step is refined by bisection, so the target is met closely
    rather than overshot by up to a step. The bare polygons lose what the buildings gain.
    ``attrs["growth_achieved_percent"]`` of the result reports the growth reached (below
    ``percent`` when the bare land next to buildings runs out) and
    ``attrs["growth_distance_m"]`` the distance used. ``rng`` is unused: growth is
    deterministic, the parameter keeps all recipes callable alike.
    """
    del rng
    what = "urban_growth"
    if not (isinstance(percent, int | float | np.floating) and 0 < percent < math.inf):
        raise ScenarioError(f"{what}: percent must be > 0, got {percent!r}")
    if not (isinstance(step_m, int | float | np.floating) and 0 < step_m < math.inf):
        raise ScenarioError(f"{what}: step_m must be a positive number of metres, got {step_m!r}")
    layer = _Layer(gdf, class_field, roles, what)
    rows = np.flatnonzero(layer.require(roles.building, "buildings to grow"))
    bare = layer.require(roles.bare, "bare land")
    free = layer.bare_available()
    shapely.prepare(free)
    buildings = layer.geoms[rows]
    base = float(_polygonal(shapely.union_all(buildings)).area)
    target = base * float(percent) / 100.0
    x0, y0, x1, y1 = (float(v) for v in layer.frame.total_bounds)
    max_distance = math.hypot(x1 - x0, y1 - y0) + step_m
    eps = 1e-9 * max(base, 1.0)

    def gain(pieces: list[BaseGeometry]) -> float:
        return float(sum(p.area for p in pieces))

    distance, pieces, prev = 0.0, [shapely.Polygon()] * len(rows), 0.0
    while True:
        trial = distance + float(step_m)
        trial_pieces = _growth(buildings, free, trial)
        now = gain(trial_pieces)
        if now >= target:
            lo, hi, pieces = distance, trial, trial_pieces
            for _ in range(_REFINE_STEPS):
                mid = (lo + hi) / 2
                mid_pieces = _growth(buildings, free, mid)
                if gain(mid_pieces) >= target:
                    hi, pieces = mid, mid_pieces
                else:
                    lo = mid
            distance = hi
            break
        if now <= prev + eps or trial >= max_distance:
            break
        distance, pieces, prev = trial, trial_pieces, now
    grown = gain(pieces)
    if grown <= eps:
        raise ScenarioError(
            f"{what}: no free bare land (class {roles.bare!r}) lies next to any building; "
            f"there is nowhere to grow"
        )
    changed = {
        int(i): _polygonal(shapely.union(layer.geoms[i], piece))
        for i, piece in zip(rows, pieces, strict=True)
        if not piece.is_empty
    }
    layer.cut(bare, shapely.union_all([p for p in pieces if not p.is_empty]))
    layer.set_geometries(changed)
    out = layer.result()
    out.attrs["growth_achieved_percent"] = 100.0 * grown / base
    out.attrs["growth_distance_m"] = distance
    return out


RECIPES: dict[str, Callable[..., gpd.GeoDataFrame]] = {
    "new_buildings": new_buildings,
    "demolition": demolition,
    "road_construction": road_construction,
    "urban_growth": urban_growth,
}
"""The change recipes by name (the names a job file or the CLI uses)."""


def apply_recipe(
    gdf: gpd.GeoDataFrame,
    class_field: str,
    roles: ChangeRoles,
    recipe: str,
    *,
    rng: np.random.Generator | int,
    **params: Any,
) -> gpd.GeoDataFrame:
    """Apply a recipe by name, so jobs and the CLI can name recipes in configuration.

    ``rng`` may be a seed. Unknown recipe names and parameters raise ScenarioError listing the
    accepted ones instead of a TypeError traceback.
    """
    func = RECIPES.get(str(recipe).strip())
    if func is None:
        raise ScenarioError(
            f"unknown change recipe {recipe!r}; known recipes: {', '.join(sorted(RECIPES))}"
        )
    keywords = [
        p
        for p in inspect.signature(func).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "rng"
    ]
    accepted = [p.name for p in keywords]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ScenarioError(
            f"change recipe {recipe!r} has no parameter {', '.join(unknown)}; "
            f"it accepts: {', '.join(accepted)}"
        )
    missing = [p.name for p in keywords if p.default is p.empty and p.name not in params]
    if missing:
        raise ScenarioError(f"change recipe {recipe!r} needs parameter {', '.join(missing)}")
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    return func(gdf, class_field, roles, rng=generator, **params)
