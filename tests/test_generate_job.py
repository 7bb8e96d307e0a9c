"""The generate job end to end with the real tiny model code (small random weights).

Quality is not tested here (random weights); what users rely on is: georeferenced outputs on
one grid, seamless tiles (each tile continues its neighbours' pixels exactly), reproducible
seeds, and interrupted jobs that resume to byte-identical files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp

pytest.importorskip("torch")

from rs_seg2any.cli import main
from rs_seg2any.demo import write_demo_layer
from rs_seg2any.errors import Cancelled, GridError
from rs_seg2any.generators.base import TileCondition, local_entities
from rs_seg2any.generators.registry import TinyBackend
from rs_seg2any.job.generate_job import run_generate_job
from rs_seg2any.job.tiling import TilePlan, soft_edge
from rs_seg2any.layout import load_layout

EXTENT = "300000,2780150,300064,2780214"  # 64 m x 64 m of the demo town: 128 x 128 px


@pytest.fixture(scope="module")
def weights(tiny_random_weights: Path) -> Path:
    return tiny_random_weights


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_layer(tmp_path_factory.mktemp("demo") / "town.gpkg")


def generate(layer: Path, weights: Path, out: Path, *extra: str) -> int:
    return main(["generate", str(layer), "--class-field", "landcover", "--description-field",
                 "description", "--taxonomy", "dubai_aerial", "--resolution", "0.5",
                 "--extent", EXTENT, "--model", str(weights), "--steps", "2",
                 "--tile-size", "64", "--overlap", "16", "--progress", "none",
                 "--out", str(out), *extra])  # fmt: skip


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_generate_writes_rgb_image_on_the_layout_grid(
    layer: Path, weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert generate(layer, weights, out) == 0
    grids = set()
    for name in ("image.tif", "label.tif", "instance.tif", "contour.tif"):
        with rasterio.open(out / name) as src:
            grids.add((src.crs.to_epsg(), tuple(src.transform)[:6], src.shape))
    assert grids == {(32640, (0.5, 0.0, 300000.0, 0.0, -0.5, 2780214.0), (128, 128))}
    with rasterio.open(out / "image.tif") as src:
        assert src.count == 3 and src.dtypes == ("uint8",) * 3
        assert src.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        image = src.read()
        assert '"backend": "tiny"' in src.tags()["RS_SEG2ANY_PARAMS"]
    assert image.std() > 0  # real pixels, not a constant fill
    assert (out / "preview.png").exists()


def test_same_seed_same_bytes_other_seed_other_pixels(
    layer: Path, weights: Path, tmp_path: Path
) -> None:
    assert generate(layer, weights, tmp_path / "a", "--seed", "3") == 0
    assert generate(layer, weights, tmp_path / "b", "--seed", "3") == 0
    assert generate(layer, weights, tmp_path / "c", "--seed", "4") == 0
    assert sha(tmp_path / "a" / "image.tif") == sha(tmp_path / "b" / "image.tif")
    with (
        rasterio.open(tmp_path / "a" / "image.tif") as a,
        rasterio.open(tmp_path / "c" / "image.tif") as c,
    ):
        assert not np.array_equal(a.read(), c.read())


def test_tiles_continue_their_neighbours_exactly(
    layer: Path, weights: Path, tmp_path: Path
) -> None:
    """Overlaps are inpainted from earlier tiles, so every tile agrees pixel for pixel with
    the mosaic over its whole window, except the last half overlap at inner edges (the soft
    edge and the fade), which the tiles owning them made again; a tile's core is the
    mosaic's."""
    out = tmp_path / "out"
    assert generate(layer, weights, out, "--keep-tiles") == 0
    layout = load_layout(layer, "landcover", taxonomy="dubai_aerial", resolution=0.5,
                         extent=[float(v) for v in EXTENT.split(",")])  # fmt: skip
    plan = TilePlan.for_grid(layout.grid, tile_size=64, overlap=16)
    assert plan.shape == (3, 3)
    remade_width = plan.overlap // 2  # soft edge + fade: what the owner makes again
    assert soft_edge(plan.overlap) == 4 and remade_width == 8
    with rasterio.open(out / "image.tif") as src:
        mosaic = src.read()
    height, width = layout.grid.shape
    remade = np.zeros((height, width), dtype=bool)  # every tile's soft edges
    for tile in plan.tiles:
        if tile.rows.stop < height:
            remade[tile.rows.stop - remade_width : tile.rows.stop, tile.cols] = True
        if tile.cols.stop < width:
            remade[tile.rows, tile.cols.stop - remade_width : tile.cols.stop] = True
    tiles_dir = out / ".rs_seg2any" / "tiles"
    for tile in plan.tiles:
        image = np.load(tiles_dir / f"{tile.seed_key}.npz")["image"]
        window = mosaic[:, tile.rows, tile.cols]
        firm = ~remade[tile.rows, tile.cols]
        np.testing.assert_array_equal(image[:, firm], window[:, firm])
        core = (slice(None), slice(tile.core_rows.start - tile.rows.start,
                                   tile.core_rows.stop - tile.rows.start),
                slice(tile.core_cols.start - tile.cols.start,
                      tile.core_cols.stop - tile.cols.start))  # fmt: skip
        np.testing.assert_array_equal(image[core], window[core])
    assert remade.mean() < 0.5  # most of the grid is firm


