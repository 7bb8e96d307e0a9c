# SPDX-License-Identifier: GPL-2.0-or-later
"""Processing provider: makes the algorithms visible to the toolbox, models and qgis_process."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .. import config
from .algorithms import GenerateImageryAlgorithm, RasteriseLayoutAlgorithm
from .detection_algorithm import DetectionSetAlgorithm
from .scenario_algorithms import SCENARIO_ALGORITHMS

PROVIDER_ID = "rs_seg2any"


class RsSeg2AnyProvider(QgsProcessingProvider):
    """Algorithms: ``rs_seg2any:rasterise_layout``, ``rs_seg2any:generate_imagery`` and the
    scenarios ``flood``, ``planning_zones``, ``seasons``, ``change_pair``, ``cloud_fill``,
    ``damage_pair`` and ``detection_set``."""

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
        for algorithm in SCENARIO_ALGORITHMS:
            self.addAlgorithm(algorithm())
        self.addAlgorithm(DetectionSetAlgorithm())
