"""``rs-seg2any generate --backend flux`` end to end on a tiny random FLUX folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from rs_seg2any.cli import main  # noqa: E402
from rs_seg2any.demo import write_demo_layer  # noqa: E402
from rs_seg2any.generators.flux.testing import build_tiny_flux  # noqa: E402

EXTENT = "300000,2780150,300048,2780198"  # 48 m x 48 m of the demo town: 96 x 96 px


def test_cli_flux_writes_georeferenced_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = build_tiny_flux(tmp_path / "tiny flux")
    layer = write_demo_layer(tmp_path / "town.gpkg")
    out = tmp_path / "out"
    capsys.readouterr()
    rc = main(["generate", str(layer), "--class-field", "landcover", "--description-field",
               "description", "--taxonomy", "dubai_aerial", "--resolution", "0.5",
               "--extent", EXTENT, "--backend", "flux", "--model", str(model),
               "--device", "cpu", "--dtype", "fp32", "--threads", "1", "--steps", "2",
               "--tile-size", "64", "--overlap", "16", "--progress", "json",
               "--out", str(out)])  # fmt: skip
    assert rc == 0
    events = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert events[-1]["event"] == "done"  # nothing but JSON lines on stderr
    with rasterio.open(out / "label.tif") as ref, rasterio.open(out / "image.tif") as img:
        assert (img.crs, img.transform, img.shape) == (ref.crs, ref.transform, ref.shape)
        assert img.shape == (96, 96) and img.count == 3 and img.dtypes[0] == "uint8"
        assert img.read().std() > 0
        assert json.loads(img.tags()["RS_SEG2ANY_PARAMS"])["generator"]["backend"] == "flux"


def test_cli_flux_options_are_rejected_for_other_backends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layer = write_demo_layer(tmp_path / "town.gpkg")
    rc = main(["generate", str(layer), "--class-field", "landcover", "--taxonomy",
               "dubai_aerial", "--resolution", "0.5", "--extent", EXTENT, "--offload",
               "--progress", "none", "--out", str(tmp_path / "o")])  # fmt: skip
    assert rc == 3 and "--backend flux" in capsys.readouterr().err
