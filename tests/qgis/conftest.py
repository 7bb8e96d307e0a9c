"""Fixtures for the QGIS plugin tests: real QGIS (offscreen, via pytest-qgis) + the real CLI.

These tests run in `.venv-qgis` (`make test-qgis`). In the library's own environment
(no QGIS) this folder is skipped, so `pytest` there stays green.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN_ROOT = REPO / "qgis_plugin"
SHARED = REPO.parent / "shared" / "data"
SHIPPED_WEIGHTS = REPO / "rs_seg2any" / "generators" / "tiny" / "weights" / "tiny_base.safetensors"

if importlib.util.find_spec("qgis") is None or importlib.util.find_spec("pytest_qgis") is None:
    # The library's environment: no QGIS here; `make test-qgis` runs these.
    collect_ignore_glob = ["test_*.py"]
else:
    if str(PLUGIN_ROOT) not in sys.path:
        sys.path.insert(0, str(PLUGIN_ROOT))


def wait_for(predicate: Callable[[], bool], timeout: float = 180.0) -> None:
    """Spin the Qt event loop (task results and message-bar pushes are queued) until true."""
    from qgis.PyQt.QtCore import QCoreApplication

    deadline = time.monotonic() + timeout
    while not predicate():
        QCoreApplication.processEvents()
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(0.02)
    QCoreApplication.processEvents()


@pytest.fixture(scope="session")
def cli() -> Path:
    """The backend CLI: $RS_SEG2ANY_CLI (set by `make test-qgis`), else the repo's .venv."""
    path = Path(os.environ.get("RS_SEG2ANY_CLI") or REPO / ".venv" / "bin" / "rs-seg2any")
    if not path.is_file():
        pytest.skip(f"no backend CLI at {path}: run `make install` or set RS_SEG2ANY_CLI")
    os.environ["RS_SEG2ANY_CLI"] = str(path)
    return path


@pytest.fixture(scope="session")
def schema(cli: Path) -> Any:
    """The backend's own `rs-seg2any schema`, as the plugin reads it."""
    from rs_seg2any_qgis.cli_schema import load_schema

    return load_schema(cli)


@pytest.fixture(scope="session")
def weights(cli: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small random weights for the embedded model, made by the backend's own Python.

    Fast and deterministic; what is tested is the plugin's plumbing, not image quality.
    """
    path = tmp_path_factory.mktemp("weights") / "tiny_test.safetensors"
    code = (
        "import sys, torch\n"
        "from pathlib import Path\n"
        "from rs_seg2any.generators.tiny.model import TinyConfig, TinySeg2Any\n"
        "from rs_seg2any.generators.tiny.weights import save_weights\n"
        "torch.manual_seed(0)\n"
        "m = TinySeg2Any(TinyConfig(patch=8, width=32, depth=1, heads=2, ctx_depth=1,"
        " bottleneck=16))\n"
        "with torch.no_grad():\n"
        "    for p in m.parameters():\n"
        "        p.add_(torch.randn_like(p) * 0.2)\n"
        "save_weights(m, Path(sys.argv[1]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    subprocess.run([str(cli.parent / "python"), "-c", code, str(path)], check=True, env=env)
    return path


@pytest.fixture(scope="session")
def demo_town(cli: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo town GeoPackage, written by `rs-seg2any demo-layer` (UTM 40N, 'landcover')."""
    path = tmp_path_factory.mktemp("demo") / "demo_town.gpkg"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    subprocess.run([str(cli), "demo-layer", str(path)], check=True, env=env,
                   capture_output=True)  # fmt: skip
    return path


@pytest.fixture
def lulc() -> Path:
    """The Slovenian LULC polygons from ../shared/data, else skip."""
    path = SHARED / "eolearn_slovenia" / "LULC.gpkg"
    if not path.is_file():
        pytest.skip(f"{path} is absent (../shared/data is not in a fresh clone)")
    return path


@pytest.fixture
def plugin(qgis_iface: Any, qgis_new_project: None, cli: Path) -> Iterator[Any]:
    """The plugin as QGIS loads it: classFactory(iface), initGui(); unload() afterwards."""
    import rs_seg2any_qgis

    instance = rs_seg2any_qgis.classFactory(qgis_iface)
    instance.initGui()
    yield instance
    for task in list(instance.tasks):
        task.cancel()
    wait_for(lambda: not instance.tasks, timeout=120)
    instance.unload()


@pytest.fixture
def add_layer() -> Callable[..., Any]:
    """Load a vector file into the project (as a user would drag it in)."""
    from qgis.core import QgsProject, QgsVectorLayer

    def add(path: Path, name: str = "", layer_name: str | None = None) -> Any:
        uri = str(path) if layer_name is None else f"{path}|layername={layer_name}"
        layer = QgsVectorLayer(uri, name or path.stem, "ogr")
        assert layer.isValid(), uri
        QgsProject.instance().addMapLayer(layer)
        return layer

    return add
