"""Boxes and instance polygons of every exported annotation in the map CRS (GIS formats).

One row per (chip, object), as the training formats hold them: ``boxes`` (axis-aligned, the
pixel box mapped through the chip's geotransform), ``oriented_boxes`` and ``instances`` (the
visible pixels of the object in the chip, pixel-exact polygons). Written as one GeoPackage
with three layers and as three GeoJSON files (in the map CRS, with its ``crs`` member, so they
round-trip; RFC 7946 readers that assume WGS 84 should reproject first).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely
from affine import Affine
from odc.geo.geobox import GeoBox
from shapely import affinity

from ..atomic import atomic_output
from .chips import Annotation, Chip

LAYERS = ("boxes", "oriented_boxes", "instances")


def _to_map(geom: Any, t: Affine) -> Any:
    return affinity.affine_transform(geom, [t.a, t.b, t.d, t.e, t.c, t.f])


class VectorWriter:
    """Collects the rows of every chip; writes them at :meth:`close`."""

    def __init__(self, root: Path, grid: GeoBox) -> None:
        self.root, self.grid = root, grid
        self._rows: list[dict[str, Any]] = []
        self._geoms: dict[str, list[Any]] = {name: [] for name in LAYERS}

    def add(self, chip: Chip, anns: Sequence[Annotation]) -> None:
        t = self.grid.affine * Affine.translation(chip.col, chip.row)
        for ann in anns:
            self._rows.append({
                "chip": chip.id, "split": chip.split, "object_id": ann.object_id,
                "category": ann.category, "description": ann.description,
                "source": ann.source, "area_px": ann.area,
                "visible_fraction": round(ann.visible_fraction, 6),
                "truncated": ann.truncated, "occluded": ann.occluded,
                "angle": round(ann.obox.angle, 6),
            })  # fmt: skip
            self._geoms["boxes"].append(_to_map(shapely.box(*ann.box), t))
            self._geoms["oriented_boxes"].append(_to_map(shapely.Polygon(ann.obox.corners), t))
            parts = ann.polygons
            self._geoms["instances"].append(_to_map(shapely.MultiPolygon(parts), t))

    def frames(self) -> dict[str, gpd.GeoDataFrame]:
        crs = str(self.grid.crs.to_wkt()) if self.grid.crs is not None else None
        return {
            name: gpd.GeoDataFrame(list(self._rows), geometry=self._geoms[name], crs=crs)
            for name in LAYERS
        }

    def close(self, info: dict[str, Any]) -> dict[str, Path]:
        del info
        folder = self.root / "vector"
        folder.mkdir(parents=True, exist_ok=True)
        frames = self.frames()
        written = {}
        gpkg = folder / "detection.gpkg"
        with atomic_output(gpkg) as tmp:
            for name, frame in frames.items():
                frame.to_file(tmp, layer=name, driver="GPKG")
        written["gpkg"] = gpkg
        for name, frame in frames.items():
            path = folder / f"{name}.geojson"
            with atomic_output(path) as tmp:
                frame.to_file(tmp, driver="GeoJSON")
            written[name] = path
        return written
