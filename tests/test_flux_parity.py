"""Parity with the published Seg2Any pipeline's inputs, on small hand-made layouts.

The expected token owners, contour pixels, grey levels and attention masks below are written
out by hand from the published rules, or drawn by an independent oracle (OpenCV's contour
functions, as the published pipeline draws them) — never computed by the code under test:

- ownership: each entity mask is resized to the token grid with nearest-exact
  interpolation, so token ``(i, j)`` belongs to the entity under pixel
  ``(p*i + p/2, p*j + p/2)`` (``p`` = 4 px here: tiny VAE factor 2, 2x2 packing);
- contours: per entity, ``cv2.findContours(RETR_LIST)`` drawn 1 px thick, white on black —
  both sides of a boundary between entities, around holes, and along the image border;
- a reduced condition scale resizes that image with Pillow's bilinear filter (two separable
  passes, each rounded to uint8): at 1/2 the weights are 1/8, 3/8, 3/8, 1/8, renormalised to
  3/7, 3/7, 1/7 at the image edge;
- a condition token is kept when its square holds any non-black pixel.

The project convention (embedded model) keeps majority owners and no border outline.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rs_seg2any.raster import contours_from_instances

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from rs_seg2any.conditioning import sample_ids  # noqa: E402
from rs_seg2any.generators.base import TileCondition  # noqa: E402
from rs_seg2any.generators.flux import FluxBackend, FluxSettings  # noqa: E402
from rs_seg2any.generators.flux.condition import (  # noqa: E402
    reference_contour_image,
    reference_keep,
)
from rs_seg2any.generators.flux.testing import build_tiny_flux  # noqa: E402

torch.set_num_threads(1)
SETTINGS = FluxSettings(caption_tokens=12, regional_tokens=6, attention="seg2any")
RUN: dict[str, Any] = dict(steps=2, guidance=3.5)


def grid(text: str) -> np.ndarray:
    """A hand-written 0/1 (or id) array: one line per row, one digit per pixel."""
    return np.array([[int(ch) for ch in line] for line in text.split()], dtype=np.int64)


def rim(h: int, w: int) -> np.ndarray:
    out = np.zeros((h, w), np.int64)
    out[[0, -1], :] = 1
    out[:, [0, -1]] = 1
    return out


# --- the hand-made layouts ------------------------------------------------------------------
# Each case: instances, reference owners, project owners, contours with and without border.


def thin_diagonal() -> dict[str, np.ndarray]:
    """A 1-px diagonal road (2) across a field (1): it covers every diagonal token's sampled
    pixel but only 4 of its 16 pixels."""
    r, c = np.mgrid[:16, :16]
    inst = np.where(r == c, 2, 1)
    band = (np.abs(r - c) <= 1).astype(np.int64)  # the road and the field pixels beside it
    return {
        "inst": inst,
        "ref": np.where(np.eye(4, dtype=bool), 2, 1),
        "proj": np.ones((4, 4), np.int64),
        "border": np.maximum(band, rim(16, 16)),
        "inner": band,
    }


def tiny_entities() -> dict[str, np.ndarray]:
    """A 1-px entity (2) on token 0's sampled pixel, another (3) in a corner on no sample."""
    inst = np.ones((8, 8), np.int64)
    inst[2, 2], inst[0, 7] = 2, 3
    return {
        "inst": inst,
        "ref": grid("21 11"),
        "proj": grid("11 11"),
        "border": grid("11111111 10100001 11110001 10100001 10000001 10000001 10000001 11111111"),
        "inner": grid("00000011 00100001 01110000 00100000 00000000 00000000 00000000 00000000"),
    }


def touching() -> dict[str, np.ndarray]:
    """Two entities meeting inside a token (columns 0-5 and 6-15): both sides outlined; the
    split token is a tie for the majority rule (smaller id) but samples entity 2."""
    inst = np.ones((8, 16), np.int64)
    inst[:, 6:] = 2
    inner = np.zeros((8, 16), np.int64)
    inner[:, 5:7] = 1
    return {
        "inst": inst,
        "ref": grid("1222 1222"),
        "proj": grid("1122 1122"),
        "border": np.maximum(inner, rim(8, 16)),
        "inner": inner,
    }


def on_border() -> dict[str, np.ndarray]:
    """Two squares in opposite corners of the image, on uncovered ground (0)."""
    inst = np.zeros((8, 8), np.int64)
    inst[:4, :4], inst[4:, 4:] = 1, 2
    return {
        "inst": inst,
        "ref": grid("10 02"),
        "proj": grid("10 02"),
        "border": grid("11110000 10010000 10010000 11110000 00001111 00001001 00001001 00001111"),
        "inner": grid("00010000 00010000 00010000 11110000 00001111 00001000 00001000 00001000"),
    }


