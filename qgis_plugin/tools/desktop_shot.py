# SPDX-License-Identifier: GPL-2.0-or-later
"""Runs inside QGIS desktop (``qgis.bin --code``) for ``screenshots.py``: the result of a job
in the real main window, with the plugin loaded from its installed zip.

Reads ``RS_SEG2ANY_SHOT`` (a JSON file: outputs, extent, target png); writes the png and
quits QGIS.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from qgis.core import QgsProject, QgsRectangle
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QApplication, QDockWidget
from qgis.utils import iface, plugins


def shoot() -> None:
    from rs_seg2any_qgis.layers import add_results

    job = json.loads(Path(os.environ["RS_SEG2ANY_SHOT"]).read_text(encoding="utf-8"))
    try:
        if "rs_seg2any_qgis" not in plugins:
            raise RuntimeError("the rs_seg2any plugin did not load")
        window = iface.mainWindow()
        window.showNormal()
        window.resize(1280, 800)
        for dock in window.findChildren(QDockWidget):
            if dock.objectName() != "Layers":
                dock.hide()
        add_results(job["outputs"], "rs_seg2any: demo_town", QgsProject.instance())
        canvas = iface.mapCanvas()
        canvas.setDestinationCrs(QgsProject.instance().mapLayersByName("label")[0].crs())
        canvas.setExtent(QgsRectangle(*job["extent"]))
        canvas.refresh()
        QTimer.singleShot(4000, lambda: finish(job))
    except Exception as exc:  # report, then quit: this runs unattended
        Path(job["png"] + ".error").write_text(repr(exc), encoding="utf-8")
        QApplication.instance().exit(1)


def finish(job: dict[str, object]) -> None:
    iface.mapCanvas().waitWhileRendering()
    iface.layerTreeView().expandAll()
    QApplication.processEvents()
    iface.mainWindow().grab().save(str(job["png"]))
    QApplication.instance().exit(0)


QTimer.singleShot(6000, shoot)
