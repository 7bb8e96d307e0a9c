"""A STAC catalog of a detection set: one item per exported chip.

Each item has the chip's footprint (WGS 84), the projection extension (``proj:code`` or
``proj:wkt2``, ``proj:shape``, ``proj:transform``), the raster extension on its image asset
(``raster:bands``), the label extension (``label:type`` vector, the classes, the tasks, per
class counts) with the split's COCO file as its ``labels`` asset, and the provenance in its
properties: ``rs_seg2any:generator``, ``rs_seg2any:version``, ``rs_seg2any:seed``,
``rs_seg2any:split``, ``rs_seg2any:background``. Plain JSON, so writing needs no STAC
library; the tests validate it with pystac.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from affine import Affine
from odc.geo.geobox import GeoBox

from ..atomic import write_json
from .export import ChipRecord
from .formats import chip_path

STAC_VERSION = "1.1.0"
EXTENSIONS = {
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "label": "https://stac-extensions.github.io/label/v1.0.1/schema.json",
}


def _proj(grid: GeoBox) -> dict[str, Any]:
    crs = grid.crs
    if crs is None:
        return {"proj:code": None}
    epsg = crs.epsg
    if epsg is not None:
        return {"proj:code": f"EPSG:{epsg}"}
    return {"proj:code": None, "proj:wkt2": str(crs.to_wkt())}


def chip_item(
    record: ChipRecord,
    grid: GeoBox,
    categories: list[str],
    *,
    dtype: str,
    bands: int,
    datetime: str,
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """The STAC item of one exported chip (hrefs relative to ``stac/items/``)."""
    chip = record.chip
    sub = grid[chip.slices]
    footprint = sub.footprint("EPSG:4326")
    geom = footprint.geom.__geo_interface__
    west, south, east, north = footprint.boundingbox
    t: Affine = grid.affine * Affine.translation(chip.col, chip.row)
    counts = record.counts
    props: dict[str, Any] = {
        "datetime": datetime,
        **_proj(grid),
        "proj:shape": [chip.size, chip.size],
        "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
        "label:properties": ["category"],
        "label:description": "object instances: boxes, oriented boxes and masks",
        "label:type": "vector",
        "label:tasks": ["detection", "segmentation"],
        "label:methods": ["automated"],
        "label:classes": [{"name": "category", "classes": list(categories)}],
        "label:overviews": [
            {
                "property_key": "category",
                "counts": [{"name": n, "count": int(counts.get(n, 0))} for n in categories],
            }
        ],
        "rs_seg2any:split": chip.split,
        **{f"rs_seg2any:{k}": v for k, v in provenance.items()},
    }
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": list(EXTENSIONS.values()),
        "id": chip.id,
        "geometry": geom,
        "bbox": [west, south, east, north],
        "properties": props,
        "links": [
            {"rel": "root", "href": "../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
        ],
        "assets": {
            "image": {
                "href": f"../../{chip_path(chip)}",
                "type": "image/tiff; application=geotiff",
                "roles": ["data"],
                "raster:bands": [{"data_type": dtype} for _ in range(bands)],
            },
            "labels": {
                "href": f"../../coco/{chip.split}.json",
                "type": "application/json",
                "title": "COCO annotations of the split (this chip's image entry)",
                "roles": ["labels"],
            },
        },
    }


def write_catalog(
    out: Path,
    records: list[ChipRecord],
    grid: GeoBox,
    categories: list[str],
    *,
    dtype: str,
    bands: int,
    datetime: str,
    provenance: dict[str, Any],
    description: str,
) -> Path:
    """``stac/catalog.json`` and ``stac/items/<chip>.json`` for every exported chip."""
    folder = out / "stac"
    (folder / "items").mkdir(parents=True, exist_ok=True)
    links: list[dict[str, Any]] = [
        {"rel": "root", "href": "./catalog.json", "type": "application/json"}
    ]
    for record in records:
        if not record.exported:
            continue
        item = chip_item(record, grid, categories, dtype=dtype, bands=bands,
                         datetime=datetime, provenance=provenance)  # fmt: skip
        write_json(folder / "items" / f"{record.chip.id}.json", item)
        links.append({"rel": "item", "href": f"./items/{record.chip.id}.json",
                      "type": "application/geo+json"})  # fmt: skip
    catalog = {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": "rs-seg2any-detection-set",
        "description": description,
        "links": links,
    }
    return write_json(folder / "catalog.json", catalog)
