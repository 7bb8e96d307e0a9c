# SPDX-License-Identifier: GPL-2.0-or-later
"""Hand a QGIS vector layer to the CLI as a file, and put its outputs into the project."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from qgis.core import (
    QgsLayerTreeGroup,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsVectorFileWriter,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

#: Output keys added to the project, top of the group first.
RESULT_LAYERS = ("contour", "label", "image")


def file_source(layer: QgsVectorLayer) -> tuple[str, str | None] | None:
    """(path, layer name) when the CLI can read the layer's own file as QGIS shows it.

    Not for memory/database layers, nor for layers with a filter (the CLI would read all
    features, not what QGIS shows).
    """
    if layer.providerType() != "ogr" or layer.subsetString():
        return None
    parts = QgsProviderRegistry.instance().decodeUri("ogr", layer.source())
    path = parts.get("path") or ""
    if not path or not os.path.isfile(path) or parts.get("subset"):
        return None
    name = parts.get("layerName") or None
    if name is None and parts.get("layerId") not in (None, 0, "0"):
        return None  # a sub-layer picked by index: the CLI selects by name
    return path, name


def layer_digest(layer: QgsVectorLayer) -> str:
    """Content hash of geometries, attributes and CRS: equal layers give equal exports."""
    digest = hashlib.sha256(layer.crs().toWkt().encode())
    digest.update("\x1f".join(layer.fields().names()).encode())
    for feature in layer.getFeatures():
        geom = feature.geometry()
        digest.update(bytes(geom.asWkb()) if not geom.isNull() else b"\0")
        digest.update(repr(feature.attributes()).encode())
    return digest.hexdigest()


def export_layer(layer: QgsVectorLayer, folder: str | os.PathLike[str]) -> tuple[str, str]:
    """Write ``layer`` to a GeoPackage named by its content, reusing an earlier export.

    The CLI resumes a job only when its input file has the same size and modification time,
    so the export of unchanged content must be the same file: it is named by the content
    hash, written once, and later runs find it there.
    """
    digest = layer_digest(layer)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"input_{digest[:16]}.gpkg"
    if path.is_file():
        return str(path), "layer"
    tmp = folder / f".tmp-{path.name}"
    if tmp.exists():
        tmp.unlink()
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = "layer"
    options.fileEncoding = "UTF-8"
    error, message, _new_path, _new_layer = QgsVectorFileWriter.writeAsVectorFormatV3(
        layer, str(tmp), QgsProject.instance().transformContext(), options
    )
    if error != QgsVectorFileWriter.NoError:
        raise OSError(f"cannot export layer '{layer.name()}' to {tmp}: {message}")
    os.replace(tmp, path)
    return str(path), "layer"


def cli_source(layer: QgsVectorLayer, export_folder: str | os.PathLike[str]) -> tuple[str, str]:
    """(path, layer name or '') for the CLI: the layer's file, else a GeoPackage export."""
    found = file_source(layer)
    if found is not None:
        return found[0], found[1] or ""
    return export_layer(layer, export_folder)


def contour_renderer(layer: QgsRasterLayer) -> QgsPalettedRasterRenderer:
    """Entity outlines as white lines; 0 (no outline) is not a class, so it stays clear."""
    classes = [QgsPalettedRasterRenderer.Class(1, QColor(255, 255, 255), "outline")]
    return QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes)


def add_results(
    outputs: dict[str, str], title: str, project: QgsProject | None = None
) -> tuple[QgsLayerTreeGroup, list[QgsRasterLayer], list[str]]:
    """Add the image, the styled label mask and the contours as a group at the top.

    Returns the group, the layers added and the problems (outputs that would not load).
    """
    project = project or QgsProject.instance()
    group = project.layerTreeRoot().insertGroup(0, title)
    added: list[QgsRasterLayer] = []
    problems: list[str] = []
    for key in RESULT_LAYERS:
        path = outputs.get(key)
        if not path:
            continue
        layer = QgsRasterLayer(path, key, "gdal")
        if not layer.isValid():
            problems.append(f"{key}: {path} did not load")
            continue
        if key == "label":
            style = outputs.get("style") or str(Path(path).with_suffix(".qml"))
            if os.path.isfile(style):
                _message, ok = layer.loadNamedStyle(style)
                if not ok:
                    problems.append(f"label style {style} did not load")
        elif key == "contour":
            layer.setRenderer(contour_renderer(layer))
        project.addMapLayer(layer, False)
        node = group.addLayer(layer)
        if key == "label" and "image" in outputs:
            node.setItemVisibilityChecked(False)  # the image is what a run is for
        added.append(layer)
    return group, added, problems
