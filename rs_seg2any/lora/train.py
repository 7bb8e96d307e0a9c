"""``train-lora``: data -> adapter folder (weights, config, card, validation grid, metrics).

The same entry point serves the CLI, job files and ``rs.train_lora``; the backend decides the
trainer (the embedded model on CPU here, FLUX in :mod:`rs_seg2any.lora.flux`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..atomic import write_json
from ..options import LayerOptions
from ..progress import NullProgress, Progress
from .card import LoraResult, make_card
from .params import LoraTrainParams


def train_lora(
    params: LoraTrainParams,
    layer: LayerOptions,
    out: Path,
    *,
    progress: Progress | None = None,
    encoder: Any = None,
) -> LoraResult:
    """Train an adapter on ``params.images`` + ``params.labels`` into the folder ``out``."""
    from ..deps import require
    from ..geoio import ensure_writable_dir

    require("torch", "model", user="train-lora")
    require("peft", "lora", user="train-lora")
    progress = progress or NullProgress()
    out = ensure_writable_dir(out)
    if params.backend == "flux":
        from .flux import train_flux_lora

        res: LoraResult = train_flux_lora(params, layer, out, progress=progress)
        return res
    return _train_tiny(params, layer, out, progress, encoder)


def _train_tiny(
    params: LoraTrainParams, layer: LayerOptions, out: Path, progress: Progress, encoder: Any
) -> LoraResult:
    import torch

    from ..generators.registry import shipped_weights
    from ..generators.tiny.weights import read_config
    from .adapter import lora_config, save_adapter
    from .data import grid_crops, load_training_data
    from .evaluate import picture_grid, real_rgb, render, scores, set_lora, train_segmenter
    from .tiny import TinyLoraTrainer

    torch.set_num_threads(params.threads or 1)
    weights = Path(params.model) if params.model else shipped_weights()
    multiple = read_config(weights).cond_patch
    progress.stage("read training data")
    data = load_training_data(params, layer, multiple=multiple)
    tr = TinyLoraTrainer(params, data, out, encoder=encoder, progress=progress)
    t0 = time.perf_counter()
    hist = tr.run()
    seconds = time.perf_counter() - t0
    state, best_loss, best_step = tr.final_state()
    tr.load_state(state)
    flow_after = tr.val_flow_loss()
    set_lora(tr.model, False)
    flow_before = tr.val_flow_loss()  # the base model (the band view is fixed)
    set_lora(tr.model, True)
    progress.stage("score on the validation area")
    crops = grid_crops(data.val, data.crop, 16)
    real = real_rgb(tr, crops)
    base = render(tr, crops, adapted=False, seed=params.seed)
    adapted = render(tr, crops, adapted=True, seed=params.seed)
    seg = (
        train_segmenter(tr, params.segmenter_steps, params.seed) if params.segmenter_steps else None
    )
    before, after = scores(tr, crops, real, base, seg), scores(tr, crops, real, adapted, seg)
    metrics: dict[str, Any] = {
        "val_loss_before": hist.val[0][1],
        "val_loss_after": best_loss,
        "val_flow_loss_before": flow_before,
        "val_flow_loss_after": flow_after,
        "best_step": best_step,
        "stopped_early": hist.stopped_early,
        "train_seconds_this_run": round(seconds, 1),
        **{f"{k}_before": v for k, v in before.items()},
        **{f"{k}_after": v for k, v in after.items()},
    }
    columns = {"real": real, "base": base, "LoRA": adapted}
    outputs = {"grid": picture_grid(out / "validation_grid.png", data, crops, columns)}
    cfg = lora_config(params.rank, params.lora_alpha)
    lora = {k: v for k, v in state.items() if not k.startswith("bands.")}
    bands = {k[6:]: v for k, v in state.items() if k.startswith("bands.")}
    card = make_card(params, data, tr, metrics, hist.step, best_step, weights, out.name)
    save_adapter(out, lora, cfg, card, bands or None)
    history = {"val": hist.val, "loss": hist.loss}
    outputs["metrics"] = write_json(out / "metrics.json", {"metrics": metrics, **history})
    outputs["adapter"] = out / "adapter_model.safetensors"
    outputs["card"] = out / "README.md"
    return LoraResult(out, outputs, metrics, tr)