class _InterruptAfter:
    """The real backend, interrupted (as by Ctrl-C) after ``n`` tiles."""

    def __init__(self, inner: TinyBackend, n: int) -> None:
        self.inner, self.n, self.calls = inner, n, 0
        self.name, self.bands = inner.name, inner.bands
        self.supports_inpainting, self.tile_multiple = True, inner.tile_multiple

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def generate(self, cond: TileCondition, **kw: Any) -> np.ndarray:
        self.calls += 1
        if self.calls > self.n:
            raise KeyboardInterrupt
        return self.inner.generate(cond, **kw)


def test_interrupted_job_resumes_to_identical_bytes(
    layer: Path, weights: Path, tmp_path: Path
) -> None:
    layout = load_layout(layer, "landcover", description_field="description",
                         taxonomy="dubai_aerial", resolution=0.5,
                         extent=[float(v) for v in EXTENT.split(",")])  # fmt: skip
    backend = TinyBackend(weights)
    options: dict[str, Any] = {"steps": 2, "tile_size": 64, "overlap": 16, "seed": 9}
    reference = run_generate_job(layout, tmp_path / "ref", backend, **options)

    out = tmp_path / "interrupted"
    with pytest.raises(Cancelled, match=r"rerun|again"):
        run_generate_job(layout, out, _InterruptAfter(backend, 4), **options)  # type: ignore[arg-type]
    assert not (out / "image.tif").exists()
    resumed = run_generate_job(layout, out, backend, **options)
    assert resumed.tiles_resumed == 4
    for name in ("image.tif", "label.tif", "instance.tif", "contour.tif"):
        assert sha(reference.outputs[name.split(".")[0]]) == sha(out / name)


def test_tile_size_must_fit_the_model(layer: Path, weights: Path, tmp_path: Path) -> None:
    layout = load_layout(layer, "landcover", taxonomy="dubai_aerial", resolution=0.5,
                         extent=[float(v) for v in EXTENT.split(",")])  # fmt: skip
    with pytest.raises(GridError, match="multiple of 8"):
        run_generate_job(layout, tmp_path / "o", TinyBackend(weights), tile_size=60)


def test_small_grids_are_padded_to_the_model_multiple(
    layer: Path, weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "odd"
    code = main(["generate", str(layer), "--class-field", "landcover", "--taxonomy",
                 "dubai_aerial", "--resolution", "0.5", "--extent",
                 "300000,2780150,300021.5,2780170.5", "--model", str(weights), "--steps", "1",
                 "--progress", "none", "--out", str(out)])  # fmt: skip
    assert code == 0
    with rasterio.open(out / "image.tif") as src:
        assert src.shape == (41, 43)


def test_local_entities_renumber_and_keep_texts() -> None:
    inst = np.array([[0, 7, 7], [12, 12, 0]])
    local, texts, ids = local_entities(inst, {7: "a roof", 12: "a road"})
    assert ids == [7, 12] and texts == ["a roof", "a road"]
    np.testing.assert_array_equal(local, [[0, 1, 1], [2, 2, 0]])
    local, texts, ids = local_entities(np.array([[5, 5]]), {5: "water"})
    np.testing.assert_array_equal(local, [[1, 1]])
    assert texts == ["water"]
