"""Scenarios end to end with the real tiny model code (small random weights) and real GeoTIFFs.

What users rely on: outside the edit mask every output pixel equals the input pixel exactly;
the change mask is the cell-wise difference of the two label masks; a DEM flood covers exactly
the hand-computed connected region; every output shares one grid and CRS; bad inputs fail
with typed errors before anything is rendered.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from shapely.geometry import box

pytest.importorskip("torch")

from rs_seg2any.cli import main
from rs_seg2any.errors import InputError, ScenarioError
from rs_seg2any.generators.registry import load_generator
from rs_seg2any.geoio import write_cog
from rs_seg2any.scenarios.change import change_pairs
from rs_seg2any.scenarios.cloudfill import cloudfill
from rs_seg2any.scenarios.common import GenOptions, Polygons
from rs_seg2any.scenarios.flood import DemFlood, flood
from rs_seg2any.scenarios.planning import plan
from rs_seg2any.scenarios.seasons import seasons

CRS = "EPSG:32640"
X0, Y0, RES, N = 300_000.0, 2_780_000.0, 1.0, 96  # a 96 x 96 px grid at 1 m
GRID = GeoBox.from_bbox((X0, Y0, X0 + N * RES, Y0 + N * RES), CRS, resolution=RES)
OPTS = GenOptions(steps=2, tile_size=64, overlap=16, seed=3)


def read(path: Path) -> tuple[np.ndarray, rasterio.Affine, object]:
    with rasterio.open(path) as src:
        return src.read(), src.transform, src.crs


def same_grid(*paths: Path) -> None:
    grids = []
    for p in paths:
        with rasterio.open(p) as src:
            grids.append((src.crs, src.transform, src.shape))
    assert all(g == grids[0] for g in grids), grids


@pytest.fixture(scope="module")
def gen(tiny_random_weights: Path) -> object:
    return load_generator("tiny", tiny_random_weights, threads=1)


@pytest.fixture
def town() -> Polygons:
    """River on the left 16 m, land elsewhere, two buildings."""
    frame = gpd.GeoDataFrame(
        {
            "cls": ["water", "land", "building", "building", "road"],
            "desc": ["a river", "bare sand", "a flat roof", "a flat roof", "asphalt road"],
        },
        geometry=[
            box(X0, Y0, X0 + 16, Y0 + N),
            box(X0 + 16, Y0, X0 + N, Y0 + N),
            box(X0 + 50, Y0 + 50, X0 + 70, Y0 + 70),
            box(X0 + 75, Y0 + 10, X0 + 90, Y0 + 25),
            box(X0 + 16, Y0 + 40, X0 + N, Y0 + 46),
        ],
        crs=CRS,
    )
    return Polygons.read(frame, "cls", description_field="desc", taxonomy="dubai_aerial")


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(3, N, N), dtype=np.uint8)
    return write_cog(tmp_path / "photo.tif", img, GRID, categorical=False)


def test_flood_polygons_keep_every_outside_pixel(tmp_path: Path, gen: object, photo: Path,
                                                 town: Polygons) -> None:  # fmt: skip
    zone = gpd.GeoDataFrame(geometry=[box(X0 + 10, Y0 + 5, X0 + 40, Y0 + 60)], crs=CRS)
    res = flood(tmp_path / "f", gen, extent=zone, base_image=photo, polygons=town, opts=OPTS)  # type: ignore[arg-type]
    before, _, _ = read(photo)
    after, _, _ = read(res.after.outputs["image"])
    mask = read(res.flood_mask)[0][0].astype(bool)
    assert mask.sum() == 30 * 55
    assert np.array_equal(after[:, ~mask], before[:, ~mask])
    assert not np.array_equal(after[:, mask], before[:, mask])
    label = read(res.after.outputs["label"])[0][0]
    assert set(np.unique(label[mask]).tolist()) == {7}  # flood water: the next free id
    assert 7 not in label[~mask]
    same_grid(photo, res.after.outputs["image"], res.after.outputs["label"], res.flood_mask)


def test_dem_flood_is_the_connected_low_region(tmp_path: Path, gen: object, photo: Path,
                                               town: Polygons) -> None:  # fmt: skip
    # terrain rises 0.1 m per column from the river; a ridge at columns 60-62 (5 m) shuts off
    # a bowl (columns 63-80, 1 m deep) that lies below the water level but is not connected
    cols = np.arange(N, dtype=np.float32)
    dem = np.tile(cols * 0.1, (N, 1))
    dem[:, 60:63] = 5.0
    dem[:, 63:81] = 1.0
    dem_path = write_cog(tmp_path / "dem.tif", dem[None], GRID, categorical=False)
    res = flood(tmp_path / "f", gen, extent=DemFlood(dem_path, 3.0), base_image=photo,  # type: ignore[arg-type]
                polygons=town, opts=OPTS)  # fmt: skip
    expected = np.zeros((N, N), dtype=bool)
    expected[:, :30] = True  # 0.1 * col < 3.0  <=>  col < 30; river columns 0-15 included
    mask = read(res.flood_mask)[0][0].astype(bool)
    assert np.array_equal(mask, expected)
    assert res.flood_depth is not None
    depth = read(res.flood_depth)[0][0]
    assert np.allclose(depth[expected], 3.0 - dem[expected], atol=1e-5)
    assert np.isnan(depth[~expected]).all()
    before, after = read(photo)[0], read(res.after.outputs["image"])[0]
    assert np.array_equal(after[:, ~mask], before[:, ~mask])
    # a seed in the bowl floods the bowl too
    seeded = flood(tmp_path / "g", gen, base_image=photo, polygons=town, opts=OPTS,  # type: ignore[arg-type]
                   extent=DemFlood(dem_path, 3.0, seeds=[(X0 + 70.5, Y0 + 30.5)]))  # fmt: skip
    mask2 = read(seeded.flood_mask)[0][0].astype(bool)
    expected[:, 63:81] = True
    assert np.array_equal(mask2, expected)


def test_dem_on_another_grid_needs_resampling(tmp_path: Path, gen: object, photo: Path,
                                              town: Polygons) -> None:  # fmt: skip
    coarse = GeoBox.from_bbox((X0, Y0, X0 + N, Y0 + N), CRS, resolution=2.0)
    dem = np.tile(np.arange(48, dtype=np.float32) * 0.2, (48, 1))
    path = write_cog(tmp_path / "dem2.tif", dem[None], coarse, categorical=False)
    with pytest.raises(ScenarioError, match="another grid"):
        flood(tmp_path / "f", gen, extent=DemFlood(path, 3.0), base_image=photo,  # type: ignore[arg-type]
              polygons=town, opts=OPTS)  # fmt: skip
    assert not (tmp_path / "f" / "after" / "image.tif").exists()
    res = flood(tmp_path / "f", gen, extent=DemFlood(path, 3.0, resample="bilinear"),  # type: ignore[arg-type]
                base_image=photo, polygons=town, opts=OPTS)  # fmt: skip
    same_grid(photo, res.flood_mask, res.after.outputs["image"])


def test_water_level_below_all_terrain(tmp_path: Path, gen: object, photo: Path,
                                       town: Polygons) -> None:  # fmt: skip
    dem = np.full((1, N, N), 10.0, dtype=np.float32)
    path = write_cog(tmp_path / "dem.tif", dem, GRID, categorical=False)
    with pytest.raises(ScenarioError, match="below all terrain"):
        flood(tmp_path / "f", gen, extent=DemFlood(path, 2.0), base_image=photo,  # type: ignore[arg-type]
              polygons=town, opts=OPTS)  # fmt: skip
    assert not list((tmp_path / "f").rglob("*.tif"))
    # from a layout too: the inputs are checked before the base image is rendered
    with pytest.raises(ScenarioError, match="below all terrain"):
        flood(tmp_path / "g", gen, extent=DemFlood(path, 2.0), polygons=town, grid=GRID,  # type: ignore[arg-type]
              opts=OPTS)  # fmt: skip
    assert not (tmp_path / "g" / "before").exists()


def test_plan_zones_inpaint_only_inside(tmp_path: Path, gen: object, photo: Path,
                                        town: Polygons) -> None:  # fmt: skip
    zones = gpd.GeoDataFrame(
        {"what": ["high-rise towers with glass facades", "a park with a lake"],
         "cls": ["building", "vegetation"]},
        geometry=[box(X0 + 20, Y0 + 20, X0 + 40, Y0 + 40), box(X0 + 60, Y0 + 60, X0 + 90, Y0 + 90)],
        crs=CRS,
    )  # fmt: skip
    res = plan(tmp_path / "p", gen, zones, description_field="what", zone_class_field="cls",  # type: ignore[arg-type]
               base_image=photo, polygons=town, opts=OPTS)  # fmt: skip
    before, after = read(photo)[0], read(res.after.outputs["image"])[0]
    inside = np.zeros((N, N), dtype=bool)
    inside[N - 40 : N - 20, 20:40] = True  # rows count from the top
    inside[N - 90 : N - 60, 60:90] = True
    assert np.array_equal(after[:, ~inside], before[:, ~inside])
    label = read(res.after.outputs["label"])[0][0]
    assert (label[N - 40 : N - 20, 20:40] == 1).all()  # zones win over the existing layer
    assert (label[N - 90 : N - 60, 60:90] == 4).all()
    outside = gpd.GeoDataFrame({"what": ["x"]}, geometry=[box(0, 0, 10, 10)], crs=CRS)
    with pytest.raises(ScenarioError, match="outside the image"):
        plan(tmp_path / "q", gen, outside, description_field="what", base_image=photo, opts=OPTS)  # type: ignore[arg-type]


def test_seasons_are_coregistered_and_differ(tmp_path: Path, gen: object,
                                             town: Polygons) -> None:  # fmt: skip
    res = seasons(tmp_path / "s", lambda lora: gen, town, GRID, ["spring", "winter"], opts=OPTS)  # type: ignore[arg-type,return-value]
    a, b = (res.seasons[s].outputs["image"] for s in ("spring", "winter"))
    same_grid(a, b, res.seasons["spring"].outputs["label"])
    assert not np.array_equal(read(a)[0], read(b)[0])
    assert np.array_equal(read(res.seasons["spring"].outputs["label"])[0],
                          read(res.seasons["winter"].outputs["label"])[0])  # fmt: skip
    with pytest.raises(InputError, match="unknown season"):
        seasons(tmp_path / "t", lambda lora: gen, town, GRID, ["monsoon"], opts=OPTS)  # type: ignore[arg-type,return-value]


def test_change_pair_mask_is_label_difference(tmp_path: Path, gen: object,
                                              town: Polygons) -> None:  # fmt: skip
    params = {"count": 3, "size_m": (6.0, 10.0)}
    res = change_pairs(tmp_path / "c", gen, town, GRID, recipe="new_buildings",  # type: ignore[arg-type]
                       recipe_params=params, pairs=2, opts=OPTS)  # fmt: skip
    l1 = read(res.t1.outputs["label"])[0][0]
    t1 = read(res.t1.outputs["image"])[0]
    for pair in res.pairs:
        l2 = read(pair.t2.outputs["label"])[0][0]
        change = read(pair.change_mask)[0][0]
        assert np.array_equal(change.astype(bool), l1 != l2)
        assert change.any()
        t2 = read(pair.t2.outputs["image"])[0]
        assert np.array_equal(t2[:, l1 == l2], t1[:, l1 == l2])
        code = read(pair.change_fromto)[0][0].astype(int)
        assert np.array_equal(code[l1 != l2] // 256, l1[l1 != l2])
        assert np.array_equal(code[l1 != l2] % 256, l2[l1 != l2])
        assert (code[l1 == l2] == 0).all()
        same_grid(res.t1.outputs["image"], pair.t2.outputs["image"], pair.change_mask)
    masks = [read(p.change_mask)[0] for p in res.pairs]
    assert not np.array_equal(masks[0], masks[1])  # two draws of the recipe


def test_change_pair_from_two_layouts_and_grid_mismatch(tmp_path: Path, gen: object,
                                                        town: Polygons) -> None:  # fmt: skip
    frame = town.frame.copy()
    frame.loc[2, "cls"] = "land"  # a building demolished
    after = town.with_frame(frame)
    res = change_pairs(tmp_path / "c", gen, town, GRID, after=after, opts=OPTS)  # type: ignore[arg-type]
    change = read(res.pairs[0].change_mask)[0][0].astype(bool)
    assert change.sum() == 20 * 20
    other = GeoBox.from_bbox((X0, Y0, X0 + N, Y0 + N), CRS, resolution=2.0)
    with pytest.raises(ScenarioError, match="different grids"):
        change_pairs(tmp_path / "d", gen, town, GRID, after=after, after_grid=other, opts=OPTS)  # type: ignore[arg-type]
    with pytest.raises(ScenarioError, match="changes no pixel"):
        change_pairs(tmp_path / "e", gen, town, GRID, after=town, opts=OPTS)  # type: ignore[arg-type]


def test_cloudfill_keeps_clear_pixels(tmp_path: Path, gen: object, photo: Path,
                                      town: Polygons) -> None:  # fmt: skip
    clouds = np.zeros((1, N, N), dtype=np.uint8)
    clouds[0, 10:40, 30:70] = 1
    cpath = write_cog(tmp_path / "clouds.tif", clouds, GRID, categorical=True)
    res = cloudfill(tmp_path / "cf", gen, photo, cpath, town, opts=OPTS)  # type: ignore[arg-type]
    before, after = read(photo)[0], read(res.outputs["image"])[0]
    m = clouds[0].astype(bool)
    assert np.array_equal(after[:, ~m], before[:, ~m])
    assert not np.array_equal(after[:, m], before[:, m])


def test_cli_flood_and_job_file(
    tmp_path: Path,
    tiny_random_weights: Path,
    photo: Path,
    town: Polygons,
    capsys: pytest.CaptureFixture[str],
) -> None:
    layer = tmp_path / "town.gpkg"
    town.frame.to_file(layer)
    zone = tmp_path / "zone.geojson"
    gpd.GeoDataFrame(geometry=[box(X0 + 10, Y0 + 5, X0 + 40, Y0 + 60)], crs=CRS).to_file(zone)
    common = ["--image", str(photo), "--layout", str(layer), "--class-field", "cls",
              "--description-field", "desc", "--taxonomy", "dubai_aerial", "--model",
              str(tiny_random_weights), "--steps", "2", "--tile-size", "64",
              "--overlap", "16"]  # fmt: skip
    argv = ["flood", *common, "--flood-polygons", str(zone), "--out", str(tmp_path / "cli")]
    assert main([*argv, "--progress", "json"]) == 0  # the QGIS plugin reads these events
    done = [json.loads(line) for line in capsys.readouterr().err.splitlines() if "done" in line]
    assert done[-1]["outputs"]["flood_mask"] == str(tmp_path / "cli" / "flood_mask.tif")
    assert (tmp_path / "cli" / "after" / "image.tif").is_file()
    job = tmp_path / "job.yaml"
    job.write_text(
        f"scenario: flood\nimage: {photo}\nlayout: {layer}\nclass_field: cls\n"
        f"taxonomy: dubai_aerial\nmodel: {tiny_random_weights}\nsteps: 2\ntile_size: 64\n"
        "overlap: 16\n"
        f"flood_polygons: {zone}\nout: {tmp_path / 'job'}\nprogress: none\n"
    )
    assert main(["run", str(job)]) == 0
    a = read(tmp_path / "cli" / "flood_mask.tif")[0]
    b = read(tmp_path / "job" / "flood_mask.tif")[0]
    assert np.array_equal(a, b)
    # bad input: a typed error and its exit code, nothing written
    code = main(["flood", *common, "--dem", str(photo), "--out", str(tmp_path / "bad"),
                 "--progress", "none"])  # fmt: skip
    assert code == InputError.exit_code  # --dem without --level
    assert not (tmp_path / "bad" / "after").exists()
