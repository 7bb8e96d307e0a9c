# SPDX-License-Identifier: GPL-2.0-or-later
"""rs_seg2any for QGIS: imagery and label maps from land-cover polygons.

A thin plugin: dialogs, a Processing provider and background tasks that run the
``rs-seg2any`` command of a separate backend environment (QGIS's Python has no torch).
"""

from __future__ import annotations

from typing import Any


def classFactory(iface: Any) -> Any:
    """QGIS entry point: the plugin object for this QGIS interface."""
    from .plugin import RsSeg2AnyPlugin

    return RsSeg2AnyPlugin(iface)
