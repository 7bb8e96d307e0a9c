"""Detection sets: instances, boxes, oriented boxes, chips, splits and every export format."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
import yaml
from affine import Affine
from odc.geo.geobox import GeoBox
from shapely import affinity

from rs_seg2any.detection.chips import Chip, assign_splits, chip_annotations, chip_windows
from rs_seg2any.detection.export import ChipSettings, export_scene
from rs_seg2any.detection.formats import read_dota
from rs_seg2any.detection.geometry import mask_box, oriented_box
from rs_seg2any.detection.instances import scene_from_classes, scene_from_polygons
from rs_seg2any.errors import InputError, LayoutError

CRS = "EPSG:32633"
X0, Y0, RES = 500_000.0, 5_000_160.0, 2.0
SIZE = 80


def _grid() -> GeoBox:
    return GeoBox((SIZE, SIZE), Affine(RES, 0, X0, 0, -RES, Y0), CRS)


def _objects(seed: int = 0, n: int = 25) -> gpd.GeoDataFrame:
    """Rotated rectangles (ships), discs (tanks), axis-aligned rectangles (buildings); some
    touching, some overlapping, some across the scene edge."""
    rng = np.random.default_rng(seed)
    geoms, classes = [], []
    for i in range(n):
        cx = X0 + rng.uniform(-5, SIZE * RES + 5)
        cy = Y0 - rng.uniform(-5, SIZE * RES + 5)
        w, h = rng.uniform(4, 24), rng.uniform(3, 12)
        box = shapely.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        kind = ["ship", "storage tank", "building"][i % 3]
        if kind == "ship":
            geoms.append(affinity.rotate(box, float(rng.uniform(0, 180))))
        elif kind == "storage tank":
            geoms.append(shapely.Point(cx, cy).buffer(h, quad_segs=32))
        else:
            geoms.append(box)
        classes.append(kind)
    # two buildings that touch along an edge: two instances, never one
    geoms += [shapely.box(X0 + 40, Y0 - 60, X0 + 50, Y0 - 50),
              shapely.box(X0 + 50, Y0 - 60, X0 + 60, Y0 - 50)]  # fmt: skip
    classes += ["building", "building"]
    return gpd.GeoDataFrame({"kind": classes}, geometry=geoms, crs=CRS)


def _image(path: Path, grid: GeoBox) -> Path:
    data = np.random.default_rng(1).integers(0, 255, (3, *grid.shape), dtype=np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=grid.shape[1], height=grid.shape[0],
                       count=3, dtype="uint8", crs=CRS, transform=grid.affine) as dst:  # fmt: skip
        dst.write(data)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("det")
    grid = _grid()
    scene = scene_from_polygons(_objects(), grid, "kind")
    settings = ChipSettings(size=32, stride=24, min_visible=0.3, block=40, buffer=0, seed=3)
    out = tmp / "set"
    outputs, records, _ = export_scene(
        out, scene, _image(tmp / "img.tif", grid), settings, keep_masks=True
    )
    return {"out": out, "scene": scene, "outputs": outputs, "records": records, "grid": grid}


def _coco(out: Path) -> list[tuple[Path, dict]]:
    return [(p, json.loads(p.read_text())) for p in sorted((out / "coco").glob("*.json"))]


def test_touching_polygons_stay_two_instances_and_masks_merge_them() -> None:
    grid = _grid()
    frame = _objects(n=0)
    scene = scene_from_polygons(frame, grid, "kind")
    assert len(scene.objects) == 2
    assert set(np.unique(scene.instances)) == {0, 1, 2}
    classes = (scene.instances > 0).astype(np.uint8)
    merged = scene_from_classes(classes, grid, {1: "building"})
    assert len(merged.objects) == 1  # a mask cannot tell touching buildings apart
    assert merged.objects[0].full_area == scene.objects[0].full_area * 2


def test_coco_loads_and_masks_decode_to_the_instance_masks(dataset: dict) -> None:
    from pycocotools import mask as cmask
    from pycocotools.coco import COCO

    out, scene = dataset["out"], dataset["scene"]
    checked = 0
    for path, doc in _coco(out):
        coco = COCO(str(path))
        for img in coco.dataImgs.values() if hasattr(coco, "dataImgs") else coco.imgs.values():
            assert (out / img["file_name"]).is_file()
            assert img["crs"] and len(img["geotransform"]) == 6
            window = scene.instances[img["chip_row"] : img["chip_row"] + img["height"],
                                     img["chip_col"] : img["chip_col"] + img["width"]]  # fmt: skip
            with rasterio.open(out / img["file_name"]) as src:
                assert src.transform == Affine.from_gdal(*img["geotransform"])
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]])):
                decoded = coco.annToMask(ann).astype(bool)
                expected = window == ann["object_id"]
                assert np.array_equal(decoded, expected)
                x, y, w, h = ann["bbox"]
                assert mask_box(expected) == (x, y, x + w, y + h)
                assert ann["area"] == int(expected.sum()) == int(cmask.area(ann["segmentation"]))
                checked += 1
        assert doc["categories"]
    assert checked > 10


def test_fully_visible_boxes_map_back_to_polygon_bounds(dataset: dict) -> None:
    """Pixel-centre rasterisation: a box edge is never more than half a pixel outside the
    polygon's bounds; it is within half a pixel of them when the polygon's extreme is blunt
    (a rectangle's side; a disc's, plus its sag over half a pixel). A sharp corner (a rotated
    rectangle) may cover no pixel centre and fall further inside."""
    scene, grid = dataset["scene"], dataset["grid"]
    full = 0
    for record in dataset["records"]:
        chip = record.chip
        for ann in record.kept:
            if ann.truncated or ann.occluded:
                continue
            obj = scene.objects[ann.object_id - 1]
            x0, y0, x1, y1 = ann.box
            t = grid.affine * Affine.translation(chip.col, chip.row)
            left, top = t * (x0, y0)
            right, bottom = t * (x1, y1)
            bx = obj.geometry.bounds
            half = RES / 2 + 1e-9
            assert left >= bx[0] - half and bottom >= bx[1] - half
            assert right <= bx[2] + half and top <= bx[3] + half
            if obj.category == "ship":
                continue
            if obj.category == "storage tank":
                r = (bx[2] - bx[0]) / 2
                half += r - np.sqrt(r * r - (RES / 2) ** 2)
            assert abs(left - bx[0]) <= half and abs(bottom - bx[1]) <= half
            assert abs(right - bx[2]) <= half and abs(top - bx[3]) <= half
            full += 1
    assert full >= 5


def test_oriented_boxes_contain_their_masks(dataset: dict) -> None:
    n = 0
    for record in dataset["records"]:
        for ann in record.kept + [a for a, _ in record.rejected]:
            rect = shapely.Polygon(ann.obox.corners).buffer(1e-6)
            x0, y0, _, _ = ann.box
            rows, cols = np.nonzero(ann.mask)
            pixels = shapely.box(cols + x0, rows + y0, cols + x0 + 1, rows + y0 + 1)
            assert shapely.contains(rect, pixels).all()
            assert 0 <= ann.obox.angle < 180 and ann.obox.w >= ann.obox.h
            assert abs(ann.obox.w * ann.obox.h - shapely.Polygon(ann.obox.corners).area) < 1e-6
            n += 1
    assert n > 10


def test_oriented_box_angle_convention() -> None:
    wide = np.zeros((12, 12), bool)
    wide[3:5, 1:9] = True
    tall = wide.T.copy()
    assert oriented_box(wide).angle == 0 and oriented_box(wide).corners[0] == (1.0, 3.0)
    assert oriented_box(tall).angle == 90 and (oriented_box(tall).w, oriented_box(tall).h) == (8, 2)
    diag = np.eye(12, dtype=bool) | np.eye(12, k=1, dtype=bool)
    assert oriented_box(diag).angle == pytest.approx(45)  # down-right on the image


def test_yolo_files_are_normalised_and_match_the_boxes(dataset: dict) -> None:
    out = dataset["out"]
    names = None
    for task in ("detect", "segment", "obb"):
        data = yaml.safe_load((out / "yolo" / task / "data.yaml").read_text())
        assert "path" not in data and data["task"] == task
        names = data["names"]
        images = out / "yolo" / task / data["train"]
        assert images.is_dir() and any(images.glob("*.tif"))
    by_chip = {r.chip.id: r for r in dataset["records"]}
    lines = 0
    for txt in (out / "yolo" / "detect" / "labels").rglob("*.txt"):
        rec = by_chip[txt.stem]
        rows = [list(map(float, line.split())) for line in txt.read_text().splitlines()]
        assert len(rows) == len(rec.kept)
        for row, ann in zip(rows, rec.kept, strict=True):
            assert names[int(row[0])] == ann.category
            assert all(0.0 <= v <= 1.0 for v in row[1:])
            cx, cy, w, h = (v * rec.chip.size for v in row[1:])
            assert (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2) == pytest.approx(
                ann.box, abs=1e-3
            )
            lines += 1
    for task in ("segment", "obb"):
        for txt in (out / "yolo" / task / "labels").rglob("*.txt"):
            for line in txt.read_text().splitlines():
                values = list(map(float, line.split()[1:]))
                assert values and all(0.0 <= v <= 1.0 for v in values)
                assert len(values) % 2 == 0 and (task != "obb" or len(values) == 8)
    assert lines > 10


def test_dota_round_trips(dataset: dict) -> None:
    out = dataset["out"]
    n = 0
    for rec in dataset["records"]:
        if not rec.kept:
            continue
        objs = read_dota(out / "dota" / rec.chip.split / "labelTxt" / f"{rec.chip.id}.txt")
        assert len(objs) == len(rec.kept)
        for (corners, name, difficult), ann in zip(objs, rec.kept, strict=True):
            assert corners == pytest.approx(np.asarray(ann.obox.corners), abs=1e-3)
            assert name == ann.category.replace(" ", "-")
            assert difficult == int(ann.truncated or ann.occluded)
            n += 1
        assert (out / "dota" / rec.chip.split / "images" / f"{rec.chip.id}.tif").is_file()
    assert n > 10


def test_geojson_and_geopackage_round_trip_in_the_map_crs(dataset: dict) -> None:
    out, grid = dataset["out"], dataset["grid"]
    kept = [(r.chip, a) for r in dataset["records"] for a in r.kept]
    for layer in ("boxes", "oriented_boxes", "instances"):
        for frame in (gpd.read_file(out / "vector" / f"{layer}.geojson"),
                      gpd.read_file(out / "vector" / "detection.gpkg", layer=layer)):  # fmt: skip
            assert frame.crs == grid.crs
            assert len(frame) == len(kept)
            for (chip, ann), row in zip(kept, frame.itertuples(), strict=True):
                assert (row.chip, row.object_id) == (chip.id, ann.object_id)
                t = grid.affine * Affine.translation(chip.col, chip.row)
                if layer == "boxes":
                    x0, y0, x1, y1 = ann.box
                    (a, b), (c, d) = t * (x0, y1), t * (x1, y0)
                    assert row.geometry.bounds == pytest.approx((a, b, c, d))
                if layer == "instances":
                    assert row.geometry.area == pytest.approx(ann.area * RES * RES)


def test_split_areas_do_not_overlap_and_are_reproducible() -> None:
    shape = (300, 300)
    chips = chip_windows(shape, 40, 20)
    fr = (0.6, 0.2, 0.2)
    a, _ = assign_splits(chips, shape, block=100, buffer=10, fractions=fr, seed=7)
    b, _ = assign_splits(chips, shape, block=100, buffer=10, fractions=fr, seed=7)
    c, _ = assign_splits(chips, shape, block=100, buffer=10, fractions=fr, seed=8)
    assert a == b and a != c
    assert {ch.split for ch in a} == {"train", "val", "test"}
    boxes = {
        s: shapely.union_all(
            [shapely.box(ch.col, ch.row, ch.col + 40, ch.row + 40) for ch in a if ch.split == s]
        )
        for s in ("train", "val", "test")
    }
    for s in boxes:
        for t in boxes:
            if s < t:
                assert boxes[s].distance(boxes[t]) >= 10


def test_visibility_rule_and_truncated_flag() -> None:
    grid = _grid()
    # a 20 x 10 px object, half of it in the first 32 px chip
    geom = shapely.box(X0 + 2 * 22, Y0 - 2 * 20, X0 + 2 * 42, Y0 - 2 * 10)
    scene = scene_from_polygons(
        gpd.GeoDataFrame({"k": ["car"]}, geometry=[geom], crs=CRS), grid, "k"
    )
    [(ann, kept)] = list(chip_annotations(scene, Chip(0, 0, 32), 0.6))
    assert ann.truncated and not kept and ann.visible_fraction == pytest.approx(0.5)
    [(ann, kept)] = list(chip_annotations(scene, Chip(0, 0, 32), 0.5))
    assert kept
    [(ann, kept)] = list(chip_annotations(scene, Chip(0, 16, 32), 0.5))
    assert not ann.truncated and ann.visible_fraction == 1.0


def test_bad_inputs_are_typed_errors(tmp_path: Path) -> None:
    grid = _grid()
    with pytest.raises(InputError, match="larger than the scene"):
        chip_windows(grid.shape, 200, 100)
    points = gpd.GeoDataFrame({"k": ["a"]}, geometry=[shapely.Point(X0, Y0)], crs=CRS)
    with pytest.raises(LayoutError, match="polygons are expected"):
        scene_from_polygons(points, grid, "k")
    with pytest.raises(LayoutError, match="field 'nope' not found"):
        scene_from_polygons(_objects(), grid, "nope")
    with pytest.raises(InputError, match="min-visible"):
        ChipSettings(min_visible=1.5)


def test_coco_polygons_decode_exactly_for_masks_without_holes(tmp_path: Path) -> None:
    from pycocotools.coco import COCO
    from scipy import ndimage

    grid = _grid()
    scene = scene_from_polygons(_objects(seed=5), grid, "kind")
    settings = ChipSettings(size=40, stride=40, fractions=(1, 0, 0), rle=False, formats=("coco",))
    out = tmp_path / "poly"
    export_scene(out, scene, _image(tmp_path / "img.tif", grid), settings)
    coco = COCO(str(out / "coco" / "train.json"))
    n = 0
    for img in coco.imgs.values():
        window = scene.instances[img["chip_row"] : img["chip_row"] + 40,
                                 img["chip_col"] : img["chip_col"] + 40]  # fmt: skip
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]])):
            assert isinstance(ann["segmentation"], list)
            expected = window == ann["object_id"]
            decoded = coco.annToMask(ann).astype(bool)
            if np.array_equal(ndimage.binary_fill_holes(expected), expected):
                assert np.array_equal(decoded, expected)
                n += 1
    assert n > 10


def test_a_scene_without_objects_exports_empty_labels(tmp_path: Path) -> None:
    grid = _grid()
    empty = gpd.GeoDataFrame({"kind": []}, geometry=[], crs=CRS)
    scene = scene_from_polygons(empty, grid, "kind")
    settings = ChipSettings(size=40, stride=40, fractions=(1, 0, 0))
    outputs, records, _ = export_scene(tmp_path / "e", scene, _image(tmp_path / "i.tif", grid),
                                       settings)  # fmt: skip
    assert len(records) == 4 and not any(r.kept for r in records)
    assert json.loads(outputs["coco_train"].read_text())["annotations"] == []
    assert len(gpd.read_file(outputs["boxes"])) == 0
    assert len(gpd.read_file(outputs["gpkg"], layer="instances")) == 0
    assert not list((tmp_path / "e").rglob(".tmp-*"))
