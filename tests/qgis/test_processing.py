"""The Processing algorithms run through processing.run and qgis_process.bin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import PLUGIN_ROOT, REPO
from qgis.core import QgsProcessingException, QgsRasterLayer

EXTENT = "300000,300064,2780150,2780182 [EPSG:32640]"  # xmin,xmax,ymin,ymax: QGIS's order
GRID = (300000.0, 2780150.0, 300064.0, 2780182.0)
QGIS_PROCESS = Path("/usr/bin/qgis_process.bin")


def check_grid(path: str, crs: str = "EPSG:32640") -> QgsRasterLayer:
    layer = QgsRasterLayer(path, "out", "gdal")
    assert layer.isValid(), path
    assert layer.crs().authid() == crs
    rect = layer.extent()
    got = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
    assert got == pytest.approx(GRID)
    return layer


def test_rasterise_layout_via_processing_run(
    plugin: Any, qgis_processing: None, demo_town: Path, tmp_path: Path
) -> None:
    import processing

    result = processing.run("rs_seg2any:rasterise_layout", {
        "INPUT": str(demo_town), "CLASS_FIELD": "landcover", "DESCRIPTION_FIELD": "description",
        "TAXONOMY": 0, "RESOLUTION": 0.5, "EXTENT": EXTENT, "OUTPUT": str(tmp_path / "alg"),
    })  # fmt: skip
    assert result["OUTPUT"] == str(tmp_path / "alg")
    for key in ("LABEL", "INSTANCE", "CONTOUR"):
        check_grid(result[key])
    assert "IMAGE" not in result
    assert Path(result["PREVIEW"]).is_file()


def test_generate_imagery_via_processing_run(
    plugin: Any, qgis_processing: None, demo_town: Path, weights: Path, tmp_path: Path
) -> None:
    import processing

    result = processing.run("rs_seg2any:generate_imagery", {
        "INPUT": str(demo_town), "CLASS_FIELD": "landcover", "TAXONOMY": 0, "RESOLUTION": 0.5,
        "EXTENT": EXTENT, "MODEL": str(weights), "SEED": 3, "STEPS": 2, "TILE_SIZE": 64,
        "OUTPUT": str(tmp_path / "gen"),
    })  # fmt: skip
    image = check_grid(result["IMAGE"])
    assert image.bandCount() == 3
    check_grid(result["LABEL"])


def test_processing_reports_the_cli_error(
    plugin: Any, qgis_processing: None, demo_town: Path, tmp_path: Path
) -> None:
    import processing

    with pytest.raises(QgsProcessingException, match=r"taxonomy|class"):
        processing.run("rs_seg2any:rasterise_layout", {
            "INPUT": str(demo_town), "CLASS_FIELD": "landcover", "TAXONOMY": 2,  # worldcover
            "RESOLUTION": 0.5, "EXTENT": EXTENT, "OUTPUT": str(tmp_path / "bad"),
        })  # fmt: skip


@pytest.mark.skipif(not QGIS_PROCESS.is_file(), reason="qgis_process.bin is not installed")
def test_rasterise_layout_via_qgis_process(cli: Path, demo_town: Path, tmp_path: Path) -> None:
    """The installable zip (with qgis-plugin-tools bundled) in a fresh profile."""
    plugins = tmp_path / "plugins"
    with zipfile.ZipFile(build_zip(tmp_path / "dist")) as archive:
        archive.extractall(plugins)
    profile = tmp_path / "profile"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env |= {"QGIS_PLUGINPATH": str(plugins), "QGIS_CUSTOM_CONFIG_PATH": str(profile),
            "QT_QPA_PLATFORM": "offscreen", "RS_SEG2ANY_CLI": str(cli)}  # fmt: skip

    def qgis_process(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(QGIS_PROCESS), *args], env=env, capture_output=True,
                              text=True, timeout=300, check=False)  # fmt: skip

    enabled = qgis_process("plugins", "enable", "rs_seg2any_qgis")
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    out = tmp_path / "qp"
    run = qgis_process("--json", "run", "rs_seg2any:rasterise_layout", "--",
                       f"INPUT={demo_town}", "CLASS_FIELD=landcover", "TAXONOMY=0",
                       "RESOLUTION=0.5", f"EXTENT={EXTENT}", f"OUTPUT={out}")  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    results = json.loads(run.stdout[run.stdout.index("{") :])["results"]
    check_grid(results["LABEL"])
    assert (out / "label.qml").is_file()


def build_zip(dist: Path) -> Path:
    """`make plugin`'s script, run by this environment's Python (it has qgis-plugin-tools)."""
    done = subprocess.run([sys.executable, str(PLUGIN_ROOT / "tools" / "build_plugin.py"),
                           "--out", str(dist)], capture_output=True, text=True, check=True,
                          cwd=REPO)  # fmt: skip
    return Path(done.stdout.strip().splitlines()[-1])


def test_plugin_zip_is_installable(tmp_path: Path) -> None:
    names = zipfile.ZipFile(build_zip(tmp_path)).namelist()
    for needed in ("metadata.txt", "__init__.py", "LICENSE", "resources/icons/icon.png",
                   "qgis_plugin_tools/tools/settings.py", "processing/provider.py"):  # fmt: skip
        assert f"rs_seg2any_qgis/{needed}" in names, needed
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
