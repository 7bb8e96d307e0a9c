"""The default backend: ``exemplar`` renders unless the user asks for the network.

``--model`` (weights) and ``--lora`` (adapters) are options only the embedded network takes,
so naming them without ``--backend`` selects ``tiny`` (what they did while it was the default);
an explicit ``--backend`` always wins. A user's own taxonomy is painted with the bank class its
words read as, not all as sand.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio
from shapely.geometry import box

from rs_seg2any.cli import main
from rs_seg2any.errors import InputError
from rs_seg2any.generators.exemplar.stand_ins import stand_in
from rs_seg2any.generators.registry import generator_from, load_generator
from rs_seg2any.job.generate_job import run_generate_job
from rs_seg2any.layout import load_layout
from rs_seg2any.params import SamplerParams, resolve_backend
from rs_seg2any.taxonomy import load_taxonomy

DUBAI = {1: "building", 2: "land", 3: "road", 4: "vegetation", 5: "water", 6: "unlabeled"}


def test_auto_resolves_to_exemplar_unless_network_options_are_given() -> None:
    assert SamplerParams().backend == "exemplar"
    assert SamplerParams(backend="auto").backend == "exemplar"
    assert SamplerParams(model="w.safetensors").backend == "tiny"
    assert SamplerParams(lora=("season.safetensors",)).backend == "tiny"
    assert SamplerParams(backend="flux", model="folder").backend == "flux"  # explicit wins
    assert resolve_backend(None) == "exemplar" and resolve_backend("tiny") == "tiny"


def test_load_generator_default_and_network_selection(tiny_random_weights: Path) -> None:
    assert load_generator().name == "exemplar"
    assert load_generator(model=tiny_random_weights).name == "tiny"
    with pytest.raises(InputError, match="exemplar backend takes no --model"):
        generator_from(SamplerParams(backend="exemplar", model=str(tiny_random_weights)))


def _layer(tmp_path: Path) -> Path:
    """Three WorldCover squares side by side (UTM 33N, 1 m): tree cover, built-up, water."""
    frame = gpd.GeoDataFrame(
        {"cls": ["tree cover", "built-up", "permanent water bodies"]},
        geometry=[box(500000 + 64 * i, 5000000, 500064 + 64 * i, 5000064) for i in range(3)],
        crs="EPSG:32633",
    )
    path = tmp_path / "wc.gpkg"
    frame.to_file(path)
    return path


@pytest.mark.parametrize("explicit", [False, True])
def test_cli_records_the_backend_that_rendered(
    tmp_path: Path, tiny_random_weights: Path, explicit: bool
) -> None:
    layer = _layer(tmp_path)
    base = ["generate", str(layer), "--class-field", "cls", "--taxonomy", "worldcover",
            "--resolution", "1", "--progress", "none",
            "--tile-size", "64", "--overlap", "16"]  # fmt: skip
    network = ["--model", str(tiny_random_weights), "--steps", "1"]
    runs: dict[str, list[str]] = {"exemplar": [], "tiny": network}
    for name, extra in runs.items():
        out = tmp_path / name
        flags = ["--backend", name] if explicit else []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert main([*base, *extra, *flags, "--out", str(out)]) == 0
        with rasterio.open(out / "image.tif") as src:
            params = json.loads(src.tags()["RS_SEG2ANY_PARAMS"])
        assert params["generator"]["backend"] == name


def test_classes_the_bank_lacks_borrow_the_texture_their_words_read_as(tmp_path: Path) -> None:
    tax = load_taxonomy("worldcover")
    read = {c.name: DUBAI[stand_in(c.name, c.description, DUBAI) or 0] for c in tax.classes}
    assert read["tree cover"] == read["cropland"] == read["mangroves"] == "vegetation"
    assert read["built-up"] == "building" and read["permanent water bodies"] == "water"
    assert read["bare / sparse vegetation"] == "land"
    assert stand_in("zone 7", "", DUBAI) is None  # no word known: the caller's fallback

    layout = load_layout(_layer(tmp_path), "cls", taxonomy="worldcover", resolution=1)
    with pytest.warns(UserWarning, match="no class tree cover; painted with its vegetation"):
        run_generate_job(layout, tmp_path / "out", load_generator(), tile_size=192, overlap=0)
    with rasterio.open(tmp_path / "out" / "image.tif") as src:
        img = src.read().astype(float)
    tree, built, water = (img[:, 8:56, 8 + 64 * i : 56 + 64 * i] for i in range(3))
    green = [float((p[1] - (p[0] + p[2]) / 2).mean()) for p in (tree, built, water)]
    assert green[0] > green[1] + 3  # tree cover painted from vegetation, greener than built-up
    assert water.mean() < built.mean() - 20  # water from the bank's water, darker than roofs
    assert tree.std() > 5 and built.std() > 5  # real texture, not flat paint
