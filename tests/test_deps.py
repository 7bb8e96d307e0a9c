"""Optional dependencies: without torch (or diffusers) the geo paths work and the model paths
fail with one line naming the extra to install.

Real subprocesses of the CLI with a ``sitecustomize`` on PYTHONPATH whose meta-path finder
makes ``import torch`` (or ``import diffusers``) fail exactly as on a machine without them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio

from rs_seg2any import errors
from rs_seg2any.demo import write_demo_layer
from rs_seg2any.deps import require
from rs_seg2any.errors import MissingDependencyError, RsSeg2AnyError
from rs_seg2any.generators.flux import errors as flux_errors

ROOT = Path(__file__).resolve().parents[1]
EXTENT = "300000,2780150,300032,2780182"  # 64 x 64 px of the demo town at 0.5 m

BLOCKER = '''
import os, sys

BLOCKED = set(os.environ["RS_TEST_BLOCK"].split(","))


class _Absent:
    """Pretends the blocked top-level packages are not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Absent())
'''


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_layer(tmp_path_factory.mktemp("demo") / "town.gpkg")


@pytest.fixture(scope="module")
def blocker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("blocker")
    (folder / "sitecustomize.py").write_text(BLOCKER)
    return folder


def _run(blocker: Path, block: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)]),
        "RS_TEST_BLOCK": block,
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def _cli(blocker: Path, block: str, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(blocker, block, "-m", "rs_seg2any.cli", *args)


def _layer_args(layer: Path, out: Path) -> list[str]:
    return [str(layer), "--class-field", "landcover", "--taxonomy", "dubai_aerial",
            "--resolution", "0.5", "--extent", EXTENT, "--progress", "none",
            "--out", str(out)]  # fmt: skip


def test_the_blocker_really_hides_torch(blocker: Path) -> None:
    run = _run(blocker, "torch,diffusers", "-c", "import torch")
    assert run.returncode == 1
    assert "ModuleNotFoundError: No module named 'torch'" in run.stderr


def test_import_and_layout_work_without_torch(blocker: Path, layer: Path, tmp_path: Path) -> None:
    run = _run(blocker, "torch,diffusers", "-c", "import rs_seg2any; print(rs_seg2any.__version__)")
    assert run.returncode == 0, run.stderr
    out = tmp_path / "out"
    run = _cli(blocker, "torch,diffusers", "layout", *_layer_args(layer, out))
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    with rasterio.open(out / "label.tif") as src:
        assert src.shape == (64, 64)


def test_generate_with_the_default_backend_needs_no_torch(
    blocker: Path, layer: Path, tmp_path: Path
) -> None:
    """The default backend (exemplar: numpy quilting) renders without a deep-learning stack."""
    out = tmp_path / "out"
    run = _cli(blocker, "torch,diffusers", "generate", *_layer_args(layer, out))
    assert run.returncode == 0, run.stderr
    with rasterio.open(out / "image.tif") as src:
        img = src.read()
    assert img.shape == (3, 64, 64) and img.std() > 0


def test_the_tiny_network_without_torch_names_the_extra(
    blocker: Path, layer: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = [*_layer_args(layer, out), "--backend", "tiny", "--steps", "1"]
    run = _cli(blocker, "torch,diffusers", "generate", *args)
    assert run.stderr == "error: the tiny backend needs torch: pip install 'rs-seg2any[model]'\n"
    assert run.returncode == MissingDependencyError.exit_code == 13
    assert not (out / "image.tif").exists()


def test_flux_without_diffusers_names_the_flux_extra(
    blocker: Path, layer: Path, tmp_path: Path
) -> None:
    model = tmp_path / "flux-model"
    model.mkdir()
    out = tmp_path / "out"
    args = [*_layer_args(layer, out), "--backend", "flux", "--model", str(model)]
    run = _cli(blocker, "diffusers", "generate", *args)
    assert run.stderr == "error: the flux backend needs diffusers: pip install 'rs-seg2any[flux]'\n"
    assert run.returncode == 13


def test_train_base_without_torch_names_the_extra(blocker: Path, tmp_path: Path) -> None:
    config = tmp_path / "train.yaml"
    config.write_text("steps: 1\n")
    run = _cli(blocker, "torch", "train-base", "--config", str(config))
    assert run.stderr == "error: training needs torch: pip install 'rs-seg2any[model]'\n"
    assert run.returncode == 13


def test_require_returns_the_module() -> None:
    assert require("json", "model").dumps([1]) == "[1]"


def test_require_of_an_absent_module_is_typed() -> None:
    with pytest.raises(MissingDependencyError) as info:
        require("rs_test_not_installed", "model", user="the tiny backend")
    assert str(info.value) == (
        "the tiny backend needs rs_test_not_installed: pip install 'rs-seg2any[model]'"
    )
    assert info.value.exit_code == 13
    with pytest.raises(MissingDependencyError) as info:
        require("sentence_transformers.no_such_part_xyz", "model", user="the text encoder")
    # a part missing inside an installed package: the message says what failed to import
    assert "the text encoder needs sentence-transformers (importing it failed:" in str(info.value)
    assert str(info.value).endswith(": pip install 'rs-seg2any[model]'")


def test_a_broken_dependency_of_the_module_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "rs_test_half_installed"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import rs_test_its_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingDependencyError, match=r"needs rs_test_half_installed \(importing"):
        require("rs_test_half_installed", "flux", user="x")


def test_every_exit_code_means_one_error() -> None:
    """Classes that set their own exit code use distinct ones (subclasses inherit theirs)."""
    own: dict[int, str] = {}
    for module in (errors, flux_errors):
        for name, cls in vars(module).items():
            if (
                isinstance(cls, type)
                and issubclass(cls, RsSeg2AnyError)
                and "exit_code" in vars(cls)
            ):
                assert own.setdefault(cls.exit_code, name) == name, (cls.exit_code, name)
    assert own[13] == "MissingDependencyError"
