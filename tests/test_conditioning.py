"""Seg2Any attention masks: exact zeros, isolation, gamma, condition-token filtering."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from torch import Tensor

torch = pytest.importorskip("torch")

from rs_seg2any.conditioning import (  # noqa: E402
    attention_weights,
    condition_keep,
    context_attention_bias,
    filter_condition_tokens,
    gamma_bias,
    image_attention_bias,
    patchify_ids,
)

torch.set_num_threads(1)


def _layout() -> tuple[Tensor, Tensor]:
    """8x8 pixels, patch 2 -> 4x4 tokens; entity 1 left half, 2 top-right, 3 bottom-right."""
    inst = torch.zeros(1, 8, 8, dtype=torch.long)
    inst[:, :, :4] = 1
    inst[:, :4, 4:] = 2
    inst[:, 4:, 4:] = 3
    contours = torch.zeros(1, 8, 8)
    contours[:, :, 3] = 1  # only the two left-middle token columns contain outline pixels
    contours[:, :, 4] = 1
    return inst, contours


def test_patchify_ids_majority() -> None:
    inst = torch.tensor([[[1, 1, 2, 2], [1, 2, 2, 2], [0, 0, 3, 3], [0, 3, 3, 3]]])
    assert patchify_ids(inst, 2).tolist() == [[1, 2, 0, 3]]


def test_condition_filtering_ratio() -> None:
    _inst, contours = _layout()
    keep = condition_keep(contours, 2)
    assert keep.view(4, 4)[:, 1].all() and keep.view(4, 4)[:, 2].all()
    filt = filter_condition_tokens(keep)
    assert filt.kept == 8 and filt.total == 16 and filt.ratio == 0.5
    assert filt.valid.all()
    assert filt.index[0].tolist() == [1, 2, 5, 6, 9, 10, 13, 14]


def test_filtering_pads_ragged_batches() -> None:
    keep = torch.tensor([[True, False, True], [False, False, False]])
    filt = filter_condition_tokens(keep)
    assert filt.valid.tolist() == [[True, True], [False, False]]
    assert filt.index[0].tolist() == [0, 2]


def _bias(gamma: float = 1.0, isolation: bool = True) -> Tensor:
    inst, contours = _layout()
    tok = patchify_ids(inst, 2)
    filt = filter_condition_tokens(condition_keep(contours, 2))
    ent_valid = torch.tensor([[True, True, True, False]])  # 4th text slot is padding
    return image_attention_bias(tok, ent_valid, filt.valid, gamma=gamma, isolation=isolation)


def test_masked_pairs_get_exactly_zero_weight() -> None:
    inst, _ = _layout()
    tok = patchify_ids(inst, 2)[0]
    bias = _bias()
    n_keys = bias.shape[-1]
    q = torch.randn(1, 16, 8)
    k = torch.randn(1, n_keys, 8)
    w = attention_weights(q, k, bias)
    masked = torch.isinf(bias)
    assert masked.any()
    assert torch.all(w[masked] == 0.0)
    assert torch.all(w[~masked] > 0.0)
    assert torch.allclose(w.sum(-1), torch.ones(1, 16))
    # semantic alignment: token of entity e sees caption + text e only
    e, n = 4, 16
    for i in range(n):
        allowed_text = (~masked[0, i, 1 : 1 + e]).nonzero().flatten().tolist()
        assert allowed_text == [int(tok[i]) - 1]
        assert not masked[0, i, 0]
        # attribute isolation: image keys of other entities masked
        img = ~masked[0, i, 1 + e : 1 + e + n]
        assert img.tolist() == (tok == tok[i]).tolist()


def test_no_isolation_opens_image_image() -> None:
    bias = _bias(isolation=False)
    assert not torch.isinf(bias[0, :, 5:21]).any()


def test_gamma_is_a_log_bias_and_zero_removes_shape() -> None:
    assert gamma_bias(1.0) == 0.0
    assert gamma_bias(2.0) == pytest.approx(math.log(2.0))
    with pytest.raises(ValueError):
        gamma_bias(-1.0)
    cond_cols = slice(1 + 4 + 16, None)
    assert torch.all(_bias(2.0)[0, :, cond_cols] == math.log(2.0))
    zero = _bias(0.0)
    assert torch.isinf(zero[0, :, cond_cols]).all()
    k = torch.randn(1, zero.shape[-1], 8)
    w = attention_weights(torch.randn(1, 16, 8), k, zero)
    assert torch.all(w[..., cond_cols] == 0.0)


def test_context_bias_keeps_texts_apart() -> None:
    ent_valid = torch.tensor([[True, True]])
    cond_valid = torch.tensor([[True, True, False]])
    bias = context_attention_bias(ent_valid, cond_valid)
    allowed = ~torch.isinf(bias[0])
    assert allowed[1].tolist() == [False, True, False, False, False, False]
    assert allowed[3].tolist() == [False, False, False, True, True, False]
    assert allowed[5].tolist() == [False, False, False, False, False, True]
