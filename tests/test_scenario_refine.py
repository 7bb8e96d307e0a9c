"""``--refine`` on the scenarios: only the generated region is judged and repaired.

Real tiny model code (small random weights, so most entities fail a strict threshold and
the loop really regenerates), the shipped segmenter and colour statistics. In an edit, the
entities judged are exactly those inside the edit mask, and every pixel outside it is still
the base image's, bit for bit; a scenario render from a layout is judged whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from shapely.geometry import box

pytest.importorskip("torch")

from rs_seg2any.critics.params import RefineParams
from rs_seg2any.generators.registry import load_generator
from rs_seg2any.geoio import write_cog
from rs_seg2any.scenarios.change import change_pairs
from rs_seg2any.scenarios.cloudfill import cloudfill
from rs_seg2any.scenarios.common import GenOptions, Polygons
from rs_seg2any.scenarios.flood import flood
from rs_seg2any.scenarios.planning import plan
from rs_seg2any.scenarios.seasons import seasons

CRS = "EPSG:32640"
X0, Y0, N = 300_000.0, 2_780_000.0, 96
GRID = GeoBox.from_bbox((X0, Y0, X0 + N, Y0 + N), CRS, resolution=1.0)
STRICT = RefineParams(refine=True, min_score=0.99, max_rounds=1, time_factor=3.0)
OPTS = GenOptions(steps=2, tile_size=64, overlap=16, seed=3, refine=STRICT)


@pytest.fixture(scope="module")
def gen(tiny_random_weights: Path) -> Any:
    return load_generator("tiny", tiny_random_weights, threads=1)


@pytest.fixture
def town() -> Polygons:
    frame = gpd.GeoDataFrame(
        {"cls": ["water", "land", "building"], "desc": ["a river", "bare sand", "a flat roof"]},
        geometry=[box(X0, Y0, X0 + 16, Y0 + N), box(X0 + 16, Y0, X0 + N, Y0 + N),
                  box(X0 + 50, Y0 + 50, X0 + 70, Y0 + 70)],
        crs=CRS,
    )  # fmt: skip
    return Polygons.read(frame, "cls", description_field="desc", taxonomy="dubai_aerial")


def photo(tmp_path: Path, dtype: str = "uint8") -> Path:
    top = 256 if dtype == "uint8" else 4000
    img = np.random.default_rng(0).integers(0, top, size=(3, N, N)).astype(dtype)
    return write_cog(tmp_path / f"photo_{dtype}.tif", img, GRID, categorical=False)


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def check_edit_refined(folder: Path, base: Path, judged_some: bool | None = True) -> dict[str, Any]:
    """The refined edit in ``folder``: judged inside its mask only, exact outside it."""
    mask = read(folder / "edit_mask.tif")[0] != 0
    image, before = read(folder / "image.tif"), read(base)
    assert np.array_equal(image[:, ~mask], before[:, ~mask])  # bit-identical outside
    inst = read(folder / "instance.tif")[0]
    quality = json.loads((folder / "quality.json").read_text())
    judged = {r["entity"] for r in quality["entities"]}
    assert judged == {int(e) for e in np.unique(inst[mask]) if e > 0}
    assert judged != {int(e) for e in np.unique(inst) if e > 0}  # some entity lies outside
    traj = json.loads((folder / "refine_trajectory.json").read_text())
    if judged_some is False:  # no critic knows the edit's classes: said, nothing regenerated
        assert traj["initial"] == {} and traj["rounds"] == [] and traj["notes"]
    if not judged_some:
        return traj
    assert traj["rounds"] and traj["rounds"][0]["entities"]  # the strict threshold bites
    assert set(map(int, traj["rounds"][0]["entities"])) <= judged
    check = json.loads((folder / "edit_check.json").read_text())
    assert check["leaked_pixels"] == 0  # verified after the refine loop, on its pixels
    return traj


def test_plan_and_cloudfill_refine_inside_the_edit_only(
    tmp_path: Path, gen: Any, town: Polygons
) -> None:
    base = photo(tmp_path)
    park = box(X0 + 40, Y0 + 20, X0 + 90, Y0 + 60)  # over land and part of the building
    zones = gpd.GeoDataFrame({"what": ["a park with a lake"], "cls": ["vegetation"]},
                             geometry=[park], crs=CRS)  # fmt: skip
    res = plan(tmp_path / "p", gen, zones, description_field="what", zone_class_field="cls",
               base_image=base, polygons=town, opts=OPTS)  # fmt: skip
    traj = check_edit_refined(tmp_path / "p" / "after", base)
    assert "fidelity" in traj["critics"]  # dubai_aerial: the segmenter judges
    assert res.after.outputs["quality"].exists()
    clouds = np.zeros((1, N, N), dtype=np.uint8)
    clouds[0, 10:40, 30:70] = 1
    cpath = write_cog(tmp_path / "clouds.tif", clouds, GRID, categorical=True)
    cloudfill(tmp_path / "cf", gen, base, cpath, town, opts=OPTS)
    check_edit_refined(tmp_path / "cf", base)


def test_flood_refine_says_why_it_judges_nothing_and_keeps_the_base(
    tmp_path: Path, gen: Any, town: Polygons
) -> None:
    base = photo(tmp_path)
    zone = gpd.GeoDataFrame(geometry=[box(X0 + 10, Y0 + 5, X0 + 40, Y0 + 60)], crs=CRS)
    flood(tmp_path / "f", gen, extent=zone, base_image=base, polygons=town, opts=OPTS)
    traj = check_edit_refined(tmp_path / "f" / "after", base, judged_some=False)
    assert any("flood water" in n for n in traj["notes"])


def test_change_pair_refines_t1_whole_and_t2_inside_its_mask(
    tmp_path: Path, gen: Any, town: Polygons
) -> None:
    frame = town.frame.copy()
    frame.loc[2, "cls"] = "land"  # a building demolished
    res = change_pairs(tmp_path / "c", gen, town, GRID, after=town.with_frame(frame), opts=OPTS)
    t1 = tmp_path / "c" / "t1"
    q1 = json.loads((t1 / "quality.json").read_text())
    inst = read(t1 / "instance.tif")[0]
    assert {r["entity"] for r in q1["entities"]} == {int(e) for e in np.unique(inst) if e > 0}
    check_edit_refined(Path(res.pairs[0].t2.outputs["image"]).parent, t1 / "image.tif")


def test_seasons_refine_each_render_whole(tmp_path: Path, gen: Any, town: Polygons) -> None:
    seasons(tmp_path / "s", lambda lora: gen, town, GRID, ["winter"], opts=OPTS)
    folder = tmp_path / "s" / "winter"
    inst = read(folder / "instance.tif")[0]
    quality = json.loads((folder / "quality.json").read_text())
    assert {r["entity"] for r in quality["entities"]} == {int(e) for e in np.unique(inst) if e}
    assert json.loads((folder / "refine_trajectory.json").read_text())["rounds"]


def test_detection_set_refines_its_generated_background(
    tmp_path: Path, tiny_random_weights: Path, town: Polygons
) -> None:
    import rs_seg2any as rs

    layer = tmp_path / "town.gpkg"
    town.frame.to_file(layer)
    insert = tmp_path / "insert.geojson"
    gpd.GeoDataFrame(
        {"class": ["shed"], "text": ["temporary shed with a blue roof"]},
        geometry=[box(X0 + 70, Y0 + 70, X0 + 80, Y0 + 77)],
        crs=CRS,
    ).to_file(insert)
    out = tmp_path / "det"
    rs.detection_set(out, layout=str(layer), class_field="cls", description_field="desc",
                     taxonomy="dubai_aerial", resolution="1", insert=str(insert),
                     object_description_field="text",
                     model=str(tiny_random_weights), steps=2, tile_size=64, overlap=16, seed=5,
                     chip_size=32, split_block=32, split_buffer=0, refine=STRICT,
                     progress="none")  # fmt: skip
    scene = out / "scene"
    quality = json.loads((scene / "quality.json").read_text())
    inst = read(scene / "instance.tif")[0]
    assert {r["entity"] for r in quality["entities"]} == {int(e) for e in np.unique(inst) if e}
    assert json.loads((scene / "refine_trajectory.json").read_text())["rounds"]
    check_edit_refined(out / "inserted", scene / "image.tif", judged_some=None)


def test_refine_is_skipped_with_a_note_for_a_base_the_generator_cannot_paint(
    tmp_path: Path, gen: Any, town: Polygons
) -> None:
    base = photo(tmp_path, "uint16")
    clouds = np.zeros((1, N, N), dtype=np.uint8)
    clouds[0, 10:40, 30:70] = 1
    cpath = write_cog(tmp_path / "clouds.tif", clouds, GRID, categorical=True)
    res = cloudfill(tmp_path / "cf", gen, base, cpath, town, opts=OPTS)
    quality = json.loads(res.outputs["quality"].read_text())
    assert "uint16" in quality["skipped"]
    assert not (tmp_path / "cf" / "refine_trajectory.json").exists()


def test_every_pixel_scenario_takes_the_refine_keys_in_jobs_cli_and_api() -> None:
    from rs_seg2any import api
    from rs_seg2any.cli import build_parser
    from rs_seg2any.jobmodel import command_groups, job_from_mapping
    from rs_seg2any.scenarios.registry import scenario_spec

    for name in ("flood", "plan", "seasons", "change", "cloudfill", "damage", "detection-set"):
        assert scenario_spec(name).refine and command_groups(name)["refine"] is RefineParams
    job = job_from_mapping("flood", {"out": "o", "flood_polygons": __file__, "refine": True,
                                     "min_score": 0.3, "max_rounds": 4})  # fmt: skip
    assert job.refine == RefineParams(True, 0.3, 4, 2.0)
    argv = ["seasons", "--layout", "x.gpkg", "--class-field", "c", "--out", "o", "--refine"]
    args = build_parser().parse_args([*argv, "--time-factor", "1.5"])
    assert (args.refine, args.time_factor) == (True, 1.5)
    with pytest.raises(TypeError, match="unexpected options"):
        api.scenario("flood", "o", refine_rounds=2)  # a stranger still named


def test_api_verb_refine_object_reaches_the_scenario(
    tmp_path: Path, gen: Any, town: Polygons
) -> None:
    from rs_seg2any import api

    base = photo(tmp_path)
    clouds = np.zeros((1, N, N), dtype=np.uint8)
    clouds[0, 60:90, 10:50] = 1
    cpath = write_cog(tmp_path / "clouds.tif", clouds, GRID, categorical=True)
    layer = tmp_path / "town.gpkg"
    town.frame.to_file(layer)
    api.cloudfill(tmp_path / "v", layout=str(layer), class_field="cls", description_field="desc",
                  taxonomy="dubai_aerial", image=str(base), clouds=str(cpath), generator=gen,
                  steps=2, tile_size=64, overlap=16, refine=STRICT, progress="none")  # fmt: skip
    traj = check_edit_refined(tmp_path / "v", base)
    assert traj["params"]["min_score"] == 0.99 and traj["params"]["time_factor"] == 3.0
