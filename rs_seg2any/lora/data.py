"""Training pairs for LoRA: the user's imagery with its polygons rasterised on each image's grid.

Each image keeps its own grid (any CRS): the polygons are validated and rasterised onto it by
the project's layout code (``load_layout(like=image)`` + ``rasterize_window``), so the label,
instance and description of every pixel are exactly what a generate job on that grid would
see. Pixels without data (nodata, non-finite values, ``border`` px along the edges, an
optional ignore/cloud mask) are *replaced* by their nearest valid pixel before anything is
encoded and carry ``valid = False``: the masked loss leaves them out, and since the
replacement reads only valid pixels, their original values cannot influence training.

Validation is split by area: the ``val_side`` ``val_fraction`` of every image is held out,
and training and validation crops are drawn from their own regions only (no shared pixel).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import InputError
from ..generators.base import BACKGROUND_DESCRIPTION, local_entities
from ..options import LayerOptions
from ..taxonomy import Taxonomy
from .params import LoraTrainParams, parse_bands

F32 = NDArray[np.float32]
CAPTION_TEMPLATE = "top-down aerial photograph showing {classes}"  # as generate jobs caption


@dataclass
class Region:
    """One image's training or validation area, in model range [-1, 1], invalid pixels filled."""

    image: F32  # (H, W, B)
    valid: NDArray[np.bool_]  # (H, W)
    labels: NDArray[np.uint8]
    instances: NDArray[np.int64]
    texts: dict[int, str]


@dataclass
class SceneInfo:
    """What the adapter card records about one training image."""

    path: str
    crs: str
    shape: tuple[int, int]
    gsd: float
    bounds: tuple[float, float, float, float]
    band_names: list[str]
    dtype: str
    valid_share: float


@dataclass
class TrainingData:
    train: list[Region]
    val: list[Region]
    scenes: list[SceneInfo]
    bands: tuple[int, ...]  # 1-based band numbers of the source, in order
    rgb: tuple[int, int, int] | None  # positions in ``bands`` of the model's R, G, B
    lo: list[float]  # per band: source value mapped to -1
    hi: list[float]  # per band: source value mapped to +1
    taxonomy: Taxonomy
    classes: list[int]  # class ids present in the training area
    crop: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    def class_names(self) -> dict[int, str]:
        names = self.taxonomy.names_by_id()
        return {c: names.get(c, str(c)) for c in self.classes}


def _gsd(src: Any) -> float:
    res = float(abs(src.transform.a))
    if src.crs is not None and src.crs.is_geographic:
        return res * 111_320.0 * math.cos(math.radians((src.bounds.top + src.bounds.bottom) / 2))
    return res


def _default_rgb(src: Any, bands: tuple[int, ...]) -> tuple[int, int, int] | None:
    from rasterio.enums import ColorInterp

    interp = {b: src.colorinterp[b - 1] for b in bands}
    found = [
        next((i for i, b in enumerate(bands) if interp[b] == c), None)
        for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
    ]
    if all(v is not None for v in found):
        return (int(found[0]), int(found[1]), int(found[2]))  # type: ignore[arg-type]
    return (0, 1, 2) if len(bands) >= 3 else None


def _read_image(
    path: Path, bands: tuple[int, ...] | None, mask: Path | None, border: int
) -> tuple[F32, NDArray[np.bool_], Any, tuple[int, ...]]:
    import rasterio

    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"--images: '{path}' is not a readable raster ({exc})") from exc
    with src:
        if src.crs is None:
            raise InputError(f"--images: '{path}' has no CRS; training needs georeferenced imagery")
        chosen = bands or tuple(range(1, src.count + 1))
        if max(chosen) > src.count:
            raise InputError(
                f"--bands {','.join(map(str, chosen))}: '{path}' has {src.count} bands"
            )
        data = src.read(list(chosen)).astype(np.float32)
        valid = (src.read_masks(list(chosen)) > 0).all(axis=0) & np.isfinite(data).all(axis=0)
        info = src
        meta = {
            "crs": src.crs,
            "transform": src.transform,
            "shape": (src.height, src.width),
            "gsd": _gsd(src),
            "bounds": tuple(src.bounds),
            "dtype": src.dtypes[0],
            "names": [src.descriptions[b - 1] or f"band {b}" for b in chosen],
            "rgb": _default_rgb(src, chosen),
        }
        del info
    if mask is not None:
        with rasterio.open(mask) as msrc:
            if (msrc.height, msrc.width) != meta["shape"] or not msrc.transform.almost_equals(
                meta["transform"]
            ):
                raise InputError(f"--ignore-mask '{mask}' is not on the grid of '{path}'")
            valid &= msrc.read(1) == 0
    if border:
        valid[:border], valid[-border:], valid[:, :border], valid[:, -border:] = (False,) * 4
    return np.moveaxis(data, 0, -1), valid, meta, chosen


