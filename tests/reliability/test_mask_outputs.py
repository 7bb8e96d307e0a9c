"""Every mask output opens styled: colour table, class names, nearest overviews down to a small
size; provenance tags stay short (an EPSG code, or one PROJJSON, never WKT in every value)."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from shapely.geometry import box

from rs_seg2any.demo import demo_town
from rs_seg2any.geoio import (
    category_names_from_sidecar,
    overview_count,
    provenance_tags,
    write_label_mask,
)
from rs_seg2any.job.runner import run_layout_job
from rs_seg2any.layout import load_layout
from rs_seg2any.scenarios.common import MASK_COLOURS, write_mask
from rs_seg2any.taxonomy import load_taxonomy

CRS = "EPSG:32640"
X0, Y0 = 300_000.0, 2_780_000.0


def grid(width: int, height: int) -> GeoBox:
    return GeoBox.from_bbox((X0, Y0, X0 + width, Y0 + height), CRS, resolution=1.0)


def assert_styled_mask(path: Path, names: list[str]) -> None:
    with rasterio.open(path) as src:
        assert src.dtypes[0] == "uint8"
        cmap = src.colormap(1)
        assert cmap[0] == (0, 0, 0, 255)  # 0 is a real answer (no nodata): black
        assert cmap[1] == MASK_COLOURS[names[1]]
        assert json.loads(src.tags(1)["CLASS_NAMES"]) == names
        assert src.overviews(1), "a mask needs overviews"
    assert category_names_from_sidecar(path) == names


@pytest.mark.parametrize(
    "names", [("dry", "flooded"), ("unchanged", "changed"), ("unchanged", "edited")]
)
def test_write_mask_has_colour_table_names_and_overviews(
    tmp_path: Path, names: tuple[str, str]
) -> None:
    mask = np.zeros((80, 100), dtype=bool)
    mask[10:40, 20:70] = True
    path = write_mask(tmp_path / "m.tif", mask, grid(100, 80), {"RS_SEG2ANY_ROLE": "test"}, names)
    assert_styled_mask(path, list(names))
    with rasterio.open(path) as src:
        assert np.array_equal(src.read(1), mask.astype(np.uint8))


def test_flood_scenario_masks_are_styled(tmp_path: Path, tiny_random_weights: Path) -> None:
    """The real flood scenario: flood_mask.tif and the edit job's edit_mask.tif."""
    pytest.importorskip("torch")
    from rs_seg2any.generators.registry import load_generator
    from rs_seg2any.geoio import write_cog
    from rs_seg2any.scenarios.common import GenOptions, Polygons
    from rs_seg2any.scenarios.flood import flood

    n = 96  # > 64 px, so it gets an overview
    frame = gpd.GeoDataFrame(
        {"cls": ["water", "land"], "desc": ["a river", "bare sand"]},
        geometry=[box(X0, Y0, X0 + 16, Y0 + n), box(X0 + 16, Y0, X0 + n, Y0 + n)],
        crs=CRS,
    )
    town = Polygons.read(frame, "cls", description_field="desc", taxonomy="dubai_aerial")
    photo = np.random.default_rng(0).integers(0, 256, (3, n, n), dtype=np.uint8)
    base = write_cog(tmp_path / "photo.tif", photo, grid(n, n), categorical=False)
    zone = gpd.GeoDataFrame(geometry=[box(X0 + 10, Y0 + 5, X0 + 40, Y0 + 60)], crs=CRS)
    gen = load_generator("tiny", tiny_random_weights, threads=1)
    opts = GenOptions(steps=1, tile_size=64, overlap=16, seed=3)
    res = flood(tmp_path / "f", gen, extent=zone, base_image=base, polygons=town, opts=opts)
    assert_styled_mask(res.flood_mask, ["dry", "flooded"])
    edit_masks = list((tmp_path / "f").rglob("edit_mask.tif"))
    assert edit_masks
    for path in edit_masks:
        assert_styled_mask(path, ["unchanged", "edited"])


SIZES = [((80, 100), [2]), ((40, 40), []), ((200, 300), [2, 4, 8]), ((512, 512), [2, 4, 8])]


