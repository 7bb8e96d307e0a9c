"""FLUX + Seg2Any on a GPU: seconds per tile, peak memory and ratios to plain FLUX.

Full-size FLUX.1-dev transformer architecture with random bf16 weights (the machine needs no
network and no download), one 1024 x 1024 tile (4096 image tokens), 28 steps, batch 1, the
``reference`` conditioning (Seg2Any's published inputs) on a sparse layout:

  (a) plain      diffusers' own FLUX attention, caption padded to 512 tokens (FluxPipeline);
  (b) exact      Seg2Any's exact pattern (condition tokens are a third stream through every
                 block of every step), every condition token attended (the published
                 pipeline's unfiltered mode), caption without padding + entity texts;
  (c) filtered   as (b) with empty condition tokens dropped (the published default);
  (d) cached     condition keys/values computed once per tile, filtered (``attention=cached``).

Only the transformer is timed: text encoders and VAE are the same work in all of them.
``attention_share_saved`` is the share of (b)'s attention score matrix that filtering removes,
``1 - S_c^2 / S_b^2`` for the joint sequence lengths ``S``.

Run: ``python bench/bench_flux.py`` on a GPU (about 25 GB of GPU memory, a few minutes);
``--tiny`` runs a tiny random model on the CPU (a smoke run: its ratios say nothing about a
GPU). Importing this file needs torch and diffusers but no GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

TINY = dict(
    patch_size=1, in_channels=16, num_layers=2, num_single_layers=2, attention_head_dim=16,
    num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
    guidance_embeds=True, axes_dims_rope=(4, 6, 6),
)  # fmt: skip
FULL = dict(guidance_embeds=True)  # diffusers' defaults are the FLUX.1 sizes


def sparse_layout(size: int, entities: int, seed: int) -> np.ndarray:
    """A few large rectangles over background: contours touch a small share of patches."""
    rng = np.random.default_rng(seed)
    inst = np.zeros((size, size), np.int64)
    for e in range(1, entities + 1):
        h, w = rng.integers(size // 8, size // 3, 2)
        y, x = rng.integers(0, size - h), rng.integers(0, size - w)
        inst[y : y + h, x : x + w] = e
    return inst


def build(tiny: bool, device: torch.device, dtype: torch.dtype) -> Any:
    from diffusers.models.transformers import transformer_flux

    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # random weights created in bf16, on the device
    try:
        with device:
            cls: Any = transformer_flux.FluxTransformer2DModel
            model = cls(**(TINY if tiny else FULL))
    finally:
        torch.set_default_dtype(default)
    return model.eval().requires_grad_(False)


def measure(fn: Callable[[], None], device: torch.device) -> tuple[float, float | None]:
    """Seconds and peak GiB (GPU only) of one call, after a warm-up call."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter() - t0, torch.cuda.max_memory_allocated() / 2**30
    return time.perf_counter() - t0, None