def fill_invalid(image: F32, valid: NDArray[np.bool_]) -> F32:
    """Every invalid pixel replaced by its nearest valid one: reads only valid pixels."""
    if valid.all():
        return image
    if not valid.any():
        raise InputError("a training region has no valid pixel (all nodata or masked)")
    from scipy.ndimage import distance_transform_edt

    _, (rows, cols) = distance_transform_edt(~valid, return_indices=True)
    out: F32 = image[rows, cols]
    return out


def split_slices(shape: tuple[int, int], side: str, fraction: float) -> tuple[Any, Any]:
    """(train, val) index tuples of one image: the ``side`` ``fraction`` is validation."""
    h, w = shape
    if side in ("east", "west"):
        k = max(1, round(w * fraction))
        val = slice(w - k, w) if side == "east" else slice(0, k)
        train = slice(0, w - k) if side == "east" else slice(k, w)
        return (slice(None), train), (slice(None), val)
    k = max(1, round(h * fraction))
    val = slice(h - k, h) if side == "south" else slice(0, k)
    train = slice(0, h - k) if side == "south" else slice(k, h)
    return (train, slice(None)), (val, slice(None))


def load_training_data(
    params: LoraTrainParams, layer: LayerOptions, *, multiple: int
) -> TrainingData:
    """Read, rasterise, mask, scale and split every image (``multiple``: the token size)."""
    from ..layout import load_layout
    from ..raster import rasterize_window

    layer = layer.required("--labels")
    bands = parse_bands(params.bands)
    raw: list[tuple[F32, NDArray[np.bool_], Any]] = []
    scenes: list[SceneInfo] = []
    maps: list[tuple[NDArray[np.uint8], NDArray[np.int64], dict[int, str]]] = []
    rgb: tuple[int, int, int] | None = None
    chosen: tuple[int, ...] = ()
    taxonomy: Taxonomy | None = None
    for i, path in enumerate(params.images):
        mask = Path(params.ignore_mask[i]) if params.ignore_mask else None
        data, valid, meta, chosen_i = _read_image(Path(path), bands, mask, params.border)
        if chosen and chosen_i != chosen:
            raise InputError(
                f"--images: '{path}' has other bands than the first image; give --bands"
            )
        chosen, rgb = chosen_i, rgb or meta["rgb"]
        layout = load_layout(params.labels, layer.class_field, like=path, **layer.layout_kwargs())
        taxonomy = layout.taxonomy
        h, w = meta["shape"]
        feats = layout.features(layout.grid.boundingbox)
        texts = dict(
            zip(
                feats["instance_id"].astype(int).tolist(),
                feats["description"].tolist(),
                strict=True,
            )
        )
        lm = rasterize_window(layout, slice(0, h), slice(0, w), features=feats)
        maps.append((lm.label, lm.instance.astype(np.int64), texts))
        raw.append((data, valid, meta))
        scenes.append(
            SceneInfo(
                str(path),
                meta["crs"].to_string(),
                (h, w),
                meta["gsd"],
                meta["bounds"],
                meta["names"],
                meta["dtype"],
                float(valid.mean()),
            )
        )
    assert taxonomy is not None
    if params.rgb:
        given = parse_bands(params.rgb, "--rgb") or ()
        rgb = tuple(chosen.index(b) for b in given)  # type: ignore[assignment]
    lo, hi = _scaling(raw, params)
    train: list[Region] = []
    val: list[Region] = []
    for (data, valid, _meta), (lab, inst, texts) in zip(raw, maps, strict=True):
        scaled = np.clip((data - lo) / np.maximum(hi - lo, 1e-12) * 2 - 1, -1, 1).astype(np.float32)
        for sl, dest in zip(
            split_slices(lab.shape, params.val_side, params.val_fraction), (train, val), strict=True
        ):
            v = valid[sl]
            if v.sum() < 16:
                continue
            dest.append(Region(fill_invalid(scaled[sl], v), v, lab[sl], inst[sl], texts))
    if not train or not val:
        raise InputError(
            "the images have too few valid pixels for a training and a validation "
            "area; check nodata, --ignore-mask and --val-fraction"
        )
    smallest = min(min(r.labels.shape) for r in train + val)
    crop = min(params.crop, smallest) // multiple * multiple
    if crop < multiple:
        raise InputError(
            f"the training/validation areas are {smallest} px across, smaller than one model "
            f"token ({multiple} px); use larger images or a smaller --val-fraction"
        )
    classes = sorted({int(c) for r in train for c in np.unique(r.labels[r.valid]) if c > 0})
    if not classes:
        raise InputError("no polygon covers a valid training pixel; check --labels and CRS")
    return TrainingData(
        train, val, scenes, chosen, rgb, lo.tolist(), hi.tolist(), taxonomy, classes, crop
    )


