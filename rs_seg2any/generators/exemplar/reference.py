"""A user's reference image and its labels, read into an exemplar bank on the image's own grid.

Labels are either a class raster (ids of the layout's taxonomy) on exactly the image's grid,
or polygons with the layout's class field, rasterised onto the image's grid by the project's
rasteriser (so they need the layout's taxonomy and class field: the bank is then built at the
first tile, which carries them). Images that are not 8-bit are stretched to 0-255 per band
(2-98 % percentiles) for display-like colours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...errors import GridError, InputError
from ...grid import grid_gsd
from .bank import ExemplarBank, tile_crops

U8 = NDArray[np.uint8]
VECTOR_SUFFIXES = {".gpkg", ".geojson", ".json", ".shp", ".fgb", ".parquet", ".gml", ".kml"}


def _to_u8(data: NDArray[Any]) -> U8:
    if data.dtype == np.uint8:
        return data
    out = np.empty(data.shape, dtype=np.uint8)
    for b in range(data.shape[2]):
        band = data[..., b].astype(np.float64)
        finite = band[np.isfinite(band)]
        lo, hi = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
        scaled = (band - lo) / max(hi - lo, 1e-9) * 255.0
        out[..., b] = np.clip(np.nan_to_num(scaled), 0, 255).astype(np.uint8)
    return out


@dataclass
class Reference:
    """The reference image (RGB uint8) and, when given as a raster, its class raster."""

    image_path: Path
    labels_path: Path
    rgb: U8
    transform: Any
    crs: Any
    gsd: float
    labels: U8 | None  # None: polygons, rasterised when the layout's taxonomy is known

    @classmethod
    def open(cls, image: str | Path | None, labels: str | Path | None) -> Reference:
        import rasterio
        from rasterio.errors import RasterioIOError

        if image is None or labels is None:
            missing = "--reference-labels" if image is not None else "--reference-image"
            raise InputError(
                f"{missing} is missing: a reference image needs its labels (a class "
                "raster on its grid, or polygons) and labels need their image"
            )
        ipath, lpath = Path(image), Path(labels)
        for p in (ipath, lpath):
            if not p.exists():
                raise InputError(f"reference file not found: {p}")
        try:
            with rasterio.open(ipath) as src:
                if src.count < 3:
                    raise InputError(
                        f"reference image {ipath} has {src.count} band(s); it "
                        "needs red, green and blue (bands 1-3)"
                    )
                data = src.read([1, 2, 3]).transpose(1, 2, 0)
                transform, crs, (h, w) = src.transform, src.crs, (src.height, src.width)
        except RasterioIOError as exc:
            raise InputError(f"cannot read reference image {ipath}: {exc}") from exc
        rgb = _to_u8(data)
        gsd = grid_gsd(transform, crs, h)
        lab: U8 | None = None
        if lpath.suffix.lower() not in VECTOR_SUFFIXES:
            try:
                with rasterio.open(lpath) as src:
                    same = (
                        src.crs == crs
                        and src.transform.almost_equals(transform)
                        and (src.height, src.width) == (h, w)
                    )
                    if not same:
                        raise GridError(
                            f"reference labels {lpath} ({src.width}x{src.height} px, {src.crs}) "
                            f"are not on the reference image's grid ({w}x{h} px, {crs}); "
                            "resample them onto the image's grid or pass polygons"
                        )
                    lab = src.read(1).astype(np.uint8)
            except RasterioIOError as exc:
                raise InputError(f"cannot read reference labels {lpath}: {exc}") from exc
        return cls(ipath, lpath, rgb, transform, crs, gsd, lab)

    def rasterise(self, taxonomy: Any, class_field: str) -> U8:
        """The polygon labels on the image's grid, with the layout's taxonomy and class field."""
        from odc.geo.geobox import GeoBox

        from ...layout import load_layout
        from ...raster import rasterize_window

        h, w = self.rgb.shape[:2]
        grid = GeoBox((h, w), self.transform, self.crs)
        layout = load_layout(self.labels_path, class_field, taxonomy=taxonomy, grid=grid)
        lab: U8 = rasterize_window(layout, slice(0, h), slice(0, w)).label.astype(np.uint8)
        return lab

    def bank(self, labels: U8, names: dict[int, str]) -> ExemplarBank:
        """Crops of the whole reference image (unlabelled pixels, id 0, included as class 0)."""
        if not (labels > 0).any():
            raise InputError(
                f"reference labels {self.labels_path} have no class pixels on the "
                "reference image (all 0): check the class field and the CRS"
            )
        rgb, lab = tile_crops(self.rgb, labels)
        return ExemplarBank(rgb, lab, self.gsd, dict(names), f"reference {self.image_path.name}")
