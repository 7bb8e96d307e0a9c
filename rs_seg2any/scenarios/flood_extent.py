# SPDX-License-Identifier: Apache-2.0
"""Hydraulically connected flood extents from a DEM and a water level.

The flood scenario re-generates only flooded pixels as flood water, so the extent has to be
plausible: a "bathtub" threshold (every pixel below the level) would also fill depressions
behind dykes and ridges that water cannot reach. Here a pixel floods only when it lies below
the water level *and* is connected, through other such pixels, to where water enters: seed
pixels given by the user and/or the existing water bodies of the layout (its river class).

Decisions a caller relies on:

* "Low" means ``dem < level`` (strictly) on valid heights. DEM nodata (NaN, and also
  ``±inf``, which no real DEM holds) never floods and blocks flow.
* Existing water pixels are sources and passable whatever their DEM says (DEMs are unreliable
  on water: nodata, water surface, bridges), but they appear in the returned mask only when
  they are themselves low. The river is water already; the mask says where *new* water is,
  plus the river bed where the DEM puts it under the level.
* A seed pixel counts only when it is low: water poured on a hill above the level does not stay.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from ..errors import InputError, ScenarioError

__all__ = ["FloodExtent", "depth_class", "flood_from_dem"]


@dataclass(frozen=True, eq=False)
class FloodExtent:
    """A flood on the DEM's grid.

    ``eq=False`` because fields are arrays: equality and hashing go by identity instead of
    failing on an ambiguous array truth value.
    """

    mask: NDArray[np.bool_]
    """(H, W) True where the pixel is flooded."""
    depth: NDArray[np.float32]
    """(H, W) water depth in metres, ``level - dem`` on flooded pixels and 0 elsewhere."""
    level: float
    """Water surface elevation in metres, in the DEM's vertical datum."""


def _m(value: float) -> str:
    """A height for messages: metres rounded to centimetres, e.g. ``12.0`` or ``15.25``."""
    return str(round(float(value), 2))


def _as_mask(
    name: str, array: NDArray[np.bool_] | None, shape: tuple[int, ...]
) -> NDArray[np.bool_]:
    """An optional boolean raster as an array of the DEM's shape (all False when absent)."""
    if array is None:
        return np.zeros(shape, dtype=bool)
    out = np.asarray(array, dtype=bool)
    if out.shape != shape:
        raise InputError(f"{name} has shape {out.shape} but the DEM has shape {shape}")
    return out


def _structure(connectivity: int) -> NDArray[np.bool_]:
    """The scipy structuring element for 4- or 8-neighbour connectivity."""
    if connectivity not in (4, 8):
        raise InputError(f"connectivity must be 4 or 8 neighbours, not {connectivity!r}")
    if connectivity == 4:  # edge neighbours only: the cross
        return np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)
    return np.ones((3, 3), dtype=bool)


