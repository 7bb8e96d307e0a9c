"""The base image's radiometry: how a scenario edits imagery that is not 8-bit RGB.

The generator sees and makes 8-bit RGB. A scenario's base image may be uint8, uint16, int16 or
float32, with 1 to many bands and a nodata value. :func:`analyse_base` reads the base once
(constant memory) and fixes, for the whole job, how its pixels are shown to the generator and
how generated pixels are mapped back:

* **display bands**: the bands whose colour interpretation is red, green, blue; else bands
  1, 2, 3; a 1- or 2-band image is grey (its first band shown as R = G = B).
* **display stretch**: uint8 images are shown as they are (0..255). Other dtypes are stretched
  linearly per display band from its 2nd..98th percentile to 0..255, the percentiles taken on
  valid pixels outside the edit mask (a regular sample of at most ~512 x 512 pixels).
* **generated pixels back to the native range**: the inverse of that stretch
  (``lo + value / 255 * (hi - lo)``; a grey band gets the luminance
  0.299 R + 0.587 G + 0.114 B); an alpha band is set opaque (the largest alpha of the valid
  sample, else 255 / the dtype maximum / 1.0); every other band (NIR, SWIR, ...) is predicted
  from the display bands by a per-scene linear least-squares fit on the same valid sample.
  Integers are rounded half to even and clipped to the dtype's range; a generated value equal
  to the nodata value is moved one step (one integer, one float ulp) away from it.
* **nodata**: a pixel where any band equals that band's nodata value, any float band is NaN,
  the alpha band is 0 or GDAL's per-dataset mask is 0 is never edited: it is copied exactly
  (so are +-inf float pixels).

Every number is recorded in the job parameters, so a resumed job is bit-identical and a
changed base is a different job.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.windows import Window

from .errors import InputError, ScenarioError

SAMPLE_SIDE = 512  # the statistics sample is at most ~SAMPLE_SIDE x SAMPLE_SIDE pixels
SCAN_BLOCK = 512  # the base is scanned in windows of this size (constant memory)
LUMA = (0.299, 0.587, 0.114)

MaskReader = Callable[[Window], np.ndarray]


@dataclass(frozen=True)
class Radiometry:
    """How one base image is shown to the generator and how generated pixels go back."""

    dtype: str
    count: int
    nodata: float | None  # the file's nodata (NaN allowed), written to the output
    nodatavals: tuple[float | None, ...]  # per band, for validity
    colorinterp: tuple[str, ...]
    descriptions: tuple[str, ...]
    display: tuple[int, ...]  # 0-based bands shown as R, G, B (one band: grey)
    lo: tuple[float, ...]  # per display band: native value shown as 0
    hi: tuple[float, ...]  # per display band: native value shown as 255
    alpha: int | None  # 0-based alpha band
    opaque: float  # alpha of generated pixels
    extra: tuple[tuple[int, tuple[float, ...]], ...]  # band -> (intercept, coef per display band)
    dataset_mask: bool  # GDAL per-dataset mask band present

    def to_params(self) -> dict[str, Any]:
        """JSON-ready record for the job parameters (NaN as a string: JSON has no NaN)."""
        out = asdict(self)
        out["nodata"] = _json_float(self.nodata)
        out["nodatavals"] = [_json_float(v) for v in self.nodatavals]
        return out

    @property
    def grey(self) -> bool:
        return len(self.display) == 1

    def valid(self, native: np.ndarray) -> np.ndarray:
        """``(h, w)`` True where a ``(h, w, count)`` pixel holds data (may be edited)."""
        ok = np.ones(native.shape[:2], dtype=bool)
        floating = np.issubdtype(native.dtype, np.floating)
        for band, nd in enumerate(self.nodatavals):
            values = native[..., band]
            if floating:  # NaN is nodata; +-inf cannot be stretched, so it is kept as well
                ok &= np.isfinite(values)
            if nd is not None and not math.isnan(nd):
                ok &= values != nd
        if self.alpha is not None:
            ok &= native[..., self.alpha] != 0
        return ok

    def to_display(self, native: np.ndarray, channels: int = 3) -> np.ndarray:
        """``(h, w, channels)`` uint8 as the generator sees it; nodata shows black."""
        out = np.zeros((*native.shape[:2], channels), dtype=np.uint8)
        shown = []
        for k, band in enumerate(self.display):
            value = native[..., band].astype(np.float64)
            scaled = (value - self.lo[k]) / (self.hi[k] - self.lo[k]) * 255.0
            scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
            shown.append(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))
        for c in range(min(channels, 3)):
            out[..., c] = shown[0] if self.grey else shown[c]
        if channels > 3:
            out[..., 3:] = 255
        return out

    def from_display(self, rgb: np.ndarray) -> np.ndarray:
        """``(h, w, count)`` native pixels for generated ``(h, w, >=3)`` uint8 RGB."""
        g = rgb[..., :3].astype(np.float64)
        if self.grey:
            channels = [g[..., 0] * LUMA[0] + g[..., 1] * LUMA[1] + g[..., 2] * LUMA[2]]
        else:
            channels = [g[..., 0], g[..., 1], g[..., 2]]
        values = np.zeros((*rgb.shape[:2], self.count), dtype=np.float64)
        sources = []
        for k, band in enumerate(self.display):
            values[..., band] = self.lo[k] + channels[k] / 255.0 * (self.hi[k] - self.lo[k])
            sources.append(values[..., band])
        for band, coefs in self.extra:
            pred = np.full(rgb.shape[:2], coefs[0], dtype=np.float64)
            for c, src in zip(coefs[1:], sources, strict=True):
                pred += c * src
            values[..., band] = pred
        if self.alpha is not None:
            values[..., self.alpha] = self.opaque
        return self._to_native(values)

    def _to_native(self, values: np.ndarray) -> np.ndarray:
        """Round (integers), clip to the dtype and step off the nodata value."""
        dtype = np.dtype(self.dtype)
        out: np.ndarray
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            out = np.clip(np.rint(values), info.min, info.max).astype(dtype)
        else:
            finfo = np.finfo(dtype)
            out = np.clip(values, finfo.min, finfo.max).astype(dtype)
        for band, nd in enumerate(self.nodatavals):
            if nd is None or math.isnan(nd):
                continue
            hit = out[..., band] == nd
            if hit.any():
                out[..., band][hit] = _step_off(nd, dtype)
        return out


def _step_off(nodata: float, dtype: np.dtype[Any]) -> Any:
    """The value next to ``nodata`` in ``dtype``, inside the dtype's range."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return dtype.type(nodata + 1 if nodata < info.max else nodata - 1)
    top = np.finfo(dtype).max
    return np.nextafter(dtype.type(nodata), dtype.type(-top if nodata >= top else top))


