"""Object instances on a scene grid: one id per object, rasterised by GDAL's pixel-centre rule.

Instances come from an objects layer (one polygon, one instance: touching buildings never
merge, because each polygon is burnt with its own id; where two overlap, the later one in the
layer is on top and the earlier one counts as occluded there), or from a class raster (a mask
without polygons, such as the Dubai masks): there an instance is a 4-connected component of one
class, so touching objects of that class merge into one instance. Nothing can split them
without extra information; the objects report says which source each instance came from.

Memory: the instance map is one array of the grid (uint32); the per-object table holds a few
numbers per object, so the cost of chipping does not grow with the number of objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio.features
import shapely
from affine import Affine
from odc.geo.geobox import GeoBox
from scipy import ndimage

from ..errors import InputError, LayoutError

MAX_OBJECTS = 2**32 - 2
"""Instance ids are uint32 (0 is background)."""


@dataclass(frozen=True)
class ObjectInfo:
    """One object of a scene: its id in the instance map and what is known of its whole extent.

    ``full_area`` is the number of pixels it covers on the grid's pixel lattice with nothing on
    top of it and no image border (its polygon rasterised alone); ``full_box`` its pixel bounds
    ``(col0, row0, col1, row1)`` (ends exclusive) on that lattice, possibly beyond the grid.
    Visible fractions and the truncated flag of a chip are measured against them.
    """

    id: int
    category: str
    description: str
    full_area: int
    full_box: tuple[int, int, int, int]
    source: str  # "polygon", "component" (of a class raster) or "inserted"
    geometry: Any = None  # the polygon in the grid CRS (None for components)


@dataclass
class Scene:
    """A scene's instance map on its grid and the table of its objects (``objects[id - 1]``)."""

    grid: GeoBox
    instances: np.ndarray  # (h, w) uint32, 0 = no object
    objects: list[ObjectInfo]

    @property
    def categories(self) -> list[str]:
        """The object classes in first-seen order (their index + 1 is the category id)."""
        seen: dict[str, None] = {}
        for obj in self.objects:
            seen.setdefault(obj.category, None)
        return list(seen)

    def add(self, other: Scene) -> Scene:
        """This scene with ``other``'s objects drawn on top (same grid), ids renumbered."""
        if other.grid != self.grid:
            raise InputError("the scenes to combine are on different grids")
        shift = len(self.objects)
        instances = self.instances.copy()
        on = other.instances > 0
        instances[on] = other.instances[on] + shift
        moved = [
            ObjectInfo(o.id + shift, o.category, o.description, o.full_area, o.full_box,
                       o.source, o.geometry)
            for o in other.objects
        ]  # fmt: skip
        return Scene(self.grid, instances, [*self.objects, *moved])


def _pixel_box(geom: Any, affine: Affine) -> tuple[int, int, int, int]:
    """Pixel bounds (col0, row0, col1, row1) of a geometry on the lattice of ``affine``
    (north-up), widened by one pixel so every centre inside the geometry is in it."""
    inv = ~affine
    xmin, ymin, xmax, ymax = geom.bounds
    cols, rows = zip(*(inv * (x, y) for x in (xmin, xmax) for y in (ymin, ymax)), strict=True)
    return (
        int(np.floor(min(cols))) - 1,
        int(np.floor(min(rows))) - 1,
        int(np.ceil(max(cols))) + 1,
        int(np.ceil(max(rows))) + 1,
    )


def footprint(geom: Any, grid: GeoBox) -> tuple[np.ndarray, int, int]:
    """``geom`` rasterised alone on the grid's lattice (also outside the grid): a bool mask
    and the pixel ``(col, row)`` of its top-left corner."""
    c0, r0, c1, r1 = _pixel_box(geom, grid.affine)
    transform = grid.affine * Affine.translation(c0, r0)
    burnt = rasterio.features.rasterize(
        [geom], out_shape=(r1 - r0, c1 - c0), transform=transform, fill=0, default_value=1,
        dtype="uint8",
    )  # fmt: skip
    return burnt > 0, c0, r0


