"""Corrupt weights fail at load with one typed line; non-finite outputs are refused.

Every kind of damage (truncated, header only, random bytes, wrong tensor shapes, wrong dtype,
NaN/Inf tensors, corrupted tensor bytes — in a file written by ``save_weights`` and in a copy
of the shipped weights) goes through the CLI and the Python API
(``rs_seg2any.generators.registry.load_generator``); the FLUX folder and LoRA loaders get
the same kinds. Nothing may be written: a corrupt model used to run to exit 0 and write an
all-black image.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from rs_seg2any.cli import main  # noqa: E402
from rs_seg2any.demo import write_demo_layer  # noqa: E402
from rs_seg2any.digest import file_sha256  # noqa: E402
from rs_seg2any.errors import GenerationError, InputError, PartialJobError, WeightsError  # noqa: E402
from rs_seg2any.generators.base import TileCondition  # noqa: E402
from rs_seg2any.generators.registry import load_generator  # noqa: E402
from rs_seg2any.generators.tiny.weights import (  # noqa: E402
    DIGEST_KEY,
    SHIPPED_SHA256,
    shipped_path,
)
from rs_seg2any.job.generate_job import run_generate_job  # noqa: E402
from rs_seg2any.layout import load_layout  # noqa: E402

EXTENT = "300000,2780150,300032,2780182"  # 64 x 64 px of the demo town at 0.5 m


def _meta(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def _header_len(path: Path) -> int:
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


def _rewrite(src: Path, dst: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> Path:
    """Re-save with edited tensors and the original metadata minus the digest (as a foreign
    or older writer would), so the shape/dtype/finiteness checks themselves are exercised."""
    tensors = load_file(str(src))
    edit(tensors)
    meta = {k: v for k, v in _meta(src).items() if k != DIGEST_KEY}
    save_file(tensors, str(dst), metadata=meta)
    return dst


def _flip_bytes(src: Path, dst: Path) -> Path:
    data = bytearray(src.read_bytes())
    start = _header_len(src)
    mid = start + (len(data) - start) // 2
    rng = np.random.default_rng(0)
    data[mid : mid + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


def _first_key(t: dict[str, torch.Tensor]) -> str:
    return sorted(k for k, v in t.items() if v.ndim == 2)[0]


KINDS: dict[str, Callable[[Path, Path], Path]] = {
    "truncated": lambda s, d: d.write_bytes(s.read_bytes()[: s.stat().st_size // 2]) and d,
    "header-only": lambda s, d: d.write_bytes(s.read_bytes()[: _header_len(s)]) and d,
    "random-bytes": lambda s, d: d.write_bytes(np.random.default_rng(1).bytes(4096)) and d,
    "wrong-shape": lambda s, d: _rewrite(
        s, d, lambda t: t.__setitem__(_first_key(t), torch.zeros(3, 5))
    ),
    "missing-tensor": lambda s, d: _rewrite(s, d, lambda t: t.pop(_first_key(t))),
    "wrong-dtype": lambda s, d: _rewrite(
        s, d, lambda t: t.update({k: v.to(torch.int32) for k, v in t.items()})
    ),
    "nan": lambda s, d: _rewrite(s, d, lambda t: t[_first_key(t)].view(-1)[3:9].fill_(np.nan)),
    "inf": lambda s, d: _rewrite(s, d, lambda t: t[_first_key(t)].view(-1)[0:1].fill_(np.inf)),
    "corrupted-bytes": _flip_bytes,
}
KIND_WORDS = {
    "truncated": "safetensors",
    "header-only": "safetensors",
    "random-bytes": "safetensors",
    "wrong-shape": "does not fit",
    "missing-tensor": "missing",
    "wrong-dtype": "dtype",
    "nan": "NaN",
    "inf": "NaN or Inf",
    "corrupted-bytes": "digest",
}


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_layer(tmp_path_factory.mktemp("demo") / "town.gpkg")


def _cli(layer: Path, model: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["generate", str(layer), "--class-field", "landcover", "--taxonomy",
                 "dubai_aerial", "--resolution", "0.5", "--extent", EXTENT, "--model",
                 str(model), "--steps", "1", "--tile-size", "32", "--overlap", "8",
                 "--progress", "none", "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == WeightsError.exit_code, err
    return err


def _no_files(out: Path) -> None:
    left = [p for p in out.rglob("*")] if out.exists() else []
    assert left == [], left


def _one_line(message: str) -> None:
    assert "\n" not in message.strip() and "Traceback" not in message


@pytest.mark.parametrize("kind", list(KINDS))
def test_corrupt_tiny_weights_fail_at_load(
    kind: str,
    tiny_random_weights: Path,
    layer: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = KINDS[kind](tiny_random_weights, tmp_path / f"{kind}.safetensors")
    with pytest.raises(WeightsError) as info:
        load_generator("tiny", bad)
    assert KIND_WORDS[kind] in str(info.value) and str(bad) in str(info.value)
    _one_line(str(info.value))
    err = _cli(layer, bad, tmp_path / "out", capsys)
    assert err.startswith("error: ") and err.count("\n") == 1 and KIND_WORDS[kind] in err
    _no_files(tmp_path / "out")


@pytest.mark.parametrize("kind", ["corrupted-bytes", "truncated"])
def test_corrupt_copy_of_the_shipped_weights_fails_on_its_digest(
    kind: str, layer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped file carries no digest in itself; its sha256 is recorded in code."""
    assert file_sha256(shipped_path()) == SHIPPED_SHA256  # the record matches what ships
    bad = KINDS[kind](shipped_path(), tmp_path / "tiny_base.safetensors")
    with pytest.raises(WeightsError) as info:
        load_generator("tiny", bad)
    _one_line(str(info.value))
    assert ("sha256" if kind == "corrupted-bytes" else "safetensors") in str(info.value)
    err = _cli(layer, bad, tmp_path / "out", capsys)
    assert err.startswith("error: ") and err.count("\n") == 1
    _no_files(tmp_path / "out")