def hole() -> dict[str, np.ndarray]:
    """An entity with a 4 x 4 hole of uncovered ground over token 0's sampled pixel."""
    inst = np.ones((8, 8), np.int64)
    inst[2:6, 2:6] = 0
    return {
        "inst": inst,
        "ref": grid("01 11"),
        "proj": grid("11 11"),
        "border": grid("11111111 10111101 11000011 11000011 11000011 11000011 10111101 11111111"),
        "inner": grid("00000000 00111100 01000010 01000010 01000010 01000010 00111100 00000000"),
    }


CASES = [thin_diagonal, tiny_entities, touching, on_border, hole]


def opencv_contours(inst: np.ndarray) -> np.ndarray:
    """The published pipeline's contour image: each entity's OpenCV contours, 1 px, white."""
    cv2 = pytest.importorskip("cv2")
    out = np.zeros((*inst.shape, 3), np.uint8)
    for e in np.unique(inst[inst > 0]):
        found, _ = cv2.findContours((inst == e).astype(np.uint8), cv2.RETR_LIST,
                                    cv2.CHAIN_APPROX_SIMPLE)  # fmt: skip
        out = cv2.drawContours(out, found, -1, color=(255, 255, 255), thickness=1)
    return (out[..., 0] > 0).astype(np.int64)


@pytest.mark.parametrize("case", CASES, ids=lambda f: f.__name__)
def test_hand_written_cases_agree_with_the_opencv_oracle(case: Any) -> None:
    c = case()
    np.testing.assert_array_equal(opencv_contours(c["inst"]), c["border"])


@pytest.mark.parametrize("case", CASES, ids=lambda f: f.__name__)
def test_one_contour_function_both_conventions(case: Any) -> None:
    c = case()
    np.testing.assert_array_equal(contours_from_instances(c["inst"], border=True), c["border"])
    np.testing.assert_array_equal(contours_from_instances(c["inst"]), c["inner"])


def test_contour_function_matches_opencv_on_random_layouts() -> None:
    rng = np.random.default_rng(0)
    for i in range(60):
        h, w = rng.integers(2, 14, 2)
        inst = rng.integers(0, 4, (h, w))
        if i % 2:  # blocky layouts: larger entities, holes, thin parts
            inst = np.kron(rng.integers(0, 4, (h, w)), np.ones((2, 2), np.int64))
        np.testing.assert_array_equal(
            contours_from_instances(inst, border=True), opencv_contours(inst)
        )


@pytest.mark.parametrize("case", CASES, ids=lambda f: f.__name__)
def test_nearest_exact_ownership(case: Any) -> None:
    c = case()
    inst = torch.from_numpy(c["inst"])[None]
    owners = sample_ids(inst, 4).reshape(c["ref"].shape)
    np.testing.assert_array_equal(owners.numpy(), c["ref"])
    # the published pipeline's own operation, per entity mask, agrees
    h, w = c["ref"].shape
    for e in range(1, int(inst.max()) + 1):
        mask = torch.nn.functional.interpolate((inst == e).float()[None], (h, w),
                                               mode="nearest-exact")[0, 0]  # fmt: skip
        np.testing.assert_array_equal(mask.numpy() > 0, c["ref"] == e)


def test_bilinear_grey_condition_and_keep_by_hand() -> None:
    line = np.zeros((4, 4), np.uint8)
    line[:, 1] = 1
    dot = np.zeros((4, 4), np.uint8)
    dot[1, 1] = 1
    # rows: taps 3/7, 3/7, 1/7 at the edge; 255*3/7 = 109.3 -> 109, 255/7 = 36.4 -> 36;
    # the dot's vertical pass works on those rounded values: 109*3/7 -> 47, 36*3/7 -> 15, ...
    for contour, grey in ((line, [[109, 36], [109, 36]]), (dot, [[47, 15], [16, 5]])):
        img = reference_contour_image(contour, 2)
        expect = (torch.tensor(grey, dtype=torch.float32) / 255 - 0.5) / 0.5
        assert img.shape == (3, 2, 2)
        assert torch.equal(img, expect[None].expand(3, -1, -1))
    image = torch.full((1, 3, 8, 8), -1.0)
    image[0, :, 1, 6] = -0.96  # one faint grey pixel in the top-right 4 x 4 square
    assert reference_keep(image, 4).tolist() == [[False, True, False, False]]


