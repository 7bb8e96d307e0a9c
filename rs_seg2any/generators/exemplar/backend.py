"""The ``exemplar`` backend: tiles quilted from real image patches (no network, CPU only).

Appearance comes from an exemplar bank: the shipped one (Dubai training tiles 1-6, 0.5 m,
CC0) or one built from the user's ``reference_image`` + ``reference_labels``. Each tile is
quilted per class (:mod:`.quilt`), its patches matched against the known pixels of earlier
tiles, so tiles continue their neighbours. Deterministic by seed. Entity descriptions steer colour
(:mod:`.steer`: words such as "dry" or "lush" shift the entity's pixels, relative to its class's
default description); the caption is not used.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...errors import InputError
from ..base import TileCondition, weights_digest
from .bank import PATCH, SHIPPED_BANK, Candidates, ExemplarBank, shipped_digest
from .quilt import quilt, region_looks, seam_band
from .reference import Reference
from .shadows import DUBAI, ShadowModel, estimate_shadows
from .stand_ins import stand_in
from .steer import apply_shift, entity_shifts, shipped_lexicon

SCALE_RANGE = (0.5, 2.0)
"""Bank GSD / job GSD the bank serves without warning: crops are resampled at most 2x."""


SOFTEN_SIGMA = 0.5
"""px: the blur after quilting for jobs *outside* the bank's scale range (:data:`SCALE_RANGE`),
where crops resampled past their range show strong patch seams (a sparse 10 m layer's worst
tile line: 2.77 without it, 1.97 with it). Inside the range no blur: it wiped out real
imagery's per-pixel colour grain. Held-out tile_7 at 0.5 m (one ``bench_realism.py`` run each,
blur everywhere -> none in range): classifier 0.905 -> 0.885, saturation 0.70 -> 0.78 of real,
sharpness 0.86 -> 0.92, texture distance 0.151 -> 0.116, tile line 1.36 -> 1.37; over all six
training tiles (``bench_realism_cv.py``, five render seeds) 0.792 -> 0.771, lower on four of
five. Crops that were enlarged for a finer job get proportionally less."""


def soften(img: NDArray[np.uint8], sigma: float) -> NDArray[np.uint8]:
    """``img`` blurred by a Gaussian of ``sigma`` px per band (as is for sigma <= 0)."""
    if sigma <= 0:
        return img
    from scipy.ndimage import gaussian_filter

    out = gaussian_filter(img.astype(np.float32), (sigma, sigma, 0), truncate=3.0)
    soft: NDArray[np.uint8] = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return soft


class GSDWarning(UserWarning):
    """The job's GSD is outside what the exemplar bank covers."""


