"""Exporters of chip annotations: COCO JSON, YOLO (detect, segment, OBB) and DOTA.

Each writer gets every chip once (:meth:`add`) and writes its files at :meth:`close`, all
through the atomic writer. Images are shared: the chips live once under ``images/<split>/``;
the YOLO and DOTA folders reach them through relative links, as those tools expect an
``images`` folder beside their ``labels``.

* COCO (``coco/<split>.json``): ``bbox`` ``[x, y, w, h]``, ``area`` (the mask's pixel count),
  ``iscrowd`` 0, ``segmentation`` as compressed RLE (exact, holes included; the default) or
  polygons (outer rings of each part, no holes); each image carries ``crs`` (WKT),
  ``geotransform`` (GDAL order) and ``chip_row``/``chip_col`` in the scene; annotations carry
  the oriented box (``obb``: four corners), ``visible_fraction``, ``truncated``, ``occluded``.
* YOLO (``yolo/<detect|segment|obb>/``): one ``labels/<split>/<chip>.txt`` per chip plus
  ``data.yaml`` (no ``path`` key: paths are relative to the YAML's folder). Values are
  normalised by the chip size; oriented-box corners that fall outside the chip (a rectangle
  around a clipped object can) are clamped to its border, as YOLO needs values in [0, 1].
  Segment lines hold the outer ring of the object's largest part.
* DOTA (``dota/<split>/labelTxt/<chip>.txt``): ``imagesource``/``gsd`` header lines, then
  ``x1 y1 x2 y2 x3 y3 x4 y4 class difficult`` with the exact oriented box; spaces in class
  names become ``-``; ``difficult`` is 1 for truncated or occluded objects.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from odc.geo.geobox import GeoBox

from ..atomic import atomic_open, write_json, write_text
from .chips import SPLITS, Annotation, Chip
from .geometry import coco_rle, ring_coords
from .spool import Spool

FORMATS = ("coco", "yolo", "dota", "vector")
YOLO_TASKS = ("detect", "segment", "obb")


def chip_path(chip: Chip) -> str:
    """Where a chip's image lives, relative to the dataset folder."""
    return f"images/{chip.split}/{chip.id}.tif"


def link(target: str, where: Path) -> None:
    """A relative symlink ``where`` -> ``target`` (replaced if it exists)."""
    with contextlib.suppress(FileNotFoundError):
        if where.is_symlink() or where.exists():
            where.unlink()
    where.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, where, target_is_directory=True)


class CocoWriter:
    """COCO JSON, one file per split; images and annotations spooled (:mod:`.spool`)."""

    def __init__(self, root: Path, grid: GeoBox, categories: Sequence[str], *, rle: bool) -> None:
        self.root, self.grid, self.rle = root, grid, rle
        self.categories = [{"id": i + 1, "name": n, "supercategory": "object"}
                           for i, n in enumerate(categories)]  # fmt: skip
        self._cat = {n: i + 1 for i, n in enumerate(categories)}
        folder = root / "coco"
        self._images = {s: Spool(folder, f"{s}-images.json") for s in SPLITS}
        self._anns = {s: Spool(folder, f"{s}-annotations.json") for s in SPLITS}
        self._crs = str(grid.crs.to_wkt()) if grid.crs is not None else None

    def add(self, chip: Chip, anns: Sequence[Annotation]) -> None:
        images = self._images[chip.split]
        image_id = images.count + 1
        t = self.grid.affine * self.grid.affine.translation(chip.col, chip.row)
        images.add({
            "id": image_id, "file_name": chip_path(chip), "width": chip.size,
            "height": chip.size, "crs": self._crs,
            "geotransform": [t.c, t.a, t.b, t.f, t.d, t.e],
            "chip_row": chip.row, "chip_col": chip.col,
        })  # fmt: skip
        out = self._anns[chip.split]
        for ann in anns:
            x0, y0, x1, y1 = ann.box
            if self.rle:
                seg: Any = coco_rle(ann.full_mask(chip.size))
            else:
                seg = [ring_coords(p) for p in ann.polygons]
            out.add({
                "id": out.count + 1, "image_id": image_id,
                "category_id": self._cat[ann.category],
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": ann.area, "iscrowd": 0,
                "segmentation": seg,
                "obb": [list(c) for c in ann.obox.corners],
                "object_id": ann.object_id, "description": ann.description,
                "visible_fraction": round(ann.visible_fraction, 6),
                "truncated": ann.truncated, "occluded": ann.occluded,
            })  # fmt: skip

    def close(self, info: dict[str, Any]) -> dict[str, Path]:
        written = {}
        try:
            for split in SPLITS:
                if not self._images[split].count:
                    continue
                path = self.root / "coco" / f"{split}.json"
                with atomic_open(path) as fh:
                    head = {"info": info, "categories": self.categories}
                    fh.write(json.dumps(head)[:-1] + ',\n"images": [\n')
                    self._images[split].copy_into(fh)
                    fh.write('],\n"annotations": [\n')
                    self._anns[split].copy_into(fh)
                    fh.write("]}\n")
                written[f"coco_{split}"] = path
        finally:
            self.abort()
        return written

    def abort(self) -> None:
        for spool in (*self._images.values(), *self._anns.values()):
            spool.discard()


