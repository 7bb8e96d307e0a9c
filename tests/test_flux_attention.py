"""Seg2Any masks inside diffusers' FLUX transformer (tiny random config, CPU).

Proves that masked pairs get exactly zero weight, both on the bias itself and end to end:
tokens an image token may not see can change arbitrarily without changing its output by
a single bit.
"""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from rs_seg2any.conditioning import attention_weights  # noqa: E402
from rs_seg2any.generators.flux.attention import (  # noqa: E402
    CondPass,
    StepState,
    install_processors,
)
from rs_seg2any.generators.flux.condition import token_ids  # noqa: E402
from rs_seg2any.generators.flux.masks import JointLayout, cond_bias, step_bias  # noqa: E402

torch.set_num_threads(1)
SLOTS = [0, 0, 1, 1, 2, -1]  # caption x2, entity 1 x2, entity 2 x1, one padding token
OWNER = [1] * 8 + [2] * 8  # 4 x 4 image tokens: top half entity 1, bottom half entity 2


def layout(k_valid: list[bool]) -> JointLayout:
    return JointLayout(
        text_slots=torch.tensor([SLOTS]),
        token_entity=torch.tensor([OWNER]),
        entity_valid=torch.tensor([[True, True]]),
        cond_valid=torch.tensor([k_valid]),
    )


def tiny_transformer() -> Any:
    import diffusers

    torch.manual_seed(0)
    model: Any = diffusers.FluxTransformer2DModel
    return model(
        patch_size=1, in_channels=8, num_layers=2, num_single_layers=2, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=16, pooled_projection_dim=16,
        guidance_embeds=False, axes_dims_rope=(4, 6, 6),
    ).eval()  # fmt: skip


def test_masked_pairs_get_exactly_zero_weight() -> None:
    bias = step_bias(layout([True, True, False]), gamma=1.5, isolation=True, dtype=torch.float32)
    lt, n = len(SLOTS), len(OWNER)
    assert bias.shape == (1, 1, lt + n, lt + n + 3)
    torch.manual_seed(1)
    q, k = torch.randn(1, lt + n, 8) * 3, torch.randn(1, lt + n + 3, 8) * 3
    w = attention_weights(q, k, bias[:, 0])[0]
    masked = torch.isinf(bias[0, 0])
    assert torch.all(w[masked] == 0) and torch.all(w[~masked] > 0)
    torch.testing.assert_close(w.sum(-1), torch.ones(lt + n))
    img1, img2 = lt, lt + 8  # first image token of entity 1 / of entity 2
    assert masked[img1, 4] and not masked[img1, 2]  # entity 2's text hidden, own text seen
    assert masked[img1, img2] and not masked[img1, img1 + 1]  # attribute isolation
    assert masked[img1, 5] and masked[0, 5] and not masked[5, 5]  # padding: self only
    assert masked[img1, lt + n + 2] and not masked[img1, lt + n]  # filtered-out condition
    assert torch.all(masked[:lt, lt : lt + n])  # text never reads image tokens
    shared = step_bias(layout([True, True, False]), gamma=1.5, isolation=False, dtype=torch.float32)
    assert not torch.isinf(shared[0, 0, img1, img2])


def test_text_reads_image_as_in_seg2any() -> None:
    lay = layout([True, True, False])
    bias = step_bias(lay, gamma=1.0, isolation=True, dtype=torch.float32, text_reads_image=True)
    m, lt = torch.isinf(bias[0, 0]), len(SLOTS)
    img1, img2, cond = slice(lt, lt + 8), slice(lt + 8, lt + 16), slice(lt + 16, None)
    assert not m[0, lt : lt + 16].any()  # the caption reads every image token
    assert not m[2, img1].any() and m[2, img2].all()  # entity 1's text: its own tokens only
    assert m[4, img1].all() and not m[4, img2].any()
    assert m[5, lt:].all() and m[:lt, cond].all()  # padding reads nothing; text no condition
    assert torch.equal(bias[:, :, lt:], step_bias(lay, gamma=1.0, isolation=True,
                                                  dtype=torch.float32)[:, :, lt:])  # fmt: skip


def test_processor_is_exact_no_op_without_seg2any() -> None:
    tr = tiny_transformer()
    torch.manual_seed(2)
    args = dict(
        hidden_states=torch.randn(1, 16, 8), encoder_hidden_states=torch.randn(1, 6, 16),
        pooled_projections=torch.randn(1, 16), timestep=torch.tensor([0.5]),
        img_ids=token_ids(4, 4), txt_ids=torch.zeros(6, 3), return_dict=False,
    )  # fmt: skip
    with torch.no_grad():
        ref = tr(**args)[0]
        install_processors(tr)
        out = tr(**args)[0]
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def run_step(tr: Any, text: Any, img: Any, cache: Any, isolation: range) -> Any:
    lay = layout([True, True, False])
    state = StepState(
        cache=cache,
        bias_isolated=step_bias(lay, gamma=1.0, isolation=True, dtype=torch.float32),
        bias_shared=step_bias(lay, gamma=1.0, isolation=False, dtype=torch.float32),
        isolation_blocks=isolation,
    )
    with torch.no_grad():
        return tr(
            hidden_states=img, encoder_hidden_states=text, pooled_projections=torch.ones(1, 16),
            timestep=torch.tensor([0.7]), img_ids=token_ids(4, 4), txt_ids=torch.zeros(6, 3),
            joint_attention_kwargs={"seg2any": state}, return_dict=False,
        )[0]  # fmt: skip


def condition_cache(tr: Any, poison: float = 0.0) -> dict[int, Any]:
    """Condition pass over 3 tokens, the last one invalid (its keys/values may be anything)."""
    torch.manual_seed(3)
    state = CondPass(cond_bias(torch.tensor([[True, True, False]]), torch.float32))
    with torch.no_grad():
        tr(
            hidden_states=torch.randn(1, 3, 8), encoder_hidden_states=torch.zeros(1, 0, 16),
            pooled_projections=torch.ones(1, 16), timestep=torch.zeros(1),
            img_ids=token_ids(1, 3), txt_ids=torch.zeros(0, 3),
            joint_attention_kwargs={"seg2any": state}, return_dict=False,
        )  # fmt: skip
    cache = state.cache
    if poison:
        for k, v in cache.values():
            k[:, 2] += poison
            v[:, 2] += poison
    return cache


def test_hidden_tokens_do_not_change_an_entity_by_a_single_bit() -> None:
    tr = tiny_transformer()
    n_blocks = install_processors(tr)
    torch.manual_seed(4)
    text, img = torch.randn(1, 6, 16), torch.randn(1, 16, 8)
    cache = condition_cache(tr)
    assert len(cache) == n_blocks
    everywhere = range(n_blocks)
    ref = run_step(tr, text, img, cache, everywhere)
    text2, img2 = text.clone(), img.clone()
    text2[:, 4:] += 5.0  # entity 2's text and the padding token
    img2[:, 8:] += 5.0  # entity 2's image tokens
    out = run_step(tr, text2, img2, condition_cache(tr, poison=7.0), everywhere)
    assert torch.equal(out[:, :8], ref[:, :8])  # entity 1: bit-identical
    assert not torch.allclose(out[:, 8:], ref[:, 8:])
    # control: without attribute isolation entity 2's pixels do reach entity 1
    leak = run_step(tr, text, img2, cache, range(0))
    assert not torch.allclose(leak[:, :8], run_step(tr, text, img, cache, range(0))[:, :8])