def flood_from_dem(
    dem: NDArray[np.floating],
    level: float,
    *,
    seeds: NDArray[np.bool_] | None = None,
    water: NDArray[np.bool_] | None = None,
    connectivity: int = 8,
) -> FloodExtent:
    """Flood every low pixel connected to a source, where sources are seeds and water pixels.

    ``dem`` is (H, W) terrain heights in metres with NaN as nodata; ``level`` the water surface
    elevation in the same datum; ``seeds`` (H, W) True where water enters (e.g. rasterised seed
    points); ``water`` (H, W) True on existing water bodies; ``connectivity`` 4 or 8.
    See the module docstring for how water pixels and seeds are treated.

    Raises ``InputError`` for malformed inputs (shapes, connectivity, a non-finite level, a DEM
    without any valid height) and ``ScenarioError`` when inputs contradict each other (no
    source, a level below all terrain, seeds that all lie above the level).
    """
    heights = np.asarray(dem, dtype=np.float64)
    if heights.ndim != 2:
        raise InputError(f"the DEM must be a 2-D (H, W) raster, got shape {heights.shape}")
    shape: tuple[int, ...] = heights.shape
    seed_mask = _as_mask("seeds", seeds, shape)
    water_mask = _as_mask("water", water, shape)
    structure = _structure(connectivity)
    try:
        level = float(level)
    except (TypeError, ValueError) as exc:
        raise InputError(f"water level {level!r} is not a number of metres") from exc
    if not math.isfinite(level):
        raise InputError(f"water level must be a finite number of metres, got {level}")
    valid = np.isfinite(heights)
    if not valid.any():
        raise InputError(f"the DEM {shape} holds no valid height (all nodata)")

    if not (seed_mask.any() or water_mask.any()):
        raise ScenarioError(
            "the flood has no source: give seed locations or a river/water class "
            "(seeds and water are both missing or empty)"
        )
    lowest = float(heights[valid].min())
    if level <= lowest:
        where = "below" if level < lowest else "level with"
        raise ScenarioError(
            f"water level {_m(level)} m is {where} all terrain (lowest {_m(lowest)} m): "
            "nothing can flood"
        )

    # NaN compares False, but ±inf would not: exclude nodata explicitly.
    low = valid & (heights < level)
    passable = low | water_mask
    labels, count = ndimage.label(passable, structure=structure)
    sources = water_mask | (seed_mask & low)
    wet = np.zeros(count + 1, dtype=bool)
    wet[labels[sources]] = True
    wet[0] = False  # background: never reached since every source is passable, kept for safety
    mask = wet[labels] & low

    if not mask.any():
        # Only reachable when no source is low: seeds above the level, water with dry banks.
        what = {
            (True, False): "seeds",
            (False, True): "river/water pixels",
            (True, True): "seeds and river/water pixels",
        }[(bool(seed_mask.any()), bool(water_mask.any()))]
        at_sources = (seed_mask | water_mask) & valid
        if at_sources.any():
            detail = f"lowest terrain at the {what} {_m(heights[at_sources].min())} m"
        else:
            detail = f"the {what} lie on DEM nodata only"
        raise ScenarioError(
            f"the {what} are all above the water level {_m(level)} m ({detail}) and no terrain "
            "below the level touches them: move the seeds or raise the level"
        )

    depth = np.where(mask, level - heights, 0.0).astype(np.float32)
    return FloodExtent(mask=mask, depth=depth, level=level)


def depth_class(
    depth: NDArray[np.floating],
    mask: NDArray[np.bool_],
    thresholds: Sequence[float] = (0.5, 1.5),
) -> NDArray[np.uint8]:
    """Depth classes for styling and conditioning: 0 outside the mask, then 1..n+1.

    With ``n`` increasing thresholds, class 1 is ``depth < thresholds[0]`` (shallow), class
    ``k`` is ``thresholds[k-2] <= depth < thresholds[k-1]`` and class ``n+1`` is
    ``depth >= thresholds[-1]`` (deep). The default gives 1 = shallow (< 0.5 m), 2 = medium,
    3 = deep (>= 1.5 m).
    """
    values = np.asarray(depth, dtype=np.float64)
    inside = np.asarray(mask, dtype=bool)
    if values.shape != inside.shape:
        raise InputError(f"depth has shape {values.shape} but the mask has shape {inside.shape}")
    edges = np.asarray(list(thresholds), dtype=np.float64)
    if edges.ndim != 1 or edges.size == 0 or edges.size > 254:
        raise InputError(f"give 1 to 254 depth thresholds, got {list(thresholds)}")
    if not np.isfinite(edges).all() or np.any(np.diff(edges) <= 0):
        raise InputError(f"depth thresholds must be finite and increasing, got {list(thresholds)}")
    if np.isnan(values[inside]).any():
        raise InputError("depth is NaN on flooded pixels: cannot classify them")
    classes = np.digitize(values, edges, right=False) + 1
    return np.where(inside, classes, 0).astype(np.uint8)
