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
import numpy as np
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
    # Dubai's labelled vegetation is dark grey-green and its water near-black: the squares
    # are three surfaces, not one sand (the old fallback painted every one as land)
    assert water.mean() < min(tree.mean(), built.mean()) - 20
    assert abs(tree.mean() - built.mean()) > 5 or abs(tree.std() - built.std()) > 5
    assert tree.std() > 5 and built.std() > 5  # real texture, not flat paint


def test_a_class_is_matched_by_name_not_by_an_id_the_bank_also_uses() -> None:
    """Slovenian 'cultivated land' has id 1, the Dubai bank's building id: it must borrow
    vegetation by its words, not roofs by its number."""
    from rs_seg2any.generators.base import TileCondition
    from rs_seg2any.generators.exemplar.backend import ExemplarBackend

    tax = load_taxonomy("eolearn_slovenia")
    names = {c.id: c.name for c in tax.classes}
    assert names[1] == "cultivated land"
    labels = np.ones((32, 32), np.uint8)
    cond = TileCondition(np.ones((32, 32), np.int64), ["x"], "c", labels=labels,
                         extra={"class_names": names, "taxonomy": tax}, gsd=0.5)  # fmt: skip
    backend = ExemplarBackend()
    with pytest.warns(UserWarning, match="painted with its vegetation texture"):
        mapped = backend.class_map(labels, cond, backend._bank_for(cond))
    assert set(np.unique(mapped)) == {4}  # the bank's vegetation, not its building (1)


def test_borrowed_classes_are_steered_from_the_borrowed_class_description() -> None:
    """The flood scenario's 'flood water' reads as land ("muddy ... covering the ground") and
    its words move that land to smooth, darker, brown water, not to the bank's black water."""
    from types import SimpleNamespace

    from rs_seg2any.generators.base import TileCondition
    from rs_seg2any.generators.exemplar.backend import ExemplarBackend
    from rs_seg2any.lab import srgb_to_lab

    text = "brown muddy flood water covering the ground"
    tax = load_taxonomy("dubai_aerial")
    classes = [*tax.classes, SimpleNamespace(id=7, name="flood water", description=text)]
    names = {**{c.id: c.name for c in tax.classes}, 7: "flood water"}
    labels = np.full((96, 96), 2, np.uint8)
    labels[:, 48:] = 7
    inst = np.where(labels == 2, 1, 2).astype(np.int64)
    cond = TileCondition(inst, [tax.by_id(2).description, text], "c", labels=labels,
                         extra={"class_names": names, "taxonomy": SimpleNamespace(classes=classes)},
                         gsd=0.5)  # fmt: skip
    with pytest.warns(UserWarning, match="no class flood water; painted with its land"):
        img = ExemplarBackend().generate(cond, steps=1, guidance=1.0, gamma=1.0, seed=0)
    land, flood = img[8:-8, 8:40].astype(float), img[8:-8, 56:-8].astype(float)

    def grad(p: np.ndarray) -> float:
        return float(np.abs(np.diff(p.mean(-1), axis=1)).mean())

    assert grad(flood) < 0.5 * grad(land)  # smooth, as water is
    lab_land, lab_flood = srgb_to_lab(land.astype(np.uint8)), srgb_to_lab(flood.astype(np.uint8))
    assert lab_flood[..., 0].mean() < lab_land[..., 0].mean() - 15  # darker than the sand
    assert lab_flood[..., 0].mean() > 25 and lab_flood[..., 2].mean() > 5  # brown, not black