@pytest.mark.parametrize(("shape", "levels"), SIZES)
def test_label_masks_get_nearest_overviews_down_to_64_px(
    tmp_path: Path, shape: tuple[int, int], levels: list[int]
) -> None:
    taxonomy = load_taxonomy("dubai_aerial")
    a, b = sorted(taxonomy.ids)[:2]
    yy, xx = np.indices(shape)
    labels = np.where((yy + xx) % 2 == 0, a, b).astype(np.uint8)  # a checkerboard of 2 classes
    path = write_label_mask(tmp_path / "label.tif", labels, grid(shape[1], shape[0]), taxonomy)
    assert overview_count(shape) == len(levels)
    with rasterio.open(path) as src:
        assert src.overviews(1) == levels
        for level in levels:
            small = src.read(1, out_shape=(-(-shape[0] // level), -(-shape[1] // level)))
            assert set(np.unique(small).tolist()) <= {a, b}  # nearest: never an invented class
    if levels:
        assert max(-(-s // levels[-1]) for s in shape) <= 64


def test_layout_job_rasters_have_overviews(tmp_path: Path) -> None:
    layer = tmp_path / "town.gpkg"
    demo_town().to_file(layer)
    layout = load_layout(layer, "landcover", taxonomy="dubai_aerial", resolution=4.0)
    result = run_layout_job(layout, tmp_path / "out")
    for name in ("label", "instance", "contour"):
        with rasterio.open(result.outputs[name]) as src:
            assert src.width <= 512 and src.overviews(1) == [2], name


def _tags_of(path: Path) -> dict[str, str]:
    with rasterio.open(path) as src:
        return dict(src.tags())


def test_provenance_tags_use_the_epsg_code(tmp_path: Path) -> None:
    layer = tmp_path / "town.gpkg"
    demo_town().to_file(layer)
    layout = load_layout(layer, "landcover", taxonomy="dubai_aerial", resolution=4.0)
    tags = _tags_of(run_layout_job(layout, tmp_path / "out").outputs["label"])
    params = json.loads(tags["RS_SEG2ANY_PARAMS"])
    assert params["grid"]["crs"] == "EPSG:32640" and params["layout"]["layer_crs"] == "EPSG:32640"
    assert "RS_SEG2ANY_CRS" not in tags
    assert sum(len(v) for v in tags.values()) < 1000


def test_provenance_tags_keep_a_crs_without_code_once_as_projjson(tmp_path: Path) -> None:
    custom = pyproj.CRS.from_proj4("+proj=tmerc +lat_0=0 +lon_0=57.37 +k=0.9996 +x_0=500000 "
                                   "+y_0=0 +ellps=WGS84 +units=m +no_defs")  # fmt: skip
    assert custom.to_epsg() is None
    layer = tmp_path / "town.gpkg"
    demo_town().to_crs(custom).to_file(layer)
    layout = load_layout(layer, "landcover", taxonomy="dubai_aerial", resolution=4.0)
    path = run_layout_job(layout, tmp_path / "out").outputs["label"]
    tags = _tags_of(path)
    assert "PROJCRS" not in tags["RS_SEG2ANY_PARAMS"] and "WKT" not in tags["RS_SEG2ANY_PARAMS"]
    params = json.loads(tags["RS_SEG2ANY_PARAMS"])
    assert params["grid"]["crs"] == params["layout"]["layer_crs"] == "RS_SEG2ANY_CRS[0]"
    defs = json.loads(tags["RS_SEG2ANY_CRS"])
    assert len(defs) == 1
    with rasterio.open(path) as src:
        assert pyproj.CRS.from_json_dict(defs[0]).equals(pyproj.CRS.from_wkt(src.crs.to_wkt()))
    assert sum(len(v) for v in tags.values()) < 2500  # was ~2.3 KB of WKT per repeated value


def test_provenance_tags_leave_other_values_alone() -> None:
    tags = provenance_tags(inputs={"layer": "a.gpkg"}, extra={"note": "PROJCRS is a word", "n": 3})
    assert json.loads(tags["RS_SEG2ANY_PARAMS"]) == {"note": "PROJCRS is a word", "n": 3}
