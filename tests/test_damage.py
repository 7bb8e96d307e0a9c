"""Disaster damage pairs with the real tiny model code (small random weights), real GeoTIFFs
and real vector files.

What users rely on: outside the damaged buildings and areas the post-event image equals the
pre-event image bit for bit; each damaged building's level in damage_level.tif is its
polygon's level; recipes are reproducible by seed and vary with it; a bad damage layer is a
typed error that leaves nothing behind; the CLI, the API and job files reach the scenario.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from shapely.geometry import LineString, box

pytest.importorskip("torch")

import rs_seg2any as rs
from rs_seg2any.cli import main
from rs_seg2any.errors import InputError, ScenarioError
from rs_seg2any.generators.registry import load_generator
from rs_seg2any.geoio import write_cog
from rs_seg2any.scenarios.common import GenOptions, Polygons
from rs_seg2any.scenarios.damage import damage
from rs_seg2any.scenarios.damage_layer import damage_items
from rs_seg2any.scenarios.damage_presets import load_damage_preset
from rs_seg2any.scenarios.damage_recipes import apply_recipe, recipe_inputs
from rs_seg2any.scenarios.flood import DemFlood

CRS = "EPSG:32640"
X0, Y0, RES, N = 300_000.0, 2_780_000.0, 1.0, 64  # a 64 x 64 px grid at 1 m
GRID = GeoBox.from_bbox((X0, Y0, X0 + N * RES, Y0 + N * RES), CRS, resolution=RES)
OPTS = GenOptions(steps=1, tile_size=64, overlap=8, seed=3)


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def cell(col: int, row: int, size: int) -> box:
    """A square of ``size`` px whose top-left pixel is (col, row)."""
    x, y = X0 + col * RES, Y0 + (N - row) * RES
    return box(x, y - size * RES, x + size * RES, y)


@pytest.fixture(scope="module")
def gen(tiny_random_weights: Path) -> object:
    return load_generator("tiny", tiny_random_weights, threads=1)


@pytest.fixture
def town() -> Polygons:
    """Land everywhere, a road across, a 4 x 4 block of 8 px buildings."""
    geoms = [box(X0, Y0, X0 + N, Y0 + N), box(X0, Y0 + 30, X0 + N, Y0 + 34)]
    classes = ["land", "road"]
    for i in range(4):
        for j in range(4):
            geoms.append(cell(4 + 15 * i, 4 + 15 * j + (0 if j < 2 else 2), 8))
            classes.append("building")
    frame = gpd.GeoDataFrame({"cls": classes}, geometry=geoms, crs=CRS)
    return Polygons.read(frame, "cls", taxonomy="dubai_aerial")


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(3, N, N), dtype=np.uint8)
    return write_cog(tmp_path / "photo.tif", img, GRID, categorical=False)


def damage_frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "level": ["destroyed", "minor", "no-damage", "major-damage", 3],
            "type": ["collapse", None, None, "roof damage", "debris"],
        },
        geometry=[
            cell(4, 4, 8),
            cell(19, 4, 8),
            cell(34, 4, 8),
            cell(49, 4, 8),
            cell(2, 14, 30),
        ],
        crs=CRS,
    )


def test_post_image_changes_only_inside_damage(tmp_path: Path, gen: object, photo: Path,
                                                town: Polygons) -> None:  # fmt: skip
    res = damage(tmp_path / "d", gen, damage_layer=damage_frame(), disaster="earthquake",  # type: ignore[arg-type]
                 base_image=photo, polygons=town, opts=OPTS)  # fmt: skip
    outs = res.outputs()
    pre, post = read(photo), read(outs["image"])
    level = read(outs["damage_level"])[0]
    edited = read(tmp_path / "d" / "after" / "edit_mask.tif")[0].astype(bool)
    assert np.array_equal(post[:, ~edited], pre[:, ~edited])  # bit-identical outside
    assert not np.array_equal(post[:, edited], pre[:, edited])
    assert not (edited & (level <= 1)).any()  # only damaged polygons are edited
    assert edited[level == 4].all()  # a destroyed building is re-rendered whole
    assert 0.15 < edited[level == 2].mean() < 0.6  # minor: patches of the roof (share 0.3)
    # every building's pixels carry its own level; the area lies under them
    items = gpd.read_file(outs["damage_polygons"])
    assert list(items["level_code"]) == [4, 2, 1, 3, 3]
    assert list(items["type"]) == ["collapse", "roof damage", "", "roof damage", "debris"]
    for geom, code, kind in zip(items.geometry, items["level_code"], items["kind"], strict=True):
        inside = rasterio.features.geometry_mask([geom], GRID.shape, GRID.affine, invert=True)
        assert inside.any()
        if kind == "building":
            assert (level[inside] == code).all()
        else:
            assert edited[inside].all()  # an area is re-rendered whole
    assert (level == 0).sum() > 0
    with rasterio.open(outs["damage_level"]) as src:
        assert src.colormap(1)[4][:3] == (214, 39, 40)  # destroyed: red
        names = src.tags(1).get("CATEGORY_NAMES") or ",".join(src.descriptions)
    assert src.crs == rasterio.crs.CRS.from_user_input(CRS) and src.transform == GRID.affine
    assert names
    # the post label: damaged buildings stay buildings, the debris area is its own class
    label = read(outs["label"])[0]
    pre_label = read(outs["before_label"])[0]
    debris = level == 3
    assert (label[level == 4] == 1).all()
    assert set(np.unique(label[debris & (pre_label != 1)]).tolist()) == {7}
    assert np.array_equal(label[~edited], pre_label[~edited])
    geo = json.loads(Path(outs["damage_geojson"]).read_text())
    assert len(geo["features"]) == 5


def test_recipes_reproducible_by_seed_and_vary_with_it(town: Polygons) -> None:
    for disaster in ("fire", "earthquake"):
        cfg = load_damage_preset(disaster)

        def draw(seed: int, cfg: object = cfg, disaster: str = disaster) -> list[int]:
            inputs = recipe_inputs(town, GRID, cfg, seed)  # type: ignore[arg-type]
            items = damage_items(apply_recipe(disaster, inputs, {}), cfg, GRID, strict=False)  # type: ignore[arg-type]
            return [int(c) for c in items["level_code"]] + [round(items.area.sum(), 3)]  # type: ignore[list-item]

        a, b = draw(1), draw(1)
        assert a == b
        assert any(draw(s) != a for s in (2, 3, 4)), disaster
        assert len(set(a[:-1])) > 1  # more than one level drawn


def test_fire_burns_the_side_it_came_from(town: Polygons) -> None:
    cfg = load_damage_preset("fire")
    inputs = recipe_inputs(town, GRID, cfg, 5)
    drawn = apply_recipe("fire", inputs, {"direction_deg": 90.0, "front": 0.5, "noise": 0.0})
    items = damage_items(drawn, cfg, GRID, strict=False)
    houses = items[items["kind"] == "building"]
    x = houses.geometry.centroid.x - X0
    assert (houses.loc[x < 20, "level_code"] == 4).all()  # west: burnt out
    assert (houses.loc[x > 50, "level_code"] == 1).all()  # east: not reached
    ground = items[items["kind"] == "area"]
    assert len(ground) and (ground.geometry.centroid.x - X0 < 40).all()


def test_flood_recipe_uses_the_dem_flood(tmp_path: Path, town: Polygons) -> None:
    cols = np.arange(N, dtype=np.float32)
    dem = np.tile(cols * 0.1, (N, 1))  # rising eastward 0.1 m per px from 0 m
    dem_path = write_cog(tmp_path / "dem.tif", dem[None], GRID, categorical=False)
    cfg = load_damage_preset("flood")
    seed_xy = (X0 + 0.5, Y0 + N / 2)
    inputs = recipe_inputs(town, GRID, cfg, 1, flood=DemFlood(dem_path, 3.0, [seed_xy]))
    drawn = apply_recipe("flood", inputs, {"vulnerability": 0.0})
    items = damage_items(drawn, cfg, GRID, strict=False)
    houses = items[items["kind"] == "building"]
    x = houses.geometry.centroid.x - X0
    assert (houses.loc[x < 10, "level_code"] == 4).all()  # ~2.2 m deep
    assert (houses.loc[x > 35, "level_code"] == 1).all()  # above the water
    water = items[items["kind"] == "area"]
    assert set(water["type"]) == {"flooded ground"}
    assert (water.geometry.bounds["maxx"] - X0 <= 30 + 1e-6).all()  # 0.1 * col < 3 m


@pytest.mark.parametrize(
    ("change", "error", "text"),
    [
        ({"level": "catastrophic"}, ScenarioError, "not levels"),
        ({"type": "meteor"}, ScenarioError, "not types"),
        ({"geometry": box(X0 + 500, Y0, X0 + 510, Y0 + 10)}, ScenarioError, "outside the grid"),
        ({"geometry": LineString([(X0, Y0), (X0 + 9, Y0 + 9)])}, InputError, "polygons"),
    ],
)
def test_bad_damage_layers_leave_nothing(tmp_path: Path, gen: object, photo: Path,
                                         town: Polygons, change: dict[str, object],
                                         error: type[Exception], text: str) -> None:  # fmt: skip
    frame = damage_frame()
    for key, value in change.items():
        frame[key] = frame[key].astype(object)
        frame.loc[1, key] = value  # type: ignore[call-overload]
    frame = frame.set_geometry("geometry")
    out = tmp_path / "bad"
    with pytest.raises(error, match=text):
        damage(out, gen, damage_layer=frame, disaster="earthquake", base_image=photo,  # type: ignore[arg-type]
               polygons=town, opts=OPTS)  # fmt: skip
    assert not out.exists()


def test_cli_api_and_job_file(tmp_path: Path, tiny_random_weights: Path, town: Polygons,
                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    layer = tmp_path / "town.gpkg"
    town.frame.to_file(layer)
    layout = ["--layout", str(layer), "--class-field", "cls", "--taxonomy", "dubai_aerial",
              "--resolution", "1", "--model", str(tiny_random_weights), "--steps", "1",
              "--tile-size", "64", "--overlap", "8", "--seed", "2"]  # fmt: skip
    argv = ["damage", *layout, "--disaster", "earthquake", "--origin", f"{X0 + 8},{Y0 + 56}",
            "--out", str(tmp_path / "cli")]  # fmt: skip
    assert main([*argv, "--progress", "json"]) == 0
    done = [json.loads(line) for line in capsys.readouterr().err.splitlines() if "done" in line]
    outputs = done[-1]["outputs"]
    assert outputs["damage_level"] == str(tmp_path / "cli" / "damage_level.tif")
    pre, post = read(Path(outputs["before"])), read(Path(outputs["image"]))
    level = read(Path(outputs["damage_level"]))[0]
    assert np.array_equal(pre[:, level <= 1], post[:, level <= 1])
    job = tmp_path / "job.yaml"
    job.write_text(
        f"scenario: damage\nlayout: {layer}\nclass_field: cls\ntaxonomy: dubai_aerial\n"
        f"resolution: '1'\nmodel: {tiny_random_weights}\nsteps: 1\ntile_size: 64\noverlap: 8\n"
        f"seed: 2\ndisaster: earthquake\norigin: '{X0 + 8},{Y0 + 56}'\n"
        f"out: {tmp_path / 'job'}\nprogress: none\n"
    )
    assert main(["run", str(job)]) == 0
    assert np.array_equal(read(tmp_path / "job" / "damage_level.tif"), level[None])
    res = rs.damage(tmp_path / "api", layout=layer, class_field="cls", taxonomy="dubai_aerial",
                    resolution="1", model=str(tiny_random_weights), steps=1, tile_size=64,
                    overlap=8, seed=2, disaster="earthquake", origin=f"{X0 + 8},{Y0 + 56}",
                    progress="none")  # fmt: skip
    assert np.array_equal(res.open("damage_level").values[0], level)
    via = rs.scenario("damage", tmp_path / "via", layout=layer, class_field="cls",
                      taxonomy="dubai_aerial", resolution="1", model=str(tiny_random_weights),
                      steps=1, tile_size=64, overlap=8, seed=2, disaster="earthquake",
                      origin=f"{X0 + 8},{Y0 + 56}")  # fmt: skip
    assert np.array_equal(read(via.outputs["image"]), post)
    # a bad option: a typed error's exit code, nothing written
    bad = ["damage", *layout, "--damage-layer", str(layer), "--out", str(tmp_path / "bad"),
           "--progress", "none"]  # fmt: skip
    assert main(bad) == InputError.exit_code  # the layout has no damage level field
    assert not (tmp_path / "bad" / "after").exists()


def test_photo_without_layout(tmp_path: Path, gen: object, photo: Path) -> None:
    """A real pre-event image alone: the damage polygons are the whole post-event layout
    (in the default taxonomy, WorldCover: damaged buildings are built-up)."""
    res = damage(tmp_path / "d", gen, damage_layer=damage_frame(), disaster="earthquake",  # type: ignore[arg-type]
                 base_image=photo, opts=OPTS)  # fmt: skip
    outs = res.outputs()
    assert "before_label" not in outs
    pre, post = read(photo), read(outs["image"])
    level = read(outs["damage_level"])[0]
    assert np.array_equal(post[:, level <= 1], pre[:, level <= 1])
    label = read(outs["label"])[0]
    assert set(np.unique(label[level == 4]).tolist()) == {50}  # built-up (default taxonomy)


def test_presets_ship_per_disaster_and_extend(tmp_path: Path) -> None:
    for disaster in ("fire", "earthquake", "flood"):
        cfg = load_damage_preset(disaster)
        assert cfg.level_names() == ["no-damage", "minor-damage", "major-damage", "destroyed"]
        assert cfg.level_code("minor") == 2 and cfg.level_code(4) == 4
        assert {t.kind for t in cfg.types.values()} == {"building", "area"}
    own = tmp_path / "mine.yaml"
    own.write_text(
        "extends: fire\n"
        "types:\n  smoke stained:\n    kind: building\n    levels:\n"
        "      minor-damage: grey smoke stains\n      major-damage: black smoke stains\n"
        "      destroyed: a burned shell\n"
        "  burnt:\n    levels: {destroyed: nothing but ash}\n"
    )
    cfg = load_damage_preset(own)
    assert cfg.describe("smoke stained", 2) == "grey smoke stains"
    assert cfg.describe("burnt", 4) == "nothing but ash"  # merged key by key
    assert cfg.describe("burnt", 3).startswith("a fire-gutted building")  # kept
    assert cfg.default_types[4] == "burnt"
    bad = {
        "extends: tornado\n": "extends",
        "extends: fire\ntypes:\n  hail: {kind: building, levels: {destroyed: gone}}\n": "hail",
        "extends: fire\nlevels:\n  destroyed: {code: 1}\n": "increase",
        "extends: fire\nrendered_share: {minor-damage: 1.5}\n": "rendered_share",
        "levels: [1, 2]\n": "levels",
        "a: [unclosed\n": "mine.yaml",
    }
    for text, where in bad.items():
        own.write_text(text)
        with pytest.raises(InputError, match=where):
            load_damage_preset(own)
    with pytest.raises(InputError, match="unknown damage preset"):
        load_damage_preset("tornado")


def test_recipe_parameters_are_checked(town: Polygons) -> None:
    cfg = load_damage_preset("fire")
    inputs = recipe_inputs(town, GRID, cfg, 1)
    with pytest.raises(ScenarioError, match="no parameters \\['speed'\\]"):
        apply_recipe("fire", inputs, {"speed": 3})
    with pytest.raises(ScenarioError, match="front"):
        apply_recipe("fire", inputs, {"front": 2.0})
    with pytest.raises(InputError, match="--dem"):
        apply_recipe("flood", recipe_inputs(town, GRID, load_damage_preset("flood"), 1), {})
    with pytest.raises(InputError, match="layout"):
        recipe_inputs(None, GRID, cfg, 1)