def _json_float(value: float | None) -> float | str | None:
    if value is None:
        return None
    return "nan" if math.isnan(value) else float(value)


def _sig(value: float) -> float:
    """Rounded to 10 significant digits: the recorded value is exactly the one used."""
    return float(f"{float(value):.10g}")


def mask_from_array(mask: np.ndarray) -> MaskReader:
    """Windows of an in-memory edit mask."""
    return lambda w: np.asarray(mask[w.toslices()], dtype=bool)


def mask_from_file(path: Path) -> MaskReader:
    """Windows of an edit mask GeoTIFF (band 1, non-zero = edit)."""

    def read(window: Window) -> np.ndarray:
        with rasterio.open(path) as src:
            out: np.ndarray = src.read(1, window=window) != 0
        return out

    return read


def _display_bands(interp: list[ColorInterp], count: int) -> tuple[int, ...]:
    """Red, green, blue by colour interpretation; else bands 1-3; 1-2 bands: grey band 1."""
    where = {ci: i for i, ci in reversed(list(enumerate(interp)))}
    if all(c in where for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)):
        return (where[ColorInterp.red], where[ColorInterp.green], where[ColorInterp.blue])
    non_alpha = [i for i, ci in enumerate(interp) if ci != ColorInterp.alpha]
    if len(non_alpha) >= 3:
        return tuple(non_alpha[:3])
    return (non_alpha[0],) if non_alpha else (0,)


def _check_readable(path: Path, src: Any) -> None:
    dtype = np.dtype(src.dtypes[0])
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise InputError(f"base image {path} has {dtype} pixels; scenarios need real-valued "
                         "imagery (uint8, uint16, int16, float32, ...)")  # fmt: skip
    if len(set(src.dtypes)) > 1:
        raise InputError(f"base image {path} mixes band types {sorted(set(src.dtypes))}")
    if src.count == 1 and src.colorinterp[0] == ColorInterp.palette:
        raise InputError(f"base image {path} is a paletted (colour table) raster, not imagery; "
                         "expand it to RGB first (gdal_translate -expand rgb)")  # fmt: skip


