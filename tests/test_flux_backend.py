"""The flux backend on a tiny random FLUX folder (CPU): condition tokens, gamma, inpainting.

Equalities are checked on the sampled latents (before the VAE), where they are exact up to
float rounding; each is paired with a check that the compared feature does change the
output, so no equality holds vacuously.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from rs_seg2any.generators.base import TileCondition  # noqa: E402
from rs_seg2any.generators.flux import FluxBackend, FluxSettings  # noqa: E402
from rs_seg2any.generators.flux.condition import token_ids  # noqa: E402
from rs_seg2any.generators.flux.errors import (  # noqa: E402
    DeviceError,
    GpuOutOfMemoryError,
    ModelFolderError,
)
from rs_seg2any.generators.flux.testing import build_tiny_flux  # noqa: E402

torch.set_num_threads(1)
SETTINGS = FluxSettings(caption_tokens=12, regional_tokens=6)
RUN: dict[str, Any] = dict(steps=2, guidance=3.5)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_flux(tmp_path_factory.mktemp("flux") / "tiny")


@pytest.fixture(scope="module")
def backend(folder: Path) -> FluxBackend:
    return FluxBackend(folder, device="cpu", settings=SETTINGS)


def tile(seed: int = 0, n: int = 32) -> TileCondition:
    inst = np.zeros((n, n), np.int64)
    inst[: n // 2, n // 4 :] = 1
    inst[n // 2 + 3 :, : n // 3] = 2  # sparse: most 4 px patches hold no contour
    return TileCondition(
        instances=inst,
        descriptions=["red roof building", "green forest"][: 1 + seed % 2],
        caption="top-down aerial photograph",
    )


def latents(be: FluxBackend, cond: TileCondition, gamma: float = 1.0, **settings: Any) -> Any:
    be.settings = dataclasses.replace(SETTINGS, **settings)
    try:
        return be.sample_latents([cond], gamma=gamma, seeds=[7], **RUN)
    finally:
        be.settings = SETTINGS


def test_generates_uint8_tiles_deterministically(backend: FluxBackend) -> None:
    a = backend.generate(tile(), gamma=1.0, seed=3, **RUN)
    b = backend.generate(tile(), gamma=1.0, seed=3, **RUN)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert not np.array_equal(a, backend.generate(tile(), gamma=1.0, seed=4, **RUN))
    assert backend.describe()["backend"] == "flux" and backend.tile_multiple == 4


def test_filtering_empty_condition_tokens_changes_nothing(backend: FluxBackend) -> None:
    filtered = latents(backend, tile(), condition_tokens="filtered")
    dense = latents(backend, tile(), condition_tokens="masked")
    torch.testing.assert_close(filtered, dense, rtol=1e-5, atol=1e-5)
    without = latents(backend, tile(), use_condition=False)
    assert (filtered - without).abs().max() > 1e-3  # the condition does matter


def test_gamma_to_zero_is_no_shape_condition(backend: FluxBackend) -> None:
    none = latents(backend, tile(), use_condition=False)
    torch.testing.assert_close(latents(backend, tile(), gamma=0.0), none, rtol=0, atol=0)
    torch.testing.assert_close(latents(backend, tile(), gamma=1e-9), none, rtol=1e-5, atol=1e-5)
    weak, strong = latents(backend, tile(), gamma=0.5), latents(backend, tile(), gamma=2.0)
    assert (weak - none).abs().max() < (strong - none).abs().max()


def test_inpainting_keeps_known_pixels_exactly(backend: FluxBackend) -> None:
    known = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    edit = np.zeros((32, 32), bool)
    edit[8:24, 8:24] = True
    cond = dataclasses.replace(tile(), known=known, edit_mask=edit)
    out = backend.generate(cond, gamma=1.0, seed=1, **RUN)
    assert np.array_equal(out[~edit], known[~edit])
    assert not np.array_equal(out[edit], known[edit])


def test_batch_of_tiles_equals_tiles_one_by_one(backend: FluxBackend) -> None:
    conds = [tile(0), tile(1)]  # different entity counts: text and condition padding
    batch = backend.sample_latents(conds, gamma=1.0, seeds=[5, 6], **RUN)
    for i, c in enumerate(conds):
        one = backend.sample_latents([c], gamma=1.0, seeds=[5 + i], **RUN)
        torch.testing.assert_close(batch[i : i + 1], one, rtol=1e-4, atol=1e-4)


def test_condition_at_lower_resolution_aligns_position_ids(folder: Path) -> None:
    assert token_ids(2, 2, scale=2).tolist() == [[0, 0, 0], [0, 0, 2], [0, 2, 0], [0, 2, 2]]
    be = FluxBackend(folder, device="cpu", settings=dataclasses.replace(SETTINGS, cond_scale=2))
    assert be.tile_multiple == 8
    assert be.generate(tile(), gamma=1.0, seed=0, **RUN).shape == (32, 32, 3)


def test_missing_model_parts_are_listed(folder: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    shutil.rmtree(broken / "vae")
    (broken / "tokenizer_2" / "tokenizer.json").unlink()
    (broken / "tokenizer_2" / "tokenizer_config.json").unlink()
    with pytest.raises(ModelFolderError, match=r"missing: vae/config.json, tokenizer_2/"):
        FluxBackend(broken, device="cpu")
    with pytest.raises(ModelFolderError, match="does not exist"):
        FluxBackend(tmp_path / "nowhere", device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_asking_for_a_gpu_without_one_is_a_typed_error(folder: Path) -> None:
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        FluxBackend(folder, device="cuda")


def test_out_of_memory_suggests_smaller_tiles_or_offload(
    backend: FluxBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_a: Any, **_k: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(backend, "_generate", boom)
    with pytest.raises(GpuOutOfMemoryError, match=r"--tile-size.*--offload"):
        backend.generate(tile(), gamma=1.0, seed=0, **RUN)


def test_bench_runs_tiny_on_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / "bench_flux.py"
    spec = importlib.util.spec_from_file_location("bench_flux", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = bench.main(["--tiny", "--steps", "1", "--size", "32", "--entities", "3"])
    assert report["ratio_exact"] > 0 and report["ratio_filtered"] > 0
    assert 0 < report["attention_share_saved"] < 1
    assert "(c)/(a)" in capsys.readouterr().out


def test_tiles_without_entities_or_contours_and_offloading(backend: FluxBackend) -> None:
    empty = TileCondition(instances=np.zeros((32, 32), np.int64), descriptions=[], caption="x")
    one = TileCondition(instances=np.ones((32, 32), np.int64), descriptions=["water"], caption="")
    batch = backend.sample_latents([empty, one], gamma=1.0, seeds=[0, 1], **RUN)
    assert torch.isfinite(batch).all()  # no entity, no contour: nothing to attend, no NaN
    backend.offload = True  # the GPU path moves parts on demand; on the CPU a no-op move
    try:
        out = backend.generate(tile(), gamma=1.0, seed=3, **RUN)
    finally:
        backend.offload = False
    assert np.array_equal(out, backend.generate(tile(), gamma=1.0, seed=3, **RUN))
