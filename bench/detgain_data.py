"""Data of the detector-gain bench: Dubai scenes -> detection sets built by ``rs.detection_set``.

Each Dubai image (with its mask) is reduced by ``factor`` (image by area, mask by nearest) and
put on a local north-up grid. Building instances are the 4-connected components of the
building class; components under ``MIN_AREA`` pixels are dropped (mask specks), components
over ``CROWD_FACTOR`` x the median component size are kept as ``building block`` (their
description): touching buildings merged into one blob, which the bench treats as COCO
``iscrowd`` regions (neither a hit nor a false alarm when evaluating, no centre target when
training).

* real set: the product exports the real image with the component polygons (``image=``);
* synthetic set: the product renders the image's land-cover layout with the buildings drawn on
  top (``layout=`` + ``objects=``) through a generator backend, labels from that layout, with the
  filter report's fidelity score (the shipped segmenter) per object; filter off at export so
  that one set serves both arms (the report says which samples the filter would reject).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

MIN_AREA = 12
"""Components smaller than this (pixels after reduction) are dropped from the labels."""
CROWD_FACTOR = 10.0
"""Components over this many times the median size are merged blocks (iscrowd)."""
CROWD_TEXT = "building block"
RES = 1.0
"""Metres per pixel of the local grid after reduction (the Dubai GSD is unknown, ~0.5 m)."""


@dataclass(frozen=True)
class Source:
    tile: int
    part: int

    @property
    def name(self) -> str:
        return f"t{self.tile}p{self.part}"


def parse_sources(text: str) -> list[Source]:
    """``"2:1,3:2"`` -> sources (tile:part)."""
    out = []
    for item in text.split(","):
        t, p = item.split(":")
        out.append(Source(int(t), int(p)))
    return out


def load_scene(root: Path, src: Source, factor: int) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Image ``(H, W, 3)`` and class ids ``(H, W)`` of one Dubai pair, reduced by ``factor``."""
    from PIL import Image

    from rs_seg2any.train.dubai import classes_from_mask_rgb

    folder = root / f"tile_{src.tile}"
    img = Image.open(folder / "images" / f"image_part_{src.part:03d}.jpg").convert("RGB")
    mask = Image.open(folder / "masks" / f"image_part_{src.part:03d}.png").convert("RGB")
    w, h = min(img.width, mask.width), min(img.height, mask.height)
    w, h = w // factor * factor, h // factor * factor
    img, mask = img.crop((0, 0, w, h)), mask.crop((0, 0, w, h))
    size = (w // factor, h // factor)
    small = np.asarray(img.resize(size, Image.Resampling.BOX))
    cls = classes_from_mask_rgb(np.asarray(mask.resize(size, Image.Resampling.NEAREST)))
    return np.ascontiguousarray(small), cls


def components(cls: NDArray[np.uint8]) -> tuple[NDArray[np.int32], NDArray[np.int64]]:
    """4-connected building components (ids 1..n) and their pixel areas."""
    from scipy import ndimage

    lab, n = ndimage.label(cls == 1)
    return lab.astype(np.int32), np.bincount(lab.ravel(), minlength=n + 1)[1:]


def grid_for(shape: tuple[int, int]) -> Any:
    from rs_seg2any.quality.scenes import local_grid

    return local_grid(shape, RES)


def objects_frame(lab: NDArray[np.int32], areas: NDArray[np.int64], crowd_px: float,
                  grid: Any) -> Any:  # fmt: skip
    """The building polygons (``kind`` building, ``text`` building / building block)."""
    import geopandas as gpd
    from rasterio import features
    from shapely.geometry import shape
    from shapely.ops import unary_union

    keep = np.zeros(len(areas) + 1, bool)
    keep[1:] = areas >= MIN_AREA
    ids = np.where(keep[lab], lab, 0).astype(np.int32)
    parts: dict[int, list[Any]] = {}
    for geom, v in features.shapes(ids, mask=ids > 0, connectivity=4, transform=grid.affine):
        parts.setdefault(int(v), []).append(shape(geom))
    geoms, texts = [], []
    for v, polys in sorted(parts.items()):
        geoms.append(unary_union(polys))
        texts.append(CROWD_TEXT if areas[v - 1] > crowd_px else "building")
    return gpd.GeoDataFrame(
        {"kind": ["building"] * len(geoms), "text": texts}, geometry=geoms, crs=str(grid.crs)
    )


def layout_frame(cls: NDArray[np.uint8], grid: Any) -> Any:
    """The land-cover layout of a class raster (dubai_aerial class names)."""
    import geopandas as gpd
    from rasterio import features
    from shapely.geometry import shape

    from rs_seg2any.taxonomy import load_taxonomy

    names = load_taxonomy("dubai_aerial").names_by_id()
    rows = [(names[int(v)], shape(g))
            for g, v in features.shapes(cls, mask=cls > 0, transform=grid.affine)]  # fmt: skip
    return gpd.GeoDataFrame(
        {"class": [r[0] for r in rows]}, geometry=[r[1] for r in rows], crs=str(grid.crs)
    )


def crowd_threshold(root: Path, sources: list[Source], factor: int) -> float:
    """``CROWD_FACTOR`` x the median component size over ``sources`` (components >= MIN_AREA)."""
    sizes = []
    for src in sources:
        _, cls = load_scene(root, src, factor)
        a = components(cls)[1]
        sizes.append(a[a >= MIN_AREA])
    every = np.concatenate(sizes) if sizes else np.zeros(0)
    return float(CROWD_FACTOR * np.median(every)) if every.size else float("inf")


def write_geotiff(path: Path, img: NDArray[np.uint8], grid: Any) -> None:
    import rasterio

    h, w = img.shape[:2]
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8",
                       crs=str(grid.crs), transform=grid.affine) as dst:  # fmt: skip
        dst.write(img.transpose(2, 0, 1))