def rasterize_alone(geom: Any, grid: GeoBox) -> tuple[int, tuple[int, int, int, int]]:
    """Pixel count and tight pixel box of ``geom`` rasterised alone on the grid's lattice
    (also outside the grid): the object's whole extent, for visibility and truncation."""
    burnt, c0, r0 = footprint(geom, grid)
    rows = np.flatnonzero(burnt.any(axis=1))
    cols = np.flatnonzero(burnt.any(axis=0))
    if rows.size == 0:
        return 0, (0, 0, 0, 0)
    box = (c0 + int(cols[0]), r0 + int(rows[0]), c0 + int(cols[-1]) + 1, r0 + int(rows[-1]) + 1)
    return int(burnt.sum()), box


def scene_from_polygons(
    objects: gpd.GeoDataFrame,
    grid: GeoBox,
    class_field: str,
    description_field: str | None = None,
    *,
    source: str = "polygon",
) -> Scene:
    """The instances of an objects layer on ``grid``: one id per polygon, in layer order (later
    polygons on top). Objects that cover no pixel centre of the grid are left out."""
    if objects.crs is None:
        raise InputError("the objects layer has no CRS")
    if grid.crs is None:
        raise InputError("the scene grid has no CRS")
    for name in (class_field, description_field):
        if name is not None and name not in objects.columns:
            fields = ", ".join(str(c) for c in objects.columns if c != "geometry")
            raise LayoutError(
                f"field '{name}' not found in the objects layer; fields are: {fields}"
            )
    frame = objects.to_crs(str(grid.crs.to_wkt()))
    kinds = set(frame.geometry.geom_type.dropna())
    if kinds - {"Polygon", "MultiPolygon"}:
        raise LayoutError(
            f"the objects layer holds {', '.join(sorted(kinds))} geometries; polygons are "
            "expected (buffer points and lines into polygons first)"
        )
    if len(frame) > MAX_OBJECTS:
        raise InputError(f"{len(frame)} objects do not fit in uint32 instance ids")
    table: list[ObjectInfo] = []
    shapes: list[tuple[Any, int]] = []
    footprint = shapely.box(*grid.boundingbox.bbox)
    labels = list(frame[class_field])
    texts = list(frame[description_field]) if description_field else labels
    for i, (geom, label, text) in enumerate(zip(frame.geometry, labels, texts, strict=True)):
        if geom is None or geom.is_empty or not geom.intersects(footprint):
            continue
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        area, box = rasterize_alone(geom, grid)
        if area == 0:
            continue
        if label is None or (isinstance(label, float) and label != label):
            raise LayoutError(f"object {i} of the objects layer has no class ('{class_field}')")
        oid = len(table) + 1
        table.append(ObjectInfo(oid, str(label), str(text), area, box, source, geom))
        shapes.append((geom, oid))
    instances = np.zeros(tuple(grid.shape), dtype=np.uint32)
    if shapes:
        rasterio.features.rasterize(shapes, out=instances, transform=grid.affine, dtype="uint32")
    return Scene(grid, instances, table)


def scene_from_classes(
    classes: np.ndarray, grid: GeoBox, names: dict[int, str], *, connectivity: int = 4
) -> Scene:
    """Instances of a class raster: each ``connectivity``-connected component of a class listed
    in ``names`` (class value -> object class) is one object. Touching objects of one class
    merge (a mask cannot tell them apart); the objects report marks them ``component``."""
    if classes.shape != tuple(grid.shape):
        raise InputError(f"the class raster {classes.shape} is not on the grid {grid.shape}")
    if connectivity not in (4, 8):
        raise InputError("connectivity must be 4 or 8")
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    instances = np.zeros(classes.shape, dtype=np.uint32)
    table: list[ObjectInfo] = []
    for value, name in names.items():
        comp, count = ndimage.label(classes == value, structure=structure)
        if count == 0:
            continue
        sizes = np.bincount(comp.ravel(), minlength=count + 1)
        boxes = ndimage.find_objects(comp)
        shift = len(table)
        on = comp > 0
        instances[on] = comp[on].astype(np.uint32) + shift
        for k, sl in enumerate(boxes, start=1):
            if sl is None:
                continue
            box = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
            table.append(ObjectInfo(shift + k, name, name, int(sizes[k]), box, "component"))
    return Scene(grid, instances, table)