def test_intact_copy_of_the_shipped_weights_loads(tmp_path: Path) -> None:
    copy = shutil.copy(shipped_path(), tmp_path / "copy.safetensors")
    assert load_generator("tiny", copy).describe()["weights_sha256"] == SHIPPED_SHA256[:16]


def test_bad_config_metadata_is_a_weights_error(tiny_random_weights: Path, tmp_path: Path) -> None:
    tensors = load_file(str(tiny_random_weights))
    meta = _meta(tiny_random_weights)
    for config in ("{not json", json.dumps({"width": 30, "heads": 4})):
        save_file(tensors, str(tmp_path / "c.safetensors"), metadata={**meta, "config": config})
        with pytest.raises(WeightsError) as info:
            load_generator("tiny", tmp_path / "c.safetensors")
        _one_line(str(info.value))


def test_non_finite_output_is_refused_and_nothing_written(
    tiny_random_weights: Path, layer: Path, tmp_path: Path
) -> None:
    gen = load_generator("tiny", tiny_random_weights)
    cond = TileCondition(np.ones((32, 32), np.int64), ["a house roof"], "aerial")
    assert gen.generate(cond, steps=1, guidance=2.0, gamma=1.0, seed=0).std() > 0
    with torch.no_grad():  # weights that blow up at run time (diverged, overflowing dtype)
        gen._impl.model.head.weight.fill_(float("nan"))  # type: ignore[attr-defined]
    with pytest.raises(GenerationError) as info:
        gen.generate(cond, steps=1, guidance=2.0, gamma=1.0, seed=0)
    _one_line(str(info.value))
    lay = load_layout(layer, "landcover", taxonomy="dubai_aerial", resolution=0.5,
                      extent=[float(v) for v in EXTENT.split(",")])  # fmt: skip
    # in a job, the failing tile is retried, then reported with its cause (a partial job)
    with pytest.raises(PartialJobError, match=r"GenerationError: .*NaN/Inf"):
        run_generate_job(lay, tmp_path / "out", gen, steps=1, tile_size=32, overlap=8)
    assert not (tmp_path / "out" / "image.tif").exists()
    assert not list((tmp_path / "out").glob("*.tif"))


# --- FLUX folders and LoRA files -------------------------------------------------------


@pytest.fixture(scope="module")
def flux_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("diffusers")
    from rs_seg2any.generators.flux.testing import build_tiny_flux

    return build_tiny_flux(tmp_path_factory.mktemp("flux") / "tiny")


FLUX_KINDS = ["truncated", "header-only", "random-bytes", "wrong-shape", "nan", "inf"]


