"""Text steering for backends whose pixels come from real imagery: words move an entity's colour.

The exemplar backend retrieves real texture by class, so an entity's description cannot choose
its pixels. What it can do is what a photo editor does: shift the entity's colour in CIELAB by
the words of its description (``geoconf/appearance.yaml``: "dry" adds yellow and lightness,
"lush" green and depth). Only words that the class's default description (the
taxonomy's) does not already use count, so the taxonomy's own texts leave real pixels unchanged
and only what a user wrote differently moves them ("lush green lawn" on a class described as
green vegetation is moved by "lush" alone). Each entity is shifted inside its own mask only:
other entities' pixels do not depend on its text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...errors import InputError
from ...lab import lab_to_srgb, srgb_to_lab
from ...yamlio import load_yaml_text

U8 = NDArray[np.uint8]


@dataclass(frozen=True)
class Shift:
    """A CIELAB offset and a chroma factor."""

    L: float = 0.0
    a: float = 0.0
    b: float = 0.0
    chroma: float = 1.0
    smooth: float = 0.0
    """Gaussian blur (sigma, px) of the entity's texture first: water and mud are smooth."""

    @property
    def is_identity(self) -> bool:
        return (self.L, self.a, self.b, self.chroma, self.smooth) == (0.0, 0.0, 0.0, 1.0, 0.0)


def _word_shift(word: str, raw: Any, where: str) -> Shift:
    if not isinstance(raw, Mapping) or set(raw) - {"L", "a", "b", "chroma", "smooth"}:
        raise InputError(f"{where}: word '{word}' needs a mapping of L, a, b, chroma, smooth")
    try:
        vals = {k: float(v) for k, v in raw.items()}
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: word '{word}' has a value that is not a number") from exc
    if (
        not all(np.isfinite(v) for v in vals.values())
        or vals.get("chroma", 1.0) <= 0
        or not 0 <= vals.get("smooth", 0.0) <= 16
    ):
        raise InputError(f"{where}: word '{word}' needs finite values, chroma > 0, smooth 0-16")
    return Shift(**vals)


def parse_lexicon(data: Any, where: str) -> dict[str, Shift]:
    """Words -> shifts from the ``appearance.yaml`` mapping (typed errors naming the file)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("words"), Mapping):
        raise InputError(f"{where}: expected a mapping with 'words:'")
    return {str(w).lower(): _word_shift(str(w), v, where) for w, v in data["words"].items()}


@lru_cache(maxsize=1)
def shipped_lexicon() -> dict[str, Shift]:
    res = resources.files("geoconf") / "appearance.yaml"
    where = "geoconf/appearance.yaml"
    return parse_lexicon(load_yaml_text(res.read_text(encoding="utf-8"), where), where)


def text_shift(text: str, lexicon: Mapping[str, Shift], default: str = "") -> Shift:
    """The sum of the shifts of the lexicon's words in ``text`` that ``default`` does not
    use (chroma factors multiply, the strongest smoothing wins); each word counts once."""
    seen = set(re.findall(r"[a-z]+", default.lower()))
    out = Shift()
    for word in dict.fromkeys(re.findall(r"[a-z]+", text.lower())):
        s = None if word in seen else lexicon.get(word)
        if s is not None:
            out = Shift(out.L + s.L, out.a + s.a, out.b + s.b, out.chroma * s.chroma,
                        max(out.smooth, s.smooth))  # fmt: skip
    return out


def apply_shift(image: U8, mask: NDArray[np.bool_], shift: Shift, inverse: bool = False) -> U8:
    """``image`` with ``shift`` (or its inverse) applied to the pixels under ``mask``; the
    inverse undoes the colour only (a blur cannot be undone: known pixels keep their detail)."""
    if shift.is_identity or not mask.any():
        return image
    source = image
    if shift.smooth > 0 and not inverse:
        from scipy.ndimage import gaussian_filter

        sigma = (shift.smooth, shift.smooth, 0.0)
        source = np.clip(gaussian_filter(image.astype(np.float32), sigma), 0, 255).round()
        source = source.astype(np.uint8)
    lab = srgb_to_lab(source[mask])
    if inverse:
        lab[:, 0] -= shift.L
        lab[:, 1:] = (lab[:, 1:] - [shift.a, shift.b]) / shift.chroma
    else:
        lab[:, 1:] *= shift.chroma
        lab += [shift.L, shift.a, shift.b]
    out = image.copy()
    out[mask] = lab_to_srgb(lab)
    return out


def entity_shifts(
    instances: NDArray[np.integer],
    labels: NDArray[np.integer],
    descriptions: Sequence[str],
    defaults: Mapping[int, str],
    lexicon: Mapping[str, Shift],
) -> list[tuple[NDArray[np.bool_], Shift]]:
    """Per entity with a non-identity shift: its mask and the shift of the words of its
    description that its class's default description does not use."""
    out = []
    for j, text in enumerate(descriptions):
        mask = instances == j + 1
        if not text or not mask.any():
            continue
        cls = int(np.bincount(np.asarray(labels[mask], dtype=np.int64)).argmax())
        shift = text_shift(text, lexicon, defaults.get(cls, ""))
        if not shift.is_identity:
            out.append((mask, shift))
    return out
