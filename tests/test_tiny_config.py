"""The shipped training config parses into a TrainConfig with a valid model config."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from rs_seg2any.errors import InputError
from rs_seg2any.generators.tiny.model import TinyConfig
from rs_seg2any.train.base import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["tiny_base", "tiny_refine"])
def test_shipped_train_yaml_parses(name: str) -> None:
    cfg = TrainConfig.from_yaml(ROOT / "geoconf" / "train" / f"{name}.yaml")
    assert cfg.val_tiles == [7] and 7 not in cfg.train_tiles
    assert TinyConfig.from_dict(cfg.model).prediction == "x"


def test_unknown_keys_are_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("crop: 128\nlearning_rate: 1\n")
    with pytest.raises(InputError, match="learning_rate"):
        TrainConfig.from_yaml(bad)
