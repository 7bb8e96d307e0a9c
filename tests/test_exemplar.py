"""The ``exemplar`` backend: quilted real texture, exact inpainting, seamless tiles, references.

Run on the shipped bank (Dubai tiles 1-6) and on small real GeoTIFF references written here;
the generate job is the real one, so the seam invariants are those users get.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from rs_seg2any.demo import write_demo_layer
from rs_seg2any.errors import GridError, InputError
from rs_seg2any.generators.base import TileCondition
from rs_seg2any.generators.exemplar.backend import ExemplarBackend, GSDWarning
from rs_seg2any.generators.registry import generator_from, load_generator
from rs_seg2any.job.generate_job import run_generate_job
from rs_seg2any.job.tiling import TilePlan, soft_edge
from rs_seg2any.layout import load_layout
from rs_seg2any.params import SamplerParams
from rs_seg2any.taxonomy import load_taxonomy

EXTENT = [300000.0, 2780150.0, 300064.0, 2780214.0]  # 128 x 128 px of the demo town at 0.5 m
DUBAI = {1: "building", 2: "land", 3: "road", 4: "vegetation", 5: "water", 6: "unlabeled"}
CRS = "EPSG:32640"
TRANSFORM = Affine(0.5, 0, 300000.0, 0, -0.5, 2780214.0)


@pytest.fixture(scope="module")
def shipped() -> ExemplarBackend:
    return ExemplarBackend()


def condition(shape: tuple[int, int] = (64, 64), **kw: object) -> TileCondition:
    lab = np.full(shape, 2, np.uint8)
    lab[:, shape[1] // 2 - 6 : shape[1] // 2 + 6] = 3  # a road through land
    lab[: shape[0] // 3, : shape[1] // 3] = 1
    extra = {"class_names": DUBAI}
    return TileCondition(
        np.ones(shape, np.int64), ["x"], "c", labels=lab, extra=extra, gsd=0.5, **kw
    )  # type: ignore[arg-type]


def gen(backend: ExemplarBackend, cond: TileCondition, seed: int = 0) -> np.ndarray:
    return backend.generate(cond, steps=1, guidance=1.0, gamma=1.0, seed=seed)


def test_registered_and_deterministic_by_seed(shipped: ExemplarBackend) -> None:
    assert load_generator("exemplar").name == "exemplar"
    cond = condition()
    a, b, c = gen(shipped, cond, 3), gen(shipped, cond, 3), gen(shipped, cond, 4)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.2
    assert a.std() > 5  # real texture, not flat paint


def test_known_pixels_exact_outside_the_edit(shipped: ExemplarBackend) -> None:
    rng = np.random.default_rng(0)
    known = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    edit = np.zeros((64, 64), bool)
    edit[20:50, 10:60] = True
    out = gen(shipped, condition(known=known, edit_mask=edit))
    np.testing.assert_array_equal(out[~edit], known[~edit])
    assert (out[edit] != known[edit]).any(axis=-1).mean() > 0.9


def test_tiles_continue_their_neighbours_exactly(tmp_path: Path) -> None:
    """The generate job's seam invariant (tests/test_generate_job.py) with this backend."""
    layer = write_demo_layer(tmp_path / "town.gpkg")
    layout = load_layout(layer, "landcover", taxonomy="dubai_aerial", resolution=0.5, extent=EXTENT)
    out = tmp_path / "out"
    seen: list[TileCondition] = []
    backend = load_generator("exemplar")
    inner = backend.generate

    def record(cond: TileCondition, **kw: Any) -> np.ndarray:
        seen.append(cond)
        return inner(cond, **kw)

    backend.generate = record  # type: ignore[method-assign]
    run_generate_job(layout, out, backend, tile_size=64, overlap=16, seed=5, keep_tiles=True)
    # the job tells backends its GSD and class names (the shipped bank maps classes by name)
    assert {c.gsd for c in seen} == {0.5} and seen[0].extra["class_names"][3] == "road"
    plan = TilePlan.for_grid(layout.grid, tile_size=64, overlap=16)
    remade_width = plan.overlap // 2
    assert soft_edge(plan.overlap) == 4 and plan.shape == (3, 3)
    with rasterio.open(out / "image.tif") as src:
        mosaic = src.read()
    height, width = layout.grid.shape
    remade = np.zeros((height, width), dtype=bool)
    for tile in plan.tiles:
        if tile.rows.stop < height:
            remade[tile.rows.stop - remade_width : tile.rows.stop, tile.cols] = True
        if tile.cols.stop < width:
            remade[tile.rows, tile.cols.stop - remade_width : tile.cols.stop] = True
    for tile in plan.tiles:
        image = np.load(out / ".rs_seg2any" / "tiles" / f"{tile.seed_key}.npz")["image"]
        firm = ~remade[tile.rows, tile.cols]
        np.testing.assert_array_equal(image[:, firm], mosaic[:, tile.rows, tile.cols][:, firm])
    assert mosaic.std() > 5


