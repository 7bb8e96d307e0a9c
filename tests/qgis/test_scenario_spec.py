"""The scenario jobs as CLI arguments, and which outputs become layers (no QGIS run)."""

from __future__ import annotations

from typing import Any

import pytest


def args_of(schema: Any, **kwargs: object) -> list[str]:
    from rs_seg2any_qgis.scenarios import ScenarioSpec

    return ScenarioSpec(**kwargs).to_args(schema)  # type: ignore[arg-type]


def test_flood_on_an_image_with_polygons(schema: Any) -> None:
    args = args_of(schema, command="flood", out_dir="/o", image="/b.tif", flood_polygons="/f.gpkg",
                   resolution=0.5, seed=3, steps=2, tile_size=64)  # fmt: skip
    assert args[0] == "flood"
    assert args[args.index("--image") + 1] == "/b.tif"
    assert args[args.index("--flood-polygons") + 1] == "/f.gpkg"
    assert "--resolution" not in args  # the image's grid, not a rendered layout's
    assert "--layout" not in args and "--dem" not in args
    assert args[args.index("--overlap") + 1] == "16"  # small tiles get a quarter
    assert args[-4:] == ["--out", "/o", "--progress", "json"]


def test_flood_from_a_dem_rendered_from_a_layout(schema: Any) -> None:
    args = args_of(schema, command="flood", out_dir="/o", layout="/l.gpkg", layer_name="town",
                   class_field="lc", taxonomy="dubai_aerial", dem="/d.tif", level=3.0,
                   seed_xy=[(1.5, 2.0), (3.0, 4.0)], dem_resample="bilinear", resolution=0.5,
                   crs="EPSG:32640", extent=(0.0, 0.0, 48.0, 48.0))  # fmt: skip
    joined = " ".join(args)
    assert "--layout /l.gpkg --layer town --class-field lc" in joined
    assert "--dem /d.tif --level 3 --seed-xy 1.5,2 --seed-xy 3,4 --dem-resample bilinear" in joined
    assert "--resolution 0.5 --crs EPSG:32640 --extent 0,0,48,48" in joined


def test_plan_seasons_and_change_arguments(schema: Any) -> None:
    plan = " ".join(args_of(schema, command="plan", out_dir="/o", image="/b.tif", zones="/z.gpkg",
                            zone_description_field="desc", zone_class_field="cls"))  # fmt: skip
    assert "--zones /z.gpkg --zone-description-field desc --zone-class-field cls" in plan
    seasons = args_of(schema, command="seasons", out_dir="/o", layout="/l.gpkg", class_field="lc",
                      seasons=["summer", "winter"], resolution=1.0)  # fmt: skip
    assert seasons[seasons.index("--seasons") + 1] == "summer,winter"
    change = " ".join(args_of(schema, command="change", out_dir="/o", layout="/l.gpkg",
                              class_field="lc", recipe="new_buildings",
                              params={"count": "5"}, pairs=3, resolution=1.0))  # fmt: skip
    assert "--recipe new_buildings --param count=5 --pairs 3" in change
    after = args_of(schema, command="change", out_dir="/o", layout="/l.gpkg", class_field="lc",
                    after="/a.gpkg", params={"count": "5"}, pairs=1, resolution=1.0)  # fmt: skip
    assert "--after" in after and "--param" not in after and "--pairs" not in after


def test_damage_arguments(schema: Any) -> None:
    layer = " ".join(args_of(schema, command="damage", out_dir="/o", image="/b.tif",
                             damage_layer="/d.gpkg", damage_level_field="lvl",
                             damage_type_field="kind", disaster="earthquake",
                             origin=(1.0, 2.0), params={"decay": "0.3"}))  # fmt: skip
    assert "--disaster earthquake --damage-layer /d.gpkg --damage-level-field lvl" in layer
    assert "--damage-type-field kind" in layer
    assert "--origin" not in layer and "--param" not in layer  # a layer needs no recipe
    recipe = " ".join(args_of(schema, command="damage", out_dir="/o", layout="/l.gpkg",
                              class_field="lc", disaster="flood", dem="/dem.tif", level=4.0,
                              seed_xy=[(1.0, 2.0)], params={"vulnerability": "0"},
                              resolution=0.5))  # fmt: skip
    assert "--disaster flood --param vulnerability=0 --dem /dem.tif --level 4" in recipe
    assert "--seed-xy 1,2" in recipe and "--damage-layer" not in recipe


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"command": "flood", "image": "/b.tif"}, "flood polygons, or a DEM"),
        ({"command": "flood", "image": "/b.tif", "dem": "/d.tif"}, "water level"),
        ({"command": "flood", "flood_polygons": "/f.gpkg"}, "base image, or a layout"),
        ({"command": "flood", "layout": "/l.gpkg", "flood_polygons": "/f"}, "class field"),
        ({"command": "plan", "image": "/b.tif", "zones": "/z"}, "description field"),
        ({"command": "seasons", "image": "/b.tif", "seasons": ["summer"]}, "choose a layout"),
        ({"command": "seasons", "layout": "/l", "class_field": "c", "resolution": 1.0},
         "at least one season"),
        ({"command": "change", "layout": "/l", "class_field": "c", "resolution": 1.0},
         "after layout or a change recipe"),
        ({"command": "change", "layout": "/l", "class_field": "c", "recipe": "new_buildings"},
         "resolution"),
        ({"command": "damage", "image": "/b.tif"}, "damage layer, or a layout"),
        ({"command": "detection-set", "image": "/b.tif"}, "objects layer"),
        ({"command": "detection-set", "image": "/b.tif", "objects": "/o"}, "class field"),
        ({"command": "detection-set", "image": "/b.tif", "objects": "/o",
          "object_class_field": "c", "formats": []}, "export format"),
        ({"command": "detection-set", "objects": "/o", "object_class_field": "c"},
         "base image, or a layout"),
    ],
)  # fmt: skip
def test_problems_before_a_process_starts(kwargs: dict[str, object], problem: str) -> None:
    from rs_seg2any_qgis.scenarios import ScenarioSpec

    found = ScenarioSpec(out_dir="/o", **kwargs).problems()  # type: ignore[arg-type]
    assert any(problem in p for p in found), found


