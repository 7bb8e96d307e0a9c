"""The job manifest, retries and partial jobs, on the local backend with the real tiny model.

A tile that always fails is tried ``attempts`` times, recorded with its error, and the rest of
the job completes; tiles that read it are *blocked* rather than rendered differently; the
exit code says "partial"; a rerun redoes only what the manifest cannot prove finished.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

from rs_seg2any.cli import main
from rs_seg2any.demo import write_demo_layer
from rs_seg2any.errors import PartialJobError
from rs_seg2any.generators.base import TileCondition
from rs_seg2any.generators.registry import TinyBackend
from rs_seg2any.job.execute import ExecParams, execution
from rs_seg2any.job.generate_job import run_generate_job
from rs_seg2any.job.jobdir import JOB_DIRNAME
from rs_seg2any.job.tiling import TilePlan
from rs_seg2any.job.waves import dependencies, waves
from rs_seg2any.layout import load_layout

EXTENT = (300000, 2780150, 300064, 2780214)  # 128 x 128 px at 0.5 m: 3 x 3 tiles of 64
SEED = 5


class FailingOn:
    """The tiny model, except that the tiles with the given seeds always raise."""

    def __init__(self, inner: TinyBackend, seeds: set[int]) -> None:
        self.inner, self.seeds, self.calls = inner, seeds, 0
        self.name, self.bands = inner.name, inner.bands
        self.supports_inpainting, self.tile_multiple = True, inner.tile_multiple

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def generate(self, cond: TileCondition, **kw: Any) -> Any:
        if kw["seed"] in self.seeds:
            self.calls += 1
            raise RuntimeError("simulated decoder crash")
        return self.inner.generate(cond, **kw)


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Any:
    layer = write_demo_layer(tmp_path_factory.mktemp("demo") / "town.gpkg")
    return load_layout(layer, "landcover", description_field="description",
                       taxonomy="dubai_aerial", resolution=0.5, extent=EXTENT)  # fmt: skip


def render(layout: Any, out: Path, gen: Any) -> Any:
    return run_generate_job(layout, out, gen, steps=2, seed=SEED, tile_size=64, overlap=16)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / JOB_DIRNAME / "manifest.json").read_text())
    return data


def test_waves_keep_every_dependency_in_an_earlier_wave(layout: Any) -> None:
    for shape, size, overlap in (((128, 128), 64, 16), ((300, 250), 64, 16), ((97, 500), 32, 8)):
        plan = TilePlan.for_grid(layout.grid[: shape[0], : shape[1]], size, overlap)
        deps, level = dependencies(plan), waves(plan)
        for tile in plan.tiles:
            for dep in deps[tile.index]:
                assert level[dep.index] < level[tile.index]
            r, c = tile.index  # the regular neighbours are always among them
            for n in ((r - 1, c - 1), (r - 1, c), (r - 1, c + 1), (r, c - 1)):
                if 0 <= n[0] < plan.shape[0] and 0 <= n[1] < plan.shape[1]:
                    assert n in {d.index for d in deps[tile.index]}
    plan = TilePlan.for_grid(layout.grid, 64, 16)
    assert waves(plan) == {(r, c): 2 * r + c for r in range(3) for c in range(3)}


def test_failing_tile_is_retried_reported_and_the_rest_completes(
    layout: Any, tiny_random_weights: Path, tmp_path: Path
) -> None:
    tiny = TinyBackend(tiny_random_weights)
    plan = TilePlan.for_grid(layout.grid, 64, 16)
    last, middle = plan.tiles[-1], plan.tiles[4]
    gen = FailingOn(tiny, {plan.tile_seed(SEED, last)})
    with pytest.raises(PartialJobError, match=r"1 of 9 tiles failed .*r0002_c0002.*decoder"):
        render(layout, tmp_path / "a", gen)
    assert gen.calls == 2  # DEFAULT_ATTEMPTS
    tiles = manifest(tmp_path / "a")["tiles"]
    assert tiles[last.seed_key]["status"] == "failed"
    assert tiles[last.seed_key]["attempts"] == 2
    assert "simulated decoder crash" in tiles[last.seed_key]["error"]
    done = [k for k, v in tiles.items() if v["status"] == "done"]
    assert len(done) == 8
    for key in done:  # every finished tile with its seed and the sha256 of its file
        assert tiles[key]["seed"] == plan.tile_seed(
            SEED, plan.tiles[tiles[key]["index"][0] * 3 + tiles[key]["index"][1]]
        )
        assert sha(tmp_path / "a" / JOB_DIRNAME / "tiles" / f"{key}.npz") == tiles[key]["sha256"]
    assert not (tmp_path / "a" / "image.tif").exists()

    # a tile in the middle: the tiles that read it are blocked, the others complete
    gen = FailingOn(tiny, {plan.tile_seed(SEED, middle)})
    with execution(ExecParams(attempts=3), threads=None), pytest.raises(PartialJobError):
        render(layout, tmp_path / "b", gen)
    assert gen.calls == 3
    status = {k: v["status"] for k, v in manifest(tmp_path / "b")["tiles"].items()}
    assert status["r0001_c0001"] == "failed"
    assert {k for k, v in status.items() if v == "blocked"} == {
        "r0001_c0002", "r0002_c0000", "r0002_c0001", "r0002_c0002"}  # fmt: skip

    # the rerun redoes only the unfinished tiles and matches an uninterrupted run
    again = render(layout, tmp_path / "a", tiny)
    assert again.tiles_resumed == 8
    clean = render(layout, tmp_path / "clean", tiny)
    assert sha(again.outputs["image"]) == sha(clean.outputs["image"])
    outputs = manifest(tmp_path / "a")["outputs"]
    assert outputs["image"] == {"path": "image.tif", "sha256": sha(clean.outputs["image"])}


def test_rerun_trusts_only_tiles_the_manifest_proves(
    layout: Any, tiny_random_weights: Path, tmp_path: Path
) -> None:
    tiny = TinyBackend(tiny_random_weights)
    plan = TilePlan.for_grid(layout.grid, 64, 16)
    gen = FailingOn(tiny, {plan.tile_seed(SEED, plan.tiles[-1])})
    out = tmp_path / "out"
    with pytest.raises(PartialJobError):
        render(layout, out, gen)
    tile = out / JOB_DIRNAME / "tiles" / "r0000_c0001.npz"
    good = tile.read_bytes()
    tile.write_bytes(good.replace(b"image", b"imagf", 1))  # same size, other bytes
    done = render(layout, out, tiny)
    assert done.tiles_resumed == 7  # the altered tile was recomputed, not trusted
    clean = render(layout, tmp_path / "clean", tiny)
    assert sha(done.outputs["image"]) == sha(clean.outputs["image"])
    # a finished job whose outputs still verify is not redone
    stamp = done.outputs["image"].stat().st_mtime_ns
    again = render(layout, out, tiny)
    assert again.tiles_resumed == 9 and again.outputs["image"].stat().st_mtime_ns == stamp


def test_cli_exit_code_says_partial(
    tiny_random_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the real CLI: a backend whose first tile always fails ends in exit 14."""
    from rs_seg2any.generators.registry import BACKENDS, BackendSpec, register_backend

    def load(model: Any, threads: Any = None) -> Any:
        return FailingOn(TinyBackend(tiny_random_weights), {first})

    layer = write_demo_layer(tmp_path / "town.gpkg")
    grid = load_layout(layer, "landcover", taxonomy="dubai_aerial", resolution=0.5,
                       extent=EXTENT).grid  # fmt: skip
    first = TilePlan.for_grid(grid, 64, 16).tile_seed(
        SEED, TilePlan.for_grid(grid, 64, 16).tiles[0]
    )
    register_backend(BackendSpec("always_fails_first", load))
    try:
        code = main(["generate", str(layer), "--class-field", "landcover", "--taxonomy",
                     "dubai_aerial", "--resolution", "0.5", "--extent",
                     ",".join(map(str, EXTENT)), "--backend", "always_fails_first",
                     "--steps", "1", "--tile-size", "64", "--overlap", "16", "--seed",
                     str(SEED), "--progress", "none", "--out", str(tmp_path / "out"),
                     "--attempts", "1"])  # fmt: skip
    finally:
        BACKENDS._specs.pop("always_fails_first", None)
    assert code == PartialJobError.exit_code == 14
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 of 9 tiles failed after 1 attempts" in err[0]
    assert "8 that read them were not run" in err[0]  # every other tile reads the first