def write_reference(folder: Path, labels_grid: Affine = TRANSFORM) -> tuple[Path, Path]:
    """A 96 x 96 px reference: left half class 2 (land) reddish, right half class 3 (road)
    bluish, with noise; labels on ``labels_grid``."""
    rng = np.random.default_rng(1)
    img = np.zeros((3, 96, 96), np.uint8)
    img[:, :, :48] = np.array([200, 60, 40])[:, None, None]
    img[:, :, 48:] = np.array([40, 60, 200])[:, None, None]
    img = np.clip(img + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)
    lab = np.full((1, 96, 96), 2, np.uint8)
    lab[:, :, 48:] = 3
    ipath, lpath = folder / "ref.tif", folder / "ref_labels.tif"
    for path, data, tr in ((ipath, img, TRANSFORM), (lpath, lab, labels_grid)):
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=96,
            height=96,
            count=len(data),
            dtype="uint8",
            crs=CRS,
            transform=tr,
        ) as dst:
            dst.write(data)
    return ipath, lpath


def test_reference_raster_gives_its_colours(tmp_path: Path) -> None:
    ipath, lpath = write_reference(tmp_path)
    params = SamplerParams(
        backend="exemplar", reference_image=str(ipath), reference_labels=str(lpath)
    )
    backend = generator_from(params)
    out = gen(backend, condition())  # type: ignore[arg-type]
    lab = condition().labels
    assert lab is not None
    land, road = out[lab == 2].mean(0), out[lab == 3].mean(0)
    assert land[0] > 150 and land[2] < 90  # land from the reference's reddish half
    assert road[2] > 150 and road[0] < 90
    with pytest.warns(UserWarning, match="no class building"):  # class 1 absent: warned
        gen(ExemplarBackend(str(ipath), str(lpath)), condition())


def test_reference_polygons_rasterised_on_its_grid(tmp_path: Path) -> None:
    ipath, _ = write_reference(tmp_path)
    x0, y1 = 300000.0, 2780214.0
    frame = gpd.GeoDataFrame(
        {"landcover": ["land", "road"]},
        geometry=[box(x0, y1 - 48, x0 + 24, y1), box(x0 + 24, y1 - 48, x0 + 48, y1)],
        crs=CRS,
    )
    poly = tmp_path / "ref.gpkg"
    frame.to_file(poly, driver="GPKG")
    backend = ExemplarBackend(str(ipath), str(poly))
    cond = condition()
    extra = {**cond.extra, "taxonomy": load_taxonomy("dubai_aerial"), "class_field": "landcover"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # building is not in the reference
        out = gen(
            backend,
            TileCondition(
                cond.instances,
                cond.descriptions,
                cond.caption,
                labels=cond.labels,
                extra=extra,
                gsd=0.5,
            ),
        )
    assert cond.labels is not None
    assert out[cond.labels == 2].mean(0)[0] > 150 and out[cond.labels == 3].mean(0)[2] > 150
    with pytest.raises(InputError, match="taxonomy and class"):
        gen(ExemplarBackend(str(ipath), str(poly)), condition())  # outside the job: no field


def test_reference_errors(tmp_path: Path) -> None:
    ipath, lpath = write_reference(tmp_path)
    with pytest.raises(InputError, match="--reference-labels is missing"):
        ExemplarBackend(str(ipath), None)
    with pytest.raises(InputError, match="--reference-image is missing"):
        ExemplarBackend(None, str(lpath))
    with pytest.raises(InputError, match="not found"):
        ExemplarBackend(str(tmp_path / "nope.tif"), str(lpath))
    other = tmp_path / "shifted"
    other.mkdir()
    _, shifted = write_reference(other, Affine(0.5, 0, 300010.0, 0, -0.5, 2780214.0))
    with pytest.raises(GridError, match="not on the reference image's grid"):
        ExemplarBackend(str(ipath), str(shifted))
    only_water = condition()
    assert only_water.labels is not None
    only_water.labels[:] = 5
    with pytest.raises(InputError, match="share no class"):
        gen(ExemplarBackend(str(ipath), str(lpath)), only_water)
    with pytest.raises(InputError, match="does not take"):
        load_generator("tiny", reference_image=str(ipath))


def test_gsd_outside_the_bank_warns(shipped: ExemplarBackend) -> None:
    cond = condition((48, 48))
    far = TileCondition(
        cond.instances,
        cond.descriptions,
        cond.caption,
        labels=cond.labels,
        extra=cond.extra,
        gsd=1.5,
    )
    with pytest.warns(GSDWarning, match="--reference-image"):
        out = gen(ExemplarBackend(), far)
    assert out.shape == (48, 48, 3)
