"""Critics and the refine loop with the real tiny model code (small random weights).

A deliberately bad generation: a generator that misrenders (paints magenta) every entity
whose description is one chosen text, i.e. a generator given the wrong description for those
entities, while the critics know each entity's class and its real colour (statistics from a
clean run of the same generator). The critics must flag exactly those entities; the loop must
improve them (or at least not make them worse) and leave every other pixel bit-identical,
within its generator-call budget; the reports must be complete and valid.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from PIL import Image

pytest.importorskip("torch")

from rs_seg2any.critics.entity import ClassColours, Entities, colour_scores
from rs_seg2any.critics.loop import CountingGenerator, Judge, Settings, read_canvas, refine
from rs_seg2any.critics.params import RefineParams
from rs_seg2any.critics.run import refine_outputs
from rs_seg2any.demo import write_demo_layer
from rs_seg2any.errors import InputError
from rs_seg2any.generators.base import TileCondition
from rs_seg2any.generators.registry import TinyBackend
from rs_seg2any.job.generate_job import run_generate_job
from rs_seg2any.job.tiling import TilePlan
from rs_seg2any.layout import load_layout

EXTENT = (300000, 2780150, 300064, 2780214)  # 128 x 128 px at 0.5 m
MAGENTA = np.array([255, 0, 255], dtype=np.uint8)
KW: dict[str, Any] = {"steps": 2, "tile_size": 64, "overlap": 16}


class WrongDescription:
    """A real generator that renders entities whose description contains ``bad`` in magenta
    while armed (an emphasised description still contains it: the defect persists)."""

    def __init__(self, inner: Any, bad: str) -> None:
        self.inner, self.bad, self.armed = inner, bad, True
        self.name, self.bands = inner.name, inner.bands
        self.supports_inpainting, self.tile_multiple = True, inner.tile_multiple

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def generate(self, cond: TileCondition, **kw: Any) -> Any:
        image = np.array(self.inner.generate(cond, **kw))
        if self.armed:
            ids = [j + 1 for j, d in enumerate(cond.descriptions) if self.bad in d]
            sel = np.isin(cond.instances, ids)
            if cond.edit_mask is not None:
                sel &= cond.edit_mask
            image[sel] = MAGENTA
        return image


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Any:
    layer = write_demo_layer(tmp_path_factory.mktemp("demo") / "town.gpkg")
    return load_layout(
        layer,
        "landcover",
        description_field="description",
        taxonomy="dubai_aerial",
        resolution=0.5,
        extent=EXTENT,
    )


@pytest.fixture(scope="module")
def tiny(tiny_random_weights: Path) -> TinyBackend:
    return TinyBackend(tiny_random_weights, threads=1)


@pytest.fixture(scope="module")
def clean(layout: Any, tiny: TinyBackend, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    run_generate_job(layout, out, tiny, **KW)
    return out


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read().transpose(1, 2, 0) if src.count > 1 else src.read(1)


def stats(clean: Path, layout: Any) -> ClassColours:
    names = layout.taxonomy.names_by_id()
    return ClassColours.from_pairs([read(clean / "image.tif")], [read(clean / "label.tif")], names)


def bad_text(layout: Any, clean: Path) -> tuple[str, set[int]]:
    """A description of a few scored entities that are not the background (under a quarter
    of the image together), and those entities' ids."""
    feats = layout.features()
    ents = Entities.of(read(clean / "instance.tif"), read(clean / "label.tif"))
    scorable = set(ents.scorable())
    by_text: dict[str, set[int]] = {}
    texts = dict(zip(feats["instance_id"].astype(int), feats["description"], strict=True))
    for d in set(texts.values()):
        by_text[d] = {int(i) for i, other in texts.items() if d in other}
    present = {int(e) for e in np.unique(ents.instances) if e > 0}

    def area(t: str) -> int:
        return sum(ents.sizes[e] for e in by_text[t] & present)

    small = [
        t for t, ids in by_text.items() if ids & scorable and area(t) < ents.instances.size // 4
    ]
    text = max(small, key=area)
    return text, by_text[text] & present


def run_bad(layout: Any, tiny: TinyBackend, out: Path, text: str, disarm: bool = True) -> Settings:
    gen = WrongDescription(tiny, text)
    counted = CountingGenerator(gen)  # type: ignore[arg-type]
    run_generate_job(layout, out, counted, **KW)  # type: ignore[arg-type]
    gen.armed = not disarm
    return Settings(
        steps=2,
        guidance=4.0,
        gamma=1.0,
        seed=0,
        plain_calls=counted.calls,
        plain_seconds=counted.seconds,
    )


