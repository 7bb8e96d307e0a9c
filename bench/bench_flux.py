"""FLUX + Seg2Any on a GPU: seconds per tile and peak memory, as ratios to plain FLUX.

Full-size FLUX.1-dev transformer architecture with random bf16 weights, 1024 x 1024 tile
(4096 image tokens, 512 caption tokens), 28 steps, batch 1:

  (a) plain      diffusers' FluxTransformer2DModel forward with its own attention processor;
  (b) seg2any    Seg2Any processors: condition pass over *all* contour tokens (empty ones
                 masked), regional captions, semantic-alignment + attribute-isolation masks;
  (c) filtered   as (b) with empty condition tokens dropped, on a sparse layout.

Goal: (c)/(a) <= 1.1. Only the transformer is timed: text encoders and VAE are the same work
in all three. The condition tokens only attend to each other, so they run once per tile
(condition pass, included in the timings) and their keys/values are reused at every step.

Run: ``python bench/bench_flux.py`` on a GPU; ``--tiny`` runs a tiny random model on the CPU
(a smoke run: its ratios say nothing about a GPU).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from diffusers.models.transformers import transformer_flux

from rs_seg2any.conditioning import condition_keep, patchify_ids
from rs_seg2any.generators.flux.attention import install_processors
from rs_seg2any.generators.flux.condition import entity_contours, token_ids
from rs_seg2any.generators.flux.masks import JointLayout
from rs_seg2any.generators.flux.passes import condition_pass, denoise, step_state

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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny random model on the CPU")
    p.add_argument("--steps", type=int, default=28)
    p.add_argument("--size", type=int, help="tile side in px (default 1024; tiny 64)")
    p.add_argument("--entities", type=int, default=12)
    p.add_argument("--regional-tokens", type=int, default=20, help="real tokens per entity text")
    args = p.parse_args(argv)
    tiny = args.tiny
    device = torch.device("cpu" if tiny or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu" and not tiny:
        p.error("no GPU here: the full-size run needs one (use --tiny for a CPU smoke run)")
    dtype = torch.float32 if tiny else torch.bfloat16
    size = args.size or (64 if tiny else 1024)
    patch, cap_len = (4, 16) if tiny else (16, 512)
    model = build(tiny, device, dtype)
    cfg = model.config
    grid = size // patch
    n = grid * grid
    e, lr = args.entities, args.regional_tokens
    gen = torch.Generator("cpu").manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(device, dtype)

    inst = torch.from_numpy(sparse_layout(size, e, 0))[None]
    token_entity = patchify_ids(inst, patch).to(device)
    keep = condition_keep(torch.from_numpy(entity_contours(inst[0].numpy()))[None], patch)
    keep = keep.to(device)
    x, cond = rand(1, n, cfg.in_channels), rand(1, n, cfg.in_channels)
    caption, regional = (
        rand(1, cap_len, cfg.joint_attention_dim),
        rand(1, e * lr, cfg.joint_attention_dim),
    )
    pooled = rand(1, cfg.pooled_projection_dim)
    guid = torch.full((1,), 3.5, device=device, dtype=dtype)
    img_ids = token_ids(grid, grid, device=device)
    ids = token_ids(grid, grid, device=device)
    slots = torch.cat([torch.zeros(cap_len), torch.arange(1, e + 1).repeat_interleave(lr)])
    text = torch.cat([caption, regional], 1)
    n_double = len(model.transformer_blocks)
    isolation = range(n_double, n_double + max(len(model.single_transformer_blocks) // 2, 1))
    sig = torch.linspace(1, 1 / args.steps, args.steps)

    def plain() -> None:
        with torch.inference_mode():
            for s in sig:
                t = s.expand(1).to(device, dtype)
                denoise(model, x, t, caption, pooled, guid, img_ids,
                        torch.zeros(cap_len, 3, device=device), None)  # fmt: skip

    def seg2any(filtered: bool) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                cache, valid = condition_pass(model, cond, keep, ids, pooled, guid,
                                              filtered=filtered, dtype=dtype)  # fmt: skip
                ents = torch.ones(1, e, dtype=torch.bool, device=device)
                lay = JointLayout(slots[None].long().to(device), token_entity, ents, valid)
                state = step_state(lay, cache, gamma=1.0, isolation=isolation,
                                   use_condition=True, dtype=dtype)  # fmt: skip
                txt_ids = torch.zeros(text.shape[1], 3, device=device)
                for s in sig:
                    denoise(model, x, s.expand(1).to(device, dtype), text, pooled, guid,
                            img_ids, txt_ids, state)  # fmt: skip

        return run

    plain_processor: Any = transformer_flux.FluxAttnProcessor
    model.set_attn_processor(plain_processor())
    res = {"plain": measure(plain, device)}
    install_processors(model)
    res["seg2any"] = measure(seg2any(False), device)
    res["filtered"] = measure(seg2any(True), device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    report: dict[str, Any] = {
        "device": name, "size": size, "steps": args.steps, "tiny": tiny,
        "image_tokens": n, "text_tokens": [cap_len, int(text.shape[1])],
        "condition_tokens_kept": f"{int(keep.sum())}/{n}",
    }  # fmt: skip
    for k, (sec, peak) in res.items():
        report[k] = {
            "s_per_tile": round(sec, 3),
            "peak_gib": None if peak is None else round(peak, 2),
        }
    base = res["plain"][0]
    report["ratio_seg2any"] = round(res["seg2any"][0] / base, 3)
    report["ratio_filtered"] = round(res["filtered"][0] / base, 3)
    print(json.dumps(report, indent=1))
    print(f"(b)/(a) = {report['ratio_seg2any']}  (c)/(a) = {report['ratio_filtered']}  "
          f"(goal (c)/(a) <= 1.1) on {name}")  # fmt: skip
    return report


if __name__ == "__main__":
    main()
