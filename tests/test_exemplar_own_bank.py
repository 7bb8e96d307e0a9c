"""The exemplar backend on a bank of your own (``ExemplarBackend(bank=...)``), and banks built
from some of the training tiles (``rs_seg2any.train.exemplars.build(tiles=...)``), which the
cross-validated realism bench renders each training tile from.

A job records the bank's content digest: a job folder resumed with another bank is refused,
never finished with a mix of two banks' tiles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rs_seg2any.errors import InputError
from rs_seg2any.generators.exemplar.backend import ExemplarBackend
from rs_seg2any.generators.exemplar.bank import ExemplarBank
from rs_seg2any.job.generate_job import run_generate_job
from rs_seg2any.quality.scenes import layout_from_labels
from rs_seg2any.taxonomy import load_taxonomy
from rs_seg2any.train.exemplars import build

NAMES = {1: "building", 2: "land", 3: "road", 4: "vegetation", 5: "water", 6: "unlabeled"}


def plain_bank(land: tuple[int, int, int], water: tuple[int, int, int]) -> ExemplarBank:
    """Pure land and pure water crops in the given colours (with a little noise)."""
    rng = np.random.default_rng(0)
    rgb, lab = [], []
    for cls, colour in ((2, land), (5, water)):
        for _ in range(3):
            rgb.append(np.clip(np.array(colour) + rng.integers(-6, 7, (96, 96, 3)), 0, 255))
            lab.append(np.full((96, 96), cls))
    return ExemplarBank(np.stack(rgb).astype(np.uint8), np.stack(lab).astype(np.uint8), 0.5,
                        dict(NAMES), "test bank")  # fmt: skip


def two_class_labels() -> np.ndarray:
    labels = np.full((192, 160), 2, np.uint8)
    labels[:, 96:] = 5
    return labels


def render_with(gen: ExemplarBackend, layout: object, out: Path) -> np.ndarray:
    import rasterio

    result = run_generate_job(layout, out, gen, steps=1, guidance=1.0, gamma=1.0, seed=0,  # type: ignore[arg-type]
                              tile_size=128, overlap=32)  # fmt: skip
    with rasterio.open(result.outputs["image"]) as src:
        img: np.ndarray = src.read().transpose(1, 2, 0).astype(float)
    return img


def land_colour(img: np.ndarray) -> np.ndarray:
    out: np.ndarray = img[:, :80].reshape(-1, 3).mean(0)
    return out


def test_own_bank_paints_with_its_colours_and_reports_its_digest(tmp_path: Path) -> None:
    layout = layout_from_labels(two_class_labels(), load_taxonomy("dubai_aerial"))
    yellow = plain_bank((200, 180, 90), (20, 60, 120))
    gen = ExemplarBackend(bank=yellow)
    described = gen.describe()
    assert described["bank"] == "test bank"
    assert described["bank_sha256"] == yellow.digest()[:16]
    assert described["bank_sha256"] != ExemplarBackend().describe()["bank_sha256"]
    img = render_with(gen, layout, tmp_path / "a")
    water = img[:, 112:].reshape(-1, 3).mean(0)
    assert np.abs(land_colour(img) - (200, 180, 90)).max() < 12, land_colour(img)
    assert np.abs(water - (20, 60, 120)).max() < 12, water


def test_a_job_rerun_with_another_bank_renders_again_with_it(tmp_path: Path) -> None:
    """Same layout, same folder, another bank: the finished job's tiles are not reused (the
    bank's digest is part of the job's parameters)."""
    tax = load_taxonomy("dubai_aerial")
    layout = layout_from_labels(two_class_labels(), tax)
    first = ExemplarBackend(bank=plain_bank((200, 180, 90), (20, 60, 120)))
    other = ExemplarBackend(bank=plain_bank((120, 130, 190), (20, 60, 120)))
    assert first.describe()["bank_sha256"] != other.describe()["bank_sha256"]
    assert land_colour(render_with(first, layout, tmp_path / "job"))[2] < 110
    assert land_colour(render_with(other, layout, tmp_path / "job"))[2] > 170


def test_a_bank_and_a_reference_image_are_not_taken_together(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not both"):
        ExemplarBackend(str(tmp_path / "ref.tif"), str(tmp_path / "ref_labels.tif"),
                        bank=plain_bank((1, 2, 3), (4, 5, 6)))  # fmt: skip


def test_a_bank_without_a_tile_holds_no_crop_of_it(shared_data: Path) -> None:
    """What the cross-validated bench relies on: the bank of the other tiles never shows the
    tile being rendered; the held-out tile_7 is refused outright."""
    dubai = shared_data / "dubai_aerial"
    bank = build(dubai, per_class=2, tiles=[2, 3])
    assert bank.origin is not None and set(bank.origin.tolist()) <= {2, 3}
    assert "tiles 2,3" in bank.source
    with pytest.raises(InputError, match="held out"):
        build(dubai, per_class=2, tiles=[1, 7])
