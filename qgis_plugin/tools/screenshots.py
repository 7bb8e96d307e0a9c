# SPDX-License-Identifier: GPL-2.0-or-later
"""README screenshots of the plugin in real QGIS: the Generate dialog and a result.

Run under a virtual display (``make qgis-screenshots``)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv-qgis/bin/python \
        qgis_plugin/tools/screenshots.py --out docs/images

It writes the demo town with ``rs-seg2any demo-layer``, runs the same job the dialog would
start (``generate`` with the embedded weights when the backend ships them, else ``layout``),
and grabs ``qgis_dialog.png`` and ``qgis_result.png``: QGIS desktop (``qgis.bin``) with the
plugin installed from its zip and the result in its layer tree and map canvas
(``desktop_shot.py``), or, without desktop QGIS, the same widgets composed here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))

from qgis.core import (  # noqa: E402 (after the plugin folder is on sys.path)
    QgsApplication,
    QgsLayerTreeModel,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.gui import QgsLayerTreeMapCanvasBridge, QgsLayerTreeView, QgsMapCanvas  # noqa: E402
from qgis.PyQt.QtCore import QSize, Qt  # noqa: E402
from qgis.PyQt.QtWidgets import QApplication, QSplitter  # noqa: E402

QGIS_DESKTOP = Path("/usr/bin/qgis.bin")
# The demo town (UTM 40N, metres): 1024 x 768 px at 0.5 m.
EXTENT = (300000.0, 2780000.0, 300512.0, 2780384.0)


def settle(app: QApplication, rounds: int = 20) -> None:
    for _ in range(rounds):
        app.processEvents()


def desktop_screenshot(outputs: dict[str, str], png: Path, work: Path) -> None:
    """QGIS desktop with the plugin installed from its zip, showing the result."""
    sys.path.insert(0, str(HERE))
    from build_plugin import build

    png.unlink(missing_ok=True)
    plugins = work / "plugins"
    with zipfile.ZipFile(build(work / "dist")) as archive:
        archive.extractall(plugins)
    ini = work / "profiles" / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    ini.write_text("[PythonPlugins]\nrs_seg2any_qgis=true\n[qgis]\ncheckVersion=false\n")
    job = work / "shot.json"
    job.write_text(json.dumps({"outputs": outputs, "extent": EXTENT, "png": str(png)}))
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "QT_QPA_PLATFORM")}  # fmt: skip
    env |= {"QGIS_PLUGINPATH": str(plugins), "RS_SEG2ANY_SHOT": str(job)}
    subprocess.run([str(QGIS_DESKTOP), "--profiles-path", str(work / "profiles"), "--nologo",
                    "--noversioncheck", "--code", str(HERE / "desktop_shot.py")],
                   env=env, check=True, timeout=300, capture_output=True)  # fmt: skip
    if not png.is_file():
        error = Path(str(png) + ".error")
        raise SystemExit(f"QGIS made no screenshot: {error.read_text() if error.exists() else ''}")


def composed_screenshot(app: QApplication, layer: QgsVectorLayer, png: Path) -> None:
    """Layer tree and map canvas side by side, as in QGIS's main window."""
    split = QSplitter(Qt.Horizontal)
    tree = QgsLayerTreeView(split)
    model = QgsLayerTreeModel(QgsProject.instance().layerTreeRoot())
    model.setFlag(QgsLayerTreeModel.AllowNodeChangeVisibility)
    tree.setModel(model)
    result_canvas = QgsMapCanvas(split)
    bridge = QgsLayerTreeMapCanvasBridge(QgsProject.instance().layerTreeRoot(), result_canvas)
    split.addWidget(tree)
    split.addWidget(result_canvas)
    split.setSizes([260, 740])
    split.resize(QSize(1000, 560))
    split.show()
    tree.expandAll()
    settle(app)
    result_canvas.setDestinationCrs(layer.crs())
    result_canvas.setExtent(QgsRectangle(*EXTENT))
    result_canvas.refresh()
    result_canvas.waitWhileRendering()
    settle(app, 50)
    result_canvas.waitWhileRendering()
    split.grab().save(str(png))
    split.close()
    del bridge


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--steps", type=int, default=20, help="sampling steps of the image")
    args = parser.parse_args()
    os.environ.setdefault("QGIS_CUSTOM_CONFIG_PATH", tempfile.mkdtemp(prefix="rs_seg2any_qgis"))

    app = QgsApplication([], True)
    app.initQgis()
    from rs_seg2any_qgis import config
    from rs_seg2any_qgis.backend import discover_cli, run_job, run_quick
    from rs_seg2any_qgis.dialogs import GenerateDialog
    from rs_seg2any_qgis.layers import add_results

    cli = discover_cli(None)
    if cli is None:
        raise SystemExit("no rs-seg2any backend: set RS_SEG2ANY_CLI")
    work = Path(tempfile.mkdtemp(prefix="rs_seg2any_shots"))
    town = work / "demo_town.gpkg"
    run_quick(cli, ["demo-layer", str(town)])
    layer = QgsVectorLayer(str(town), "demo_town", "ogr")
    QgsProject.instance().addMapLayer(layer)

    canvas = QgsMapCanvas()
    canvas.resize(QSize(512, 384))
    canvas.setDestinationCrs(layer.crs())
    canvas.setExtent(QgsRectangle(*EXTENT))
    config.put("last/description_field", "description")
    dialog = GenerateDialog(canvas, lambda *_: None)
    dialog.layer.setLayer(layer)
    dialog.class_field.setField("landcover")
    dialog.description_field.setField("description")
    dialog.taxonomy.setCurrentText("dubai_aerial")
    dialog.resolution.setValue(0.5)
    dialog.extent.setChecked(True)
    dialog.extent.setOutputExtentFromCurrent()
    dialog.seed.setValue(7)
    dialog.steps.setValue(args.steps)
    dialog.out_dir.setFilePath(str(Path.home() / "rs_seg2any" / "demo_town"))
    dialog.resize(640, dialog.sizeHint().height())
    dialog.show()
    settle(app)
    args.out.mkdir(parents=True, exist_ok=True)
    dialog.grab().save(str(args.out / "qgis_dialog.png"))
    print(args.out / "qgis_dialog.png")

    weights = REPO / "rs_seg2any" / "generators" / "tiny" / "weights" / "tiny_base.safetensors"
    mode = "generate" if weights.is_file() else "layout"
    spec = dialog.spec()
    spec.command, spec.out_dir, spec.layer_path = mode, str(work / "out"), str(town)
    result = run_job(cli, spec.to_args())
    if not result.ok:
        raise SystemExit(f"job failed: {result.summary()}")
    add_results(result.outputs, "rs_seg2any: demo_town", QgsProject.instance())
    QgsProject.instance().layerTreeRoot().findLayer(layer.id()).setItemVisibilityChecked(False)

    shot = args.out / "qgis_result.png"
    if QGIS_DESKTOP.is_file():
        desktop_screenshot(result.outputs, shot, work)
    else:  # no desktop QGIS: the same widgets, composed here
        composed_screenshot(app, layer, shot)
    print(shot, f"({mode})")
    dialog.close()
    del canvas, dialog
    QgsProject.instance().removeAllMapLayers()
    settle(app)
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