def build_set(root: Path, src: Source, out: Path, *, factor: int, chip: int, crowd_px: float,
              backend: str | None, seed: int = 0, segmenter: Path | None = None,
              min_fidelity: float = 0.5) -> Path:  # fmt: skip
    """One detection set of ``src`` in ``out`` (real when ``backend`` is None); returns
    ``out``. Skipped when ``out/report.json`` exists (resumable)."""
    import rs_seg2any as rs

    if (out / "report.json").exists():
        return out
    img, cls = load_scene(root, src, factor)
    grid = grid_for(cls.shape)
    work = out.parent / f"{out.name}-inputs"
    work.mkdir(parents=True, exist_ok=True)
    lab, areas = components(cls)
    objects_frame(lab, areas, crowd_px, grid).to_file(work / "objects.gpkg")
    common: dict[str, Any] = dict(
        objects=str(work / "objects.gpkg"), object_class_field="kind",
        object_description_field="text", chip_size=chip, split="1,0,0", split_buffer=0,
        min_visible=0.25, formats="coco", no_stac=True, progress="none",
    )  # fmt: skip
    if backend is None:
        write_geotiff(work / "image.tif", img, grid)
        rs.detection_set(out, image=str(work / "image.tif"), **common)
    else:
        layout_frame(cls, grid).to_file(work / "layout.gpkg")
        extra: dict[str, Any] = {}
        if segmenter is not None:
            extra = dict(segmenter=str(segmenter), min_fidelity=min_fidelity, no_filter=True)
        rs.detection_set(
            out, layout=str(work / "layout.gpkg"), class_field="class", taxonomy="dubai_aerial",
            resolution=str(RES), backend=backend, seed=seed, threads=1, **common, **extra,
        )  # fmt: skip
    return out


def as_bytes(rle: dict[str, Any]) -> dict[str, Any]:
    """An RLE as pycocotools' C API takes it (``counts`` as bytes)."""
    counts = rle["counts"]
    return {"size": rle["size"], "counts": counts.encode() if isinstance(counts, str) else counts}


@dataclass
class Chips:
    """Chips of one or more sets: images ``(N, 3, S, S)`` uint8, and per chip its boxes
    ``(k, 4)`` x0, y0, x1, y1, crowd flags ``(k,)``, instance masks (RLE) and whether the
    filter keeps the chip."""

    images: NDArray[np.uint8]
    boxes: list[NDArray[np.float32]]
    crowd: list[NDArray[np.bool_]]
    kept: NDArray[np.bool_]
    names: list[str]
    rles: list[list[dict[str, Any]]]
    """Per chip, the COCO RLE of each box's instance mask (same order as ``boxes``)."""

    def foreground(self) -> NDArray[np.bool_]:
        """``(N, S, S)``: pixels of any instance (crowd included) per chip."""
        from pycocotools import mask as cmask

        s = self.images.shape[-1]
        out = np.zeros((len(self), s, s), bool)
        for i, rles in enumerate(self.rles):
            for rle in rles:
                out[i] |= cmask.decode(as_bytes(rle)).astype(bool)
        return out

    def __len__(self) -> int:
        return len(self.boxes)

    def subset(self, mask: NDArray[np.bool_]) -> Chips:
        idx = np.flatnonzero(mask)
        return Chips(self.images[idx], [self.boxes[i] for i in idx],
                     [self.crowd[i] for i in idx], self.kept[idx],
                     [self.names[i] for i in idx], [self.rles[i] for i in idx])  # fmt: skip

    @staticmethod
    def concat(parts: list[Chips]) -> Chips:
        parts = [p for p in parts if len(p)]
        return Chips(
            np.concatenate([p.images for p in parts]),
            [b for p in parts for b in p.boxes], [c for p in parts for c in p.crowd],
            np.concatenate([p.kept for p in parts]), [n for p in parts for n in p.names],
            [r for p in parts for r in p.rles],
        )  # fmt: skip


def load_set(folder: Path) -> Chips:
    """The chips of a set built by :func:`build_set` (its COCO train split and report)."""
    import rasterio

    coco = json.loads((folder / "coco" / "train.json").read_text())
    rejected = set()
    report = json.loads((folder / "report.json").read_text())
    for sample in report["samples"]:
        if sample["reasons"]:
            rejected.add(sample["chip"])
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    images, boxes, crowd, kept, names, rles = [], [], [], [], [], []
    for entry in coco["images"]:
        with rasterio.open(folder / entry["file_name"]) as src:
            images.append(src.read())
        anns = by_image.get(entry["id"], [])
        xywh = np.array([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
        boxes.append(np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1))
        crowd.append(np.array([a["description"] == CROWD_TEXT for a in anns], bool))
        rles.append([a["segmentation"] for a in anns])
        chip_id = Path(entry["file_name"]).stem
        kept.append(chip_id not in rejected)
        names.append(f"{folder.name}/{chip_id}")
    return Chips(np.stack(images), boxes, crowd, np.array(kept, bool), names, rles)
