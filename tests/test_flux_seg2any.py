"""The exact Seg2Any attention mode (tiny random FLUX, CPU).

Seg2Any's published mask (its pipeline's ``prepare_attention_mask``, method "hard"): the
caption reads itself and every image token; an entity text reads itself and its entity's
image tokens; image and condition tokens read each other with ``log(gamma)`` in both
directions; condition tokens never read text; on the isolation blocks an entity's image
token reads only its entity's image tokens and its own text (not the caption), while a
background token reads the caption and every image token. Condition tokens are queries at
every step, with a timestep-0 embedding.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from rs_seg2any.conditioning import attention_weights  # noqa: E402
from rs_seg2any.generators.base import TileCondition  # noqa: E402
from rs_seg2any.generators.flux import FluxBackend, FluxSettings  # noqa: E402
from rs_seg2any.generators.flux.attention import install_processors  # noqa: E402
from rs_seg2any.generators.flux.condition import token_ids  # noqa: E402
from rs_seg2any.generators.flux.lora import save_adapters  # noqa: E402
from rs_seg2any.generators.flux.masks import JointLayout, joint_bias  # noqa: E402
from rs_seg2any.generators.flux.passes import denoise, joint_state  # noqa: E402
from rs_seg2any.generators.flux.testing import build_tiny_flux  # noqa: E402

torch.set_num_threads(1)
SLOTS = [0, 0, 1, 1, 2, -1]  # caption x2, entity 1 x2, entity 2 x1, one padding token
# 4 x 4 image tokens: row 0 entity 1, row 1 background, rows 2-3 entity 2
OWNER = [1] * 4 + [0] * 4 + [2] * 8
LT, N, K = len(SLOTS), len(OWNER), 3
IMG, COND = slice(LT, LT + N), slice(LT + N, None)
SETTINGS = FluxSettings(caption_tokens=12, regional_tokens=6, attention="seg2any")
RUN: dict[str, Any] = dict(steps=2, guidance=3.5)


def layout(k_valid: tuple[bool, ...] = (True, True, False)) -> JointLayout:
    return JointLayout(
        text_slots=torch.tensor([SLOTS]),
        token_entity=torch.tensor([OWNER]),
        entity_valid=torch.tensor([[True, True]]),
        cond_valid=torch.tensor([list(k_valid)], dtype=torch.bool),
    )


def test_mask_is_seg2any_published_pattern() -> None:
    g = 1.5
    iso = joint_bias(layout(), gamma=g, isolation=True, dtype=torch.float32)[0, 0]
    shared = joint_bias(layout(), gamma=g, isolation=False, dtype=torch.float32)[0, 0]
    assert iso.shape == (LT + N + K, LT + N + K)
    e1, bg, e2 = LT, LT + 4, LT + 8  # an image token of entity 1, background, entity 2
    c0, c2 = LT + N, LT + N + 2  # a valid and the invalid condition token
    for m in (iso, shared):
        mask = torch.isinf(m)
        assert not mask[0, IMG].any() and mask[0, COND].all()  # caption: all image, no cond
        assert not mask[2, e1] and mask[2, e2] and mask[2, bg] and mask[2, 0]  # entity text
        assert mask[COND, :LT].all()  # condition tokens never read text
        assert not mask[c0, IMG].any() and not mask[e1, c0] and mask[e1, c2]
        assert m[c0, e1] == m[e1, c0] == pytest.approx(np.log(g))  # gamma both ways
        assert m[c0, c0 + 1] == 0 and mask[c0, c2] and not mask[c2, c2]  # padding: self
        assert mask[LT - 1, : LT - 1].all() and mask[:, LT - 1].sum() == LT + N + K - 1
        assert not mask[e1, 2] and mask[e1, 4]  # own text only
    m = torch.isinf(iso)
    assert m[e1, 0] and m[e1, e2] and m[e1, bg] and not m[e1, e1 + 1]  # isolation, fg row
    assert not m[bg, 0] and not m[bg, IMG].any()  # background reads caption and all image
    s = torch.isinf(shared)
    assert not s[e1, 0] and not s[e1, IMG].any()
    # an entity without a text (invalid, or beyond the batch's texts) is background
    lay = dataclasses.replace(layout(), entity_valid=torch.tensor([[True, False]]))
    m2 = torch.isinf(joint_bias(lay, gamma=g, isolation=True, dtype=torch.float32)[0, 0])
    assert not m2[e2, 0] and not m2[e2, IMG].any() and m2[e2, 4]


def test_masked_pairs_get_exactly_zero_weight() -> None:
    for isolation in (True, False):
        bias = joint_bias(layout(), gamma=0.7, isolation=isolation, dtype=torch.float32)[:, 0]
        torch.manual_seed(1)
        q, k = torch.randn(1, LT + N + K, 8) * 3, torch.randn(1, LT + N + K, 8) * 3
        w = attention_weights(q, k, bias)[0]
        masked = torch.isinf(bias[0])
        assert torch.all(w[masked] == 0) and torch.all(w[~masked] > 0)
    zero = joint_bias(layout(), gamma=0.0, isolation=True, dtype=torch.float32)[0, 0]
    assert torch.isinf(zero[IMG, COND]).all() and torch.isinf(zero[COND, IMG]).all()


def tiny_transformer() -> Any:
    import diffusers

    torch.manual_seed(0)
    model: Any = diffusers.FluxTransformer2DModel
    tr = model(
        patch_size=1, in_channels=8, num_layers=2, num_single_layers=2, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=16, pooled_projection_dim=16,
        guidance_embeds=False, axes_dims_rope=(4, 6, 6),
    ).eval()  # fmt: skip
    install_processors(tr)
    return tr


def step(tr: Any, img: Any, cond: Any, gamma: float = 1.0) -> tuple[Any, Any]:
    """One exact-mode forward; returns the image output and the final condition stream."""
    lay = layout((True, True, False)[: cond.shape[1]])
    ids = token_ids(4, 4)[[0, 5, 10][: cond.shape[1]]][None]
    torch.manual_seed(5)
    text, pooled = torch.randn(1, LT, 16), torch.randn(1, 16)
    with torch.no_grad():
        st = joint_state(tr, lay, cond, ids, pooled, None, gamma=gamma, isolation=range(2, 3),
                         scope=lambda _m: contextlib.nullcontext(),
                         dtype=torch.float32)  # fmt: skip
        out = denoise(tr, img, torch.tensor([0.6]), text, pooled, None, token_ids(4, 4),
                      torch.zeros(LT, 3), st)  # fmt: skip
    assert (st.hidden is None) == (cond.shape[1] == 0)
    return out, st.hidden


def test_condition_tokens_read_image_tokens_and_masked_ones_change_nothing() -> None:
    tr = tiny_transformer()
    torch.manual_seed(4)
    img, cond = torch.randn(1, N, 8), torch.randn(1, K, 8)
    out, c = step(tr, img, cond)
    img2 = img + 0.5 * torch.randn_like(img)
    _, c2 = step(tr, img2, cond)
    assert (c2[:, :2] - c[:, :2]).abs().max() > 1e-3  # condition <- image, as in Seg2Any
    # the invalid condition token is masked: it may be anything, not a bit changes
    poisoned = cond.clone()
    poisoned[:, 2] += 9.0
    out_p, c_p = step(tr, img, poisoned)
    assert torch.equal(out_p, out) and torch.equal(c_p[:, :2], c[:, :2])
    # gamma = 0 cuts both directions: image outputs as without a condition
    none, _ = step(tr, img, cond[:, :0], gamma=0.0)
    zero, cz = step(tr, img, cond, gamma=0.0)
    # two different kernels (no condition tokens vs masked ones) may round differently in the
    # last bit; any leak of the condition would be orders of magnitude larger than 1e-6
    torch.testing.assert_close(zero, none, rtol=0, atol=1e-6)
    assert torch.equal(step(tr, img2, cond, gamma=0.0)[1], cz)  # nor reads the image
    assert (step(tr, img, cond)[0] - none).abs().max() > 1e-4


# --- the backend in the exact mode -----------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_flux(tmp_path_factory.mktemp("flux") / "tiny")


@pytest.fixture(scope="module")
def checkpoint(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Seg2Any-layout checkpoint (default + cond adapters) with random non-zero weights."""
    from peft import LoraConfig

    be = FluxBackend(folder, device="cpu", settings=SETTINGS)
    tr = be.c.transformer
    torch.manual_seed(0)
    blocks = [n for n, m in tr.named_modules()
              if "transformer_blocks." in n and isinstance(m, torch.nn.Linear)]  # fmt: skip
    cond = r"(x_embedder|.*norm1\.linear|.*attn\.to_[qkv]|.*proj_mlp|.*proj_out|.*ff\.net\.2)"
    for name, targets in (("default", blocks), ("cond", cond)):
        cfg = LoraConfig(r=4, lora_alpha=4, target_modules=targets, init_lora_weights=False)
        tr.add_adapter(cfg, adapter_name=name)
    return save_adapters(tr, tmp_path_factory.mktemp("lora") / "checkpoint-1",
                         {"default": "default", "cond": "cond"})  # fmt: skip


