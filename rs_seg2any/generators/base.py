"""The one small protocol every generator backend implements, and the per-tile condition.

Backends (the embedded ``tiny`` model, the diffusers FLUX backend) receive a ``TileCondition``
— an instance map with one free-text description per entity, a global caption, and for
inpainting known pixels plus an edit mask — and return pixels. Everything geographic (grids,
tiles, seams, GeoTIFFs) stays outside the backends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ..digest import file_sha256

DEFAULT_STEPS = 8
DEFAULT_GUIDANCE = 4.0
"""Sampler defaults of every command: chosen for the embedded model on two sets of held-out
tile_7 crops and measured on a third (see its model card). Lower guidance follows layouts
less; more steps at this guidance over-sharpen texture."""


@dataclass(frozen=True)
class TileCondition:
    """What a generator needs for one tile.

    ``instances`` holds tile-local entity ids 1..E (0 = no entity); ``descriptions[j]``
    describes entity ``j + 1``. Where ``edit_mask`` is False the output must equal ``known``,
    except within ``feather`` px of the edit mask, where a backend may fade from the known
    pixels to its own (a plain generate job's overlap that the tile owns: the seam then has no
    step). Scenario edits keep ``feather = 0``: pixels outside the edit stay exact.
    ``gsd`` is the job grid's pixel size in metres (approximate for degrees; None: unknown),
    for backends whose appearance depends on scale.
    """

    instances: NDArray[np.integer]
    descriptions: Sequence[str]
    caption: str
    labels: NDArray[np.uint8] | None = None
    known: NDArray[np.uint8] | None = None  # (h, w, bands)
    edit_mask: NDArray[np.bool_] | None = None  # (h, w), True = generate
    feather: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    gsd: float | None = None  # ground sampling distance of the job's grid, metres

    @property
    def shape(self) -> tuple[int, int]:
        h, w = self.instances.shape
        return int(h), int(w)


class Generator(Protocol):
    """A backend: pixels from a tile condition, deterministic for a given seed."""

    name: str
    bands: int
    supports_inpainting: bool
    tile_multiple: int  # tile sides must be multiples of this

    def describe(self) -> dict[str, Any]:
        """Backend, weights and settings for provenance tags (no timestamps)."""
        ...

    def generate(
        self, cond: TileCondition, *, steps: int, guidance: float, gamma: float, seed: int
    ) -> NDArray[np.uint8]:
        """(h, w, bands) uint8 pixels for ``cond``."""
        ...


def local_entities(
    instances: NDArray[np.integer], descriptions_by_id: dict[int, str]
) -> tuple[NDArray[np.int64], list[str], list[int]]:
    """Renumber global instance ids of a tile to 1..E; return the map, texts and global ids."""
    uniq, inverse = np.unique(instances, return_inverse=True)
    local = inverse.reshape(instances.shape).astype(np.int64)
    if len(uniq) and uniq[0] == 0:
        ids = [int(v) for v in uniq[1:]]
    else:
        local += 1
        ids = [int(v) for v in uniq]
    return local, [descriptions_by_id.get(i, "") for i in ids], ids


BACKGROUND_DESCRIPTION = "miscellaneous ground"
"""Text of the implicit entity a tile gets when none of its tokens belongs to a polygon (a
paraphrase of "unlabeled" the embedded model was trained on). The
models learn entities, never a tile without one, so an empty tile (sparse buildings, ships,
a gap between polygons) is rendered as one neutral ground entity instead of crashing."""


def with_background(
    instances: NDArray[np.integer], descriptions: Sequence[str], patch: int, *, always: bool = False
) -> tuple[NDArray[np.int64], list[str]]:
    """Give the uncovered pixels (id 0) of a tile one implicit background entity ``E + 1``.

    By default only where no token (``patch``-px square, majority owner) belongs to an entity:
    tiles with no entity at all, and tiles whose entities are all too small to own a token,
    which otherwise reach the model as zero entities or text-less tokens. ``always`` does it
    for every tile with uncovered pixels: for models that never saw id 0 in training (the
    embedded model), so neighbouring tiles render uncovered ground the same way.
    """
    inst = np.asarray(instances, dtype=np.int64)
    texts = list(descriptions)
    uncovered = not inst.all()
    if not uncovered or (texts and not always and _owns_a_token(inst, patch)):
        return inst, texts
    background = len(texts) + 1
    return np.where(inst > 0, inst, background), [*texts, BACKGROUND_DESCRIPTION]


def condition_with_background(cond: TileCondition, patch: int) -> TileCondition:
    """:func:`with_background` of a tile condition (what every backend calls first)."""
    inst, texts = with_background(cond.instances, cond.descriptions, patch)
    if len(texts) == len(cond.descriptions):
        return cond
    return replace(cond, instances=inst, descriptions=texts)


def _owns_a_token(inst: NDArray[np.int64], patch: int) -> bool:
    """Whether any ``patch``-px token has an entity (not 0) as its majority owner, with the
    exact token rule of the models (``rs_seg2any.conditioning.patchify_ids``)."""
    if not (inst > 0).any():
        return False
    from ..deps import require

    require("torch", "model", user="generation")
    import torch

    from ..conditioning import patchify_ids

    h, w = inst.shape
    crop = inst[: h - h % patch, : w - w % patch] if h >= patch and w >= patch else inst
    if crop.shape[0] % patch or crop.shape[1] % patch or crop.size == 0:
        return True  # smaller than one token: any entity pixel counts
    return bool((patchify_ids(torch.from_numpy(crop)[None], patch) > 0).any())


def weights_digest(path: Path) -> str:
    """Short content hash of a file a generator reads (weights, an exemplar bank, a
    reference image), for provenance tags and job identity."""
    return file_sha256(path)[:16]