class ExemplarBackend:
    """Quilting from an exemplar bank behind the Generator protocol."""

    name = "exemplar"
    bands = 3
    supports_inpainting = True
    tile_multiple = 1

    def __init__(
        self, reference_image: str | None = None, reference_labels: str | None = None,
        bank: ExemplarBank | None = None,
    ) -> None:  # fmt: skip
        """``bank``: a bank of your own (for example one built from some of the training
        tiles, to cross-validate the backend) instead of the shipped one, with the shipped
        bank's (Dubai) building shadows; not with a reference image, which makes its own
        bank and measures its own shadows."""
        self.reference: Reference | None = None
        self._bank: ExemplarBank | None = None
        self._own_bank = bank is not None
        self._shadows: ShadowModel | bool | None = False  # False: not measured yet
        self._warned: set[str] = set()
        if bank is not None:
            if reference_image is not None or reference_labels is not None:
                raise InputError("give the exemplar backend a bank or a reference image, not both")
            self._bank = bank
        elif reference_image is None and reference_labels is None:
            self._bank = ExemplarBank.shipped()
        else:
            self.reference = Reference.open(reference_image, reference_labels)
            if self.reference.labels is not None:
                self._bank = self.reference.bank(self.reference.labels, {})

    def describe(self) -> dict[str, Any]:
        if self._own_bank:
            assert self._bank is not None
            return {"backend": self.name, "bank": self._bank.source or "own bank",
                    "bank_sha256": self._bank.digest()[:16]}  # fmt: skip
        if self.reference is None:
            digest = shipped_digest()[:16]  # checked against the file when the bank loaded
            return {"backend": self.name, "bank": SHIPPED_BANK, "bank_sha256": digest}
        return {
            "backend": self.name,
            "reference_image": self.reference.image_path.name,
            "reference_image_sha256": weights_digest(self.reference.image_path),
            "reference_labels": self.reference.labels_path.name,
            "reference_labels_sha256": weights_digest(self.reference.labels_path),
        }

    def _bank_for(self, cond: TileCondition) -> ExemplarBank:
        if self._bank is None:  # polygon labels: rasterised with the layout's taxonomy
            assert self.reference is not None
            tax, field = cond.extra.get("taxonomy"), cond.extra.get("class_field")
            if tax is None or field is None:
                raise InputError(
                    "polygon reference labels need the layout's taxonomy and class "
                    "field: run through the generate job, or pass a class raster"
                )
            self._bank = self.reference.bank(self.reference.rasterise(tax, field), {})
        return self._bank

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, GSDWarning if key == "gsd" else UserWarning, stacklevel=3)

    def class_map(
        self, labels: NDArray[np.integer], cond: TileCondition, bank: ExemplarBank,
        borrowed: dict[int, int] | None = None,
    ) -> NDArray[np.int64]:  # fmt: skip
        """Layout class ids -> bank class ids: by name for the shipped bank, as is for a
        reference (its labels use the layout's taxonomy); a class the bank lacks borrows the
        bank class its words read as (:mod:`.stand_ins`), else the dominant one, with a
        warning; id 0 (no polygon) -> 0 if the bank has it."""
        have = set(bank.classes)
        names: dict[int, str] = dict(cond.extra.get("class_names") or {})
        by_name = {v: k for k, v in bank.names.items()}
        out = np.asarray(labels, dtype=np.int64).copy()
        ids = [int(c) for c in np.unique(labels)]
        if self.reference is not None and not (set(ids) - {0}) & have:
            raise InputError(
                f"the reference labels ({self.reference.labels_path.name}) share no class with "
                f"the layout here (layout ids {ids}, reference ids {sorted(have)}); use a "
                "reference with the same taxonomy and classes"
            )
        if borrowed is None:  # (generate passes the stand-ins it also steers by)
            borrowed = self.borrowed(labels, cond, bank)
        for c in ids:
            named = bool(names and c in names and bank.names)  # by name, never by a shared id
            b = by_name.get(names[c], -1) if named else c
            if b not in have:
                b = borrowed.get(c, bank.dominant())
                if c != 0:
                    self._warn(
                        f"class{c}",
                        f"exemplar bank has no class {names.get(c, c)}; painted with its "
                        f"{bank.names.get(b, 'dominant class')} texture (pass --reference-image "
                        "and --reference-labels with imagery of this class to paint it as it is)",
                    )
            out[labels == c] = b
        return out

    def borrowed(
        self, labels: NDArray[np.integer], cond: TileCondition, bank: ExemplarBank
    ) -> dict[int, int]:
        """Layout classes the shipped bank lacks -> the bank class they borrow texture from
        (:mod:`.stand_ins`); empty for a reference bank (its labels are the layout's)."""
        if not bank.names:
            return {}
        names: dict[int, str] = dict(cond.extra.get("class_names") or {})
        known = set(bank.names.values())
        defaults = _default_descriptions(cond)
        out = {}
        for c in (int(v) for v in np.unique(labels)):
            if c != 0 and c in names and names[c] not in known:
                near = stand_in(names[c], defaults.get(c, ""), bank.names)
                if near is not None and near in set(bank.classes):
                    out[c] = near
        return out

    def generate(
        self, cond: TileCondition, *, steps: int, guidance: float, gamma: float, seed: int
    ) -> NDArray[np.uint8]:
        del steps, guidance, gamma  # no sampler: the quilt is the image
        if cond.labels is None:
            raise InputError("the exemplar backend needs the tile's class raster (labels)")
        bank = self._bank_for(cond)
        gsd = getattr(cond, "gsd", None) or bank.gsd
        scale = bank.gsd / gsd
        in_range = SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]
        if not in_range:
            self._warn(
                "gsd",
                f"job GSD {gsd:g} m is outside what the exemplar bank covers "
                f"({bank.gsd / SCALE_RANGE[1]:g}-{bank.gsd / SCALE_RANGE[0]:g} m); "
                "textures are resampled and may look wrong: pass --reference-image "
                "and --reference-labels from imagery at this GSD",
            )
        # crops must stay larger than a patch: far outside the range, texture keeps the
        # nearest scale the bank can serve (the warning above says so)
        scale = float(np.clip(scale, 1.5 * PATCH / bank.rgb.shape[1], 4.0))
        borrowed = self.borrowed(cond.labels, cond, bank)
        mapped = self.class_map(cond.labels, cond, bank, borrowed)
        defaults = _default_descriptions(cond)  # steering is relative to them
        for c, b in borrowed.items():
            defaults[c] = _bank_descriptions().get(bank.names.get(b, ""), defaults.get(c, ""))

        def lookup(c: int) -> Candidates:
            try:
                return bank.candidates(c, scale)
            except LookupError:
                return bank.candidates(bank.dominant(), scale)

        shifts = entity_shifts(cond.instances, cond.labels, cond.descriptions, defaults,
                               shipped_lexicon())  # fmt: skip
        known = cond.known
        if known is not None and shifts:  # quilt against the known pixels' unshifted look
            for mask, shift in shifts:
                known = apply_shift(known, mask, shift, inverse=True)
        building = _building_id(cond, bank)
        objects = None
        if building is not None:
            sizes = {i: a * scale**2 for i, a in bank.object_sizes(building).items()}
            objects = (building, cond.instances, sizes)

        # one source scene per job (the job's seed; a lone tile's own): one colour balance
        family = bank.family(int(cond.extra.get("job_seed", seed)))

        regions = region_looks(bank, scale, family, lookup)
        img = quilt(mapped, lookup, seed, known, cond.edit_mask, cond.feather, objects, regions)
        # before the entity shifts: a blur after them would carry one entity's words into
        # its neighbours' border pixels
        if not in_range:
            img = soften(img, SOFTEN_SIGMA / max(scale, 1.0))
        for mask, shift in shifts:
            img = apply_shift(img, mask, shift)
        img = self._shade(img, cond, bank, scale)
        if cond.known is not None and cond.edit_mask is not None:
            locked = ~cond.edit_mask & ~seam_band(cond.edit_mask, cond.feather)
            img[locked] = cond.known[..., :3][locked]
        return img

    def _shade(
        self, img: NDArray[np.uint8], cond: TileCondition, bank: ExemplarBank, scale: float
    ) -> NDArray[np.uint8]:
        """Building shadows (:mod:`.shadows`): measured once from the reference, or the
        Dubai model for the shipped bank; the layout's building and water classes by name."""
        assert cond.labels is not None
        names = {int(k): str(v).lower() for k, v in (cond.extra.get("class_names") or {}).items()}
        build = [c for c, n in names.items() if "build" in n]
        if not build:
            return img
        if self._shadows is False:
            if self.reference is None:
                self._shadows = DUBAI
            else:
                ids = [c for c, n in bank.names.items() if "build" in n] or build
                self._shadows = estimate_shadows(list(bank.rgb), list(bank.labels), ids[0])
        if not isinstance(self._shadows, ShadowModel):
            return img
        water = np.isin(cond.labels, [c for c, n in names.items() if "water" in n])
        buildings = np.isin(cond.labels, build)
        return self._shadows.apply(img, buildings, np.ones(buildings.shape, bool), scale, water)


def _building_id(cond: TileCondition, bank: ExemplarBank) -> int | None:
    """The bank's id of the building class (its names, else the layout's: a reference's
    labels use the layout's ids), or None."""
    names = bank.names or dict(cond.extra.get("class_names") or {})
    return next((int(k) for k, v in names.items() if "build" in str(v).lower()), None)


def _default_descriptions(cond: TileCondition) -> dict[int, str]:
    """Class id -> the taxonomy's default description (steering is relative to it)."""
    tax = cond.extra.get("taxonomy")
    classes = getattr(tax, "classes", None) or ()
    return {int(c.id): str(c.description) for c in classes}


@lru_cache(maxsize=1)
def _bank_descriptions() -> dict[str, str]:
    """Default description of each class of the shipped bank's taxonomy, by name."""
    from ...taxonomy import load_taxonomy

    return {c.name: str(c.description) for c in load_taxonomy("dubai_aerial").classes}
