"""Pseudo-labels for red-green-blue-NIR imagery from spectral rules, without a trained network.

Unlabelled 4-band imagery (the NAIP series: farmland and prairie-pothole lakes in North
Dakota) still needs a layout to be generated from or scored against. Each pixel is put into a
small ``worldcover`` taxonomy by rules on indices that hold across dates and sensors:

- water (80): dark in near-infrared (below the image's Otsu split of NIR: open water absorbs
  it, so lakes form their own dark mode) and NDWI = (G - N) / (G + N) above ``water_ndwi``
  (shadowed vegetation is dark in NIR too, but NIR still beats green there). NDWI alone is
  not enough: on some dates (2014) dry grass has G > N. Shallow, algae-green lakes that
  reflect NIR come out as vegetation (a known miss);
- cropland (40): dense green vegetation, NDVI = (N - R) / (N + R) above the image's own
  vegetation split (crops in season, tall stands);
- grassland (30): the rest of the vegetated land (pasture, prairie, field margins);
- bare / sparse vegetation (60): NDVI below ``bare_ndvi`` (tilled or harvested fields,
  dry lake rims);
- built-up (50): bright and not green (gravel roads, farmyards, roofs): connected areas of
  NDVI below ``bare_ndvi`` plus a margin and brightness above the image's ``grow_percentile``
  that reach its ``built_percentile`` (hysteresis, so a road is one piece, not specks).

The water and vegetation splits default to Otsu's thresholds of the image's NIR and land NDVI,
so one rule set works on June and September dates whose NDVI ranges differ. The result is
smoothed: a ``majority`` filter (roads are kept: built-up pixels are laid back after it) and
GDAL's sieve to a minimum mapping unit of ``min_area`` pixels. Written as a label GeoTIFF on the
image's grid (``--reference-labels``, ``evaluate --labels``) and as polygons with a ``class``
field (``--class-field class --taxonomy worldcover``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from ..errors import InputError

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]

TAXONOMY = "worldcover"
WATER, CROPLAND, GRASSLAND, BARE, BUILT = 80, 40, 30, 60, 50
#: Class ids in the order the rules assign them (the ``worldcover`` taxonomy's ids).
CLASSES = {
    WATER: "permanent water bodies",
    CROPLAND: "cropland",
    GRASSLAND: "grassland",
    BARE: "bare / sparse vegetation",
    BUILT: "built-up",
}


@dataclass(frozen=True)
class PseudoLabelRules:
    """Thresholds and smoothing of :func:`pseudo_labels` (None: from the image itself)."""

    water_nir: float | None = None  # None: Otsu split of the NIR band (0-255)
    water_ndwi: float = -0.15
    crop_ndvi: float | None = None  # None: Otsu split of the land NDVI
    bare_ndvi: float = 0.12
    built_percentile: float = 99.0  # seeds of built-up: the brightest land pixels
    grow_percentile: float = 96.0  # built-up grows from its seeds over pixels this bright
    built_margin: float = 0.05
    majority: int = 5  # odd window of the majority filter (1: none)
    min_area: int = 24  # minimum mapping unit, pixels (0: no sieve)

    def __post_init__(self) -> None:
        if self.majority < 1 or self.majority % 2 == 0:
            raise InputError(f"majority window must be an odd number >= 1 (got {self.majority})")
        if self.min_area < 0 or not 50.0 <= self.grow_percentile <= self.built_percentile <= 100:
            raise InputError("need min_area >= 0 and 50 <= grow_percentile <= built_percentile")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(a: F32, b: F32) -> F32:
    out: F32 = ((a - b) / np.maximum(a + b, 1e-6)).astype(np.float32)
    return out


def indices(image: NDArray[Any]) -> tuple[F32, F32, F32]:
    """NDVI, NDWI (McFeeters) and brightness (mean of R, G, B in [0, 1]) of an
    ``(H, W, 4)`` red-green-blue-NIR image."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] < 4:
        raise InputError(
            f"pseudo-labels need red, green, blue and near-infrared bands (got shape {img.shape})"
        )
    r, g, b, n = (img[..., i].astype(np.float32) for i in range(4))
    bright: F32 = ((r + g + b) / (3.0 * 255.0)).astype(np.float32)
    return _ratio(n, r), _ratio(g, n), bright


