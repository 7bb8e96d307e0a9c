"""rs_seg2any: georeferenced land-cover polygons to realistic remote-sensing imagery.

Importing the package stays light (no torch): the geo paths — layouts, grids, rasterisation,
GeoTIFF writing — work in environments without a deep-learning stack, such as QGIS.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
