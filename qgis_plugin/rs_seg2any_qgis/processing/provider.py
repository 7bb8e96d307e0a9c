# SPDX-License-Identifier: GPL-2.0-or-later
"""Processing provider: makes the algorithms visible to the toolbox, models and qgis_process."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .. import config
from .algorithms import GenerateImageryAlgorithm, RasteriseLayoutAlgorithm

PROVIDER_ID = "rs_seg2any"


class RsSeg2AnyProvider(QgsProcessingProvider):
    """Algorithms: ``rs_seg2any:rasterise_layout`` and ``rs_seg2any:generate_imagery``."""

    def id(self) -> str:
        return PROVIDER_ID

    def name(self) -> str:
        return "rs_seg2any"

    def longName(self) -> str:
        return "rs_seg2any: imagery and label maps from land-cover polygons"

    def icon(self) -> QIcon:
        return QIcon(config.icon_path())

    def loadAlgorithms(self) -> None:
        self.addAlgorithm(RasteriseLayoutAlgorithm())
        self.addAlgorithm(GenerateImageryAlgorithm())
