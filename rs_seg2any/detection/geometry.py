"""Boxes, oriented boxes, outlines and COCO run-lengths of one instance mask.

Pixel coordinates everywhere in this module: ``x`` is the column, ``y`` the row, the origin is
the top-left corner of the top-left pixel and pixel edges lie on integers (pixel ``(r, c)``
covers ``[c, c+1] x [r, r+1]``). So a box is exactly the union of the pixels it bounds.

Oriented boxes (the angle convention, used by every exporter):

* the minimum-area rectangle that contains every pixel of the mask (whole pixel squares, so
  the rectangle contains the mask, not only pixel centres);
* ``corners``: its four corners, starting at the top-most one (smallest ``y``; on a tie the
  left-most) and going clockwise as seen on the image (``y`` points down);
* ``w`` is the longer side, ``h`` the shorter, ``angle`` the direction of the long side in
  degrees in ``[0, 180)``, measured from the ``+x`` axis towards ``+y`` (clockwise on the
  image). An axis-aligned box wider than high has angle 0; one higher than wide has 90.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import rasterio.features
import shapely
from scipy import ndimage

Box = tuple[int, int, int, int]
"""``(x0, y0, x1, y1)`` in pixels, ends exclusive."""


@dataclass(frozen=True)
class OrientedBox:
    cx: float
    cy: float
    w: float
    h: float
    angle: float
    corners: tuple[tuple[float, float], ...]


def mask_box(mask: np.ndarray) -> Box:
    """The axis-aligned pixel box of a non-empty bool mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("empty mask has no box")
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _outline_pixels(mask: np.ndarray) -> np.ndarray:
    """(n, 2) ``(row, col)`` of the mask's pixels that touch its outside (the hull of their
    corners is the hull of the whole mask)."""
    inner = ndimage.binary_erosion(mask, border_value=0)
    rows, cols = np.nonzero(mask & ~inner)
    return np.stack([rows, cols], axis=1)


def oriented_box(mask: np.ndarray, offset: tuple[int, int] = (0, 0)) -> OrientedBox:
    """The minimum-area rectangle containing every pixel square of ``mask`` (see the module
    docstring for the convention); ``offset`` ``(x, y)`` is added to its coordinates."""
    pix = _outline_pixels(mask)
    if pix.size == 0:
        raise ValueError("empty mask has no oriented box")
    r, c = pix[:, 0].astype(float), pix[:, 1].astype(float)
    xs = np.concatenate([c, c + 1, c, c + 1]) + offset[0]
    ys = np.concatenate([r, r, r + 1, r + 1]) + offset[1]
    points = np.stack([xs, ys], axis=1)
    hull = shapely.convex_hull(shapely.multipoints(points))
    rect = shapely.oriented_envelope(hull)
    ring = np.asarray(rect.exterior.coords)[:4]
    return _canonical(ring)


def _canonical(ring: np.ndarray) -> OrientedBox:
    centre = ring.mean(axis=0)
    order = np.argsort(np.arctan2(ring[:, 1] - centre[1], ring[:, 0] - centre[0]))
    ring = ring[order]  # clockwise on the image (y down)
    start = min(range(4), key=lambda i: (round(ring[i, 1], 9), round(ring[i, 0], 9)))
    ring = np.roll(ring, -start, axis=0)
    a, b = ring[1] - ring[0], ring[2] - ring[1]
    la, lb = float(np.hypot(*a)), float(np.hypot(*b))
    long_side = a if la >= lb else b
    angle = math.degrees(math.atan2(long_side[1], long_side[0])) % 180.0
    if angle >= 180.0 - 1e-9:
        angle = 0.0
    corners = tuple((float(x), float(y)) for x, y in ring)
    return OrientedBox(float(centre[0]), float(centre[1]), max(la, lb), min(la, lb), angle, corners)


def mask_polygons(mask: np.ndarray, offset: tuple[int, int] = (0, 0)) -> list[shapely.Polygon]:
    """Pixel-exact polygons of the mask (one per 4-connected part, holes kept), in pixel
    coordinates shifted by ``offset`` ``(x, y)``; largest first."""
    from shapely.geometry import shape

    shifted = rasterio.Affine.translation(*offset)
    parts = [
        shape(geom)
        for geom, _ in rasterio.features.shapes(
            mask.astype(np.uint8), mask=mask, connectivity=4, transform=shifted
        )
    ]
    return sorted(parts, key=lambda p: -p.area)


def ring_coords(polygon: shapely.Polygon) -> list[float]:
    """The outer ring as a flat ``[x1, y1, x2, y2, ...]`` list (no repeated closing point),
    as COCO and YOLO polygons are written."""
    coords = np.asarray(polygon.exterior.coords)[:-1]
    return [float(v) for v in coords.ravel()]


def rle_counts(mask: np.ndarray) -> list[int]:
    """COCO run-lengths of a bool mask: column-major, alternating runs starting with 0s."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return [int(v) for v in runs]


def rle_string(counts: list[int]) -> str:
    """COCO's compressed text form of run-lengths (what ``pycocotools.mask.encode`` gives):
    each count, less the count two places before it, in 5-bit groups with a continuation bit,
    offset by 48 into printable ASCII."""
    out: list[str] = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def coco_rle(mask: np.ndarray) -> dict[str, object]:
    """A COCO compressed RLE ``{"size": [h, w], "counts": str}`` of a bool mask."""
    h, w = mask.shape
    return {"size": [int(h), int(w)], "counts": rle_string(rle_counts(mask))}
