"""Per-entity critics of a generated image against its layout maps.

Both return ``{instance id: score in [0, 1]}`` (1 = good) plus notes; entities a critic
cannot judge are left out (and named in a note), never given a made-up score.

- :func:`fidelity_scores` -- the project's segmenter (:mod:`rs_seg2any.quality.segmenter`):
  IoU of each entity with the pixels recognised as its class. Only for the classes it was
  trained on (``dubai_aerial``); for other taxonomies it is skipped with a note.
- :func:`colour_scores` -- class-level attribute check: the entity's mean CIELAB colour
  against its class's colour in real imagery (:class:`ClassColours`, from the shipped exemplar
  bank of real Dubai tiles or any real image with labels). Fidelity alone rewards flat paint;
  this rewards the right colour, whatever the texture.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from ..errors import InputError
from ..lab import srgb_to_lab

MIN_PIXELS = 16
"""Entities smaller than this are not scored (too few pixels for a stable colour or IoU)."""


@dataclass(frozen=True)
class Entities:
    """The entities of an image: instance map, class map and each entity's class and size."""

    instances: NDArray[np.integer]
    labels: NDArray[np.integer]
    classes: dict[int, int]
    sizes: dict[int, int]

    @classmethod
    def of(cls, instances: NDArray[np.integer], labels: NDArray[np.integer]) -> Entities:
        inst = np.asarray(instances).astype(np.int64)
        lab = np.asarray(labels).astype(np.int64)
        classes: dict[int, int] = {}
        sizes: dict[int, int] = {}
        for idx, box in enumerate(ndimage.find_objects(inst), start=1):
            if box is None:
                continue
            e = inst[box] == idx
            classes[idx] = int(np.bincount(lab[box][e]).argmax())
            sizes[idx] = int(e.sum())
        return cls(inst, lab, classes, sizes)

    def scorable(self) -> list[int]:
        return [e for e, n in self.sizes.items() if n >= MIN_PIXELS and self.classes[e] > 0]


def fidelity_scores(
    image: NDArray[np.uint8], ents: Entities, taxonomy: object, model: Any = None
) -> tuple[dict[int, float], list[str]]:
    """Segmenter IoU per entity (see :func:`rs_seg2any.quality.segmenter.per_entity_iou`)."""
    from ..quality import segmenter

    name = taxonomy if isinstance(taxonomy, str) else getattr(taxonomy, "name", "?")
    # a scenario's extension (``dubai_aerial+flood_water``) keeps the ids of the classes it
    # extends; the classes it adds get no score (per_entity_iou: NaN)
    extended = str(name).startswith(f"{segmenter.TAXONOMY}+")
    if not (segmenter.applies_to(taxonomy) or extended):
        return {}, [f"fidelity skipped: the segmenter knows {segmenter.TAXONOMY}, not {name}"]
    try:
        net = segmenter.load(model)
    except InputError as exc:  # no weights: the other critics still judge
        return {}, [f"fidelity skipped: {exc}"]
    pred = segmenter.segment(image[..., :3], net, flips=False, scales=(1.0,))  # the fast pass
    iou = segmenter.per_entity_iou(pred, ents.instances, ents.labels)
    keep = set(ents.scorable())
    return {e: float(v) for e, v in iou.items() if e in keep and math.isfinite(v)}, []


@dataclass(frozen=True)
class ClassColours:
    """Expected CIELAB colour of each class (``mean``) and how far real regions of the class
    stray from it (``spread``: RMS Delta E of per-region means), keyed by class name."""

    mean: dict[str, tuple[float, float, float]]
    spread: dict[str, float]
    source: str = ""

    @classmethod
    def from_pairs(
        cls,
        images: Sequence[NDArray[np.uint8]],
        labels: Sequence[NDArray[np.integer]],
        names: Mapping[int, str],
        source: str = "",
    ) -> ClassColours:
        """Statistics of real ``images`` with their class ``labels`` (``names``: id -> name).
        Each connected region of at least 64 px is one sample of its class's colour."""
        samples: dict[str, list[NDArray[np.float64]]] = {}
        for img, lab in zip(images, labels, strict=True):
            lab_img = srgb_to_lab(np.asarray(img)[..., :3])
            lab = np.asarray(lab)
            for c in np.unique(lab):
                name = names.get(int(c))
                if not name or int(c) == 0:
                    continue
                regions, _n = ndimage.label(lab == c)
                for r, box in enumerate(ndimage.find_objects(regions), start=1):
                    sel = regions[box] == r
                    if box is not None and sel.sum() >= 64:
                        samples.setdefault(name, []).append(lab_img[box][sel].mean(axis=0))
        mean: dict[str, tuple[float, float, float]] = {}
        spread: dict[str, float] = {}
        for name, rows in samples.items():
            arr = np.stack(rows)
            m = arr.mean(axis=0)
            mean[name] = (float(m[0]), float(m[1]), float(m[2]))
            spread[name] = float(np.sqrt(((arr - m) ** 2).sum(axis=1).mean()))
        return cls(mean, spread, source)

    @classmethod
    def shipped(cls) -> ClassColours:
        """From the exemplar bank of real Dubai aerial crops shipped with the package."""
        return _shipped()

    def tolerance(self, name: str) -> float:
        """Delta E at which a region's colour is about one real-imagery spread off (>= 8)."""
        return max(2.0 * self.spread[name], 8.0)


def _shipped() -> ClassColours:
    global _SHIPPED
    if _SHIPPED is None:
        from ..generators.exemplar.bank import ExemplarBank

        bank = ExemplarBank.shipped()
        _SHIPPED = ClassColours.from_pairs(
            list(bank.rgb), list(bank.labels), bank.names, source="exemplar bank " + bank.source
        )
    return _SHIPPED


_SHIPPED: ClassColours | None = None


def colour_scores(
    image: NDArray[np.uint8],
    ents: Entities,
    class_names: Mapping[int, str],
    colours: ClassColours,
) -> tuple[dict[int, float], list[str]]:
    """``exp(-dE^2 / 2 tol^2)`` per entity: dE = Delta E*ab of the entity's mean colour (its
    interior, 1 px eroded) from its class's real mean; tol = :meth:`ClassColours.tolerance`."""
    lab_img = srgb_to_lab(np.asarray(image)[..., :3])
    out: dict[int, float] = {}
    missing: set[str] = set()
    objects = ndimage.find_objects(ents.instances)
    for e in ents.scorable():
        name = class_names.get(ents.classes[e], "")
        if name not in colours.mean:
            missing.add(name or str(ents.classes[e]))
            continue
        box = objects[e - 1]
        assert box is not None
        sel = ents.instances[box] == e
        inner = ndimage.binary_erosion(sel)
        if inner.sum() >= MIN_PIXELS // 2:
            sel = inner
        m = lab_img[box][sel].mean(axis=0)
        de = float(np.sqrt(((m - np.asarray(colours.mean[name])) ** 2).sum()))
        out[e] = math.exp(-0.5 * (de / colours.tolerance(name)) ** 2)
    notes = [f"colour skipped for classes without real statistics: {', '.join(sorted(missing))}"]
    return out, notes if missing else []


def combined(per_critic: Mapping[str, Mapping[int, float]]) -> dict[int, float]:
    """An entity's score: its worst critic's (entities no critic judged are absent)."""
    out: dict[int, float] = {}
    for scores in per_critic.values():
        for e, s in scores.items():
            out[e] = min(out.get(e, 1.0), s)
    return out