# --- the backend on those cases ---------------------------------------------------------------


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> FluxBackend:
    folder = build_tiny_flux(tmp_path_factory.mktemp("flux") / "tiny")
    return FluxBackend(folder, device="cpu", settings=SETTINGS)


def cond(inst: np.ndarray, texts: list[str] | None = None) -> TileCondition:
    n = int(inst.max())
    words = ["forest", "red roof", "water", "grassland"]
    return TileCondition(instances=inst, descriptions=texts or words[:n], caption="aerial")


def use(be: FluxBackend, **kw: Any) -> FluxSettings:
    old = be.settings
    be.settings = dataclasses.replace(old, **kw)
    return old


@pytest.mark.parametrize("case", CASES, ids=lambda f: f.__name__)
def test_backend_owners_and_condition_image_equal_the_expected_arrays(
    backend: FluxBackend, case: Any
) -> None:
    c = case()
    old = use(backend)
    try:
        for mode, owners, contour in (("reference", c["ref"], c["border"]),
                                      ("project", c["proj"], c["inner"])):  # fmt: skip
            backend.settings = dataclasses.replace(old, conditioning=mode)
            got = backend.token_owners([cond(c["inst"])])[0].reshape(owners.shape)
            np.testing.assert_array_equal(got.numpy(), owners)
            image, _keep = backend.condition_images([cond(c["inst"])])
            assert torch.equal(
                image[0], torch.from_numpy(contour * 2.0 - 1).float().expand(3, -1, -1)
            )
    finally:
        backend.settings = old


def test_backend_grey_condition_and_keep_at_reduced_scale(backend: FluxBackend) -> None:
    field = cond(np.ones((16, 16), np.int64))
    old = use(backend, cond_scale=2)
    try:
        image, keep = backend.condition_images([field])
    finally:
        backend.settings = old
    # the 16 x 16 rim at 1/2: rows 1-14 give [109, 0 .. 0, 109] across, full rows 255; then
    # down: (3*255 + 3*109 + 109) / 7 = 171.6 -> 172 in the corners, 255*3/7 -> 109 on edges
    grey = np.zeros((8, 8))
    grey[[0, -1], :] = grey[:, [0, -1]] = 109
    grey[[0, 0, -1, -1], [0, -1, 0, -1]] = 172
    expect = (torch.from_numpy(grey).float() / 255 - 0.5) / 0.5
    assert torch.equal(image[0, 0], expect)
    assert keep.tolist() == [[True] * 4]
    image, keep = backend.condition_images([field])  # full scale: interior tokens are empty
    assert keep[0].reshape(4, 4).tolist() == grid("1111 1001 1001 1111").astype(bool).tolist()
    old = use(backend, conditioning="project")
    try:
        assert not backend.condition_images([field])[1].any()  # no border outline: nothing
    finally:
        backend.settings = old


# Published "hard" masks (1 = attended), written by hand. Isolation blocks: an entity's image
# token reads its own text and its entity's image tokens (not the caption); a background
# token reads the caption and every image token; condition tokens read image and condition
# tokens; texts read themselves and their image tokens. Other blocks: image tokens also read
# the caption and every image token.
#
# tiny_entities: text [aerial </s> | forest </s> | red roof </s> | water </s>], image tokens
# owned [2, 1, 1, 1] ("water" owns none), 4 condition tokens (all on the rim).
TINY_ISOLATED = """
11 00 000 00 1111 0000
11 00 000 00 1111 0000
00 11 000 00 0111 0000
00 11 000 00 0111 0000
00 00 111 00 1000 0000
00 00 111 00 1000 0000
00 00 111 00 1000 0000
00 00 000 11 0000 0000
00 00 000 11 0000 0000
00 00 111 00 1000 1111
00 11 000 00 0111 1111
00 11 000 00 0111 1111
00 11 000 00 0111 1111
00 00 000 00 1111 1111
00 00 000 00 1111 1111
00 00 000 00 1111 1111
00 00 000 00 1111 1111
"""
TINY_SHARED_IMAGE_ROWS = """
11 00 111 00 1111 1111
11 11 000 00 1111 1111
11 11 000 00 1111 1111
11 11 000 00 1111 1111
"""
# hole: text [aerial </s> | forest </s>], image tokens owned [0, 1, 1, 1] (token 0 samples
# the hole: background), 4 condition tokens.
HOLE_ISOLATED = """
11 00 1111 0000
11 00 1111 0000
00 11 0111 0000
00 11 0111 0000
11 00 1111 1111
00 11 0111 1111
00 11 0111 1111
00 11 0111 1111
00 00 1111 1111
00 00 1111 1111
00 00 1111 1111
00 00 1111 1111
"""
HOLE_SHARED_IMAGE_ROWS = """
11 00 1111 1111
11 11 1111 1111
11 11 1111 1111
11 11 1111 1111
"""
MASKS = {
    "tiny_entities": (tiny_entities, TINY_ISOLATED, TINY_SHARED_IMAGE_ROWS, 9),
    "hole": (hole, HOLE_ISOLATED, HOLE_SHARED_IMAGE_ROWS, 4),
}


