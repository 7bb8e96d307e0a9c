"""Layouts: a polygon layer + a class field + a taxonomy + a target grid, validated once.

Modules: ``sources`` (read any vector format), ``prepare`` (classes, descriptions, priorities,
repaired parts), ``load`` (the validation pass), ``target`` (the grid from the grid options),
``antimeridian``, ``report`` and ``model`` (the :class:`Layout` value).

``load_layout`` reads the layer in one streaming pass to validate everything a user can get
wrong (file, layer, fields, classes, CRS, geometry types, empty or invalid geometries, extent)
and to number entities. It keeps no geometries: ``Layout.features(bounds)`` re-reads only the
polygons of one window, so the memory of a tiled job does not grow with the area.
In-memory GeoDataFrames (notebooks) go through the same preparation.

Entities. Every polygon part (after repair) is one entity with a global instance id
(1, 2, ...) in feature order, then part order. Ids are identical whichever window is read.

Overlaps. Where polygons overlap, the one drawn last wins. Parts are drawn in ascending
(priority, -area, instance id): the class priority from the taxonomy (or the per-polygon
``priority_field``), then larger parts first so that smaller ones (a building inside a land
parcel, an island in a lake) stay visible, then feature order. The order of any two parts is a
property of the parts alone, so every tile of a job agrees with the whole.

Antimeridian. A lon/lat layer whose parts straddle +-180 (pieces on both sides, or
coordinates past 180) is unwrapped into one continuous longitude range (east may exceed 180):
the UTM zone is that of its centre, the grid covers exactly the data, and window reads query
both sides. A projected grid CRS cut inside that range (Web Mercator) is refused.

Entities without pixels. Every entity is listed in entities.csv; those that cannot have a
pixel on the grid (outside it, or smaller/thinner than a pixel under the centre rule) are
counted in the report (layout.json) and warned about. Parts hidden under parts drawn above
them are the overlap rule at work and are not counted.
"""

from .antimeridian import LON_EPS
from .load import load_layout
from .model import CENSUS_POINTS, Layout
from .prepare import BACKGROUND_DESCRIPTION, UnknownClassPolicy
from .report import LayoutReport
from .sources import PARQUET_SUFFIXES, LayerSpec, _layer_crs, _open_file_layer, _read_parquet

__all__ = [
    "BACKGROUND_DESCRIPTION",
    "CENSUS_POINTS",
    "LON_EPS",
    "PARQUET_SUFFIXES",
    "LayerSpec",
    "Layout",
    "LayoutReport",
    "UnknownClassPolicy",
    "_layer_crs",
    "_open_file_layer",
    "_read_parquet",
    "load_layout",
]
