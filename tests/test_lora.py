"""LoRA adapters of the embedded model: training on real GeoTIFF + polygons, round trip,
combining, refusals and the band adapter (tiny random weights: the real code at test speed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

import rasterio  # noqa: E402
from lora_helpers import write_labels, write_scene  # noqa: E402

from rs_seg2any.cli import main  # noqa: E402
from rs_seg2any.errors import AdapterMismatchError, InputError  # noqa: E402
from rs_seg2any.generators.registry import TinyBackend  # noqa: E402
from rs_seg2any.generators.tiny.sampler import sample  # noqa: E402
from rs_seg2any.lora.adapter import read_adapter  # noqa: E402
from rs_seg2any.lora.params import LoraTrainParams  # noqa: E402
from rs_seg2any.lora.train import LoraResult, train_lora  # noqa: E402
from rs_seg2any.options import LayerOptions  # noqa: E402

torch.set_num_threads(1)
LAYER = LayerOptions(class_field="cls", taxonomy="eolearn_slovenia")


def params(folder: Path, weights: Path, **kw: Any) -> LoraTrainParams:
    base: dict[str, Any] = dict(
        images=(str(folder / "img.tif"),),
        labels=str(folder / "labels.gpkg"),
        model=str(weights),
        max_steps=3,
        val_every=2,
        ckpt_every=2,
        batch=2,
        crop=32,
        segmenter_steps=0,
        lr=5e-3,
    )
    return LoraTrainParams(**{**base, **kw})


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scene")
    write_scene(folder)
    write_labels(folder, crs="EPSG:4326")  # another CRS than the image: rasterised on its grid
    return folder


@pytest.fixture(scope="module")
def adapters(
    scene: Path, tiny_random_weights: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[LoraResult, LoraResult]:
    root = tmp_path_factory.mktemp("adapters")
    a = train_lora(
        params(scene, tiny_random_weights, segmenter_steps=3, licence="CC0"), LAYER, root / "a"
    )
    b = train_lora(params(scene, tiny_random_weights, seed=1), LAYER, root / "b")
    return a, b


def condition(tr: Any) -> Any:
    from rs_seg2any.lora.data import grid_crops
    from rs_seg2any.lora.tiny import collate

    crops = grid_crops(tr.data.val, tr.data.crop, 2)
    return collate(crops, tr.encoder, tr.data)[2]


def test_adapter_folder_is_peft_layout_with_a_card(adapters: tuple[LoraResult, LoraResult]) -> None:
    out = adapters[0].out_dir
    for name in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "adapter_card.json",
        "README.md",
        "validation_grid.png",
        "metrics.json",
    ):
        assert (out / name).is_file(), name
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8
    card = json.loads((out / "adapter_card.json").read_text())
    assert card["backend"] == "tiny" and card["licence"] == "CC0"
    assert card["footprint"][0]["crs"] == "EPSG:32633" and card["gsd_m"] == pytest.approx(10.0)
    assert set(card["classes"].values()) == {"forest", "artificial surface", "grassland"}
    assert [b["source_band"] for b in card["bands"]] == [1, 2, 3]
    m = card["metrics"]
    assert {
        "val_loss_before",
        "val_loss_after",
        "layout_fidelity_before",
        "layout_fidelity_after",
        "colour_delta_e_after",
    } <= set(m)
    assert m["val_loss_after"] <= m["val_loss_before"]
    assert all(k.startswith("base_model.model.") for k in read_adapter(out).state)


def test_round_trip_gives_identical_outputs(
    adapters: tuple[LoraResult, LoraResult], tiny_random_weights: Path
) -> None:
    tr = adapters[0].trainer
    cond = condition(tr)
    trained = sample(tr.model, cond, steps=3, guidance=2.0, seed=5)
    loaded = TinyBackend(tiny_random_weights, lora=[str(adapters[0].out_dir)])
    again = sample(loaded._impl.model, cond, steps=3, guidance=2.0, seed=5)
    assert torch.equal(trained, again)
    base = TinyBackend(tiny_random_weights)
    assert not torch.equal(sample(base._impl.model, cond, steps=3, guidance=2.0, seed=5), again)


def test_two_adapters_combine_linearly_with_their_weights(
    adapters: tuple[LoraResult, LoraResult], tiny_random_weights: Path
) -> None:
    a, b = (str(r.out_dir) for r in adapters)
    x = torch.randn(3, 32)

    def delta(lora: list[str]) -> Any:
        layer = dict(TinyBackend(tiny_random_weights, lora=lora)._impl.model.named_modules())
        base = dict(TinyBackend(tiny_random_weights)._impl.model.named_modules())
        with torch.no_grad():
            return layer["blocks.0.mlp.0"](x) - base["blocks.0.mlp.0"](x)

    da, db = delta([a]), delta([b])
    both = delta([f"{a}:0.5", f"{b}:1.5"])
    assert float(da.abs().max()) > 0 and float(db.abs().max()) > 0
    torch.testing.assert_close(both, 0.5 * da + 1.5 * db, rtol=1e-4, atol=1e-6)


def test_adapter_for_another_backend_is_refused(
    adapters: tuple[LoraResult, LoraResult], tiny_random_weights: Path, tmp_path: Path
) -> None:
    copy = shutil.copytree(adapters[0].out_dir, tmp_path / "flux_one")
    card = json.loads((copy / "adapter_card.json").read_text())
    (copy / "adapter_card.json").write_text(json.dumps({**card, "backend": "flux"}))
    with pytest.raises(AdapterMismatchError, match="trained for the flux backend"):
        TinyBackend(tiny_random_weights, lora=[str(copy)])
    from rs_seg2any.generators.registry import load_generator

    with pytest.raises(AdapterMismatchError, match="trained for the tiny backend"):
        load_generator("flux", tmp_path / "no_model", lora=[str(adapters[0].out_dir)])


def test_adapter_for_other_classes_or_taxonomy_is_refused(
    adapters: tuple[LoraResult, LoraResult],
    scene: Path,
    tiny_random_weights: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    write_labels(other, classes=["forest", "water", "grassland"])  # water: never trained on
    common = [
        "--class-field",
        "cls",
        "--model",
        str(tiny_random_weights),
        "--lora",
        str(adapters[0].out_dir),
        "--like",
        str(scene / "img.tif"),
        "--progress",
        "none",
    ]
    code = main(
        [
            "generate",
            str(other / "labels.gpkg"),
            "--taxonomy",
            "eolearn_slovenia",
            *common,
            "--out",
            str(tmp_path / "o1"),
        ]
    )
    assert code == AdapterMismatchError.exit_code
    assert "also has [5], which it never saw" in capsys.readouterr().err
    code = main(
        [
            "generate",
            str(scene / "labels.gpkg"),
            "--taxonomy",
            "worldcover",
            "--unknown-class",
            "background",
            *common,
            "--out",
            str(tmp_path / "o2"),
        ]
    )
    assert code == AdapterMismatchError.exit_code
    assert "trained for taxonomy 'eolearn_slovenia'" in capsys.readouterr().err


def test_untrusted_adapter_files_are_checked_before_use(
    adapters: tuple[LoraResult, LoraResult], tiny_random_weights: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    bad = shutil.copytree(adapters[0].out_dir, tmp_path / "nan")
    state = load_file(str(bad / "adapter_model.safetensors"))
    key = next(iter(state))
    state[key] = torch.full_like(state[key], float("nan"))
    save_file(state, str(bad / "adapter_model.safetensors"))
    with pytest.raises(InputError, match="NaN or Inf"):
        TinyBackend(tiny_random_weights, lora=[str(bad)])
    wrong = shutil.copytree(adapters[0].out_dir, tmp_path / "shape")
    state = load_file(str(wrong / "adapter_model.safetensors"))
    key = next(k for k in state if k.endswith("lora_B.weight"))
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    save_file(state, str(wrong / "adapter_model.safetensors"))
    with pytest.raises(AdapterMismatchError, match="does not fit this model"):
        TinyBackend(tiny_random_weights, lora=[str(wrong)])
    pickled = shutil.copytree(adapters[0].out_dir, tmp_path / "pickle")
    (pickled / "adapter_model.safetensors").write_bytes(b"\x80\x04K\x01.")  # a pickle
    with pytest.raises(InputError, match="not a readable safetensors"):
        TinyBackend(tiny_random_weights, lora=[str(pickled)])


def test_installed_adapters_are_listed_and_found_by_name(
    adapters: tuple[LoraResult, LoraResult],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path / "home"
    shutil.copytree(adapters[0].out_dir, home / "slovenia_rgb")
    monkeypatch.setenv("RS_SEG2ANY_ADAPTERS", str(home))
    assert main(["adapters"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [a["name"] for a in listed] == ["slovenia_rgb"] and listed[0]["backend"] == "tiny"
    from rs_seg2any.lora.adapter import LoraRef

    ref = LoraRef.parse("slovenia_rgb:0.7")
    assert ref.path == home / "slovenia_rgb" and ref.weight == 0.7


def test_multispectral_adapter_writes_its_bands(tiny_random_weights: Path, tmp_path: Path) -> None:
    write_scene(tmp_path, bands=4)
    write_labels(tmp_path)
    out = tmp_path / "ms"
    code = main(
        [
            "train-lora",
            "--images",
            str(tmp_path / "img.tif"),
            "--labels",
            str(tmp_path / "labels.gpkg"),
            "--class-field",
            "cls",
            "--taxonomy",
            "eolearn_slovenia",
            "--model",
            str(tiny_random_weights),
            "--bands",
            "1,2,3,4",
            "--rgb",
            "1,2,3",
            "--max-steps",
            "2",
            "--batch",
            "2",
            "--crop",
            "32",
            "--segmenter-steps",
            "0",
            "--out",
            str(out),
            "--progress",
            "none",
        ]
    )
    assert code == 0
    card = json.loads((out / "adapter_card.json").read_text())
    assert card["band_adapter"] and [b["source_band"] for b in card["bands"]] == [1, 2, 3, 4]
    gen = tmp_path / "gen"
    code = main(
        [
            "generate",
            str(tmp_path / "labels.gpkg"),
            "--class-field",
            "cls",
            "--taxonomy",
            "eolearn_slovenia",
            "--model",
            str(tiny_random_weights),
            "--lora",
            str(out),
            "--like",
            str(tmp_path / "img.tif"),
            "--out",
            str(gen),
            "--progress",
            "none",
        ]
    )
    assert code == 0
    with rasterio.open(gen / "image.tif") as src:
        assert src.count == 4
        assert src.descriptions[3] == "nir (source band 4)"
        assert np.ptp(src.read(4)) > 0


def test_bad_training_options_are_one_line_errors(scene: Path, tiny_random_weights: Path) -> None:
    with pytest.raises(InputError, match="--rgb 1,2,5 must be among --bands"):
        params(scene, tiny_random_weights, bands="1,2,3", rgb="1,2,5")
    with pytest.raises(InputError, match="--val-fraction"):
        params(scene, tiny_random_weights, val_fraction=1.0)
    with pytest.raises(InputError, match="one per image"):
        params(scene, tiny_random_weights, ignore_mask=("a.tif", "b.tif"))
