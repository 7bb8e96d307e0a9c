"""Typed parameters of ``train-lora``: the one schema of the API verb, the CLI and job files.

Light on purpose (no torch): the CLI builds its options from these fields at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from ..limits import check
from ..params import opt

VAL_SIDES = ("east", "west", "north", "south")
LORA_BACKENDS = ("tiny", "flux")


def parse_bands(text: str | None, what: str = "--bands") -> tuple[int, ...] | None:
    """``"4,3,2"`` -> ``(4, 3, 2)`` (1-based band numbers); None stays None."""
    if text is None or str(text).strip() == "":
        return None
    try:
        bands = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        raise InputError(
            f"{what} must be comma-separated band numbers like 4,3,2 (got {text!r})"
        ) from None
    if not bands or min(bands) < 1 or len(set(bands)) != len(bands):
        raise InputError(f"{what} must list distinct band numbers >= 1 (got {text!r})")
    return bands


@dataclass(frozen=True)
class LoraTrainParams:
    """What ``train-lora`` adapts, on which data, and how long."""

    images: tuple[str, ...] = opt(
        (), "georeferenced image (GeoTIFF; repeatable)", input=True, required=True
    )
    labels: str = opt("", "polygon layer of the images (any CRS)", input=True, required=True)
    ignore_mask: tuple[str, ...] = opt(
        (),
        "cloud/ignore raster per image, in the order of --images (non-zero = ignore)",
        input=True,
    )
    bands: str | None = opt(
        None, "1-based band numbers to adapt, in order (default: all)", metavar="4,3,2,8"
    )
    rgb: str | None = opt(
        None,
        "which three of --bands feed the model's red, green, blue (default: the bands tagged "
        "red/green/blue, else the first three)",
        metavar="4,3,2",
    )
    border: int = opt(0, "pixels along each image edge left out of the loss")
    val_side: str = opt("east", "side of each image held out for validation", choices=VAL_SIDES)
    val_fraction: float = opt(0.25, "share of each image (by area) held out for validation")
    rank: int = opt(8, "LoRA rank")
    alpha: float | None = opt(None, "LoRA alpha (default: the rank)")
    max_steps: int = opt(300, "training steps")
    minutes: float | None = opt(None, "wall-clock budget (stops early, checkpointed)")
    batch: int = opt(8, "crops per step")
    crop: int = opt(64, "crop size in pixels (a multiple of the model's token size)")
    lr: float = opt(2e-3, "learning rate")
    val_every: int = opt(25, "steps between validations")
    patience: int = opt(0, "stop after this many validations without improvement (0: never)")
    ckpt_every: int = opt(25, "steps between checkpoints")
    segmenter_steps: int = opt(150, "steps of the layout-fidelity segmenter (0: no score)")
    licence: str = opt("unspecified", "licence of the training data, as you declare it")
    threads: int | None = opt(None, "CPU threads (default: 1)")
    seed: int = opt(0, "seed of crops, noise and initialisation")
    backend: str = opt("tiny", "backend to adapt", choices=LORA_BACKENDS)
    model: str | None = opt(None, "base weights (tiny) or FLUX folder (flux)")
    restart: bool = opt(False, "discard a checkpoint in --out instead of resuming")

    def __post_init__(self) -> None:
        # every number through the shared rules table (rs_seg2any/limits.py), as elsewhere
        for name in ("seed", "threads", "minutes", "rank", "max_steps", "batch", "crop",
                     "val_every", "patience", "ckpt_every", "segmenter_steps", "border",
                     "val_fraction", "lr", "alpha"):  # fmt: skip
            check(name, getattr(self, name))
        if self.val_side not in VAL_SIDES:
            raise InputError(f"--val-side must be one of {', '.join(VAL_SIDES)}")
        if self.ignore_mask and len(self.ignore_mask) != len(self.images):
            raise InputError(
                f"--ignore-mask: give one per image ({len(self.images)} images, "
                f"{len(self.ignore_mask)} masks)"
            )
        bands = parse_bands(self.bands)
        rgb = parse_bands(self.rgb, "--rgb")
        if rgb is not None:
            if len(rgb) != 3:
                raise InputError(f"--rgb must name exactly three bands (got {self.rgb!r})")
            if bands is not None and not set(rgb) <= set(bands):
                raise InputError(f"--rgb {self.rgb} must be among --bands {self.bands}")

    @property
    def lora_alpha(self) -> float:
        return float(self.alpha) if self.alpha is not None else float(self.rank)
