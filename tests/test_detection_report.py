"""The filter report: leakage and fidelity scores, kept / rejected against thresholds, filter
on vs off; the insertion rules and the sampler's placement rules."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from odc.geo.geobox import GeoBox
from shapely.geometry import box

from rs_seg2any.detection.export import ChipSettings, export_scene
from rs_seg2any.detection.insert import load_rules, sample_objects
from rs_seg2any.detection.instances import scene_from_polygons
from rs_seg2any.detection.report import ObjectScores, Thresholds, fidelity, leakage, write_report
from rs_seg2any.errors import InputError, ScenarioError
from rs_seg2any.taxonomy import load_taxonomy

CRS = "EPSG:32633"
X0, Y0, N = 500_000.0, 5_000_064.0, 64
GRID = GeoBox((N, N), Affine(1.0, 0, X0, 0, -1.0, Y0), CRS)


def _scene() -> object:
    frame = gpd.GeoDataFrame(
        {"k": ["building", "ship"]},
        geometry=[box(X0 + 4, Y0 - 20, X0 + 14, Y0 - 10), box(X0 + 40, Y0 - 50, X0 + 52, Y0 - 44)],
        crs=CRS,
    )
    return scene_from_polygons(frame, GRID, "k")


def _tif(path: Path, data: np.ndarray) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=N, height=N, count=3, dtype="uint8",
                       crs=CRS, transform=GRID.affine) as dst:  # fmt: skip
        dst.write(data)
    return path


def test_leakage_is_zero_for_an_exact_edit_and_counts_spill() -> None:
    scene = _scene()
    before = np.zeros((3, N, N), np.uint8)
    exact = before.copy()
    exact[:, scene.instances == 2] = 200
    assert leakage(scene, before, exact, [2]) == {2: 0.0}
    spilled = exact.copy()
    rows, cols = np.nonzero(scene.instances == 2)
    spilled[:, rows.max() + 1, cols.min() : cols.max() + 1] = 9  # one row below the object
    leak = leakage(scene, before, spilled, [2])[2]
    assert 0 < leak < 0.5


@pytest.mark.parametrize("filtering", [True, False])
def test_doubtful_samples_are_rejected_only_when_filtering(tmp_path: Path, filtering: bool) -> None:
    scene = _scene()
    image = _tif(tmp_path / "img.tif", np.zeros((3, N, N), np.uint8))
    scores = ObjectScores(leakage={2: 0.2})
    t = Thresholds(min_visible=0.5, max_leakage=0.01, filter=filtering)
    settings = ChipSettings(size=32, stride=32, block=32, buffer=0, fractions=(1, 0, 0),
                            formats=("coco",))  # fmt: skip
    out = tmp_path / "set"
    checks = lambda o: scores.reasons(o, t)  # noqa: E731
    _, records, _ = export_scene(
        out, scene, image, settings, object_checks=checks, filter=filtering
    )
    write_report(out, records, scores, t, {})
    report = json.loads((out / "report.json").read_text())
    ship_chips = {o["chip"] for o in report["objects"] if o["object_id"] == 2}
    assert ship_chips
    for sample in report["samples"]:
        doubtful = sample["chip"] in ship_chips
        assert sample["kept"] == (not doubtful or not filtering)
        assert bool(sample["reasons"]) == doubtful
        assert (out / "images" / "train" / f"{sample['chip']}.tif").is_file() == sample["kept"]
    ship = [o for o in report["objects"] if o["object_id"] == 2]
    assert all(o["leakage"] == 0.2 and "leakage" in o["reasons"] for o in ship)
    assert all(o["kept"] == (not filtering) for o in ship)
    coco = json.loads((out / "coco" / "train.json").read_text())
    assert (2 in {a["object_id"] for a in coco["annotations"]}) == (not filtering)


def test_fidelity_scores_the_classes_the_segmenter_knows(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from rs_seg2any.train.segmenter import SegConfig, TinyUNet, save_segmenter

    torch.manual_seed(0)
    weights = save_segmenter(TinyUNet(SegConfig(width=4, depth=1)), tmp_path / "seg.safetensors")
    scene = _scene()
    image = np.random.default_rng(0).integers(0, 256, (3, N, N), dtype=np.uint8)
    scores = fidelity(scene, image, weights)
    assert set(scores) == {1}  # the building; the segmenter has no ship class
    assert 0.0 <= scores[1] <= 1.0
    t = Thresholds(min_fidelity=1.1 if scores[1] < 1 else 2.0)
    assert ObjectScores(fidelity=scores).reasons(1, t)


def test_sampled_objects_lie_on_their_classes_and_are_seeded() -> None:
    tax = load_taxonomy("dubai_aerial")
    labels = np.full((N, N), tax.resolve("land"), np.uint8)
    labels[:, :24] = tax.resolve("water")
    rules = load_rules()
    occupied = np.zeros((N, N), bool)
    kw = {"occupied": occupied, "seed": 4}
    a = sample_objects(labels, tax, GRID, ["vessel", "shed"], 4, rules, **kw)
    b = sample_objects(labels, tax, GRID, ["vessel", "shed"], 4, rules, **kw)
    assert a.geometry.equals(b.geometry)
    scene = scene_from_polygons(a.rename(columns={"class": "c"}), GRID, "c")
    for obj in scene.objects:
        pix = labels[scene.instances == obj.id]
        want = "water" if obj.category == "ship" else "land"
        assert (pix == tax.resolve(want)).all()
    with pytest.raises(ScenarioError, match="no room"):
        sample_objects(labels, tax, GRID, ["vessel"], 500, rules, **kw)
    with pytest.raises(InputError, match="unknown --insert-kind"):
        sample_objects(labels, tax, GRID, ["submarine"], 1, rules, **kw)


def test_bad_insertion_rules_are_typed_errors(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yaml"
    bad.write_text("kinds:\n  boat:\n    class: ship\n    size_m: [3]\n")
    with pytest.raises(InputError, match="kind 'boat' needs"):
        load_rules(bad)
    with pytest.raises(InputError, match="unknown insertion rules"):
        load_rules("nope")
