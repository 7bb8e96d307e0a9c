"""Base-model training loop for the tiny generator: wall-clock budgeted, resumable.

One process, one (or two) CPU threads, bf16 autocast (AMX/AVX-512 make it ~2x faster than
fp32 on CPU). Checkpoints are safetensors (model + EMA) plus an optimizer state that loads
with ``torch.load(weights_only=True)``; a rerun with the same ``out`` resumes.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from tqdm import tqdm

from rs_seg2any.atomic import atomic_output, write_json
from rs_seg2any.errors import InputError
from rs_seg2any.generators.tiny.model import TinyConfig, TinySeg2Any, count_parameters
from rs_seg2any.generators.tiny.sampler import flow_loss, sample_t
from rs_seg2any.generators.tiny.text import TextEncoder, default_encoder
from rs_seg2any.generators.tiny.weights import load_autoencoder, save_weights
from rs_seg2any.train.dubai import Pair, collate, load_pairs, random_crop
from rs_seg2any.yamlio import load_yaml_file


@dataclass
class TrainConfig:
    """Everything a run needs; read from ``geoconf/train/*.yaml``."""

    data_root: str = "../shared/data/dubai_aerial"
    train_tiles: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6])
    val_tiles: list[int] = field(default_factory=lambda: [7])
    out: str = "out/tiny_base"
    crop: int = 128
    batch: int = 32
    max_entities: int = 32
    max_steps: int = 100_000
    minutes: float = 55.0
    clock: str = "wall"  # "cpu": budget and logs in process CPU time (fair on a shared machine)
    lr: float = 4e-4
    lr_decay: bool = False  # cosine decay to 10 % over the time budget (for the final run)
    warmup: int = 200
    weight_decay: float = 0.0
    ema: float = 0.999
    loss_space: str = "v"  # "x": clean-image MSE (trains layout faster at small scale)
    t_mean: float = -0.8  # logit-normal timestep distribution
    t_std: float = 0.8
    t_noise_frac: float = 0.0  # extra share of samples at t ~ U(0, 0.1): the layout prior
    p_drop_text: float = 0.1
    p_drop_cond: float = 0.1
    pos_offset: int = 8
    bf16: bool = True
    threads: int = 1
    val_every: int = 200
    val_crops: int = 64
    ckpt_every: int = 500
    seed: int = 0
    autoencoder: str | None = None  # latent variant: path of a trained tiny AE
    init_from: str | None = None  # warm start: weights whose matching tensors are loaded
    model: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: Path) -> TrainConfig:
        raw = load_yaml_file(path, "training config") or {}
        if not isinstance(raw, dict):
            raise InputError(f"training config '{path}' must be a mapping of settings")
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"training config '{path}': unknown keys {sorted(unknown)}")
        defaults = cls()
        for key, value in raw.items():
            _check_kind(path, key, value, getattr(defaults, key))
        return cls(**raw)


def _check_kind(path: Path, key: str, value: Any, default: Any) -> None:
    """A setting has the kind of its default (an int where a float is expected is fine)."""
    if value is None or default is None:
        return
    kinds: tuple[type, ...] = (int, float) if type(default) is float else (type(default),)
    wrong = not isinstance(value, kinds) or (isinstance(value, bool) and type(default) is not bool)
    if isinstance(value, float) and not math.isfinite(value):
        wrong = True
    if wrong:
        raise InputError(
            f"training config '{path}': '{key}' must be {type(default).__name__} like its "
            f"default {default!r} (got {value!r})"
        )


class Trainer:
    """Owns the model, EMA copy, optimizer, data and logs of one run."""

    def __init__(self, cfg: TrainConfig, encoder: TextEncoder | None = None) -> None:
        self.cfg = cfg
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.encoder = encoder or default_encoder()
        self.ae = load_autoencoder(Path(cfg.autoencoder)) if cfg.autoencoder else None
        mcfg = dict(cfg.model)
        if self.ae is not None:
            mcfg.update(channels=self.ae.cfg.latent, downsample=self.ae.cfg.downsample)
        self.model = TinySeg2Any(TinyConfig.from_dict(mcfg))
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay
        )
        self.step = 0
        self.elapsed = 0.0
        self.rng = random.Random(cfg.seed)
        root = Path(cfg.data_root)
        self.train_pairs = load_pairs(root, cfg.train_tiles)
        self.val_pairs = load_pairs(root, cfg.val_tiles)
        self.weights = [p.classes.size for p in self.train_pairs]
        self.val_batch = self._fixed_val()

    def _fixed_val(self) -> list[tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]]:
        """Fixed held-out crops, timesteps and noise, so val losses are comparable."""
        rng = random.Random(1234)
        gen = torch.Generator().manual_seed(1234)
        batches = []
        weights = [p.classes.size for p in self.val_pairs]
        for start in range(0, self.cfg.val_crops, 32):
            n = min(32, self.cfg.val_crops - start)
            pairs = rng.choices(self.val_pairs, weights=weights, k=n)
            crops = [random_crop(p, self.cfg.crop, rng, self.cfg.max_entities) for p in pairs]
            x, cond = collate(crops, self.encoder, self.cfg.max_entities, None)
            x = self.to_model_space(x)
            t = sample_t(n, gen)
            batches.append((x, cond, t, torch.randn(x.shape, generator=gen)))
        return batches

    def batch(self) -> tuple[torch.Tensor, Any]:
        cfg = self.cfg
        pairs: list[Pair] = self.rng.choices(self.train_pairs, weights=self.weights, k=cfg.batch)
        crops = [random_crop(p, cfg.crop, self.rng, cfg.max_entities) for p in pairs]
        x, cond = collate(crops, self.encoder, cfg.max_entities, self.rng)
        x = self.to_model_space(x)
        cond.drop_text = torch.rand(cfg.batch) < cfg.p_drop_text
        cond.drop_cond = torch.rand(cfg.batch) < cfg.p_drop_cond
        return x, cond

    @torch.no_grad()
    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels, or autoencoder latents for the latent variant."""
        if self.ae is None:
            return x
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.bf16):
            return self.ae.encode(x).float()

    def lr_at(self, step: int) -> float:
        lr = self.cfg.lr * min(1.0, (step + 1) / max(self.cfg.warmup, 1))
        if self.cfg.lr_decay:
            frac = min(1.0, self.elapsed / max(self.cfg.minutes * 60, 1.0))
            lr *= 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))
        return lr

    def train_step(self) -> float:
        x, cond = self.batch()
        off = (
            self.rng.randrange(self.cfg.pos_offset + 1),
            self.rng.randrange(self.cfg.pos_offset + 1),
        )
        for g in self.opt.param_groups:
            g["lr"] = self.lr_at(self.step)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.bf16):
            t = sample_t(x.shape[0], mean=self.cfg.t_mean, std=self.cfg.t_std)
            noisy = torch.rand(x.shape[0]) < self.cfg.t_noise_frac
            t = torch.where(noisy, torch.rand(x.shape[0]) * 0.1, t)
            loss = flow_loss(
                self.model, x, cond, t, torch.randn_like(x), off, space=self.cfg.loss_space
            )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self._update_ema()
        self.step += 1
        return float(loss.item())

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.cfg.ema, (1 + self.step) / (10 + self.step))
        for pe, pm in zip(self.ema.parameters(), self.model.parameters(), strict=True):
            pe.lerp_(pm, 1 - decay)

    @torch.no_grad()
    def val_loss(self, model: TinySeg2Any | None = None) -> float:
        m = model or self.ema
        total, n = 0.0, 0
        for x, cond, t, noise in self.val_batch:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.bf16):
                total += float(flow_loss(m, x, cond, t, noise)) * x.shape[0]
            n += x.shape[0]
        return total / n

    def save(self) -> None:
        ckpt = self.out / "checkpoint"
        meta = {"step": str(self.step), "elapsed_s": f"{self.elapsed:.1f}"}
        save_weights(self.model, ckpt / "model.safetensors", extra=meta, ae=self.ae)
        save_weights(self.ema, ckpt / "ema.safetensors", extra=meta, ae=self.ae)
        state = {
            "opt": self.opt.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "rng": json.dumps(self.rng.getstate()),
        }
        with atomic_output(ckpt / "state.pt") as tmp:
            torch.save(state, tmp)

    def try_resume(self) -> bool:
        ckpt = self.out / "checkpoint"
        if not (ckpt / "state.pt").is_file():
            return False
        for target, name in ((self.model, "model"), (self.ema, "ema")):
            sd = load_file(str(ckpt / f"{name}.safetensors"))
            target.load_state_dict({k: v for k, v in sd.items() if not k.startswith("ae.")})
        state = torch.load(ckpt / "state.pt", weights_only=True)
        self.opt.load_state_dict(state["opt"])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        st = json.loads(state["rng"])
        self.rng.setstate((st[0], tuple(st[1]), st[2]))
        return True

    def warm_start(self, path: Path) -> None:
        """Load every tensor of ``path`` that the model has with the same shape.

        New modules (e.g. a refiner added to a trained transformer) keep their
        zero-initialised outputs, so training continues from the old model's behaviour.
        """
        sd = {k: v.float() for k, v in load_file(str(path)).items() if not k.startswith("ae.")}
        own = self.model.state_dict()
        usable = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
        if not usable:
            raise InputError(f"{path}: no tensor matches the model; not a warm start")
        self.model.load_state_dict(usable, strict=False)
        self.ema.load_state_dict(self.model.state_dict())
        print(f"warm start from {path}: {len(usable)}/{len(own)} tensors", flush=True)

    def run(self, progress: bool = True) -> Path:
        """Train until ``max_steps`` or the wall-clock budget; return the EMA weights path."""
        cfg = self.cfg
        resumed = self.try_resume()
        write_json(self.out / "config.json", asdict(cfg), indent=1, sort_keys=False)
        loss_log = (self.out / "loss.csv").open("a", newline="")
        val_log = (self.out / "val.csv").open("a", newline="")
        lw, vw = csv.writer(loss_log), csv.writer(val_log)
        if not resumed and cfg.init_from:
            self.warm_start(Path(cfg.init_from))
        if not resumed:
            lw.writerow(["step", "elapsed_s", "loss", "lr"])
            vw.writerow(["step", "elapsed_s", "val_loss_ema", "val_loss_raw"])
        n_params = count_parameters(self.model)
        bar = tqdm(
            total=cfg.max_steps,
            initial=self.step,
            disable=not progress,
            desc=f"tiny {n_params / 1e6:.1f}M",
            dynamic_ncols=True,
        )
        now = time.process_time if cfg.clock == "cpu" else time.perf_counter
        start = now() - self.elapsed
        budget = cfg.minutes * 60
        while self.step < cfg.max_steps and self.elapsed < budget:
            loss = self.train_step()
            self.elapsed = now() - start
            lw.writerow(
                [self.step, f"{self.elapsed:.1f}", f"{loss:.5f}", f"{self.lr_at(self.step):.2e}"]
            )
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            if self.step % cfg.val_every == 0:
                vw.writerow(
                    [
                        self.step,
                        f"{self.elapsed:.1f}",
                        f"{self.val_loss():.5f}",
                        f"{self.val_loss(self.model):.5f}",
                    ]
                )
                val_log.flush()
                loss_log.flush()
            if self.step % cfg.ckpt_every == 0:
                self.save()
        vw.writerow(
            [
                self.step,
                f"{self.elapsed:.1f}",
                f"{self.val_loss():.5f}",
                f"{self.val_loss(self.model):.5f}",
            ]
        )
        self.save()
        bar.close()
        loss_log.close()
        val_log.close()
        return self.out / "checkpoint" / "ema.safetensors"


def train_base(config_path: Path, progress: bool = True, **overrides: Any) -> Path:
    """Entry point of ``rs-seg2any train-base --config PATH``."""
    cfg = TrainConfig.from_yaml(config_path)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return Trainer(cfg).run(progress=progress)