def test_colour_critic_passes_the_clean_run(clean: Path, layout: Any) -> None:
    ents = Entities.of(read(clean / "instance.tif"), read(clean / "label.tif"))
    scores, notes = colour_scores(
        read(clean / "image.tif"), ents, layout.taxonomy.names_by_id(), stats(clean, layout)
    )
    assert notes == [] and set(scores) == set(ents.scorable())
    assert min(scores.values()) >= 0.3


def test_bad_entities_caught_exactly_and_repaired_without_touching_the_rest(
    layout: Any, tiny: TinyBackend, clean: Path, tmp_path: Path
) -> None:
    text, bad = bad_text(layout, clean)
    settings = run_bad(layout, tiny, tmp_path, text)
    before = read(tmp_path / "image.tif")
    params = RefineParams(refine=True, min_score=0.3, max_rounds=2)
    gen = CountingGenerator(WrongDescription(tiny, text))  # type: ignore[arg-type]
    gen.inner.armed = False  # type: ignore[attr-defined]
    outputs = refine_outputs(
        tmp_path,
        layout,
        gen,
        params,
        settings=settings,
        tile_size=64,
        overlap=16,
        colours=stats(clean, layout),
        fidelity=False,
    )
    traj = json.loads((tmp_path / "refine_trajectory.json").read_text())
    initial = {int(k): v for k, v in traj["initial"].items()}
    final = {int(k): v for k, v in traj["final"].items()}
    caught = {e for e, s in initial.items() if s < params.min_score}
    assert caught == bad & set(initial)  # exactly the entities with the wrong description
    assert all(final[e] > initial[e] for e in caught)  # repaired
    assert all(final[e] >= params.min_score for e in final)
    assert traj["rounds"][0]["entities"].keys() == {str(e) for e in caught}
    after = read(tmp_path / "image.tif")
    inst = read(tmp_path / "instance.tif")
    outside = ~np.isin(inst, sorted(caught))
    assert np.array_equal(after[outside], before[outside])  # bit-identical elsewhere
    assert not np.array_equal(after, before)
    assert traj["refine"]["generator_calls"] <= settings.plain_calls  # time_factor 2
    assert outputs["image"] == tmp_path / "image.tif"
    report = json.loads((tmp_path / "quality.json").read_text())
    assert report["summary"]["passing_after"] == 1.0
    assert report["summary"]["passing_before"] < 1.0
    rows = {r["entity"]: r for r in report["entities"]}
    assert set(rows) == {int(e) for e in np.unique(inst) if e > 0}
    assert sum(report["summary"]["histogram_after"]) == report["summary"]["scored"]
    assert Image.open(tmp_path / "quality.png").size == (440, 240)


def test_loop_never_worse_and_within_its_call_budget(
    layout: Any, tiny: TinyBackend, clean: Path, tmp_path: Path
) -> None:
    text, bad = bad_text(layout, clean)
    settings = run_bad(layout, tiny, tmp_path, text, disarm=False)
    before = read(tmp_path / "image.tif")
    gen = CountingGenerator(WrongDescription(tiny, text))  # type: ignore[arg-type]
    params = RefineParams(refine=True, min_score=0.3, max_rounds=20, time_factor=2.0)
    refine_outputs(
        tmp_path,
        layout,
        gen,
        params,
        settings=settings,
        tile_size=64,
        overlap=16,
        colours=stats(clean, layout),
        fidelity=False,
    )
    traj = json.loads((tmp_path / "refine_trajectory.json").read_text())
    assert 0 < gen.calls <= settings.plain_calls
    assert traj["stopped"].startswith("time budget")
    assert all(traj["final"][k] >= v for k, v in traj["initial"].items())
    # the defect persists, so nothing is kept: the image is untouched, bit for bit
    assert np.array_equal(read(tmp_path / "image.tif"), before)
    for rnd in traj["rounds"]:
        assert set(rnd["entities"]) <= {str(e) for e in bad}
        assert all(a["action"] == "regenerated, rejected" for a in rnd["entities"].values())


def test_time_factor_one_spends_nothing(
    layout: Any, tiny: TinyBackend, clean: Path, tmp_path: Path
) -> None:
    text, _bad = bad_text(layout, clean)
    settings = run_bad(layout, tiny, tmp_path, text)
    gen = CountingGenerator(tiny)
    refine_outputs(
        tmp_path,
        layout,
        gen,
        RefineParams(True, 0.3, 3, 1.0),
        settings=settings,
        tile_size=64,
        overlap=16,
        colours=stats(clean, layout),
        fidelity=False,
    )
    assert gen.calls == 0


def test_refine_params_are_checked() -> None:
    with pytest.raises(InputError, match="--min-score"):
        RefineParams(min_score=1.5)
    with pytest.raises(InputError, match="--time-factor"):
        RefineParams(time_factor=0.5)


