"""The generator travels to Dask workers as a JSON recipe, never as a pickle.

Real tiny-model weights files, a real LocalCluster worker process, a real third-party
backend declared as an entry point (an installed-looking distribution in a temp folder).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("distributed")

import distributed
import torch

from rs_seg2any.demo import write_demo_layer
from rs_seg2any.errors import RecipeError
from rs_seg2any.generators import registry
from rs_seg2any.generators.recipe import GeneratorRecipe
from rs_seg2any.generators.registry import load_generator
from rs_seg2any.job.execparams import ExecParams
from rs_seg2any.job.execute import execution
from rs_seg2any.job.generate_job import run_generate_job
from rs_seg2any.job.jobdir import JOB_DIRNAME
from rs_seg2any.layout import load_layout

TOY = """
import numpy as np
from rs_seg2any.generators.registry import BackendSpec


class Stripes:
    name, bands, supports_inpainting, tile_multiple = "stripes", 3, True, 8

    def __init__(self, level):
        self.level = level

    def describe(self):
        return {"backend": "stripes", "level": self.level}

    def generate(self, cond, *, steps, guidance, gamma, seed):
        out = np.full((*cond.instances.shape, 3), self.level, np.uint8)
        out[..., 1] = (cond.instances * 40 + seed % 7).astype(np.uint8)
        return out


def backend():
    return BackendSpec("stripes", lambda model, threads=None: Stripes(int(model)), steps=1)
"""

EXTENT = (300000.0, 2780150.0, 300048.0, 2780198.0)  # 96 x 96 px at 0.5 m: 2 x 2 tiles


def other_weights(path: Path) -> Path:
    """A second valid tiny-model weights file (other random weights)."""
    from rs_seg2any.generators.tiny.model import TinyConfig, TinySeg2Any
    from rs_seg2any.generators.tiny.weights import save_weights

    torch.manual_seed(1)
    model = TinySeg2Any(TinyConfig(patch=8, width=32, depth=1, heads=2, ctx_depth=1,
                                   bottleneck=16))  # fmt: skip
    save_weights(model, path)
    return path


@pytest.fixture
def weights(tiny_random_weights: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(tiny_random_weights, tmp_path / "w.safetensors"))


def test_the_recipe_is_json_with_the_digest_of_every_file(
    weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    gen = load_generator("tiny", "w.safetensors", threads=1)  # a relative path
    recipe = GeneratorRecipe.of(gen)
    assert recipe is not None
    data = json.loads(recipe.to_json())
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert data["model"] == str(weights) and data["files"] == {str(weights): sha}
    assert data["backend"] == "tiny" and data["threads"] == 1
    assert data["digests"] == {"weights_sha256": gen.describe()["weights_sha256"]}
    rebuilt = GeneratorRecipe.from_json(recipe.to_json()).load()
    assert rebuilt.describe() == gen.describe()
    assert GeneratorRecipe.of(object()) is None  # not built by the registry: no recipe


def test_a_tampered_recipe_or_weights_file_is_refused(weights: Path, tmp_path: Path) -> None:
    text = GeneratorRecipe.of(load_generator("tiny", str(weights))).to_json()  # type: ignore[union-attr]
    data = json.loads(text)
    # a changed digest in the recipe
    data["files"][str(weights)] = "0" * 64
    with pytest.raises(RecipeError, match="refusing to load"):
        GeneratorRecipe.from_json(json.dumps(data)).load()
    # a recipe that claims other content digests than the files give
    data = {**json.loads(text), "digests": {"weights_sha256": "0" * 16}}
    with pytest.raises(RecipeError, match="weights_sha256"):
        GeneratorRecipe.from_json(json.dumps(data)).load()
    # the weights file replaced (valid weights, other content) after the recipe was made
    other_weights(weights)
    with pytest.raises(RecipeError, match="changed since the job started"):
        GeneratorRecipe.from_json(text).load()
    weights.unlink()
    with pytest.raises(RecipeError, match="missing on this Dask worker"):
        GeneratorRecipe.from_json(text).load()
    for bad in ("not json", "{}", json.dumps({**json.loads(text), "threads": "1"})):
        with pytest.raises(RecipeError, match="recipe"):
            GeneratorRecipe.from_json(bad)


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An installed-looking third-party distribution declaring the ``stripes`` backend."""
    site = tmp_path_factory.mktemp("site")
    dist = site / "stripes_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: stripes-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[rs_seg2any.backends]\nstripes = stripes_plugin:backend\n"
    )
    (site / "stripes_plugin.py").write_text(TOY)
    return site


