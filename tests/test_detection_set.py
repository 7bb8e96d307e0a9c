"""``detection-set`` end to end: the API verb, the CLI, a job file; real and generated
backgrounds, rare-object insertion (exact outside the objects), the filter report and the
STAC catalog (validated with pystac)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from shapely import affinity
from shapely.geometry import box

import rs_seg2any as rs
from rs_seg2any.cli import main
from rs_seg2any.errors import InputError, LayoutError
from rs_seg2any.geoio import write_cog

CRS = "EPSG:32640"
X0, Y0, RES, N = 300_000.0, 2_780_000.0, 1.0, 96
GRID = GeoBox.from_bbox((X0, Y0, X0 + N * RES, Y0 + N * RES), CRS, resolution=RES)
CHIPS = {"chip_size": 32, "split_block": 32, "split_buffer": 0}


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        data: np.ndarray = src.read()
        return data


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    img = np.random.default_rng(0).integers(0, 256, size=(3, N, N), dtype=np.uint8)
    return write_cog(tmp_path / "photo.tif", img, GRID, categorical=False)


@pytest.fixture
def objects(tmp_path: Path) -> Path:
    geoms = [box(X0 + 50, Y0 + 50, X0 + 62, Y0 + 58), box(X0 + 62, Y0 + 50, X0 + 70, Y0 + 58),
             affinity.rotate(box(X0 + 20, Y0 + 70, X0 + 40, Y0 + 76), 30),
             box(X0 + 80, Y0 + 5, X0 + 90, Y0 + 20)]  # fmt: skip
    frame = gpd.GeoDataFrame(
        {"kind": ["building", "building", "ship", "building"],
         "text": ["flat roof", "flat roof", "white ferry", "warehouse"]},
        geometry=geoms, crs=CRS,
    )  # fmt: skip
    path = tmp_path / "objects.gpkg"
    frame.to_file(path)
    return path


@pytest.fixture
def town(tmp_path: Path) -> Path:
    """Water on the left 30 m, land elsewhere."""
    frame = gpd.GeoDataFrame(
        {"cls": ["water", "land"], "desc": ["a river", "bare sand"]},
        geometry=[box(X0, Y0, X0 + 30, Y0 + N), box(X0 + 30, Y0, X0 + N, Y0 + N)],
        crs=CRS,
    )
    path = tmp_path / "town.gpkg"
    frame.to_file(path)
    return path


def _validate_stac(catalog: Path) -> int:
    """Every item valid under pystac's validator: the core schemas always (pystac ships
    them); the extension schemas from ``RS_SEG2ANY_STAC_SCHEMAS`` (a folder of
    ``<name>-<version>.json`` files) or from the network when either is available."""
    pystac = pytest.importorskip("pystac")
    from pystac.validation import JsonSchemaSTACValidator, set_validator, validate_dict
    from pystac.validation.stac_validator import GetSchemaError

    validator = JsonSchemaSTACValidator()
    local = os.environ.get("RS_SEG2ANY_STAC_SCHEMAS")
    if local:
        from rs_seg2any.detection.stac import EXTENSIONS

        for url in EXTENSIONS.values():
            name = url.split("/")[3] + "-" + url.split("/")[4]
            schema = json.loads((Path(local) / f"{name}.json").read_text())
            validator.schema_cache[url] = schema
            validator.schema_cache[schema["$id"]] = schema
    set_validator(validator)
    cat = pystac.Catalog.from_file(str(catalog))
    items = list(cat.get_items(recursive=True))
    for item in items:
        d = item.to_dict()
        validate_dict(d, extensions=[])  # core: offline
        props = d["properties"]
        assert {"proj:code", "proj:shape", "proj:transform", "label:type", "label:classes",
                "label:properties", "label:description", "rs_seg2any:generator",
                "rs_seg2any:version", "rs_seg2any:seed"} <= set(props)  # fmt: skip
        assert d["assets"]["image"]["raster:bands"]
        assert (catalog.parent / "items" / d["assets"]["image"]["href"]).resolve().is_file()
    try:
        cat.validate_all()  # with the extensions
    except GetSchemaError:  # offline, and no local copies of the extension schemas
        if local:
            raise
    return len(items)


def test_real_background_set(tmp_path: Path, photo: Path, objects: Path) -> None:
    out = tmp_path / "set"
    res = rs.detection_set(out, image=str(photo), objects=str(objects), object_class_field="kind",
                           object_description_field="text", **CHIPS)  # fmt: skip
    for name in ("report", "report_csv", "stac", "gpkg", "classes", "yolo_detect"):
        assert res.outputs[name].is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["background"] == "real"
    assert report["summary"]["generator"] == "none"
    assert {o["source"] for o in report["objects"]} == {"polygon"}
    # the touching buildings stay two objects
    assert {o["object_id"] for o in report["objects"] if o["category"] == "building"} >= {1, 2}
    assert _validate_stac(out / "stac" / "catalog.json") == report["summary"]["samples_kept"]
    assert not [p for p in out.rglob(".tmp-*")]  # no scratch file outlives the run
    # chips are the photo's pixels on the photo's grid
    chip = next((out / "images").rglob("*.tif"))
    with rasterio.open(chip) as src:
        row, col = map(int, src.tags()["RS_SEG2ANY_CHIP"].replace("r", "").split("_c"))
        assert np.array_equal(src.read(), read(photo)[:, row : row + 32, col : col + 32])
        assert src.crs == GRID.crs


def test_generated_background_with_inserted_objects(
    tmp_path: Path, town: Path, objects: Path, tiny_random_weights: Path
) -> None:
    pytest.importorskip("torch")
    insert = tmp_path / "insert.geojson"
    ins = gpd.GeoDataFrame({"kind": ["shed"], "text": ["temporary shed with a blue roof"]},
                           geometry=[box(X0 + 70, Y0 + 70, X0 + 80, Y0 + 77)], crs=CRS)  # fmt: skip
    ins.to_file(insert)
    out = tmp_path / "gen"
    res = rs.detection_set(
        out, layout=str(town), class_field="cls", description_field="desc",
        taxonomy="dubai_aerial", resolution="1", objects=str(objects),
        object_class_field="kind", object_description_field="text", insert=str(insert),
        insert_count=2, insert_kind=["vessel"], model=str(tiny_random_weights), steps=2,
        tile_size=64, overlap=16, seed=5, max_leakage=0.0, **CHIPS,
    )  # fmt: skip
    before = read(out / "scene" / "image.tif")
    after = read(res.outputs["image"])
    with rasterio.open(out / "inserted" / "edit_mask.tif") as src:
        mask = src.read(1).astype(bool)
    assert mask.any()
    assert np.array_equal(after[:, ~mask], before[:, ~mask])  # exact outside the objects
    assert not np.array_equal(after[:, mask], before[:, mask])
    report = json.loads((out / "report.json").read_text())
    inserted = [o for o in report["objects"] if o["source"] == "inserted"]
    assert {o["category"] for o in inserted} == {"shed", "ship"}
    assert all(o["leakage"] == 0.0 for o in inserted)
    # the vessels were placed on water (the left 30 m): every pixel centre they cover
    placed = gpd.read_file(out / "inserted" / "objects.gpkg")
    ships = placed[placed["class"] == "ship"]
    assert len(ships) == 2 and (ships.geometry.bounds.maxx <= X0 + 30 + RES / 2).all()  # centres
    # each inserted object's label is exactly its inserted region
    from pycocotools.coco import COCO

    ids = {o["object_id"] for o in inserted}
    for split_file in (out / "coco").glob("*.json"):
        coco = COCO(str(split_file))
        for ann in coco.dataset["annotations"]:
            if ann["object_id"] in ids and not ann["truncated"]:
                img = coco.imgs[ann["image_id"]]
                r, c = img["chip_row"], img["chip_col"]
                window = mask[r : r + 32, c : c + 32]
                decoded = coco.annToMask(ann).astype(bool)
                assert window[decoded].all()
    assert _validate_stac(out / "stac" / "catalog.json") > 0
    props = json.loads(next((out / "stac" / "items").glob("*.json")).read_text())["properties"]
    assert props["rs_seg2any:generator"] == "tiny" and props["rs_seg2any:seed"] == 5


def test_cli_and_job_file(tmp_path: Path, photo: Path, objects: Path) -> None:
    argv = ["detection-set", "--image", str(photo), "--objects", str(objects),
            "--object-class-field", "kind", "--chip-size", "32", "--split-block", "32",
            "--split-buffer", "0", "--formats", "coco,dota", "--progress", "none"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "coco").is_dir() and not (tmp_path / "cli" / "yolo").exists()
    job = tmp_path / "job.yaml"
    job.write_text(
        f"command: detection-set\nimage: {photo}\nobjects: {objects}\nobject_class_field: kind\n"
        f"chip_size: 32\nsplit_block: 32\nsplit_buffer: 0\nformats: coco,dota\n"
        f"out: {tmp_path / 'job'}\nprogress: none\n"
    )
    assert main(["run", str(job)]) == 0
    a = json.loads((tmp_path / "cli" / "coco" / "train.json").read_text())
    b = json.loads((tmp_path / "job" / "coco" / "train.json").read_text())
    assert a["annotations"] == b["annotations"]


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"object_class_field": "nope"}, LayoutError, "field 'nope' not found"),
        ({"chip_size": 200}, InputError, "larger than the scene"),
        ({"formats": "coco,voc"}, InputError, "unknown voc"),
        ({"split": "0.5,x,1"}, InputError, "train,val,test"),
        ({"min_visible": 2}, InputError, "--min-visible"),
        ({"insert_count": 3, "insert_kind": ["vessel"]}, InputError, "needs --layout"),
        ({"insert_count": 3}, InputError, "--insert-kind"),
    ],
)
def test_bad_inputs_leave_nothing_behind(
    tmp_path: Path, photo: Path, objects: Path, options: dict, error: type, match: str
) -> None:
    out = tmp_path / "bad"
    values = {"image": str(photo), "objects": str(objects), "object_class_field": "kind",
              **CHIPS, **options}  # fmt: skip
    with pytest.raises(error, match=match):
        rs.detection_set(out, **values)
    assert not out.exists() or not any(out.iterdir())


def test_objects_inserted_into_a_real_image_change_only_their_pixels(
    tmp_path: Path, photo: Path, tiny_random_weights: Path
) -> None:
    pytest.importorskip("torch")
    insert = tmp_path / "insert.gpkg"
    car = box(X0 + 10, Y0 + 10, X0 + 15, Y0 + 13)
    gpd.GeoDataFrame(
        {"class": ["vehicle"], "text": ["burnt-out car"]}, geometry=[car], crs=CRS
    ).to_file(insert)
    res = rs.detection_set(tmp_path / "o", image=str(photo), insert=str(insert),
                           object_description_field="text", model=str(tiny_random_weights),
                           steps=2, tile_size=64, overlap=16, **CHIPS)  # fmt: skip
    before, after = read(photo), read(res.outputs["image"])
    with rasterio.open(tmp_path / "o" / "inserted" / "edit_mask.tif") as src:
        mask = src.read(1).astype(bool)
    assert mask.sum() == 15  # 5 x 3 m at 1 m: the inserted region, exactly
    assert np.array_equal(after[:, ~mask], before[:, ~mask])
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    [obj] = {o["object_id"]: o for o in report["objects"]}.values()
    assert obj["source"] == "inserted" and obj["leakage"] == 0.0 and obj["area_px"] == 15


def test_an_inserted_object_in_no_exported_chip_is_reported_not_lost(
    tmp_path: Path, photo: Path, tiny_random_weights: Path
) -> None:
    """Chips 32 px every 64 px leave gaps; a car inserted in a gap gets no label: the run
    says so (a warning and ``objects_in_no_chip`` in the report) instead of dropping it."""
    pytest.importorskip("torch")
    insert = tmp_path / "insert.gpkg"
    car = box(X0 + 40, Y0 + N - 50, X0 + 45, Y0 + N - 47)  # rows 47-50, cols 40-45: a gap
    gpd.GeoDataFrame(
        {"class": ["vehicle"], "text": ["burnt-out car"]}, geometry=[car], crs=CRS
    ).to_file(insert)
    with pytest.warns(UserWarning, match="inserted object"):
        rs.detection_set(tmp_path / "o", image=str(photo), insert=str(insert),
                         object_description_field="text", model=str(tiny_random_weights),
                         steps=2, tile_size=64, overlap=16, chip_size=32, chip_stride=64,
                         split_block=64, split_buffer=0)  # fmt: skip
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert not report["objects"]
    [lost] = report["summary"]["objects_in_no_chip"]
    assert lost["source"] == "inserted" and lost["category"] == "vehicle"