def test_cli_generate_refine_writes_complete_reports(
    tiny_random_weights: Path, tmp_path: Path
) -> None:
    from rs_seg2any.cli import main

    layer = write_demo_layer(tmp_path / "town.gpkg")
    out = tmp_path / "out"
    ext = ",".join(str(v) for v in EXTENT)
    rc = main(["generate", str(layer), "--class-field", "landcover", "--description-field",
               "description", "--taxonomy", "dubai_aerial", "--resolution", "0.5", "--extent",
               ext, "--model", str(tiny_random_weights), "--steps", "2", "--tile-size", "64",
               "--overlap", "16", "--progress", "none", "--out", str(out), "--refine",
               "--max-rounds", "1", "--min-score", "0.9"])  # fmt: skip
    assert rc == 0
    traj = json.loads((out / "refine_trajectory.json").read_text())
    from rs_seg2any.quality.segmenter import DEFAULT_WEIGHTS

    # Dubai classes: both critics apply (fidelity only where the segmenter weights are installed)
    if DEFAULT_WEIGHTS.is_file():
        assert traj["critics"] == ["colour", "fidelity"]
    else:
        assert traj["critics"] == ["colour"]
        assert any(n.startswith("fidelity skipped") for n in traj["notes"])
    assert traj["refine"]["generator_calls"] <= traj["plain"]["generator_calls"]
    assert len(traj["rounds"]) <= 1
    report = json.loads((out / "quality.json").read_text())
    inst = read(out / "instance.tif")
    assert {r["entity"] for r in report["entities"]} == {int(e) for e in np.unique(inst) if e > 0}
    assert (out / "quality.png").stat().st_size > 0
    assert len(report["tiles"]) == 9  # 128 px in 64-px tiles with 16 px overlap: 3 x 3
    assert all(t["passed"] == (t["min_score"] is None or t["min_score"] >= 0.9)
               for t in report["tiles"])  # fmt: skip
    assert report["seams"]["tile_size"] == 64
    with rasterio.open(out / "image.tif") as src:  # still a valid image on the same grid
        assert src.count == 3 and src.shape == (128, 128)


def test_job_files_and_cli_take_the_refine_keys() -> None:
    from rs_seg2any.cli import build_parser
    from rs_seg2any.jobmodel import job_from_mapping

    job = job_from_mapping("generate", {"out": "o", "refine": True, "min_score": 0.4,
                                        "max_rounds": 3})  # fmt: skip
    assert job.refine == RefineParams(True, 0.4, 3, 2.0)
    with pytest.raises(InputError, match="min-score"):
        job_from_mapping("generate", {"out": "o", "refine": True, "min_score": 2.0})
    args = build_parser().parse_args(["generate", "x.gpkg", "--class-field", "c", "--out", "o",
                                      "--refine", "--time-factor", "1.5"])  # fmt: skip
    assert (args.refine, args.time_factor, args.max_rounds) == (True, 1.5, 2)


class SlowJudge(Judge):
    """The colour critic taking 0.2 s per scoring (a segmenter on a big tile, say)."""

    def scores(self, image: Any, ents: Any) -> dict[str, dict[int, float]]:
        time.sleep(0.2)
        return super().scores(image, ents)


def test_wall_time_budget_counts_the_first_scoring_and_the_last_round(
    layout: Any, tiny: TinyBackend, clean: Path, tmp_path: Path
) -> None:
    text, _bad = bad_text(layout, clean)
    settings = run_bad(layout, tiny, tmp_path, text, disarm=False)  # failures persist
    gen = CountingGenerator(WrongDescription(tiny, text))  # type: ignore[arg-type]
    plan = TilePlan.for_grid(layout.grid, tile_size=64, overlap=16)
    names = layout.taxonomy.names_by_id()
    params = RefineParams(True, 1.0, 5, 2.0)
    many = replace(settings, plain_calls=1000)  # calls never bind: only seconds do
    # the first scoring (0.2 s) alone is over a 0.1 s budget: no round starts
    judge = SlowJudge(layout.taxonomy, names, stats(clean, layout), fidelity=False)
    canvas = read_canvas(tmp_path, layout, plan, None)
    traj = refine(canvas, gen, judge, params, replace(many, plain_seconds=0.1))
    assert traj["rounds"] == [] and traj["stopped"].startswith("time budget")
    # 0.5 s: round 1 starts at 0.2 s; round 2 would end past 0.2 + 2 x (0.2 + generation)
    canvas = read_canvas(tmp_path, layout, plan, None)
    traj = refine(canvas, gen, judge, params, replace(many, plain_seconds=0.5))
    assert len(traj["rounds"]) == 1 and traj["stopped"].startswith("time budget")
