"""Styled label masks: uint8 COGs with the taxonomy's colour table and class names, and the
QGIS paletted style (QML) that opens them with class names in the legend.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from odc.geo.geobox import GeoBox

from ..atomic import (
    atomic_output,
)
from ..taxonomy import BACKGROUND_ID, BACKGROUND_NAME, Taxonomy
from .cog import Colour, write_cog

LABEL_DTYPE = "uint8"
LABEL_NODATA = 0
LABEL_BAND_DESCRIPTION = "label"
_QGIS_VERSION = "3.22.0-Białowieża"


def _label_colormap(taxonomy: Taxonomy) -> dict[int, Colour]:
    cmap: dict[int, Colour] = {BACKGROUND_ID: (0, 0, 0, 0)}
    for c in taxonomy.classes:
        cmap[c.id] = (*c.colour, 255)
    return cmap


def _label_category_names(taxonomy: Taxonomy) -> list[str]:
    """Index = class id, '' for ids the taxonomy skips (GDAL category names are positional)."""
    names = [""] * (taxonomy.max_id + 1)
    names[BACKGROUND_ID] = BACKGROUND_NAME
    for c in taxonomy.classes:
        names[c.id] = c.name
    return names


def label_mask_style(taxonomy: Taxonomy) -> dict[str, Any]:
    """finalize() kwargs that make a streamed label mask identical to :func:`write_label_mask`.

    Create the writer with ``dtype=LABEL_DTYPE, nodata=LABEL_NODATA``, then call
    ``writer.finalize(**label_mask_style(taxonomy), tags=...)``."""
    return {
        "categorical": True,
        "colormap": _label_colormap(taxonomy),
        "category_names": _label_category_names(taxonomy),
        "band_descriptions": [LABEL_BAND_DESCRIPTION],
    }


def write_label_mask(
    dest: Path | str,
    labels: np.ndarray,
    geobox: GeoBox,
    taxonomy: Taxonomy,
    *,
    tags: Mapping[str, str] | None = None,
) -> Path:
    """uint8 COG with the taxonomy's colour table and class names, nodata 0, nearest overviews."""
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(f"a label mask is (height, width); got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"a label mask must be uint8, got {arr.dtype}")
    present = np.flatnonzero(np.bincount(arr.ravel(), minlength=256))
    unknown = sorted(set(present.tolist()) - {BACKGROUND_ID, *taxonomy.ids})
    if unknown:
        raise ValueError(f"label ids {unknown} are not in taxonomy '{taxonomy.name}'")
    return write_cog(
        dest, arr, geobox, nodata=LABEL_NODATA, tags=tags, **label_mask_style(taxonomy)
    )


def write_qml(dest: Path | str, taxonomy: Taxonomy) -> Path:
    """QGIS paletted raster style for the label mask, so the layer opens with class names."""
    root = ET.Element(
        "qgis",
        version=_QGIS_VERSION,
        styleCategories="AllStyleCategories",
        hasScaleBasedVisibilityFlag="0",
        minScale="1e+08",
        maxScale="0",
    )
    pipe = ET.SubElement(root, "pipe")
    renderer = ET.SubElement(
        pipe,
        "rasterrenderer",
        type="paletted",
        band="1",
        opacity="1",
        alphaBand="-1",
        nodataColor="",
    )
    ET.SubElement(renderer, "rasterTransparency")
    palette = ET.SubElement(renderer, "colorPalette")
    ET.SubElement(
        palette, "paletteEntry", value="0", color="#000000", alpha="0", label=BACKGROUND_NAME
    )
    for c in sorted(taxonomy.classes, key=lambda c: c.id):
        colour = "#{:02x}{:02x}{:02x}".format(*c.colour)
        ET.SubElement(
            palette, "paletteEntry", value=str(c.id), color=colour, alpha="255", label=c.name
        )
    ET.SubElement(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    ET.SubElement(
        pipe, "huesaturation", saturation="0", grayscaleMode="0", colorizeOn="0", invertColors="0"
    )
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")
    ET.SubElement(root, "blendMode").text = "0"
    ET.indent(root, space="  ")
    text = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
    text += ET.tostring(root, encoding="unicode") + "\n"
    dest = Path(dest)
    with atomic_output(dest) as tmp:
        tmp.write_bytes(text.encode("utf-8"))
    return dest
