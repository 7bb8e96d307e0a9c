"""LoRA training of the FLUX backend (GPU; tested on CPU with tiny random configs).

The text/image-branch LoRA of Seg2Any's "cached" pattern: each step runs the condition pass
with the base weights (no gradient: condition tokens attend only to each other), then one
flow-matching denoising pass with the LoRA, the cached condition keys/values and the Seg2Any
masks, exactly as :class:`~rs_seg2any.generators.flux.backend.FluxBackend` samples. The
frozen parts run in bf16 on a GPU (fp32 on CPU), LoRA weights and the optimiser in fp32,
gradient checkpointing through the transformer blocks, and the VAE latents of every training
and validation area are encoded once and cached. A memory estimate is printed first.
The saved folder is peft's layout plus a card; ``--lora FOLDER`` loads it into the backend
(alpha is folded into ``lora_B``, so diffusers' alpha = rank convention reads it exactly).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import InputError
from ..options import LayerOptions
from ..progress import Progress
from .adapter import PEFT_PREFIX, lora_config, save_adapter
from .data import Crop, Region, TrainingData, caption, grid_crops, load_training_data
from .params import LoraTrainParams
from .tiny import History, LoraLoop

FLUX_TARGETS = (
    r"(transformer_blocks\.\d+\.(attn\.(to_[qkv]|to_out\.0|add_[qkv]_proj|to_add_out)"
    r"|ff\.net\.(0\.proj|2)|ff_context\.net\.(0\.proj|2))"
    r"|single_transformer_blocks\.\d+\.(attn\.to_[qkv]|proj_mlp|proj_out))"
)
"""Attention and MLP linears of every FLUX block (the modulation layers stay frozen)."""
GUIDANCE = 3.5


def memory_estimate(
    be: Any, trainable: int, batch: int, crop: int, checkpointing: bool
) -> dict[str, float]:
    """Rough bytes of a training step: frozen weights, LoRA + AdamW, activations."""
    tr = be.c.transformer
    itemsize = torch.tensor([], dtype=be.dtype).element_size()
    frozen = sum(p.numel() for m in be._modules() for p in m.parameters()) * itemsize
    lora = trainable * 4 * 4  # fp32 weight, gradient, two Adam moments
    tokens = (
        crop // be.vae_factor // 2
    ) ** 2 * 2 + be.settings.caption_tokens  # image + cond + text
    width = int(tr.config.num_attention_heads * tr.config.attention_head_dim)
    blocks = len(tr.transformer_blocks) + len(tr.single_transformer_blocks)
    per_block = batch * tokens * width * itemsize * 14  # attention + 4x MLP, saved for backward
    scores = batch * tr.config.num_attention_heads * tokens * tokens * itemsize
    act = (
        (blocks * batch * tokens * width * itemsize + per_block + scores)
        if checkpointing
        else blocks * (per_block + scores)
    )
    gib = 1024.0**3
    return {
        "weights_gib": frozen / gib,
        "lora_optimizer_gib": lora / gib,
        "activations_gib": act / gib,
        "total_gib": (frozen + lora + act) / gib,
    }


class FluxLoraTrainer(LoraLoop):
    def __init__(
        self, be: Any, params: LoraTrainParams, data: TrainingData, out: Path, progress: Progress
    ) -> None:
        from peft import LoraConfig

        self.be, self.p, self.data, self.out, self.progress = be, params, data, out, progress
        tr = be.c.transformer
        self.base_sha = str(be.c.identity)
        torch.manual_seed(params.seed)
        tr.add_adapter(
            LoraConfig(
                r=params.rank,
                lora_alpha=params.lora_alpha,  # type: ignore[arg-type]
                target_modules=FLUX_TARGETS,
                lora_dropout=0.0,
            ),
            adapter_name="default",
        )
        for name, prm in tr.named_parameters():
            train = "lora_" in name
            prm.requires_grad_(train)
            if train:
                prm.data = prm.data.float()  # fp32 LoRA weights and optimiser over a bf16 base
        be.adapters.roles["default"] = "image"
        be.adapters.weights["default"] = 1.0
        self.checkpointing = True
        self.bands = None  # FLUX adapts RGB only
        tr.enable_gradient_checkpointing()
        self.opt = torch.optim.AdamW(self.trainable(), lr=params.lr, weight_decay=0.0)
        self.hist = History()
        self.best_state = self.state()
        self.latents = [self._encode_region(r) for r in data.train]
        self.val_latents = [self._encode_region(r) for r in data.val]
        self.val = self._fixed_val()

    # --- tensors ---------------------------------------------------------------------------

    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.be.c.transformer.parameters() if p.requires_grad]

    def state(self) -> dict[str, Tensor]:
        from peft.utils import get_peft_model_state_dict

        sd = get_peft_model_state_dict(self.be.c.transformer, adapter_name="default")
        return {PEFT_PREFIX + k: v.detach().float().cpu().clone() for k, v in sd.items()}

    def load_state(self, state: dict[str, Tensor]) -> None:
        from peft.utils import set_peft_model_state_dict

        lora = {k.removeprefix(PEFT_PREFIX): v for k, v in state.items()}
        set_peft_model_state_dict(self.be.c.transformer, lora, adapter_name="default")

    # --- cached latents ----------------------------------------------------------------------

    @torch.no_grad()
    def _encode_region(self, region: Region) -> Tensor:
        """VAE latents ``(1, C, h, w)`` of a region cut to whole tokens (computed once)."""
        be, m = self.be, self.be.patch
        h, w = (region.labels.shape[0] // m) * m, (region.labels.shape[1] // m) * m
        x = torch.from_numpy(region.image[:h, :w]).permute(2, 0, 1)[None].float()
        vae = be.c.vae
        with be._on(vae):
            z = vae.encode(x.to(be.device, be.dtype)).latent_dist.mode()
        scaled: Tensor = (z - (vae.config.shift_factor or 0)) * vae.config.scaling_factor
        return scaled.to(be.dtype)

    def _crops(self, regions: list[Region], latents: list[Tensor], n: int, rng: Any) -> Any:
        """Token-aligned crops: their latent tiles and their pixel crops (no rotation: latents
        of a rotated image are not rotated latents)."""
        from .data import cut

        m, f, size = self.be.patch, self.be.vae_factor, self.data.crop
        weights = [int(r.valid.sum()) for r in regions]
        picks = rng.choices(range(len(regions)), weights=weights, k=n)
        zs, crops = [], []
        for i in picks:
            lat = latents[i]
            h, w = lat.shape[2] * f, lat.shape[3] * f
            y = rng.randrange((h - size) // m + 1) * m
            x = rng.randrange((w - size) // m + 1) * m
            zs.append(lat[:, :, y // f : (y + size) // f, x // f : (x + size) // f])
            crops.append(cut(regions[i], y, x, size))
        return torch.cat(zs), crops

    def _fixed_val(self) -> list[tuple[Tensor, list[Crop], Tensor, Tensor]]:
        import random

        rng = random.Random(1234)
        gen = torch.Generator().manual_seed(1234)
        out = []
        for _ in range(2):
            z, crops = self._crops(self.data.val, self.val_latents, 2, rng)
            sigma = torch.sigmoid(torch.randn(z.shape[0], generator=gen))
            out.append((z, crops, sigma, torch.randn(z.shape, generator=gen)))
        return out

    # --- the loss ------------------------------------------------------------------------------

    def _loss(self, z0: Tensor, crops: list[Crop], sigma: Tensor, noise: Tensor) -> Tensor:
        from ..generators.base import TileCondition, condition_with_background
        from ..generators.flux.condition import pack, token_ids
        from ..generators.flux.masks import JointLayout
        from ..generators.flux.passes import condition_pass, denoise, step_state

        be, dev, dt = self.be, self.be.device, self.be.dtype
        tr = be.c.transformer
        conds = [
            condition_with_background(
                TileCondition(
                    instances=c.instances,
                    descriptions=c.descriptions,
                    caption=caption(c.labels, self.data.taxonomy),
                ),
                be.patch,
            )
            for c in crops
        ]
        b, size = len(crops), self.data.crop
        with torch.no_grad():
            text = be._texts(conds)
            tokens, keep = be._condition_tokens(conds)
            guid = (
                torch.full((b,), GUIDANCE, device=dev, dtype=dt)
                if tr.config.guidance_embeds
                else None
            )
            grid = (size // be.settings.cond_scale // be.patch,) * 2
            ids = token_ids(*grid, scale=be.settings.cond_scale, device=dev)
            be.adapters.activate(tr, "cond")  # base weights in the condition pass
            cache, cond_valid = condition_pass(
                tr, tokens, keep, ids, text.pooled.to(dev), guid, filtered=True, dtype=dt
            )
        be.adapters.activate(tr, "image")
        layout = JointLayout(
            text.slots.to(dev),
            be.token_owners(conds).to(dev),
            text.entity_valid.to(dev),
            cond_valid,
        )
        state = step_state(
            layout,
            cache,
            gamma=1.0,
            isolation=be.isolation,
            use_condition=True,
            dtype=dt,
            text_reads_image=be.settings.text_reads_image,
        )
        x0, eps = pack(z0.to(dev).float()), pack(noise.to(dev).float())
        s = sigma.to(dev)[:, None, None]
        xt = ((1 - s) * x0 + s * eps).to(dt)
        lh = size // be.vae_factor
        img_ids = token_ids(lh // 2, lh // 2, device=dev)
        txt_ids = torch.zeros(text.tokens.shape[1], 3, device=dev)
        with torch.autocast(dev.type, dtype=dt, enabled=dt != torch.float32):
            v = denoise(
                tr,
                xt,
                sigma.to(dev, dt),
                text.tokens.to(dev),
                text.pooled.to(dev),
                guid,
                img_ids,
                txt_ids,
                state,
            )
        valid = torch.from_numpy(np.stack([c.valid for c in crops]))
        keep_tok = self._token_keep(valid).to(dev)
        err = (v.float() - (eps - x0)) ** 2 * keep_tok[:, :, None]
        return err.sum() / (keep_tok.sum() * err.shape[2]).clamp_min(1.0)

    def _token_keep(self, valid: Tensor) -> Tensor:
        """A packed latent token counts only if every pixel under it is valid."""
        import torch.nn.functional as F

        m = self.be.patch
        bad = F.max_pool2d((~valid)[:, None].float(), m)  # (B, 1, h/m, w/m)
        return (bad.flatten(1) == 0).float()

    def losses(self, step: int) -> tuple[Tensor, Tensor]:
        rng, gen = self.step_rngs(step)
        z0, crops = self._crops(self.data.train, self.latents, self.p.batch, rng)
        sigma = torch.sigmoid(torch.randn(z0.shape[0], generator=gen))
        noise = torch.randn(z0.shape, generator=gen)
        loss = self._loss(z0, crops, sigma, noise)
        return loss, loss

    @torch.no_grad()
    def val_loss(self) -> float:
        vals = [float(self._loss(z, c, s, n)) for z, c, s, n in self.val]
        return sum(vals) / len(vals)

    @torch.no_grad()
    def render(self, crops: list[Crop], adapted: bool, seed: int) -> list[np.ndarray]:
        from ..generators.base import TileCondition

        be = self.be
        roles = dict(be.adapters.roles)
        if not adapted:
            be.adapters.roles.clear()
            be.c.transformer.disable_lora()
        try:
            conds = [
                TileCondition(
                    instances=c.instances,
                    descriptions=c.descriptions,
                    caption=caption(c.labels, self.data.taxonomy),
                )
                for c in crops
            ]
            return list(
                be.generate_batch(
                    conds,
                    steps=8,
                    guidance=GUIDANCE,
                    gamma=1.0,
                    seeds=[seed + i for i in range(len(conds))],
                )
            )
        finally:
            be.adapters.roles.update(roles)
            be.c.transformer.enable_lora()

    def to_model(self, x: Tensor, grad: bool = False) -> Tensor:
        return x


def train_flux_lora(
    params: LoraTrainParams, layer: LayerOptions, out: Path, *, progress: Progress
) -> Any:
    """The ``--backend flux`` path of :func:`rs_seg2any.lora.train.train_lora`."""
    from ..generators.flux.backend import FluxBackend, FluxSettings
    from .card import LoraResult, make_card
    from .evaluate import picture_grid, real_rgb, scores, train_segmenter

    if params.model is None:
        raise InputError("--backend flux needs --model: a FLUX folder or hub id")
    be = FluxBackend(
        params.model, threads=params.threads, settings=FluxSettings(attention="cached")
    )
    progress.stage("read training data")
    data = load_training_data(params, layer, multiple=be.tile_multiple)
    if data.n_bands != 3:
        raise InputError(
            f"the flux backend adapts RGB imagery; choose three bands with --bands (the images "
            f"give {data.n_bands}), or use --backend tiny, whose band adapter handles them"
        )
    tr = FluxLoraTrainer(be, params, data, out, progress)
    est = memory_estimate(
        be, sum(p.numel() for p in tr.trainable()), params.batch, data.crop, tr.checkpointing
    )
    progress.message(
        f"memory estimate: {est['total_gib']:.2f} GiB on {be.device.type} (frozen weights "
        f"{est['weights_gib']:.2f}, LoRA + optimiser {est['lora_optimizer_gib']:.3f}, "
        f"activations {est['activations_gib']:.2f}; {str(be.dtype).removeprefix('torch.')}, "
        f"gradient checkpointing)",
        **{k: round(v, 4) for k, v in est.items()},
    )
    t0 = time.perf_counter()
    hist = tr.run()
    seconds = time.perf_counter() - t0
    state, best_loss, best_step = tr.final_state()
    tr.load_state(state)
    crops = grid_crops(data.val, data.crop, 8)
    real = real_rgb(tr, crops)
    base, adapted = tr.render(crops, False, params.seed), tr.render(crops, True, params.seed)
    seg = (
        train_segmenter(tr, params.segmenter_steps, params.seed) if params.segmenter_steps else None
    )
    before, after = scores(tr, crops, real, base, seg), scores(tr, crops, real, adapted, seg)
    metrics: dict[str, Any] = {
        "val_loss_before": hist.val[0][1],
        "val_loss_after": best_loss,
        "best_step": best_step,
        "stopped_early": hist.stopped_early,
        "train_seconds_this_run": round(seconds, 1),
        "memory_estimate_gib": round(est["total_gib"], 4),
        **{f"{k}_before": v for k, v in before.items()},
        **{f"{k}_after": v for k, v in after.items()},
    }
    outputs = {
        "grid": picture_grid(
            out / "validation_grid.png", data, crops, {"real": real, "base": base, "LoRA": adapted}
        )
    }
    scale = params.lora_alpha / params.rank  # folded into B: diffusers reads alpha = rank
    folded = {k: v * scale if ".lora_B." in k else v for k, v in state.items()}
    card = make_card(params, data, tr, metrics, hist.step, best_step, Path(params.model), out.name)
    card["alpha"] = params.rank
    card["alpha_trained"] = params.lora_alpha
    card["targets"] = FLUX_TARGETS
    save_adapter(out, folded, lora_config(params.rank, params.rank, FLUX_TARGETS), card)
    outputs["adapter"] = out / "adapter_model.safetensors"
    outputs["card"] = out / "README.md"
    return LoraResult(out, outputs, metrics, tr)