def _scan(path: Path, src: Any, mask: MaskReader, rad: Radiometry) -> tuple[int, np.ndarray]:
    """One pass in windows: how many editable pixels (edit mask and valid) there are, and a
    regular sample ``(n, count)`` of the valid pixels outside the edit mask."""
    height, width = src.height, src.width
    step = max(1, math.ceil(max(height, width) / SAMPLE_SIDE))
    editable = 0
    samples = []
    for r0 in range(0, height, SCAN_BLOCK):
        for c0 in range(0, width, SCAN_BLOCK):
            window = Window(c0, r0, min(SCAN_BLOCK, width - c0), min(SCAN_BLOCK, height - r0))
            native = src.read(window=window).transpose(1, 2, 0)
            valid = rad.valid(native)
            if rad.dataset_mask:
                valid &= src.read_masks(1, window=window) != 0
            edit = mask(window)
            editable += int((edit & valid).sum())
            keep = (valid & ~edit)[(-r0) % step :: step, (-c0) % step :: step]
            picked = native[(-r0) % step :: step, (-c0) % step :: step][keep]
            if picked.size:
                samples.append(picked)
    sample = np.concatenate(samples) if samples else np.zeros((0, src.count), src.dtypes[0])
    return editable, sample


def analyse_base(path: Path, mask: MaskReader) -> Radiometry:
    """The base image's radiometry, or a typed error before anything is written.

    Refuses: non-numeric or paletted images, an edit mask that covers only nodata, and a
    base that needs calibration (not uint8, or bands beyond RGB) without one valid pixel
    outside the edit mask.
    """
    path = Path(path)
    with rasterio.open(path) as src:
        _check_readable(path, src)
        dtype = str(np.dtype(src.dtypes[0]))
        interp = list(src.colorinterp)
        display = _display_bands(interp, src.count)
        alpha = interp.index(ColorInterp.alpha) if ColorInterp.alpha in interp else None
        if alpha in display:
            alpha = None
        flags = src.mask_flag_enums
        per_dataset = any(MaskFlags.per_dataset in f for f in flags) and not any(
            MaskFlags.alpha in f for f in flags
        )
        first = Radiometry(
            dtype=dtype,
            count=src.count,
            nodata=None if src.nodata is None else float(src.nodata),
            nodatavals=tuple(None if v is None else float(v) for v in src.nodatavals),
            colorinterp=tuple(ci.name for ci in interp),
            descriptions=tuple(d or "" for d in src.descriptions),
            display=display,
            lo=(0.0,) * len(display),
            hi=(255.0,) * len(display),
            alpha=alpha,
            opaque=255.0,
            extra=(),
            dataset_mask=per_dataset,
        )
        editable, sample = _scan(path, src, mask, first)
    if editable == 0:
        raise ScenarioError(f"the edit area covers only nodata pixels of the base image {path}; "
                            "nothing would change")  # fmt: skip
    return _calibrate(path, first, sample)


def _calibrate(path: Path, rad: Radiometry, sample: np.ndarray) -> Radiometry:
    """Stretch, alpha and extra-band fit from the valid sample outside the edit mask."""
    others = [b for b in range(rad.count) if b not in rad.display and b != rad.alpha]
    needs = rad.dtype != "uint8" or bool(others)
    if len(sample) == 0:
        if needs:
            raise ScenarioError(
                f"the base image {path} ({rad.dtype}, {rad.count} bands) has no valid pixel "
                "outside the edit area to calibrate generated pixels against; shrink the edit "
                "area or fix the image's nodata"
            )
        opaque = 255.0 if rad.alpha is not None else rad.opaque
        return _replace(rad, opaque=opaque)
    values = sample.astype(np.float64)
    lo, hi = list(rad.lo), list(rad.hi)
    if rad.dtype != "uint8":
        for k, band in enumerate(rad.display):
            p2, p98 = np.percentile(values[:, band], [2, 98])
            lo[k], hi[k] = _sig(p2), _sig(p98)
            if hi[k] <= lo[k]:
                hi[k] = lo[k] + 1.0
    opaque = rad.opaque
    if rad.alpha is not None:
        top = float(values[:, rad.alpha].max())
        opaque = _sig(top) if top > 0 else _default_opaque(rad.dtype)
    design = np.column_stack([np.ones(len(values))] + [values[:, b] for b in rad.display])
    extra = []
    for band in others:
        coefs, *_ = np.linalg.lstsq(design, values[:, band], rcond=None)
        extra.append((band, tuple(_sig(c) for c in coefs)))
    return _replace(rad, lo=tuple(lo), hi=tuple(hi), opaque=opaque, extra=tuple(extra))


def _default_opaque(dtype: str) -> float:
    if dtype == "uint8":
        return 255.0
    kind = np.dtype(dtype)
    return float(np.iinfo(kind).max) if np.issubdtype(kind, np.integer) else 1.0


def _replace(rad: Radiometry, **changes: Any) -> Radiometry:
    from dataclasses import replace

    return replace(rad, **changes)
