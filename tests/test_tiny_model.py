"""Tiny generator: attention masks hold end to end (isolation, gamma), inpainting, weights."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from rs_seg2any.generators.tiny.model import Condition, TinyConfig, TinySeg2Any  # noqa: E402
from rs_seg2any.generators.tiny.sampler import flow_loss, sample, sample_t  # noqa: E402
from rs_seg2any.generators.tiny.weights import load_weights, save_weights  # noqa: E402

torch.set_num_threads(1)
P = 8


def _model(**kw: object) -> TinySeg2Any:
    torch.manual_seed(0)
    m = TinySeg2Any(TinyConfig(patch=P, width=32, depth=2, heads=2, ctx_depth=1, **kw))  # type: ignore[arg-type]
    # zero-initialised gates make a fresh model ignore its conditions; randomise everything
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return m.eval()


def _cond() -> Condition:
    """32x32 px: entity 1 left half, entity 2 top-right, entity 3 bottom-right."""
    inst = torch.zeros(1, 32, 32, dtype=torch.long)
    inst[:, :, :16] = 1
    inst[:, :16, 16:] = 2
    inst[:, 16:, 16:] = 3
    contours = torch.zeros(1, 32, 32)
    contours[:, :, 15:17] = 1
    contours[:, 15:17, 16:] = 1
    g = torch.Generator().manual_seed(1)
    return Condition(
        inst,
        contours,
        torch.randn(1, 4, 384, generator=g),
        torch.tensor([[True, True, True, False]]),
        torch.randn(1, 384, generator=g),
    )


@pytest.mark.parametrize("kw", [{}, {"token_text": True}, {"refine": 8}])
def test_changing_one_description_leaves_other_entities_unchanged(kw: dict[str, object]) -> None:
    m = _model(**kw)
    c1 = _cond()
    c2 = _cond()
    c2.texts[:, 0] = torch.randn(384)  # new description of entity 1 (left half)
    a = sample(m, c1, steps=3, guidance=2.0, seed=3)
    b = sample(m, c2, steps=3, guidance=2.0, seed=3)
    assert (a[..., :16] - b[..., :16]).abs().max() > 1e-3  # entity 1 changed
    assert torch.allclose(a[..., 16:], b[..., 16:], atol=1e-5)  # entities 2 and 3 did not


@pytest.mark.parametrize("refine", [0, 8])
def test_gamma_zero_removes_shape_condition(refine: int) -> None:
    m = _model(refine=refine)
    c1 = _cond()
    c2 = _cond()
    c2.contours = torch.zeros_like(c2.contours)
    c2.contours[:, 5, :] = 1
    same = [sample(m, c, steps=2, guidance=1.0, gamma=0.0, seed=1) for c in (c1, c2)]
    assert torch.allclose(same[0], same[1], atol=1e-6)
    diff = [sample(m, c, steps=2, guidance=1.0, gamma=1.0, seed=1) for c in (c1, c2)]
    assert (diff[0] - diff[1]).abs().max() > 1e-3


def test_inpainting_keeps_known_pixels_exactly() -> None:
    m = _model()
    known = torch.rand(1, 3, 32, 32) * 2 - 1
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    out = sample(m, _cond(), steps=3, known=known, edit_mask=mask)
    keep = mask.expand_as(known) == 0
    assert torch.equal(out[keep], known[keep])
    assert not torch.equal(out[~keep], known[~keep])


@pytest.mark.parametrize("prediction", ["x", "v"])
def test_loss_backpropagates(prediction: str) -> None:
    m = _model(prediction=prediction).train()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    c = _cond()
    c = Condition(
        c.instances.repeat(2, 1, 1),
        c.contours.repeat(2, 1, 1),
        c.texts.repeat(2, 1, 1),
        c.text_valid.repeat(2, 1),
        c.caption.repeat(2, 1),
        torch.tensor([False, True]),
        torch.tensor([True, False]),
    )
    loss = flow_loss(m, x, c, sample_t(2), torch.randn_like(x), offset=(1, 2))
    loss.backward()  # type: ignore[no-untyped-call]
    assert torch.isfinite(loss)
    assert m.head.weight.grad is not None


def test_weights_round_trip(tmp_path: Path) -> None:
    m = _model()
    path = tmp_path / "w.safetensors"
    save_weights(m, path, dtype=torch.float16)
    m2 = load_weights(path)
    assert m2.cfg == m.cfg
    a = sample(m2, _cond(), steps=2, seed=0)
    b = sample(load_weights(path), _cond(), steps=2, seed=0)
    assert torch.equal(a, b)


def test_latent_variant_samples_and_round_trips(tmp_path: Path) -> None:
    from rs_seg2any.generators.tiny.autoencoder import AEConfig, TinyAE
    from rs_seg2any.generators.tiny.weights import load_autoencoder

    ae = TinyAE(AEConfig(latent=4, width=8)).eval()
    torch.manual_seed(0)
    m = TinySeg2Any(
        TinyConfig(patch=2, channels=4, downsample=4, width=32, depth=1, heads=2, ctx_depth=1)
    ).eval()
    known = torch.rand(1, 3, 32, 32) * 2 - 1
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :16] = 1
    out = sample(m, _cond(), steps=2, ae=ae, known=known, edit_mask=mask)
    assert out.shape == (1, 3, 32, 32)
    assert torch.equal(out[..., 16:], known[..., 16:])
    path = tmp_path / "latent.safetensors"
    save_weights(m, path, ae=ae)
    ae2 = load_autoencoder(path)
    assert ae2 is not None and ae2.cfg == ae.cfg
    assert load_weights(path).cfg.downsample == 4


def test_masked_conv_is_a_plain_conv_inside_one_entity_and_blind_across() -> None:
    from rs_seg2any.generators.tiny.refiner import MaskedConv, neighbour_mask

    torch.manual_seed(0)
    conv = MaskedConv(4, 5)
    x = torch.randn(1, 4, 12, 12)
    one = neighbour_mask(torch.ones(1, 12, 12, dtype=torch.long))
    ref = torch.nn.functional.conv2d(x, conv.weight.view(5, 4, 3, 3), conv.bias, padding=1)
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))  # borders are renormalised
    assert torch.allclose(conv(x, one)[inner], ref[inner], atol=1e-5)
    owner = torch.zeros(1, 12, 12, dtype=torch.long)
    owner[:, :, 6:] = 1
    mask = neighbour_mask(owner)
    y = x.clone()
    y[:, :, :, :6] = torch.randn(1, 4, 12, 6)  # change everything entity 0 owns
    a, b = conv(x, mask), conv(y, mask)
    assert torch.equal(a[..., 6:], b[..., 6:])  # entity 1 reads nothing of entity 0
    assert not torch.equal(a[..., :6], b[..., :6])
