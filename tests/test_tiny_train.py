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