@pytest.fixture(scope="module")
def cluster(plugin_site: Path) -> Iterator[Any]:
    """One worker process; spawned with this process's sys.path, so it sees the plug-in."""
    sys.path.insert(0, str(plugin_site))
    try:
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                      dashboard_address=None, env={"OMP_NUM_THREADS": "1"},
                                      silence_logs=40) as lc:  # fmt: skip
            yield lc
    finally:
        sys.path.remove(str(plugin_site))


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Any:
    layer = write_demo_layer(tmp_path_factory.mktemp("demo") / "town.gpkg")
    return load_layout(layer, "landcover", description_field="description",
                       taxonomy="dubai_aerial", resolution=0.5, extent=EXTENT)  # fmt: skip


OPENED: list[str] = []


def _record_opens(folder: str) -> None:
    """On a worker: record every file it opens under ``folder`` (an audit hook)."""

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and isinstance(args[0], str | Path) and str(args[0]).startswith(folder):
            OPENED.append(str(args[0]))

    sys.addaudithook(hook)


def _opened() -> list[str]:
    return list(OPENED)


def _image(out: Path) -> bytes:
    return (out / "image.tif").read_bytes()


def test_workers_rebuild_an_entry_point_backend_by_name_and_read_no_pickle(
    cluster: Any, layout: Any, plugin_site: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.syspath_prepend(str(plugin_site))
    monkeypatch.setattr(registry, "BACKENDS", registry.BACKENDS.fresh())
    gen = load_generator("stripes", "90")
    local = run_generate_job(layout, tmp_path / "local", gen, steps=1, seed=3, tile_size=64,
                             overlap=16)  # fmt: skip
    # a pickle planted where the renderer used to travel: unpickling it would create `marker`
    out = tmp_path / "dask"
    marker = tmp_path / "unpickled"
    planted = out / JOB_DIRNAME / "renderer-0123456789abcdef0123.pkl"
    planted.parent.mkdir(parents=True)
    import pickle

    class Trap:
        def __reduce__(self) -> tuple[Any, ...]:
            return (Path.touch, (marker,))

    planted.write_bytes(pickle.dumps(Trap()))
    (out / "generator.pkl").write_bytes(pickle.dumps(Trap()))
    with distributed.Client(cluster.scheduler_address) as client:
        client.run(_record_opens, str(out))
        with execution(ExecParams(scheduler=cluster.scheduler_address)):
            res = run_generate_job(layout, out, gen, steps=1, seed=3, tile_size=64, overlap=16)
        opened = [p for found in client.run(_opened).values() for p in found]
    # the worker read the neighbours' tiles from the folder, and no pickle (the renderer
    # once travelled as <job>/renderer-<digest>.pkl)
    assert any(p.endswith(".npz") for p in opened)
    assert not [p for p in opened if p.endswith(".pkl")]
    assert _image(res.out_dir) == _image(local.out_dir)
    manifest = json.loads((out / JOB_DIRNAME / "manifest.json").read_text())
    assert {t.get("worker") for t in manifest["tiles"].values()} == set(_workers(cluster))
    assert not marker.exists()
    assert sorted(p.name for p in out.rglob("*.pkl")) == sorted([planted.name, "generator.pkl"])


def _workers(cluster: Any) -> list[str]:
    with distributed.Client(cluster.scheduler_address) as client:
        return list(client.scheduler_info()["workers"])


def _rebuild(text: str) -> str:
    """On a worker: the generator of a recipe, as tile tasks rebuild it."""
    return str(GeneratorRecipe.from_json(text).load().name)


def test_workers_refuse_weights_that_changed_after_the_client_loaded_them(
    cluster: Any, layout: Any, weights: Path, tmp_path: Path
) -> None:
    gen = load_generator("tiny", str(weights))
    text = GeneratorRecipe.of(gen).to_json()  # type: ignore[union-attr]
    with distributed.Client(cluster.scheduler_address) as client:
        assert client.submit(_rebuild, text, pure=False).result() == "tiny"
        other_weights(weights)  # valid weights, other content: the worker must not use them
        with pytest.raises(RecipeError, match="changed since the job started"):
            client.submit(_rebuild, text, pure=False).result()
    with (
        execution(ExecParams(scheduler=cluster.scheduler_address)),
        pytest.raises(RecipeError, match="weights_sha256"),
    ):
        run_generate_job(layout, tmp_path / "o", gen, steps=1, seed=3, tile_size=64, overlap=16)
    assert not (tmp_path / "o" / "image.tif").exists()