def test_detection_set_arguments(schema: Any) -> None:
    real = args_of(schema, command="detection-set", out_dir="/o", image="/b.tif",
                   objects="/obj.gpkg", object_class_field="kind", chip_size=32, chip_stride=16,
                   min_visible=0.3, formats=["coco", "vector"], segmentation="polygon",
                   extra={"split_block": 32})  # fmt: skip
    joined = " ".join(real)
    assert real[0] == "detection-set"
    assert "--objects /obj.gpkg --object-class-field kind --chip-size 32 --chip-stride 16" in joined
    assert "--min-visible 0.3 --formats coco,vector --segmentation polygon" in joined
    assert "--split-block 32" in joined and "--layout" not in real
    from rs_seg2any_qgis.scenarios import ScenarioSpec

    inserting = ScenarioSpec(command="detection-set", out_dir="/o", image="/b.tif",
                             extra={"insert_count": 3})  # fmt: skip
    assert inserting.problems() == []  # rare objects alone need no objects layer
    rendered = args_of(schema, command="detection-set", out_dir="/o", layout="/l.gpkg",
                       class_field="lc", objects="/obj.gpkg", object_class_field="kind",
                       resolution=0.5)  # fmt: skip
    assert "--layout" in rendered and "--resolution" in rendered and "--image" not in rendered
    assert "--formats" not in rendered and "--chip-size" not in rendered  # the CLI's defaults


def test_parse_params_and_points() -> None:
    from rs_seg2any_qgis.scenarios import parse_params, parse_points

    assert parse_params("count=20, fraction=0.3") == {"count": "20", "fraction": "0.3"}
    assert parse_params("") == {}
    assert parse_points("1,2; 3.5 4") == [(1.0, 2.0), (3.5, 4.0)]
    for bad in ("count", "=3"):
        with pytest.raises(ValueError):
            parse_params(bad)
    with pytest.raises(ValueError):
        parse_points("1,2,3")


def test_result_layers_per_scenario() -> None:
    from rs_seg2any_qgis.scenarios import result_layers

    flood = {k: f"/{k}.tif" for k in ("before", "image", "label", "contour", "flood_mask")}
    names = [(r.name, r.visible) for r in result_layers("flood", flood)]
    assert names == [("flood mask", False), ("label (after)", False), ("after", True),
                     ("before", False)]  # fmt: skip
    seasons = {f"{s}_{k}": "/x" for s in ("summer", "winter") for k in ("image", "label", "style")}
    assert [r.name for r in result_layers("seasons", seasons)] == [
        "summer", "winter", "summer label", "winter label"]  # fmt: skip
    one = {k: "/x" for k in ("t1_image", "t1_label", "t2_image", "t2_label", "change_mask",
                              "change_fromto", "t2_style")}  # fmt: skip
    expected = ["change mask", "change from-to", "T2 label", "T2 (after)", "T1 label",
                "T1 (before)"]  # fmt: skip
    assert [r.name for r in result_layers("change", one)] == expected
    two = {k: "/x" for k in ("t1_image", "t2_000_image", "t2_001_image", "000_change_mask",
                              "001_change_mask")}  # fmt: skip
    layers = result_layers("change", two)
    assert [r.name for r in layers] == ["change mask #000", "T2 (after) #000", "change mask #001",
                                        "T2 (after) #001", "T1 (before)"]  # fmt: skip
    assert [r.key for r in layers if r.visible] == ["t2_000_image"]
    damage = {k: "/x" for k in ("before", "before_label", "image", "label", "damage_level",
                                 "damage_polygons")}  # fmt: skip
    assert [(r.name, r.visible) for r in result_layers("damage", damage)] == [
        ("damage level", False), ("label (post-event)", False), ("post-event", True),
        ("label (pre-event)", False), ("pre-event", False)]  # fmt: skip
    real = {"gpkg": "/o/vector/detection.gpkg", "classes": "/o/classes.json",
            "image": "/data/photo.tif"}  # fmt: skip
    assert [(r.name, r.sublayer, r.visible) for r in result_layers("detection-set", real)] == [
        ("boxes", "boxes", True), ("oriented boxes", "oriented_boxes", False),
        ("instances", "instances", True)]  # fmt: skip
    generated = {**real, "image": "/o/scene/image.tif"}  # rendered into the set's folder
    assert [r.name for r in result_layers("detection-set", generated)][-1] == "background"
    generate = {k: "/x" for k in ("image", "label", "contour")}
    assert [(r.name, r.visible) for r in result_layers("generate", generate)] == [
        ("contour", True), ("label", False), ("image", True)]  # fmt: skip