@pytest.mark.parametrize("kind", FLUX_KINDS)
def test_corrupt_flux_transformer_fails_at_load(
    kind: str, flux_folder: Path, layer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = Path(shutil.copytree(flux_folder, tmp_path / "flux"))
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    src = tmp_path / "orig.safetensors"
    shutil.move(weights, src)
    KINDS[kind](src, weights)
    with pytest.raises(InputError) as info:
        load_generator("flux", folder, device="cpu")
    _one_line(str(info.value))
    code = main(["generate", str(layer), "--class-field", "landcover", "--taxonomy",
                 "dubai_aerial", "--resolution", "0.5", "--extent", EXTENT, "--backend", "flux",
                 "--model", str(folder), "--device", "cpu", "--steps", "1", "--tile-size", "32",
                 "--overlap", "8", "--progress", "none",
                 "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == InputError.exit_code and err.startswith("error: ") and err.count("\n") == 1
    _no_files(tmp_path / "out")


@pytest.mark.parametrize("kind", ["truncated", "random-bytes", "nan", "rank"])
def test_corrupt_lora_fails_at_load(kind: str, flux_folder: Path, tmp_path: Path) -> None:
    from rs_seg2any.generators.flux.lora import WEIGHTS_NAME

    lora = tmp_path / WEIGHTS_NAME
    a_key = "transformer.transformer_blocks.0.attn.to_q.lora_A.weight"
    b_key = "transformer.transformer_blocks.0.attn.to_q.lora_B.weight"
    good = {a_key: torch.randn(4, 32) * 0.01, b_key: torch.zeros(32, 4)}
    save_file(good, str(tmp_path / "good.safetensors"))
    if kind == "rank":
        save_file({a_key: good[a_key], b_key: torch.zeros(32, 3)}, str(lora))
    elif kind == "nan":
        save_file({a_key: good[a_key].clone().fill_(np.nan), b_key: good[b_key]}, str(lora))
    else:
        KINDS[kind](tmp_path / "good.safetensors", lora)
    assert load_generator("flux", flux_folder, device="cpu",
                          lora=[str(tmp_path / "good.safetensors")])  # fmt: skip
    with pytest.raises(InputError) as info:
        load_generator("flux", flux_folder, device="cpu", lora=[str(lora)])
    _one_line(str(info.value))


def test_non_finite_flux_output_is_refused(flux_folder: Path) -> None:
    from rs_seg2any.generators.flux import FluxBackend, FluxSettings

    be = FluxBackend(flux_folder, device="cpu",
                     settings=FluxSettings(caption_tokens=12, regional_tokens=6))  # fmt: skip
    cond = TileCondition(np.ones((32, 32), np.int64), ["red roof building"], "aerial")
    assert be.generate(cond, steps=1, guidance=3.5, gamma=1.0, seed=0).shape == (32, 32, 3)
    with torch.no_grad():
        next(be.c.vae.decoder.parameters()).fill_(float("nan"))
    with pytest.raises(GenerationError):
        be.generate(cond, steps=1, guidance=3.5, gamma=1.0, seed=0)


def test_a_corrupt_exemplar_bank_is_refused_with_one_line(tmp_path: Path) -> None:
    """The default backend's data file gets the same treatment as weights: truncated bytes,
    another format and wrong arrays are a WeightsError naming the file, not a traceback."""
    from rs_seg2any.generators.exemplar.bank import SHIPPED_BANK, ExemplarBank

    shipped = Path(__file__).resolve().parents[2] / "rs_seg2any/generators/exemplar" / SHIPPED_BANK
    good = tmp_path / "good.npz"
    shutil.copy(shipped, good)
    assert len(ExemplarBank.load(good).rgb) > 0
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(shipped.read_bytes()[: shipped.stat().st_size // 2])
    other = tmp_path / "other.npz"
    other.write_bytes(b"not a bank at all")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, rgb=np.zeros((2, 8, 8), np.float32), labels=np.zeros((2, 8, 8), np.uint8),
             gsd=np.float32(0.5), names=np.array(["1:a"]), source=np.array(""))  # fmt: skip
    for bad in (truncated, other, wrong):
        with pytest.raises(WeightsError, match=bad.name):
            ExemplarBank.load(bad)


def test_the_shipped_exemplar_bank_is_checked_against_its_recorded_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rs_seg2any.generators.exemplar import bank as bank_module

    folder = Path(__file__).resolve().parents[2] / "rs_seg2any/generators/exemplar"
    copy = tmp_path / "pkg"
    copy.mkdir()
    for name in (bank_module.SHIPPED_BANK, bank_module.SHIPPED_BANK + ".sha256"):
        shutil.copy(folder / name, copy / name)
    assert (folder / (bank_module.SHIPPED_BANK + ".sha256")).is_file()  # shipped with the bank
    monkeypatch.setattr(bank_module.resources, "files", lambda _pkg: copy)
    assert len(bank_module.ExemplarBank.shipped().rgb) > 0
    data = bytearray((copy / bank_module.SHIPPED_BANK).read_bytes())
    data[-100] ^= 0xFF  # one flipped byte inside the archive
    (copy / bank_module.SHIPPED_BANK).write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256 recorded for the shipped exemplar bank"):
        bank_module.ExemplarBank.shipped()