def _scaling(raw: list[tuple[F32, NDArray[np.bool_], Any]], params: LoraTrainParams) -> Any:
    """Per band source values mapped to -1 and +1: 0..255 for 8-bit data, else the 1st and
    99th percentiles of valid training pixels (stored in the card, inverted on output)."""
    if all(meta["dtype"] == "uint8" for _, _, meta in raw):
        n = raw[0][0].shape[-1]
        return np.zeros(n, np.float32), np.full(n, 255.0, np.float32)
    pixels = []
    for data, valid, _meta in raw:
        sl, _ = split_slices(valid.shape, params.val_side, params.val_fraction)
        pixels.append(data[sl][valid[sl]])
    allpx = np.concatenate(pixels)
    lo = np.percentile(allpx, 1, axis=0).astype(np.float32)
    hi = np.percentile(allpx, 99, axis=0).astype(np.float32)
    return lo, np.where(hi > lo, hi, lo + 1).astype(np.float32)


@dataclass
class Crop:
    image: F32  # (S, S, B)
    valid: NDArray[np.bool_]
    labels: NDArray[np.uint8]
    instances: NDArray[np.int64]  # local ids 1..E
    descriptions: list[str]


def cut(
    region: Region,
    y: int,
    x: int,
    size: int,
    k: int = 0,
    flip: bool = False,
    max_entities: int = 32,
) -> Crop:
    """One crop (rotated ``k`` quarter turns, optionally flipped) with local entity ids."""
    parts = [
        a[y : y + size, x : x + size]
        for a in (region.image, region.valid, region.labels, region.instances)
    ]
    parts = [np.rot90(a, k) for a in parts]
    if flip:
        parts = [a[:, ::-1] for a in parts]
    img = np.ascontiguousarray(parts[0], dtype=np.float32)
    valid = np.ascontiguousarray(parts[1], dtype=bool)
    lab = np.ascontiguousarray(parts[2], dtype=np.uint8)
    inst = np.ascontiguousarray(parts[3], dtype=np.int64)
    local, texts, _ = local_entities(inst, region.texts)
    if (local == 0).any():
        local = np.where(local > 0, local, len(texts) + 1)
        texts = [*texts, BACKGROUND_DESCRIPTION]
    if len(texts) > max_entities:  # smallest entities share the last slot: bounded tokens
        areas = np.bincount(local.ravel(), minlength=len(texts) + 1)[1:]
        order = np.argsort(-areas, kind="stable")
        remap = np.empty(len(texts) + 1, np.int64)
        remap[0] = 0
        remap[order + 1] = np.minimum(np.arange(len(texts)), max_entities - 1) + 1
        local = remap[local]
        texts = [texts[j] for j in order[:max_entities]]
    return Crop(img, valid, lab, local, texts)


def random_crops(
    regions: Sequence[Region], size: int, n: int, rng: random.Random, augment: bool = True
) -> list[Crop]:
    """``n`` crops, regions weighted by their valid area."""
    weights = [int(r.valid.sum()) for r in regions]
    out: list[Crop] = []
    for r in rng.choices(list(regions), weights=weights, k=n):
        h, w = r.labels.shape
        y, x = rng.randrange(h - size + 1), rng.randrange(w - size + 1)
        k, flip = (rng.randrange(4), rng.random() < 0.5) if augment else (0, False)
        out.append(cut(r, y, x, size, k, flip))
    return out


def grid_crops(regions: Sequence[Region], size: int, limit: int = 64) -> list[Crop]:
    """Non-overlapping crops covering each region (validation: fixed and reproducible)."""
    out: list[Crop] = []
    for r in regions:
        h, w = r.labels.shape
        ys = sorted({*range(0, h - size + 1, size), h - size})
        xs = sorted({*range(0, w - size + 1, size), w - size})
        out.extend(cut(r, y, x, size) for y in ys for x in xs)
    return out[:limit]


def caption(labels: NDArray[np.uint8], taxonomy: Taxonomy) -> str:
    """The generate jobs' default caption: the classes of a crop, most frequent first."""
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    names = taxonomy.names_by_id()
    ordered = [names[int(i)] for i in ids[np.argsort(-counts, kind="stable")] if int(i) in names]
    return CAPTION_TEMPLATE.format(classes=", ".join(ordered) if ordered else "open ground")
