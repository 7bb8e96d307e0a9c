# SPDX-License-Identifier: GPL-2.0-or-later
"""Hand a QGIS vector layer to the CLI as a file, and put its outputs into the project."""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsColorRampShader,
    QgsFillSymbol,
    QgsLayerTreeGroup,
    QgsMapLayer,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsProviderRegistry,
    QgsRandomColorRamp,
    QgsRasterBandStats,
    QgsRasterLayer,
    QgsRasterShader,
    QgsRectangle,
    QgsRendererCategory,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
    QgsVectorFileWriter,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

from .scenarios import ResultLayer, result_layers


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


def single_layer_file(layer: QgsVectorLayer, export_folder: str | os.PathLike[str]) -> str:
    """A file whose first layer is ``layer``, for options the CLI reads without a layer name
    (flood polygons, zones): the layer's own file when it holds only this layer, else an
    export."""
    found = file_source(layer)
    if found is not None:
        path, name = found
        if name is None or len(QgsProviderRegistry.instance().querySublayers(path)) == 1:
            return path
    return export_layer(layer, export_folder)[0]


def same_named_sources(
    first: QgsVectorLayer, second: QgsVectorLayer, export_folder: str | os.PathLike[str]
) -> tuple[str, str, str]:
    """(path, path, layer name) of two layers the CLI reads with one ``--layer`` name (the
    before and after layouts of a change pair): their own files when the names agree, else
    exports (both named ``layer``)."""
    path1, name1 = cli_source(first, export_folder)
    path2, name2 = cli_source(second, export_folder)
    if name1 == name2:
        return path1, path2, name1
    return export_layer(first, export_folder)[0], export_layer(second, export_folder)[0], "layer"


def contour_renderer(layer: QgsRasterLayer) -> QgsPalettedRasterRenderer:
    """Entity outlines as white lines; 0 (no outline) is not a class, so it stays clear."""
    classes = [QgsPalettedRasterRenderer.Class(1, QColor(255, 255, 255), "outline")]
    return QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes)


def mask_renderer(layer: QgsRasterLayer, colour: QColor, label: str) -> QgsPalettedRasterRenderer:
    """A 0/1 mask as an overlay: 1 in ``colour``, 0 not drawn."""
    classes = [QgsPalettedRasterRenderer.Class(1, colour, label)]
    return QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes)


def depth_renderer(layer: QgsRasterLayer) -> QgsSingleBandPseudoColorRenderer:
    """Water depth in metres, light to dark blue from 0 to the deepest pixel."""
    stats = layer.dataProvider().bandStatistics(1, QgsRasterBandStats.Max)
    top = stats.maximumValue if stats.maximumValue > 0 else 1.0
    ramp = QgsStyle.defaultStyle().colorRamp("Blues")
    shader_fn = QgsColorRampShader(0.0, top, ramp)
    shader_fn.classifyColorRamp(5, -1, QgsRectangle(), None)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(shader_fn)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(top)
    return renderer


def fromto_renderer(layer: QgsRasterLayer, path: str) -> QgsPalettedRasterRenderer:
    """Change codes ``from * 256 + to`` named from ``change_classes.csv`` beside the raster."""
    names: dict[int, str] = {}
    table = Path(path).with_name("change_classes.csv")
    if table.is_file():
        with table.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                names[int(row["code"])] = f"{row['from_class']} → {row['to_class']}"
    ramp = QgsRandomColorRamp()
    ramp.setTotalColorCount(max(1, len(names)))
    classes = [
        QgsPalettedRasterRenderer.Class(code, ramp.color(i / max(1, len(names))), text)
        for i, (code, text) in enumerate(sorted(names.items()))
        if code != 0
    ]
    return QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes)


def category_renderer(layer: QgsVectorLayer, filled: bool) -> QgsCategorizedSymbolRenderer:
    """One colour per object class (the ``category`` field of a detection set): outlines
    for boxes, translucent fills for instance polygons."""
    names = sorted(str(v) for v in layer.uniqueValues(layer.fields().indexOf("category")))
    ramp = QgsRandomColorRamp()
    ramp.setTotalColorCount(max(1, len(names)))
    categories = []
    for i, name in enumerate(names):
        colour = ramp.color(i / max(1, len(names)))
        rgb = f"{colour.red()},{colour.green()},{colour.blue()}"
        fill = f"{rgb},90" if filled else "0,0,0,0"
        symbol = QgsFillSymbol.createSimple(
            {"color": fill, "outline_color": f"{rgb},255", "outline_width": "0.4"}
        )
        categories.append(QgsRendererCategory(name, symbol, name))
    return QgsCategorizedSymbolRenderer("category", categories)


def vector_result(path: str, entry: ResultLayer) -> QgsVectorLayer:
    """One layer of a vector output (a GeoPackage's ``entry.sublayer``), styled by class."""
    uri = f"{path}|layername={entry.sublayer}" if entry.sublayer else path
    layer = QgsVectorLayer(uri, entry.name, "ogr")
    if layer.isValid() and "category" in layer.fields().names():
        layer.setRenderer(category_renderer(layer, filled=entry.sublayer == "instances"))
    return layer


MASK_STYLE = {"flood_mask": (QColor(31, 120, 180), "flooded")}
CHANGE_MASK_STYLE = (QColor(227, 26, 28), "changed")


def style_layer(layer: QgsRasterLayer, entry: ResultLayer, path: str, style: str | None) -> str:
    """Style one result; returns a problem, or "" when all went well."""
    if entry.kind == "label":
        style = style or str(Path(path).with_suffix(".qml"))
        if os.path.isfile(style):
            _message, ok = layer.loadNamedStyle(style)
            if not ok:
                return f"label style {style} did not load"
    elif entry.kind == "contour":
        layer.setRenderer(contour_renderer(layer))
    elif entry.kind == "mask":
        colour, label = MASK_STYLE.get(entry.key, CHANGE_MASK_STYLE)
        layer.setRenderer(mask_renderer(layer, colour, label))
        layer.setOpacity(0.6)
    elif entry.kind == "depth":
        layer.setRenderer(depth_renderer(layer))
    elif entry.kind == "fromto":
        layer.setRenderer(fromto_renderer(layer, path))
    return ""


def add_results(
    outputs: dict[str, str],
    title: str,
    project: QgsProject | None = None,
    command: str = "generate",
) -> tuple[QgsLayerTreeGroup, list[QgsMapLayer], list[str]]:
    """Add the outputs of one ``command`` run as a group at the top of the layer tree:
    images, label masks with their paletted style, contours, masks, vector layers (see
    ``result_layers``).

    Returns the group, the layers added and the problems (outputs that would not load).
    """
    project = project or QgsProject.instance()
    group = project.layerTreeRoot().insertGroup(0, title)
    added: list[QgsMapLayer] = []
    problems: list[str] = []
    for entry in result_layers(command, outputs):
        path = outputs[entry.key]
        layer: QgsMapLayer
        if entry.kind == "vector":
            layer = vector_result(path, entry)
        else:
            layer = QgsRasterLayer(path, entry.name, "gdal")
        if not layer.isValid():
            problems.append(f"{entry.name}: {path} did not load")
            continue
        if isinstance(layer, QgsRasterLayer):
            style = outputs.get("style") if entry.key == "label" else None
            problem = style_layer(layer, entry, path, style)
            if problem:
                problems.append(problem)
        project.addMapLayer(layer, False)
        node = group.addLayer(layer)
        node.setItemVisibilityChecked(entry.visible)
        added.append(layer)
    return group, added, problems
