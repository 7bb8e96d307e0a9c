"""The ``flux`` generator: diffusers' FLUX transformer with Seg2Any conditioning and LoRA.

Per batch of tiles: (1) captions -> T5/CLIP tokens, (2) the entity contour map -> VAE ->
condition tokens, empty ones filtered, (3) one *condition pass* through the transformer at
timestep 0 with the condition LoRA caches every block's condition keys/values (condition
tokens attend only to each other, so they are the same at every step), (4) flow-matching
steps with the text/image LoRA, the cached condition tokens and the Seg2Any masks,
(5) VAE decode, known pixels restored exactly outside the edit mask.

That is the ``cached`` attention mode. The ``seg2any`` mode (the default once a condition
LoRA is loaded) replaces (3)-(4) by Seg2Any's exact pattern: the condition tokens run through
every block of every step as a third stream (timestep 0, condition LoRA) and read the image
tokens, as the published checkpoints were trained; it costs the condition tokens' share of
every step instead of one pass per tile.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from ...conditioning import condition_keep, filter_condition_tokens, patchify_ids, sample_ids
from ...raster import contours_from_instances
from ..base import TileCondition, condition_with_background
from ..integrity import check_finite_output
from .attention import JointState, StepState, install_processors
from .condition import (
    contour_image,
    latent_edit_mask,
    pack,
    pixels_to_unit,
    reference_contour_image,
    reference_keep,
    token_ids,
    unit_to_pixels,
    unpack,
)
from .errors import GpuOutOfMemoryError
from .loading import Components, load_components, resolve_device, resolve_dtype
from .lora import Adapters, LoraSpec, load_adapters
from .masks import JointLayout, joint_bias
from .passes import condition_pass, denoise, joint_state, step_state
from .sampler import euler, sigmas
from .text import EncodedText

CONDITIONING = ("reference", "project")
CONDITION_TOKENS = ("filtered", "masked", "all")


@dataclass(frozen=True)
class FluxSettings:
    """Seg2Any options; ``cond_scale=2`` matches the SACap-1M checkpoint at 1024 px tiles.

    ``conditioning`` says how a tile becomes model inputs:

    - ``reference`` (default), what the published Seg2Any checkpoints were trained on: a token
      belongs to the entity under its centre pixel (nearest-exact), the contour map outlines
      every entity including along the tile edge (OpenCV's 1-px contours; the tile is the
      model's whole image), a reduced-scale condition is resized bilinearly to grey levels,
      the caption's padding is dropped;
    - ``project``: the embedded model's conventions (majority owner per token, no outline
      along the tile edge, max-pooled binary condition) with a padded caption.

    Both encode the condition with the VAE's distribution mode (the published pipeline
    samples it; the mode keeps a seed's output deterministic). ``condition_tokens``:
    ``filtered`` drops empty condition tokens, ``masked`` keeps and masks them (equivalent
    to ``filtered``), ``all`` attends to every one (the published pipeline's unfiltered mode).
    """

    cond_scale: int = 1  # condition map at 1/cond_scale resolution (Seg2Any: 2 at 1024 px)
    caption_tokens: int = 512
    regional_tokens: int = 50
    isolation_blocks: tuple[int, int] | None = None  # inclusive global block range
    conditioning: str = "reference"
    condition_tokens: str = "filtered"
    use_condition: bool = True
    text_reads_image: bool = True  # cached mode only; the seg2any mode always has it
    # "seg2any": exact Seg2Any attention (condition tokens are queries at every step and read
    # the image tokens), what the published LoRAs were trained with; "cached": condition
    # tokens see only each other, so their keys/values are computed once per tile (faster,
    # an approximation for Seg2Any checkpoints); "auto": seg2any when a condition LoRA is
    # loaded, else cached.
    attention: str = "auto"
    compile: bool = False

    def __post_init__(self) -> None:
        if self.attention not in ("auto", "seg2any", "cached"):
            raise ValueError(f"attention must be auto, seg2any or cached, got {self.attention!r}")
        if self.conditioning not in CONDITIONING:
            raise ValueError(
                f"conditioning must be reference or project, got {self.conditioning!r}"
            )
        if self.condition_tokens not in CONDITION_TOKENS:
            raise ValueError(
                f"condition_tokens must be filtered, masked or all, got {self.condition_tokens!r}"
            )

    def attention_mode(self, has_cond_lora: bool) -> str:
        if self.attention == "auto":
            return "seg2any" if has_cond_lora else "cached"
        return self.attention

    def isolation_range(self, n_double: int, n_single: int) -> range:
        """Default: the first half of the single blocks (Seg2Any's 19..37 on FLUX.1)."""
        if self.isolation_blocks is None:
            return range(n_double, n_double + max(n_single // 2, 1))
        lo, hi = self.isolation_blocks
        return range(lo, hi + 1)


class FluxBackend:
    """FLUX + Seg2Any behind the Generator protocol."""

    name = "flux"
    bands = 3
    supports_inpainting = True

    def __init__(
        self,
        model: str | Path,
        *,
        lora: Sequence[str | LoraSpec] = (),
        device: str = "auto",
        dtype: str = "auto",
        offload: bool = False,
        threads: int | None = None,
        settings: FluxSettings | None = None,
        conditioning: str | None = None,
    ) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.offload = offload and self.device.type == "cuda"
        self.settings = settings or FluxSettings()
        if conditioning is not None:
            self.settings = replace(self.settings, conditioning=conditioning)
        self.model = str(model)
        self.c: Components = load_components(model, self.dtype)
        tr = self.c.transformer
        self.n_blocks = install_processors(tr)
        specs = [s if isinstance(s, LoraSpec) else LoraSpec.parse(s) for s in lora]
        self.adapters: Adapters = load_adapters(tr, specs)
        self.vae_factor = 2 ** (len(self.c.vae.config.block_out_channels) - 1)
        self.patch = 2 * self.vae_factor
        self.tile_multiple = self.patch * self.settings.cond_scale
        self.isolation = self.settings.isolation_range(
            len(tr.transformer_blocks), len(tr.single_transformer_blocks)
        )
        if not self.offload:
            for m in self._modules():
                m.to(self.device)
        if self.settings.compile and self.device.type == "cuda":
            # blocks repeat, so compiling one block's graph serves all of them
            for block in [*tr.transformer_blocks, *tr.single_transformer_blocks]:
                block.compile(dynamic=True)

    @property
    def attention(self) -> str:
        """The attention mode in use: ``seg2any`` (exact) or ``cached``."""
        return self.settings.attention_mode(bool(self.adapters.names("cond")))

    def _modules(self) -> list[Any]:
        c = self.c
        return [c.transformer, c.vae, c.text_encoder, c.text_encoder_2]

    @contextlib.contextmanager
    def _on(self, *modules: Any) -> Iterator[None]:
        """With offloading, a component lives on the GPU only while it is used."""
        if not self.offload:
            yield
            return
        for m in modules:
            m.to(self.device)
        try:
            yield
        finally:
            for m in modules:
                m.to("cpu")
            torch.cuda.empty_cache()

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": Path(self.model).name or self.model,
            "model_config_sha256": self.c.identity,
            "dtype": str(self.dtype).removeprefix("torch."),
            "loras": [self.adapters.sources[n] for n in self.adapters.roles],
            "settings": {k: v for k, v in asdict(self.settings).items() if k != "compile"},
            "attention": self.attention,
        }

    def generate(
        self, cond: TileCondition, *, steps: int, guidance: float, gamma: float, seed: int
    ) -> NDArray[np.uint8]:
        return self.generate_batch(
            [cond], steps=steps, guidance=guidance, gamma=gamma, seeds=[seed]
        )[0]

    def generate_batch(
        self,
        conds: Sequence[TileCondition],
        *,
        steps: int,
        guidance: float,
        gamma: float,
        seeds: Sequence[int],
    ) -> list[NDArray[np.uint8]]:
        """Tiles of one size generated together; one seed per tile."""
        h, w = conds[0].shape
        m = self.tile_multiple
        if any(c.shape != (h, w) for c in conds) or h % m or w % m:
            raise ValueError(f"tiles must share one size, a multiple of {self.tile_multiple}")
        conds = [condition_with_background(c, self.patch) for c in conds]
        try:
            with torch.inference_mode():
                images = self._generate(conds, steps, guidance, gamma, seeds)
        except torch.OutOfMemoryError as exc:
            raise GpuOutOfMemoryError(
                f"out of GPU memory on a batch of {len(conds)} tile(s) of {h}x{w} px: use a "
                f"smaller --tile-size (a multiple of {self.tile_multiple}) or --offload"
            ) from exc
        return _restore_known(conds, images)

    # --- the pipeline -------------------------------------------------------------------

    def _generate(
        self,
        conds: Sequence[TileCondition],
        steps: int,
        guidance: float,
        gamma: float,
        seeds: Sequence[int],
    ) -> NDArray[np.uint8]:
        latents = self.sample_latents(conds, steps=steps, guidance=guidance, gamma=gamma,
                                      seeds=seeds)  # fmt: skip
        h, w = conds[0].shape
        with self._on(self.c.vae):
            vae = self.c.vae
            z = unpack(latents, h // self.vae_factor, w // self.vae_factor)
            z = z / vae.config.scaling_factor + (vae.config.shift_factor or 0)
            pixels = vae.decode(z.to(self.dtype), return_dict=False)[0]
        check_finite_output(pixels, "flux")
        return unit_to_pixels(pixels)

    def sample_latents(
        self,
        conds: Sequence[TileCondition],
        *,
        steps: int,
        guidance: float,
        gamma: float,
        seeds: Sequence[int],
    ) -> Tensor:
        """Packed latents ``(B, N, D)`` after sampling (before decoding), for inspection."""
        s, dev, dt = self.settings, self.device, self.dtype
        b = len(conds)
        h, w = conds[0].shape
        text = self._texts(conds)
        token_entity = self.token_owners(conds).to(dev)
        use_cond = s.use_condition and gamma > 0
        with self._on(self.c.vae):
            cond_tokens, keep = self._condition_tokens(conds) if use_cond else (None, None)
            known, edit = self._known_latents(conds)
        guid = (
            torch.full((b,), float(guidance), device=dev, dtype=dt)
            if self.c.transformer.config.guidance_embeds
            else None
        )
        with self._on(self.c.transformer):
            grid = (h // s.cond_scale // self.patch, w // s.cond_scale // self.patch)
            ids = token_ids(*grid, scale=s.cond_scale, device=dev)
            state: StepState | JointState
            if self.attention == "seg2any":
                toks, tok_ids, cond_valid = _joint_condition(cond_tokens, keep, ids,
                                                             s.condition_tokens, b)  # fmt: skip
                layout = JointLayout(text.slots.to(dev), token_entity,
                                     text.entity_valid.to(dev), cond_valid)  # fmt: skip
                self.adapters.activate(self.c.transformer, "cond")  # sets the cond scales
                self.adapters.activate(self.c.transformer, "image")
                state = joint_state(
                    self.c.transformer, layout, toks, tok_ids, text.pooled.to(dev), guid,
                    gamma=gamma, isolation=self.isolation, dtype=dt,
                    scope=lambda m: self.adapters.scoped(m, "cond"),
                )  # fmt: skip
            else:
                if cond_tokens is not None and keep is not None:
                    self.adapters.activate(self.c.transformer, "cond")
                    mode = s.condition_tokens
                    cache, cond_valid = condition_pass(
                        self.c.transformer, cond_tokens,
                        torch.ones_like(keep) if mode == "all" else keep,
                        ids, text.pooled.to(dev), guid, filtered=mode != "masked", dtype=dt,
                    )  # fmt: skip
                else:
                    cache, cond_valid = {}, torch.zeros(b, 0, dtype=torch.bool, device=dev)
                layout = JointLayout(text.slots.to(dev), token_entity,
                                     text.entity_valid.to(dev), cond_valid)  # fmt: skip
                state = step_state(layout, cache, gamma=gamma, isolation=self.isolation,
                                   use_condition=use_cond, dtype=dt,
                                   text_reads_image=s.text_reads_image)  # fmt: skip
            lh, lw = h // self.vae_factor, w // self.vae_factor
            img_ids = token_ids(lh // 2, lw // 2, device=dev)
            txt_ids = torch.zeros(text.tokens.shape[1], 3, device=dev)
            shape = (1, (lh // 2) * (lw // 2), self._in_ch())
            noise = torch.cat([_noise(seed, shape) for seed in seeds]).to(dev, dt)
            self.adapters.activate(self.c.transformer, "image")
            tokens, pooled = text.tokens.to(dev), text.pooled.to(dev)

            def velocity(x: Tensor, t: Tensor) -> Tensor:
                return denoise(self.c.transformer, x, t.to(dt), tokens, pooled, guid, img_ids,
                               txt_ids, state)  # fmt: skip

            schedule = sigmas(steps, noise.shape[1], self.c.scheduler_config)
            return euler(velocity, noise, schedule, known=known, edit=edit)

    def _texts(self, conds: Sequence[TileCondition]) -> EncodedText:
        from .text import encode_texts

        s = self.settings
        with self._on(self.c.text_encoder, self.c.text_encoder_2):
            return encode_texts(
                self.c, [c.caption for c in conds], [list(c.descriptions) for c in conds],
                caption_tokens=s.caption_tokens, regional_tokens=s.regional_tokens,
                dtype=self.dtype, caption_padding=s.conditioning == "project",
            )  # fmt: skip

    def attention_bias(
        self, conds: Sequence[TileCondition], *, gamma: float = 1.0, isolation: bool = True
    ) -> Tensor:
        """The exact mode's bias ``(B, S, S)`` over ``[text, image, condition]`` tokens of a
        batch, as :meth:`sample_latents` builds it (for inspection and the parity tests)."""
        conds = [condition_with_background(c, self.patch) for c in conds]
        text = self._texts(conds)
        _, keep = self.condition_images(conds)
        ids = torch.zeros(keep.shape[1], 3)
        dummy = torch.zeros(*keep.shape, 1)
        _, _, valid = _joint_condition(dummy, keep, ids, self.settings.condition_tokens, len(conds))
        layout = JointLayout(text.slots, self.token_owners(conds), text.entity_valid, valid)
        return joint_bias(layout, gamma=gamma, isolation=isolation, dtype=torch.float32)[:, 0]

    def _in_ch(self) -> int:
        return int(self.c.transformer.config.in_channels)

    def _encode(self, images: Tensor) -> Tensor:
        vae = self.c.vae
        z = vae.encode(images.to(self.device, self.dtype)).latent_dist.mode()
        return pack((z - (vae.config.shift_factor or 0)) * vae.config.scaling_factor)

    def token_owners(self, conds: Sequence[TileCondition]) -> Tensor:
        """Owner entity of each image token ``(B, N)`` under the ``conditioning`` setting."""
        inst = torch.from_numpy(np.stack([np.asarray(c.instances, np.int64) for c in conds]))
        if self.settings.conditioning == "reference":
            return sample_ids(inst, self.patch)
        return patchify_ids(inst, self.patch)

    def condition_images(self, conds: Sequence[TileCondition]) -> tuple[Tensor, Tensor]:
        """Condition images ``(B, 3, h, w)`` in [-1, 1] and which tokens are non-empty ``(B, K)``,
        under the ``conditioning`` setting (see :class:`FluxSettings`)."""
        scale = self.settings.cond_scale
        if self.settings.conditioning == "reference":
            maps = [contours_from_instances(np.asarray(c.instances), border=True) for c in conds]
            image = torch.stack([reference_contour_image(m, scale) for m in maps])
            return image, reference_keep(image, self.patch)
        maps = [contours_from_instances(np.asarray(c.instances)) for c in conds]
        image = contour_image(torch.from_numpy(np.stack(maps)), scale)
        return image, condition_keep(image[:, 0] > 0, self.patch)

    def _condition_tokens(self, conds: Sequence[TileCondition]) -> tuple[Tensor, Tensor]:
        """Contour maps -> packed VAE tokens ``(B, K, D)`` and which are non-empty ``(B, K)``."""
        image, keep = self.condition_images(conds)
        return self._encode(image), keep.to(self.device)

    def _known_latents(self, conds: Sequence[TileCondition]) -> tuple[Tensor | None, Tensor | None]:
        if all(c.edit_mask is None or c.known is None for c in conds):
            return None, None
        h, w = conds[0].shape
        imgs, edits = [], []
        for c in conds:
            if c.known is None or c.edit_mask is None:
                imgs.append(torch.zeros(3, h, w))
                edits.append(torch.ones(h, w, dtype=torch.bool))
            else:
                imgs.append(pixels_to_unit(c.known))
                edits.append(torch.from_numpy(np.asarray(c.edit_mask, dtype=bool)))
        known = self._encode(torch.stack(imgs))
        m = latent_edit_mask(torch.stack(edits), self.vae_factor)
        edit = m.repeat(1, 1, known.shape[2] // m.shape[2]) > 0
        return known, edit.to(self.device)


def _joint_condition(
    tokens: Tensor | None, keep: Tensor | None, ids: Tensor, mode: str, b: int
) -> tuple[Tensor | None, Tensor | None, Tensor]:
    """Condition tokens, their ids ``(B, K, 3)`` and validity for the exact mode.

    ``filtered``: non-empty tokens left-packed per tile and padded (padding masked);
    ``masked``: every token, the empty ones masked (equivalent, tested); ``all``: every
    token attended (Seg2Any's unfiltered mode).
    """
    if tokens is None or keep is None:
        return None, None, torch.zeros(b, 0, dtype=torch.bool, device=ids.device)
    if mode != "filtered":
        valid = torch.ones_like(keep) if mode == "all" else keep
        return tokens, ids[None].expand(b, -1, -1), valid
    ft = filter_condition_tokens(keep)
    index = ft.index.to(tokens.device)
    picked = torch.gather(tokens, 1, index[..., None].expand(-1, -1, tokens.shape[2]))
    return picked, ids[index], ft.valid.to(tokens.device)


def _noise(seed: int, shape: tuple[int, ...]) -> Tensor:
    """Noise drawn on the CPU, so a seed gives the same tile on every device."""
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))


def _restore_known(
    conds: Sequence[TileCondition], images: NDArray[np.uint8]
) -> list[NDArray[np.uint8]]:
    """Outside the edit mask the output is the known pixels, exactly."""
    out = []
    for c, img in zip(conds, images, strict=True):
        img = img.copy()
        if c.known is not None and c.edit_mask is not None:
            keep = ~np.asarray(c.edit_mask, dtype=bool)
            img[keep] = np.asarray(c.known)[..., :3][keep]
        out.append(img)
    return out
