"""LoRA training of the embedded tiny model on CPU: masked flow loss, resumable, deterministic.

Every step's crops, timesteps and noise derive from ``(seed, step)`` alone, and a checkpoint
holds the trainable tensors, the optimiser state and the validation history, so a run that is
stopped and resumed ends with exactly the tensors of an uninterrupted run. The base model and
its autoencoder stay frozen; peft LoRA layers (and, for other band sets, a band adapter) train.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..atomic import atomic_output, write_json
from ..errors import JobError
from ..generators.base import weights_digest
from ..generators.tiny.autoencoder import TinyAE
from ..generators.tiny.model import Condition, TinySeg2Any
from ..generators.tiny.sampler import sample_t
from ..generators.tiny.text import TEXT_DIM, TextEncoder, default_encoder
from ..generators.tiny.weights import load_generator_parts
from ..progress import NullProgress, Progress
from .adapter import TINY_TARGETS, inject, lora_config, lora_state
from .bands import BandAdapter
from .data import Crop, TrainingData, caption, grid_crops, random_crops
from .params import LoraTrainParams

MAX_ENTITIES = 32
T_NOISE_FRAC = 0.25  # as the base model: a quarter of samples near pure noise (layout prior)
P_DROP = 0.1  # dropped text / dropped shapes, so guidance keeps working
VAL_CROPS = 32


@dataclass
class History:
    step: int = 0
    best: float = math.inf
    best_step: int = 0
    bad: int = 0
    stopped_early: bool = False
    val: list[tuple[int, float]] = field(default_factory=list)
    loss: list[tuple[int, float]] = field(default_factory=list)


def collate(
    crops: list[Crop], encoder: TextEncoder, data: TrainingData
) -> tuple[Tensor, Tensor, Condition]:
    """Bands ``(B, N, S, S)`` in [-1, 1], validity ``(B, S, S)`` and the Seg2Any condition."""
    b = len(crops)
    e = max(len(c.descriptions) for c in crops)  # padded to this batch's most entities only
    texts: list[str] = []
    valid_t = torch.zeros(b, e, dtype=torch.bool)
    for i, c in enumerate(crops):
        texts.extend(c.descriptions)
        texts.extend([""] * (e - len(c.descriptions)))
        valid_t[i, : len(c.descriptions)] = True
    emb = encoder.encode(texts).view(b, e, TEXT_DIM) * valid_t[:, :, None]
    from ..raster import contours_from_instances

    cond = Condition(
        instances=torch.from_numpy(np.stack([c.instances for c in crops])).long(),
        contours=torch.from_numpy(
            np.stack([contours_from_instances(c.instances) for c in crops])
        ).float(),
        texts=emb,
        text_valid=valid_t,
        caption=encoder.encode([caption(c.labels, data.taxonomy) for c in crops]),
    )
    x = torch.from_numpy(np.stack([c.image for c in crops])).permute(0, 3, 1, 2).float()
    valid = torch.from_numpy(np.stack([c.valid for c in crops]))
    return x, valid, cond


def masked_flow_loss(
    model: TinySeg2Any, z0: Tensor, cond: Condition, t: Tensor, noise: Tensor, keep: Tensor
) -> Tensor:
    """Clean-image (x-space) flow loss over the positions ``keep`` (B, h, w) only."""
    tt = t[:, None, None, None]
    z = tt * z0 + (1 - tt) * noise
    out: Tensor = model(z, t, model.encode_context(cond))
    x_hat = out if model.cfg.prediction == "x" else z + (1 - tt) * out
    w = keep[:, None].to(z0.dtype)
    return ((x_hat - z0) ** 2 * w).sum() / (w.sum() * z0.shape[1]).clamp_min(1.0)


def latent_keep(valid: Tensor, ds: int) -> Tensor:
    """A model position counts only if every pixel under it is valid."""
    if ds == 1:
        return valid
    return F.max_pool2d((~valid)[:, None].float(), ds)[:, 0] == 0


class LoraLoop:
    """The backend-neutral part of a LoRA run: schedule, validation and early stopping,
    checkpoints and resume. A trainer provides the tensors and the losses."""

    p: LoraTrainParams
    out: Path
    progress: Progress
    opt: torch.optim.Optimizer
    hist: History
    best_state: dict[str, Tensor]
    base_sha: str

    def trainable(self) -> list[nn.Parameter]:
        raise NotImplementedError

    def state(self) -> dict[str, Tensor]:
        raise NotImplementedError

    def load_state(self, state: dict[str, Tensor]) -> None:
        raise NotImplementedError

    def losses(self, step: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def val_loss(self) -> float:
        raise NotImplementedError

    def step_rngs(self, step: int) -> tuple[random.Random, torch.Generator]:
        key = self.p.seed * 1_000_003 + step
        return random.Random(key), torch.Generator().manual_seed(key)

    def train_step(self) -> float:
        loss, total = self.losses(self.hist.step)
        self.opt.zero_grad(set_to_none=True)
        total.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(self.trainable(), 1.0)
        self.opt.step()
        self.hist.step += 1
        return float(loss.item())

    # --- checkpoint --------------------------------------------------------------------------

    def run_key(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed (the step budget may change)."""
        skip = {"max_steps", "minutes", "restart", "patience", "threads"}
        key = {k: v for k, v in asdict(self.p).items() if k not in skip}
        key["base_sha256"] = self.base_sha
        plain: dict[str, Any] = json.loads(json.dumps(key, default=str))
        return plain

    def save_checkpoint(self) -> None:
        from safetensors.torch import save_file

        ckpt = self.out / "checkpoint"
        ckpt.mkdir(parents=True, exist_ok=True)
        tensors = {**self.state(), **{f"best.{k}": v for k, v in self.best_state.items()}}
        with atomic_output(ckpt / "trainable.safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
        with atomic_output(ckpt / "optimizer.pt") as tmp:
            torch.save(self.opt.state_dict(), tmp)
        write_json(ckpt / "progress.json", {"key": self.run_key(), "history": asdict(self.hist)})

    def try_resume(self) -> bool:
        from safetensors.torch import load_file

        ckpt = self.out / "checkpoint"
        if not (ckpt / "progress.json").is_file():
            return False
        saved = json.loads((ckpt / "progress.json").read_text())
        if saved.get("key") != self.run_key():
            raise JobError(
                f"{self.out} holds a checkpoint of another LoRA run (other data or settings); "
                "use another --out, or --restart to discard it"
            )
        tensors = load_file(str(ckpt / "trainable.safetensors"))
        self.load_state({k: v for k, v in tensors.items() if not k.startswith("best.")})
        self.best_state = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        self.opt.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
        h = saved["history"]
        self.hist = History(
            h["step"],
            float(h["best"]),
            h["best_step"],
            h["bad"],
            h["stopped_early"],
            [tuple(v) for v in h["val"]],  # type: ignore[misc]
            [tuple(v) for v in h["loss"]],
        )  # type: ignore[misc]
        return True

    # --- the loop ------------------------------------------------------------------------------

    def validate(self) -> bool:
        """Record the validation loss; keep the best tensors; True when patience ran out."""
        v = self.val_loss()
        self.hist.val.append((self.hist.step, v))
        if v < self.hist.best - 1e-7:
            self.hist.best, self.hist.best_step, self.hist.bad = v, self.hist.step, 0
            self.best_state = self.state()
        else:
            self.hist.bad += 1
        self.progress.message(f"step {self.hist.step}: validation loss {v:.5f}")
        return bool(self.p.patience and self.hist.bad >= self.p.patience)

    def run(self) -> History:
        p = self.p
        if p.restart or not self.try_resume():
            self.hist = History()
        if not self.hist.val:
            self.validate()  # step 0: the base model's held-out loss
        start = time.perf_counter()
        self.progress.stage("train LoRA", p.max_steps)
        self.progress.advance(self.hist.step)
        while self.hist.step < p.max_steps and not self.hist.stopped_early:
            if p.minutes is not None and time.perf_counter() - start > p.minutes * 60:
                break
            loss = self.train_step()
            self.hist.loss.append((self.hist.step, loss))
            self.progress.advance(1)
            # the schedule depends on the step alone, so a resumed run validates (and keeps
            # its best tensors) exactly where an uninterrupted one does
            if self.hist.step % p.val_every == 0:
                self.hist.stopped_early = self.validate()
            if self.hist.step % p.ckpt_every == 0:
                self.save_checkpoint()
        self.save_checkpoint()
        return self.hist

    def final_state(self) -> tuple[dict[str, Tensor], float, int]:
        """The tensors to ship: the last ones when they beat the best validation (checked
        here, outside the recorded history), else the best; with their loss and step."""
        last = self.hist.val[-1][0] if self.hist.val else -1
        if last != self.hist.step:
            v = self.val_loss()
            if v < self.hist.best - 1e-7:
                return self.state(), v, self.hist.step
        return self.best_state, self.hist.best, self.hist.best_step


class TinyLoraTrainer(LoraLoop):
    """Owns the adapted model, optimiser, fixed validation batch and checkpoint of one run."""

    def __init__(
        self,
        params: LoraTrainParams,
        data: TrainingData,
        out: Path,
        *,
        encoder: TextEncoder | None = None,
        progress: Progress | None = None,
    ) -> None:
        from ..generators.registry import shipped_weights

        self.p, self.data, self.out = params, data, out
        self.progress = progress or NullProgress()
        torch.set_num_threads(params.threads or 1)
        self.weights = Path(params.model) if params.model else shipped_weights()
        self.base_sha = weights_digest(self.weights)
        model, ae = load_generator_parts(self.weights)
        self.ae: TinyAE | None = ae
        torch.manual_seed(params.seed)
        self.model: TinySeg2Any = inject(  # type: ignore[assignment]
            model, lora_config(params.rank, params.lora_alpha), "default"
        )
        for name, prm in self.model.named_parameters():
            prm.requires_grad_("lora_" in name)
        rgb = data.rgb
        self.bands = (
            BandAdapter(data.n_bands, rgb) if data.n_bands != 3 or rgb != (0, 1, 2) else None
        )
        self.encoder = encoder or default_encoder()
        self.opt = torch.optim.AdamW(self.trainable(), lr=params.lr, weight_decay=0.0)
        self.hist = History()
        self.best_state = self.state()
        self.val = self._fixed_val()

    # --- tensors --------------------------------------------------------------------------

    def trainable(self) -> list[nn.Parameter]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        return params + (self.bands.trainable() if self.bands is not None else [])

    def state(self) -> dict[str, Tensor]:
        """Every trained tensor (LoRA in peft's keys, band adapter prefixed ``bands.``)."""
        out = lora_state(self.model, "default")
        if self.bands is not None:
            out.update(
                {f"bands.{k}": v.detach().clone() for k, v in self.bands.state_dict().items()}
            )
        return out

    def load_state(self, state: dict[str, Tensor]) -> None:
        from peft.utils import set_peft_model_state_dict

        lora = {
            k.removeprefix("base_model.model."): v
            for k, v in state.items()
            if not k.startswith("bands.")
        }
        set_peft_model_state_dict(self.model, lora, adapter_name="default")
        if self.bands is not None:
            self.bands.load_state_dict(
                {k[6:]: v for k, v in state.items() if k.startswith("bands.")}
            )

    # --- data in model space ---------------------------------------------------------------

    def to_model(self, x: Tensor, grad: bool = False) -> Tensor:
        """Bands -> the RGB model's input (band adapter), without gradient unless asked."""
        if self.bands is None:
            return x
        with torch.set_grad_enabled(grad):
            return self.bands.to_model(x)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        return x if self.ae is None else self.ae.encode(x)

    def _fixed_val(self) -> list[tuple[Tensor, Tensor, Condition, Tensor, Tensor]]:
        crops = grid_crops(self.data.val, self.data.crop, VAL_CROPS)
        gen = torch.Generator().manual_seed(1234)
        out = []
        for i in range(0, len(crops), 8):
            x, valid, cond = collate(crops[i : i + 8], self.encoder, self.data)
            t = sample_t(x.shape[0], gen)
            ds = self.model.cfg.downsample
            shape = (x.shape[0], self.model.cfg.channels, x.shape[2] // ds, x.shape[3] // ds)
            out.append((x, valid, cond, t, torch.randn(shape, generator=gen)))
        return out

    # --- steps -------------------------------------------------------------------------------

    def losses(self, step: int) -> tuple[Tensor, Tensor]:
        """The masked flow loss of ``step``'s batch, and the total with the band loss."""
        rng, gen = self.step_rngs(step)
        crops = random_crops(self.data.train, self.data.crop, self.p.batch, rng)
        x, valid, cond = collate(crops, self.encoder, self.data)
        n = x.shape[0]
        cond.drop_text = torch.rand(n, generator=gen) < P_DROP
        cond.drop_cond = torch.rand(n, generator=gen) < P_DROP
        t = sample_t(n, gen)
        near = torch.rand(n, generator=gen) < T_NOISE_FRAC
        t = torch.where(near, torch.rand(n, generator=gen) * 0.1, t)
        z0 = self.encode(self.to_model(x))
        noise = torch.randn(z0.shape, generator=gen)
        keep = latent_keep(valid, self.model.cfg.downsample)
        loss = masked_flow_loss(self.model, z0, cond, t, noise, keep)
        return loss, loss + self.band_loss(x, valid)

    def band_loss(self, x: Tensor, valid: Tensor) -> Tensor:
        """Masked reconstruction of all bands through the frozen autoencoder (band adapter)."""
        if self.bands is None:
            return torch.zeros(())
        rgb = self.bands.to_model(x)
        if self.ae is not None:
            rgb = self.ae.decode(self.ae.encode(rgb))
        w = valid[:, None].to(x.dtype)
        err = (self.bands.to_bands(rgb) - x) ** 2 * w
        return err.sum() / (w.sum() * x.shape[1]).clamp_min(1.0)

    @torch.no_grad()
    def val_loss(self) -> float:
        """Held-out masked flow loss (plus, with a band adapter, the band reconstruction loss:
        the best tensors must be best at both)."""
        total, n = 0.0, 0
        for x, valid, cond, t, noise in self.val:
            z0 = self.encode(self.to_model(x))
            keep = latent_keep(valid, self.model.cfg.downsample)
            loss = masked_flow_loss(self.model, z0, cond, t, noise, keep) + self.band_loss(x, valid)
            total += float(loss) * x.shape[0]
            n += x.shape[0]
        return total / max(n, 1)

    @torch.no_grad()
    def val_flow_loss(self) -> float:
        """Held-out masked flow loss alone (the figure to compare with the base model)."""
        total, n = 0.0, 0
        for x, valid, cond, t, noise in self.val:
            z0 = self.encode(self.to_model(x))
            keep = latent_keep(valid, self.model.cfg.downsample)
            total += float(masked_flow_loss(self.model, z0, cond, t, noise, keep)) * x.shape[0]
            n += x.shape[0]
        return total / max(n, 1)


def needs_bands(data: TrainingData) -> bool:
    return data.n_bands != 3 or data.rgb != (0, 1, 2)


TARGETS = TINY_TARGETS
