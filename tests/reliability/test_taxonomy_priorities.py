"""Shipped taxonomies draw what sits inside a class above it: a pond inside a park stays
water, a building inside anything stays a building (checked in the real label.tif)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
import shapely

from rs_seg2any.cli import main
from rs_seg2any.taxonomy import Taxonomy, load_taxonomy, shipped_taxonomies

TAXONOMY_DIR = Path(__file__).resolve().parents[2] / "geoconf" / "taxonomies"
BUILT_NAMES = ("building", "road", "built-up", "artificial surface")
SIZE, POND, STEP = 40.0, 10.0, 60.0  # park side, pond side, spacing (metres, 1 m pixels)
X0, Y0 = 500_000.0, 5_000_000.0


def built_ids(tax: Taxonomy) -> set[int]:
    return {i for i in (tax.resolve(n) for n in BUILT_NAMES) if i is not None}


def water_id(tax: Taxonomy) -> int:
    found = tax.resolve("water")
    assert found is not None
    return found


def area_classes(tax: Taxonomy) -> list[int]:
    """Every class a pond or a building may lie in: all but water and the built ones."""
    return [c.id for c in tax.classes if c.id != water_id(tax) and c.id not in built_ids(tax)]


def taxonomies_with_water() -> list[str]:
    return [n for n in shipped_taxonomies() if load_taxonomy(n).resolve("water") is not None]


@pytest.mark.parametrize("name", taxonomies_with_water())
def test_pond_in_every_area_class_stays_water(name: str, tmp_path: Path) -> None:
    """One park of every area class with a pond in it, the pond written FIRST (so feature
    order cannot save it) and a building on the pond's island; one real layout job."""
    tax = load_taxonomy(name)
    water = water_id(tax)
    building = min(built_ids(tax), key=lambda i: -tax.by_id(i).priority)
    rows: list[tuple[str, shapely.Polygon]] = []
    centres = []
    for k, cid in enumerate(area_classes(tax)):
        x, y = X0 + k * STEP, Y0
        park = shapely.box(x, y, x + SIZE, y + SIZE)
        c = (x + SIZE / 2, y + SIZE / 2)
        pond = shapely.box(c[0] - POND / 2, c[1] - POND / 2, c[0] + POND / 2, c[1] + POND / 2)
        house = shapely.box(c[0] - 1.5, c[1] - 1.5, c[0] + 1.5, c[1] + 1.5)
        rows += [(tax.by_id(building).name, house), (tax.by_id(water).name, pond)]
        rows.append((tax.by_id(cid).name, park))
        centres.append((cid, c))
    frame = gpd.GeoDataFrame(
        {"cls": [r[0] for r in rows]}, geometry=[r[1] for r in rows], crs="EPSG:32633"
    )
    layer = tmp_path / "ponds.gpkg"
    frame.to_file(layer, engine="pyogrio")
    out = tmp_path / "out"
    code = main(
        [
            "layout",
            str(layer),
            "--class-field",
            "cls",
            "--taxonomy",
            name,
            "--resolution",
            "1",
            "--out",
            str(out),
            "--progress",
            "none",
        ]
    )
    assert code == 0
    with rasterio.open(out / "label.tif") as src:
        label = src.read(1)

        def at(x: float, y: float) -> int:
            row, col = src.index(x, y)
            return int(label[row, col])

        for cid, (cx, cy) in centres:
            park_name = tax.by_id(cid).name
            assert at(cx, cy) == building, f"{name}: building on a pond in {park_name}"
            assert at(cx + 3.5, cy) == water, f"{name}: pond inside {park_name} is not water"
            assert at(cx + 12, cy) == cid, f"{name}: the {park_name} itself"


@pytest.mark.parametrize("name", shipped_taxonomies())
def test_priorities_follow_the_documented_rule(name: str) -> None:
    """Built classes above water, water above every area class; the rule is written at the
    top of the file for whoever edits it."""
    tax = load_taxonomy(name)
    text = (TAXONOMY_DIR / f"{name}.yaml").read_text(encoding="utf-8")
    assert text.startswith("# Drawing priorities"), "the rule comment heads the file"
    built = built_ids(tax)
    assert built, f"{name} has no built class"
    lowest_built = min(tax.by_id(i).priority for i in built)
    if tax.resolve("water") is not None:
        water = tax.by_id(water_id(tax)).priority
        assert water < lowest_built
        for cid in area_classes(tax):
            assert tax.by_id(cid).priority < water, tax.by_id(cid).name
    else:
        for cid in {c.id for c in tax.classes} - built:
            assert tax.by_id(cid).priority < lowest_built
