"""Boxes and instance polygons of every exported annotation in the map CRS (GIS formats).

One row per (chip, object), as the training formats hold them: ``boxes`` (axis-aligned, the
pixel box mapped through the chip's geotransform), ``oriented_boxes`` and ``instances`` (the
visible pixels of the object in the chip, pixel-exact polygons). Written as one GeoPackage
with three layers and as three GeoJSON files in the map CRS (with the ``crs`` member naming
its EPSG code, so GDAL reads them back in that CRS; RFC 7946 readers that assume WGS 84
should reproject first).

Rows are not held: the GeoPackage is appended in batches of :data:`BATCH` rows to a hidden
scratch file, and the GeoJSON features are spooled (:mod:`.spool`); both are copied into
place through the atomic writer at the end.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely
from affine import Affine
from odc.geo.geobox import GeoBox
from shapely import affinity
from shapely.geometry import mapping

from ..atomic import atomic_open, atomic_output, temp_path
from .chips import Annotation, Chip
from .spool import Spool

LAYERS = ("boxes", "oriented_boxes", "instances")
BATCH = 2000


def _to_map(geom: Any, t: Affine) -> Any:
    return affinity.affine_transform(geom, [t.a, t.b, t.d, t.e, t.c, t.f])


class VectorWriter:
    """Streams the rows of every chip into the GeoPackage and the GeoJSON files."""

    def __init__(self, root: Path, grid: GeoBox) -> None:
        self.root, self.grid = root, grid
        self.folder = root / "vector"
        self.folder.mkdir(parents=True, exist_ok=True)
        self._crs = str(grid.crs.to_wkt()) if grid.crs is not None else None
        self._epsg = grid.crs.epsg if grid.crs is not None else None
        self._rows: list[dict[str, Any]] = []
        self._geoms: dict[str, list[Any]] = {name: [] for name in LAYERS}
        self._spools = {name: Spool(self.folder, f"{name}.geojson") for name in LAYERS}
        self._scratch = temp_path(self.folder / "detection.gpkg")
        self._layers_written: set[str] = set()

    def add(self, chip: Chip, anns: Sequence[Annotation]) -> None:
        t = self.grid.affine * Affine.translation(chip.col, chip.row)
        for ann in anns:
            row = {
                "chip": chip.id, "split": chip.split, "object_id": ann.object_id,
                "category": ann.category, "description": ann.description,
                "source": ann.source, "area_px": ann.area,
                "visible_fraction": round(ann.visible_fraction, 6),
                "truncated": ann.truncated, "occluded": ann.occluded,
                "angle": round(ann.obox.angle, 6),
            }  # fmt: skip
            geoms = {
                "boxes": _to_map(shapely.box(*ann.box), t),
                "oriented_boxes": _to_map(shapely.Polygon(ann.obox.corners), t),
                "instances": _to_map(shapely.MultiPolygon(ann.polygons), t),
            }
            self._rows.append(row)
            for name, geom in geoms.items():
                self._geoms[name].append(geom)
                self._spools[name].add(
                    {"type": "Feature", "properties": row, "geometry": mapping(geom)}
                )
        if len(self._rows) >= BATCH:
            self._flush()

    def _flush(self, force: bool = False) -> None:
        if not self._rows and not (force and not self._layers_written):
            return
        for name in LAYERS:
            frame = gpd.GeoDataFrame(self._rows, geometry=self._geoms[name], crs=self._crs)
            mode = "a" if name in self._layers_written else "w"
            frame.to_file(self._scratch, layer=name, driver="GPKG", mode=mode)
            self._layers_written.add(name)
            self._geoms[name] = []
        self._rows = []

    def _geojson(self, name: str) -> Path:
        path = self.folder / f"{name}.geojson"
        with atomic_open(path) as fh:
            fh.write('{"type": "FeatureCollection", "name": "' + name + '",\n')
            if self._epsg is not None:
                urn = f"urn:ogc:def:crs:EPSG::{self._epsg}"
                fh.write('"crs": {"type": "name", "properties": {"name": "' + urn + '"}},\n')
            fh.write('"features": [\n')
            self._spools[name].copy_into(fh)
            fh.write("]}\n")
        return path

    def close(self, info: dict[str, Any]) -> dict[str, Path]:
        del info
        written = {}
        try:
            self._flush(force=True)
            gpkg = self.folder / "detection.gpkg"
            with atomic_output(gpkg) as tmp:
                shutil.copyfile(self._scratch, tmp)
            written["gpkg"] = gpkg
            for name in LAYERS:
                written[name] = self._geojson(name)
        finally:
            self.abort()
        return written

    def abort(self) -> None:
        for spool in self._spools.values():
            spool.discard()
        with contextlib.suppress(FileNotFoundError):
            self._scratch.unlink()