def _clamp(v: float) -> float:
    return min(1.0, max(0.0, v))


def yolo_lines(anns: Sequence[Annotation], size: int, ids: dict[str, int], task: str) -> str:
    """The label file of one chip for one YOLO task."""
    lines = []
    for ann in anns:
        cls = ids[ann.category]
        if task == "detect":
            x0, y0, x1, y1 = ann.box
            vals = [(x0 + x1) / 2 / size, (y0 + y1) / 2 / size, (x1 - x0) / size, (y1 - y0) / size]
        elif task == "segment":
            part = ann.polygons[0]
            vals = [v / size for v in ring_coords(part)]
        else:
            vals = [_clamp(v / size) for xy in ann.obox.corners for v in xy]
        lines.append(" ".join([str(cls), *(f"{v:.6f}" for v in vals)]))
    return "".join(line + "\n" for line in lines)


class YoloWriter:
    """YOLO labels for the detect, segment and OBB tasks, with a ``data.yaml`` each."""

    def __init__(self, root: Path, categories: Sequence[str]) -> None:
        self.root = root
        self.names = list(categories)
        self._ids = {n: i for i, n in enumerate(categories)}
        self._splits: set[str] = set()

    def add(self, chip: Chip, anns: Sequence[Annotation]) -> None:
        self._splits.add(chip.split)
        for task in YOLO_TASKS:
            folder = self.root / "yolo" / task / "labels" / chip.split
            folder.mkdir(parents=True, exist_ok=True)
            write_text(folder / f"{chip.id}.txt", yolo_lines(anns, chip.size, self._ids, task))

    def abort(self) -> None:
        """Nothing to clean: every label file is written whole as it comes."""

    def close(self, info: dict[str, Any]) -> dict[str, Path]:
        import yaml

        written = {}
        for task in YOLO_TASKS:
            folder = self.root / "yolo" / task
            folder.mkdir(parents=True, exist_ok=True)
            link("../../images", folder / "images")
            doc: dict[str, Any] = {s: f"images/{s}" for s in SPLITS if s in self._splits}
            doc["names"] = dict(enumerate(self.names))
            doc["task"] = task
            text = f"# {info.get('description', '')}\n" + yaml.safe_dump(doc, sort_keys=False)
            written[f"yolo_{task}"] = write_text(folder / "data.yaml", text)
        return written


def dota_name(category: str) -> str:
    return "-".join(category.split())


def dota_lines(anns: Sequence[Annotation], gsd: float) -> str:
    out = ["imagesource:rs_seg2any", f"gsd:{gsd:g}"]
    for ann in anns:
        pts = " ".join(f"{v:.3f}" for xy in ann.obox.corners for v in xy)
        out.append(f"{pts} {dota_name(ann.category)} {int(ann.truncated or ann.occluded)}")
    return "".join(line + "\n" for line in out)


def read_dota(path: Path) -> list[tuple[np.ndarray, str, int]]:
    """The objects of a DOTA label file: ``(4x2 corners, class, difficult)``."""
    objects = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) != 10:
            continue  # header lines
        corners = np.asarray([float(v) for v in parts[:8]]).reshape(4, 2)
        objects.append((corners, parts[8], int(parts[9])))
    return objects


class DotaWriter:
    """DOTA label files, one folder per split."""

    def __init__(self, root: Path, gsd: float) -> None:
        self.root, self.gsd = root, gsd
        self._splits: set[str] = set()

    def add(self, chip: Chip, anns: Sequence[Annotation]) -> None:
        folder = self.root / "dota" / chip.split / "labelTxt"
        if chip.split not in self._splits:
            folder.mkdir(parents=True, exist_ok=True)
            link(f"../../images/{chip.split}", folder.parent / "images")
            self._splits.add(chip.split)
        write_text(folder / f"{chip.id}.txt", dota_lines(anns, self.gsd))

    def abort(self) -> None:
        """Nothing to clean: every label file is written whole as it comes."""

    def close(self, info: dict[str, Any]) -> dict[str, Path]:
        del info
        return {f"dota_{s}": self.root / "dota" / s for s in sorted(self._splits)}


def write_classes(root: Path, categories: Sequence[str]) -> Path:
    """``classes.json``: the object classes and their ids in each format."""
    table = [{"name": n, "coco_id": i + 1, "yolo_id": i, "dota_name": dota_name(n)}
             for i, n in enumerate(categories)]  # fmt: skip
    return write_json(root / "classes.json", table)
