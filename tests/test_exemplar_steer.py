"""Text steers the exemplar backend: an entity's words move its colour, and only its own pixels.

Shifts are relative to the class's default description, so the taxonomy's own texts leave the
quilted real pixels as they are; the lexicon is editable YAML with typed errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from rs_seg2any.errors import InputError
from rs_seg2any.generators.base import TileCondition
from rs_seg2any.generators.exemplar.backend import ExemplarBackend
from rs_seg2any.generators.exemplar.steer import (
    Shift,
    apply_shift,
    parse_lexicon,
    shipped_lexicon,
    text_shift,
)
from rs_seg2any.lab import lab_to_srgb, srgb_to_lab
from rs_seg2any.taxonomy import load_taxonomy

TAX = load_taxonomy("dubai_aerial")


@pytest.fixture(scope="module")
def backend() -> ExemplarBackend:
    return ExemplarBackend()


def scene(cls: int) -> tuple[np.ndarray, np.ndarray]:
    """Land around a square entity of class ``cls`` (entity 2), a road strip (entity 3)."""
    lab = np.full((96, 96), 2, np.uint8)
    lab[24:72, 24:72] = cls
    lab[:, 84:] = 3
    inst = np.ones((96, 96), np.int64)
    inst[24:72, 24:72] = 2
    inst[:, 84:] = 3
    return lab, inst


def render(backend: ExemplarBackend, cls: int, text: str, **kw: object) -> np.ndarray:
    lab, inst = scene(cls)
    texts = [TAX.by_id(2).description, text, TAX.by_id(3).description]
    extra = {"class_names": TAX.names_by_id(), "taxonomy": TAX}
    cond = TileCondition(inst, texts, "aerial", labels=lab, extra=extra, gsd=0.5, **kw)  # type: ignore[arg-type]
    return backend.generate(cond, steps=1, guidance=1.0, gamma=1.0, seed=5)


PAIRS = [  # class, description A, description B, CIELAB channel, A minus B must exceed
    (4, "dry yellow grass", "lush green lawn", 2, 15.0),  # b*: yellower
    (1, "bright white roof", "dark roof", 0, 15.0),  # L*: lighter
    (3, "red asphalt", "grey asphalt", 1, 10.0),  # a*: redder
]


@pytest.mark.parametrize(("cls", "a", "b", "channel", "gap"), PAIRS)
def test_words_move_the_entity_the_described_way_and_nothing_else(
    backend: ExemplarBackend, cls: int, a: str, b: str, channel: int, gap: float
) -> None:
    img_a, img_b = render(backend, cls, a), render(backend, cls, b)
    _, inst = scene(cls)
    mine = inst == 2
    lab_a, lab_b = srgb_to_lab(img_a[mine]).mean(0), srgb_to_lab(img_b[mine]).mean(0)
    assert lab_a[channel] - lab_b[channel] > gap, (lab_a, lab_b)
    np.testing.assert_array_equal(img_a[~mine], img_b[~mine])  # other entities: same pixels


def test_default_description_leaves_real_pixels_unchanged(backend: ExemplarBackend) -> None:
    default = render(backend, 4, TAX.by_id(4).description)
    no_words = render(backend, 4, "vegetation")  # no lexicon word: nothing to shift
    np.testing.assert_array_equal(default, no_words)
    # words the default already uses do not count again
    assert text_shift("green vegetation", shipped_lexicon(), TAX.by_id(4).description).is_identity


def test_steered_inpainting_keeps_known_pixels_exact(backend: ExemplarBackend) -> None:
    rng = np.random.default_rng(1)
    known = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    edit = np.zeros((96, 96), bool)
    edit[10:80, 40:90] = True
    out = render(backend, 4, "dry yellow grass", known=known, edit_mask=edit)
    np.testing.assert_array_equal(out[~edit], known[~edit])


def test_shift_round_trip_and_lab_conversion() -> None:
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    np.testing.assert_array_equal(lab_to_srgb(srgb_to_lab(img)), img)
    img = rng.integers(90, 170, (16, 16, 3), dtype=np.uint8)  # in gamut after the shift
    mask = np.ones((16, 16), bool)
    s = Shift(L=5.0, a=-3.0, b=4.0, chroma=1.1)
    back = apply_shift(apply_shift(img, mask, s), mask, s, inverse=True)
    assert np.abs(back.astype(int) - img).max() <= 2


@pytest.mark.parametrize(
    "data",
    [[], {"words": []}, {"words": {"x": 3}}, {"words": {"x": {"L": "a"}}},
     {"words": {"x": {"chroma": 0}}}, {"words": {"x": {"hue": 1}}},
     {"words": {"x": {"L": float("nan")}}}],
)  # fmt: skip
def test_bad_lexicon_is_a_typed_error(data: object) -> None:
    with pytest.raises(InputError, match="appearance"):
        parse_lexicon(data, "appearance.yaml")
