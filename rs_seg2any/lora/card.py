"""What a LoRA run returns, and the card that travels with an adapter."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .params import LoraTrainParams


@dataclass(frozen=True)
class LoraResult:
    out_dir: Path
    outputs: dict[str, Path]
    metrics: dict[str, Any]
    trainer: Any = field(default=None, repr=False, compare=False)  # the adapted model in memory


def make_card(
    params: LoraTrainParams,
    data: Any,
    tr: Any,
    metrics: dict[str, Any],
    steps: int,
    best_step: int,
    weights: Path,
    name: str,
) -> dict[str, Any]:
    """Everything a user (and the loader's checks) must know about an adapter."""
    names = data.scenes[0].band_names
    bands = [
        {"name": names[i], "source_band": b, "lo": data.lo[i], "hi": data.hi[i]}
        for i, b in enumerate(data.bands)
    ]
    gsds = [s.gsd for s in data.scenes]
    return {
        "name": name,
        "format": "rs_seg2any.lora/1",
        "backend": params.backend,
        "base": {"weights": weights.name, "sha256": tr.base_sha},
        "rank": params.rank,
        "alpha": params.lora_alpha,
        "bands": bands,
        "rgb": list(data.rgb) if data.rgb is not None else None,
        "band_adapter": tr.bands is not None,
        "taxonomy": data.taxonomy.name,
        "classes": {str(k): v for k, v in data.class_names().items()},
        "gsd_m": sum(gsds) / len(gsds),
        "crop": data.crop,
        "footprint": [asdict(s) for s in data.scenes],
        "split": {"side": params.val_side, "fraction": params.val_fraction},
        "steps": steps,
        "best_step": best_step,
        "metrics": metrics,
        "licence": params.licence,
        "seed": params.seed,
    }