def mask(text: str) -> np.ndarray:
    return grid("\n".join(line.replace(" ", "") for line in text.strip().splitlines()))


@pytest.mark.parametrize("name", sorted(MASKS))
def test_backend_attention_mask_equals_the_hand_written_mask(
    backend: FluxBackend, name: str
) -> None:
    case, isolated, shared_rows, lt = MASKS[name]
    tile = cond(case()["inst"])
    iso = backend.attention_bias([tile], gamma=2.0, isolation=True)[0]
    shared = backend.attention_bias([tile], gamma=2.0, isolation=False)[0]
    expect = mask(isolated)
    np.testing.assert_array_equal(torch.isfinite(iso).numpy().astype(np.int64), expect)
    img, cnd = slice(lt, lt + 4), slice(lt + 4, None)
    expect[img] = mask(shared_rows)
    np.testing.assert_array_equal(torch.isfinite(shared).numpy().astype(np.int64), expect)
    for m in (iso, shared):  # log(gamma) between image and condition tokens, both ways
        assert torch.all(m[img, cnd] == np.log(2.0)) and torch.all(m[cnd, img] == np.log(2.0))
        rest = m.clone()
        rest[img, cnd] = 0
        rest[cnd, img] = 0
        assert torch.all(rest[torch.isfinite(rest)] == 0)


# --- generation -------------------------------------------------------------------------------


def tiles() -> list[TileCondition]:
    """Two 32 x 32 tiles (4 x 4 condition tokens at 1/2): a thin diagonal road; a field with
    a hole and a corner entity. Both leave some condition tokens empty."""
    r, c = np.mgrid[:32, :32]
    a = np.where(r == c, 2, 1)
    b = np.ones((32, 32), np.int64)
    b[4:10, 4:10] = 0  # a hole
    b[22:, 20:] = 2
    return [cond(a), cond(b, ["forest", "red roof"])]


def latents(be: FluxBackend, conds: list[TileCondition], **kw: Any) -> Any:
    old = use(be, **kw)
    try:
        seeds = list(range(7, 7 + len(conds)))
        return be.sample_latents(conds, gamma=1.0, seeds=seeds, **RUN)
    finally:
        be.settings = old


@pytest.mark.parametrize("mode", ["reference", "project"])
def test_generation_filtered_equals_masked_and_batch_equals_one_by_one(
    backend: FluxBackend, mode: str
) -> None:
    kw = dict(conditioning=mode, cond_scale=2)
    both = tiles()
    filtered = latents(backend, both, condition_tokens="filtered", **kw)
    masked = latents(backend, both, condition_tokens="masked", **kw)
    torch.testing.assert_close(masked, filtered, rtol=1e-5, atol=1e-5)
    for i, t in enumerate(both):  # tile i alone, with tile i's seed
        old = use(backend, **kw)
        try:
            one = backend.sample_latents([t], gamma=1.0, seeds=[7 + i], **RUN)
        finally:
            backend.settings = old
        torch.testing.assert_close(filtered[i : i + 1], one, rtol=1e-5, atol=1e-5)
    # the published unfiltered mode attends to the empty tokens too: a different model input
    old = use(backend, **kw)
    try:
        assert not backend.condition_images(both)[1].all()  # some tokens are empty
    finally:
        backend.settings = old
    every = latents(backend, both, condition_tokens="all", **kw)
    assert (every - filtered).abs().max() > 1e-4


def test_reference_and_project_conventions_differ(backend: FluxBackend) -> None:
    ref = latents(backend, tiles(), conditioning="reference")
    proj = latents(backend, tiles(), conditioning="project")
    assert (ref - proj).abs().max() > 1e-3


def test_conditioning_setting_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="conditioning"):
        FluxSettings(conditioning="opencv")
    with pytest.raises(ValueError, match="condition_tokens"):
        FluxSettings(condition_tokens="some")