def condition(size: int, entities: int, patch: int, cond_scale: int) -> dict[str, Any]:
    """Reference-convention inputs of the sparse layout: owners, condition keep mask."""
    from rs_seg2any.conditioning import sample_ids
    from rs_seg2any.generators.flux.condition import reference_contour_image, reference_keep
    from rs_seg2any.raster import contours_from_instances

    inst = sparse_layout(size, entities, 0)
    image = reference_contour_image(contours_from_instances(inst, border=True), cond_scale)
    return {
        "owner": sample_ids(torch.from_numpy(inst)[None], patch),
        "keep": reference_keep(image[None], patch),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from diffusers.models.transformers import transformer_flux

    from rs_seg2any.generators.flux.attention import install_processors
    from rs_seg2any.generators.flux.condition import token_ids
    from rs_seg2any.generators.flux.masks import JointLayout
    from rs_seg2any.generators.flux.passes import condition_pass, denoise, joint_state, step_state

    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny random model on the CPU")
    p.add_argument("--steps", type=int, default=28)
    p.add_argument("--size", type=int, help="tile side in px (default 1024; tiny 64)")
    p.add_argument("--entities", type=int, default=12)
    p.add_argument("--cond-scale", type=int, default=2, help="condition at 1/N (Seg2Any: 2)")
    p.add_argument("--caption-tokens", type=int, default=60, help="real caption tokens")
    p.add_argument("--regional-tokens", type=int, default=20, help="real tokens per entity text")
    args = p.parse_args(argv)
    tiny = args.tiny
    device = torch.device("cpu" if tiny or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu" and not tiny:
        p.error("no GPU here: the full-size run needs one (use --tiny for a CPU smoke run)")
    dtype = torch.float32 if tiny else torch.bfloat16
    size = args.size or (64 if tiny else 1024)
    patch, pad_len = (4, 16) if tiny else (16, 512)
    cs = args.cond_scale
    if size % (patch * cs):
        p.error(f"--size must be a multiple of {patch * cs}")
    model = build(tiny, device, dtype)
    cfg = model.config
    grid, cgrid = size // patch, size // patch // cs
    n, k = grid * grid, cgrid * cgrid
    e, lr, lc = args.entities, args.regional_tokens, min(args.caption_tokens, pad_len)
    gen = torch.Generator("cpu").manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(device, dtype)

    inputs = condition(size, e, patch, cs)
    token_entity, keep = inputs["owner"].to(device), inputs["keep"].to(device)
    x, cond = rand(1, n, cfg.in_channels), rand(1, k, cfg.in_channels)
    padded = rand(1, pad_len, cfg.joint_attention_dim)
    text = torch.cat([padded[:, :lc], rand(1, e * lr, cfg.joint_attention_dim)], 1)
    slots = torch.cat([torch.zeros(lc), torch.arange(1, e + 1).repeat_interleave(lr)])
    slots = slots[None].long().to(device)
    pooled = rand(1, cfg.pooled_projection_dim)
    guid = torch.full((1,), 3.5, device=device, dtype=dtype)
    img_ids = token_ids(grid, grid, device=device)
    cond_ids = token_ids(cgrid, cgrid, scale=cs, device=device)
    n_double = len(model.transformer_blocks)
    isolation = range(n_double, n_double + max(len(model.single_transformer_blocks) // 2, 1))
    sig = torch.linspace(1, 1 / args.steps, args.steps)
    ents = torch.ones(1, e, dtype=torch.bool, device=device)
    txt_ids = torch.zeros(text.shape[1], 3, device=device)

    def steps(state: Any, caption: torch.Tensor, ids: torch.Tensor) -> None:
        for s in sig:
            denoise(model, x, s.expand(1).to(device, dtype), caption, pooled, guid, img_ids,
                    ids, state)  # fmt: skip

    def plain() -> None:
        with torch.inference_mode():
            steps(None, padded, torch.zeros(pad_len, 3, device=device))

    def exact(filtered: bool) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                idx = keep[0].nonzero().flatten() if filtered else torch.arange(k, device=device)
                valid = torch.ones(1, len(idx), dtype=torch.bool, device=device)
                lay = JointLayout(slots, token_entity, ents, valid)
                state = joint_state(model, lay, cond[:, idx], cond_ids[idx][None], pooled, guid,
                                    gamma=1.0, isolation=isolation, dtype=dtype,
                                    scope=lambda _m: contextlib.nullcontext())  # fmt: skip
                steps(state, text, txt_ids)

        return run

    def cached() -> None:
        with torch.inference_mode():
            cache, valid = condition_pass(model, cond, keep, cond_ids, pooled, guid,
                                          filtered=True, dtype=dtype)  # fmt: skip
            lay = JointLayout(slots, token_entity, ents, valid)
            state = step_state(lay, cache, gamma=1.0, isolation=isolation, use_condition=True,
                               dtype=dtype, text_reads_image=True)  # fmt: skip
            steps(state, text, txt_ids)

    plain_processor: Any = transformer_flux.FluxAttnProcessor
    model.set_attn_processor(plain_processor())
    res = {"plain": measure(plain, device)}
    install_processors(model)
    res["exact"] = measure(exact(False), device)
    res["filtered"] = measure(exact(True), device)
    res["cached"] = measure(cached, device)
    kept = int(keep.sum())
    s_all, s_kept = text.shape[1] + n + k, text.shape[1] + n + kept
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    report: dict[str, Any] = {
        "device": name, "size": size, "steps": args.steps, "tiny": tiny, "dtype": str(dtype),
        "image_tokens": n, "text_tokens": {"plain": pad_len, "seg2any": int(text.shape[1])},
        "condition_tokens_kept": f"{kept}/{k}",
        "attention_share_saved": round(1 - s_kept**2 / s_all**2, 4),
    }  # fmt: skip
    for key, (sec, peak) in res.items():
        report[key] = {
            "s_per_tile": round(sec, 3),
            "peak_gib": None if peak is None else round(peak, 2),
        }
    base = res["plain"][0]
    for key in ("exact", "filtered", "cached"):
        report[f"ratio_{key}"] = round(res[key][0] / base, 3)
    print(json.dumps(report, indent=1))
    print(f"(b)/(a) = {report['ratio_exact']}  (c)/(a) = {report['ratio_filtered']}  "
          f"(d)/(a) = {report['ratio_cached']}  filtering saves "
          f"{report['attention_share_saved']:.1%} of (b)'s attention on {name}")  # fmt: skip
    return report


if __name__ == "__main__":
    main()