@pytest.fixture(scope="module")
def backend(folder: Path, checkpoint: Path) -> FluxBackend:
    be = FluxBackend(folder, device="cpu", lora=[str(checkpoint)],
                     settings=dataclasses.replace(SETTINGS, attention="auto"))  # fmt: skip
    assert be.attention == "seg2any"  # the default once a condition LoRA is loaded
    return be


def tile(seed: int = 0) -> TileCondition:
    inst = np.zeros((32, 32), np.int64)
    inst[:16, 8:] = 1
    inst[19:, : 10 + 8 * seed] = 2  # sparse: most 4 px patches hold no contour
    return TileCondition(instances=inst, descriptions=["red roof building", "green forest"][
        : 1 + seed % 2], caption="top-down aerial photograph")  # fmt: skip


def latents(be: FluxBackend, conds: list[TileCondition], gamma: float = 1.0, **kw: Any) -> Any:
    old = be.settings
    be.settings = dataclasses.replace(old, **kw)
    try:
        return be.sample_latents(conds, gamma=gamma, seeds=list(range(7, 7 + len(conds))), **RUN)
    finally:
        be.settings = old


def test_exact_mode_filtering_gamma_and_batching(backend: FluxBackend) -> None:
    one = [tile()]
    filtered = latents(backend, one, condition_tokens="filtered")
    torch.testing.assert_close(latents(backend, one, condition_tokens="masked"), filtered,
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    none = latents(backend, one, use_condition=False)
    torch.testing.assert_close(latents(backend, one, gamma=0.0), none, rtol=0, atol=0)
    torch.testing.assert_close(latents(backend, one, gamma=1e-9), none, rtol=1e-5, atol=1e-5)
    assert (filtered - none).abs().max() > 1e-3
    cached = latents(backend, one, attention="cached")
    assert (cached - filtered).abs().max() > 1e-5  # the modes differ (cond <- image)
    for pair in ([tile(0), tile(1)], [tile(1), tile(0)]):  # entity and condition padding
        batch = latents(backend, pair)
        torch.testing.assert_close(batch[:1], latents(backend, pair[:1]), rtol=1e-4, atol=1e-4)


def test_attention_setting_is_checked(folder: Path) -> None:
    with pytest.raises(ValueError, match="attention"):
        FluxSettings(attention="fast")
    assert FluxBackend(folder, device="cpu").attention == "cached"  # no condition LoRA


def test_cli_exact_mode_writes_georeferenced_outputs(
    tmp_path: Path, folder: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import rasterio

    from rs_seg2any.cli import main
    from rs_seg2any.demo import write_demo_layer

    layer = write_demo_layer(tmp_path / "town.gpkg")
    out = tmp_path / "out"
    rc = main(["generate", str(layer), "--class-field", "landcover", "--description-field",
               "description", "--taxonomy", "dubai_aerial", "--resolution", "0.5",
               "--extent", "300000,2780150,300032,2780182", "--backend", "flux",
               "--model", str(folder), "--lora", str(checkpoint), "--device", "cpu",
               "--dtype", "fp32", "--threads", "1", "--steps", "2", "--tile-size", "64",
               "--overlap", "16", "--progress", "none", "--conditioning", "reference",
               "--out", str(out)])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    with rasterio.open(out / "label.tif") as ref, rasterio.open(out / "image.tif") as img:
        assert (img.crs, img.transform, img.shape) == (ref.crs, ref.transform, ref.shape)
        assert img.count == 3 and img.read().std() > 0
        gen = json.loads(img.tags()["RS_SEG2ANY_PARAMS"])["generator"]
    assert gen["backend"] == "flux" and gen["attention"] == "seg2any"
    assert gen["settings"]["conditioning"] == "reference"
