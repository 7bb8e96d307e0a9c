"""Training loop smoke test: a few steps, checkpoints, logs, resume (needs the shared data)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

pytest.importorskip("torch")

from rs_seg2any.train.base import TrainConfig, Trainer

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dubai_aerial"


@pytest.mark.shared_data
@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data/dubai_aerial")
def test_train_resume_and_logs(tmp_path: Path) -> None:
    cfg = TrainConfig(
        data_root=str(DATA), train_tiles=[7], val_tiles=[7], out=str(tmp_path / "run"), crop=64,
        batch=2, max_steps=2, val_every=1, val_crops=2, ckpt_every=1, bf16=False,
        model={"patch": 16, "width": 32, "depth": 1, "heads": 2, "ctx_depth": 1},
    )  # fmt: skip
    ema = Trainer(cfg).run(progress=False)
    assert ema.is_file()
    cfg.max_steps = 3
    trainer = Trainer(cfg)
    trainer.run(progress=False)
    assert trainer.step == 3
    rows = list(csv.DictReader((tmp_path / "run" / "loss.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert all(float(r["loss"]) > 0 for r in rows)


@pytest.mark.shared_data
@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data/dubai_aerial")
def test_warm_start_adds_a_refiner_without_changing_the_model(tmp_path: Path) -> None:
    import torch

    from rs_seg2any.generators.tiny.weights import load_weights
    from rs_seg2any.train.evaluate import held_out_crops

    model = {"patch": 16, "width": 32, "depth": 1, "heads": 2, "ctx_depth": 1}
    cfg = TrainConfig(
        data_root=str(DATA), train_tiles=[7], val_tiles=[7], out=str(tmp_path / "a"), crop=64,
        batch=2, max_steps=2, val_every=5, val_crops=2, ckpt_every=5, bf16=False, model=model,
    )  # fmt: skip
    source = Trainer(cfg).run(progress=False)
    cfg2 = TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "b"), "max_steps": 0,
                          "init_from": str(source), "model": {**model, "refine": 8}})  # fmt: skip
    refined = Trainer(cfg2).run(progress=False)
    a, b = load_weights(source), load_weights(refined)
    assert b.refiner is not None and a.refiner is None
    from rs_seg2any.generators.tiny.text import default_encoder
    from rs_seg2any.train.dubai import collate

    crop = held_out_crops(DATA, 1, 64, 8)[0]
    x, cond = collate([crop], default_encoder(), 8, None)
    t = torch.full((1,), 0.3)
    with torch.no_grad():
        out_a = a(x, t, a.encode_context(cond))
        out_b = b(x, t, b.encode_context(cond))
    assert torch.allclose(out_a, out_b, atol=1e-6)  # the zero-initialised refiner adds nothing