def otsu(values: NDArray[Any], bins: int = 256) -> float:
    """Otsu's threshold of ``values`` (the split that maximises between-class variance)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size < 2 or v.min() == v.max():
        return float(v.mean()) if v.size else 0.0
    hist, edges = np.histogram(v, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def majority_filter(labels: U8, size: int) -> U8:
    """Each pixel takes the most frequent class of its ``size`` x ``size`` window (ties: the
    pixel's own class wins, then the lower id)."""
    if size <= 1:
        return labels.copy()
    classes = np.unique(labels)
    counts = np.stack(
        [
            ndimage.uniform_filter((labels == c).astype(np.float32), size, mode="nearest")
            for c in classes
        ]
    )
    own = np.searchsorted(classes, labels)
    counts[own, np.arange(labels.shape[0])[:, None], np.arange(labels.shape[1])] += 1e-3
    out: U8 = classes[np.argmax(counts, axis=0)].astype(np.uint8)
    return out


def sieve(labels: U8, min_area: int) -> U8:
    """GDAL's sieve: regions under ``min_area`` pixels (4-connected) take their largest
    neighbour's class."""
    if min_area <= 1:
        return labels.copy()
    from rasterio import features

    out: U8 = features.sieve(labels, size=min_area, connectivity=4).astype(np.uint8)
    return out


def raw_labels(image: NDArray[Any], rules: PseudoLabelRules | None = None) -> tuple[U8, float]:
    """The per-pixel rule classes before smoothing, and the crop NDVI threshold used."""
    p = rules or PseudoLabelRules()
    ndvi, ndwi, bright = indices(image)
    nir = np.asarray(image)[..., 3].astype(np.float32)
    nir_cut = otsu(nir) if p.water_nir is None else p.water_nir
    water = (nir < nir_cut) & (ndwi > p.water_ndwi)
    land = ~water
    split = p.crop_ndvi
    if split is None:
        veg = ndvi[land & (ndvi > p.bare_ndvi)]
        split = max(otsu(veg), p.bare_ndvi + 0.05) if veg.size else p.bare_ndvi + 0.2
    lab = np.full(ndvi.shape, GRASSLAND, np.uint8)
    lab[ndvi >= split] = CROPLAND
    lab[ndvi < p.bare_ndvi] = BARE
    if land.any():  # hysteresis: bright, not-green areas that reach the brightest pixels
        seed_cut, grow_cut = np.percentile(bright[land], [p.built_percentile, p.grow_percentile])
        grow = land & (bright >= grow_cut) & (ndvi < p.bare_ndvi + p.built_margin)
        comp, n = ndimage.label(grow, structure=np.ones((3, 3)))
        hit = np.zeros(n + 1, bool)
        hit[np.unique(comp[grow & (bright >= seed_cut)])] = True
        hit[0] = False
        lab[hit[comp]] = BUILT
    lab[water] = WATER
    return lab, float(split)


def pseudo_labels(image: NDArray[Any], rules: PseudoLabelRules | None = None) -> U8:
    """Smoothed ``worldcover`` class ids of an ``(H, W, 4)`` RGBN image (no zeros)."""
    p = rules or PseudoLabelRules()
    raw, _ = raw_labels(image, p)
    smooth = majority_filter(raw, p.majority)
    built = raw == BUILT
    if built.any():  # roads are 1-2 px wide at 5 m: the majority filter would erase them
        comp, n = ndimage.label(built, structure=np.ones((3, 3)))
        sizes = np.bincount(comp.ravel(), minlength=n + 1)
        keep = (sizes >= max(p.min_area, 1))[comp] & built
        smooth[keep] = BUILT
    return sieve(smooth, p.min_area)


def read_rgbn(path: str | Path, bands: tuple[int, int, int, int] = (1, 2, 3, 4)) -> Any:
    """``(image (H, W, 4) uint8, profile)`` of a GeoTIFF's red, green, blue and NIR bands."""
    import rasterio

    with rasterio.open(path) as src:
        if src.count < max(bands):
            raise InputError(
                f"{path} has {src.count} band(s); pseudo-labels need red, green, blue and "
                f"near-infrared (bands {','.join(map(str, bands))})"
            )
        data = src.read(list(bands))
        profile = src.profile.copy()
    if data.dtype != np.uint8:
        raise InputError(f"{path}: pseudo-label rules are set for uint8 imagery (got {data.dtype})")
    return np.ascontiguousarray(data.transpose(1, 2, 0)), profile


def write_label_raster(dest: str | Path, labels: U8, profile: dict[str, Any]) -> Path:
    """The class raster as a one-band uint8 GeoTIFF on the profile's grid (0 = nodata)."""
    import rasterio

    from ..geoio import atomic_output

    prof = {
        "driver": "GTiff",
        "width": labels.shape[1],
        "height": labels.shape[0],
        "count": 1,
        "dtype": "uint8",
        "crs": profile["crs"],
        "transform": profile["transform"],
        "nodata": 0,
        "compress": "deflate",
    }
    with atomic_output(Path(dest)) as tmp, rasterio.open(tmp, "w", **prof) as dst:
        dst.write(labels, 1)
        dst.update_tags(taxonomy=TAXONOMY, source="rs_seg2any.quality.pseudo_labels")
    return Path(dest)


def write_polygons(dest: str | Path, labels: U8, profile: dict[str, Any]) -> Path:
    """One polygon per connected class area, with its class name in field ``class``."""
    import geopandas as gpd
    from rasterio import features
    from shapely.geometry import shape

    from ..geoio import atomic_output

    rows = [
        (CLASSES[int(v)], shape(g))
        for g, v in features.shapes(labels, mask=labels > 0, transform=profile["transform"])
    ]
    frame = gpd.GeoDataFrame(
        {"class": [r[0] for r in rows]}, geometry=[r[1] for r in rows], crs=profile["crs"]
    )
    with atomic_output(Path(dest)) as tmp:
        frame.to_file(tmp, driver="GPKG", layer="pseudo_labels")
    return Path(dest)


def label_image(
    image: str | Path,
    out_raster: str | Path,
    out_polygons: str | Path | None = None,
    rules: PseudoLabelRules | None = None,
) -> U8:
    """Pseudo-label a RGBN GeoTIFF; write the label GeoTIFF (and polygons); return labels."""
    data, profile = read_rgbn(image)
    lab = pseudo_labels(data, rules)
    write_label_raster(out_raster, lab, profile)
    if out_polygons is not None:
        write_polygons(out_polygons, lab, profile)
    return lab
