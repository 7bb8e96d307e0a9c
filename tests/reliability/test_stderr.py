"""Programs read the CLI's stderr: with ``--progress json`` every line is a JSON object, with
``--progress none`` it is empty (only ``error: ...`` on failure).

Run as a real subprocess (``python -m rs_seg2any.cli``), since the noise came from
third-party code at import and load time (a torch dtype warning, the sentence encoder's
"Loading weights" bar) that an in-process call would not reproduce faithfully.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio

pytest.importorskip("torch")

from rs_seg2any.demo import write_demo_layer

ROOT = Path(__file__).resolve().parents[2]
EXTENT = "300000,2780150,300032,2780182"  # 64 x 64 px of the demo town at 0.5 m


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_layer(tmp_path_factory.mktemp("demo") / "town.gpkg")


def _generate(
    layer: Path, model: Path, out: Path, progress: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "default"}
    env.pop("TQDM_DISABLE", None)
    return subprocess.run(
        [sys.executable, "-m", "rs_seg2any.cli", "generate", str(layer), "--class-field",
         "landcover", "--taxonomy", "dubai_aerial", "--resolution", "0.5", "--extent", EXTENT,
         "--model", str(model), "--steps", "1", "--tile-size", "32", "--overlap", "8",
         "--progress", progress, "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip


def test_progress_json_stderr_is_only_json_lines(
    layer: Path, tiny_random_weights: Path, tmp_path: Path
) -> None:
    run = _generate(layer, tiny_random_weights, tmp_path / "out", "json")
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stderr.splitlines()
    events = [json.loads(line) for line in lines]  # raises on any non-JSON line
    assert all(isinstance(e, dict) and "event" in e for e in events)
    assert events[-1]["event"] == "done"
    assert any(e["event"] == "progress" and e["stage"] == "tiles" for e in events)
    with rasterio.open(tmp_path / "out" / "image.tif") as src:
        assert src.count == 3


def test_progress_none_stderr_is_empty_and_errors_are_one_line(
    layer: Path, tiny_random_weights: Path, tmp_path: Path
) -> None:
    run = _generate(layer, tiny_random_weights, tmp_path / "out", "none")
    assert run.returncode == 0 and run.stderr == "", run.stderr[-2000:]
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(tiny_random_weights.read_bytes()[:100])
    fail = _generate(layer, bad, tmp_path / "out2", "none")
    assert fail.returncode == 3
    assert fail.stderr.startswith("error: ") and fail.stderr.count("\n") == 1, fail.stderr
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").iterdir())
