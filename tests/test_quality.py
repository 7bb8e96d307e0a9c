"""The realism measures (rs_seg2any.quality) on small synthetic images with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from scipy import ndimage

from rs_seg2any.errors import GridError, InputError
from rs_seg2any.quality.baselines import ClassPatchFill, FlatPainter, blurred
from rs_seg2any.quality.c2st import C2STProtocol, C2STResult, c2st, crop_scores, validity
from rs_seg2any.quality.colour import colour_scores, srgb_to_lab
from rs_seg2any.quality.evaluate import BLURRED, FLAT, REAL, evaluate
from rs_seg2any.quality.scenes import RenderSettings, layout_from_labels
from rs_seg2any.quality.seams import pooled_tile_lines, scene_set_seams, seam_scores, tile_lines
from rs_seg2any.quality.texture import texture_scores
from rs_seg2any.taxonomy import load_taxonomy

pytest.importorskip("torch")  # the classifier test's CNN (imported here, not inside a test)

# a quick protocol for 512-px test images: 4 x 4 blocks of 64 px after the 2x downsample
QUICK = C2STProtocol(crop=32, block=64, test_stride=16, steps=80, seeds=(0,), width=8)


def texture_field(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Coloured, spatially correlated noise: a stand-in for real texture."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(*shape, 3)).astype(np.float32)
    smooth = ndimage.gaussian_filter(noise, sigma=(1.5, 1.5, 0))
    img = 120 + 60 * smooth / smooth.std() + np.array([20, 0, -20], np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def two_class_labels(shape: tuple[int, int]) -> np.ndarray:
    labels = np.ones(shape, dtype=np.uint8)
    labels[:, shape[1] // 2 :] = 2
    labels[shape[0] // 3 : shape[0] // 2, :] = 3
    return labels


def test_c2st_separates_flat_paint_from_texture() -> None:
    real = [texture_field((512, 512), 0)]
    flat = [np.broadcast_to(real[0].reshape(-1, 3).mean(0).astype(np.uint8), real[0].shape)]
    res = c2st(real, [np.ascontiguousarray(flat[0])], QUICK)
    assert res.mean > 0.9
    assert res.test_crops[0] > 0 and res.test_crops[1] > 0


def test_c2st_is_chance_on_two_halves_of_one_texture_field() -> None:
    field = texture_field((512, 1024), 1)
    res = c2st([field[:, :512]], [np.ascontiguousarray(field[:, 512:])], QUICK)
    assert abs(res.mean - 0.5) <= 0.2


def test_c2st_is_deterministic_for_a_seed() -> None:
    real, cand = [texture_field((512, 512), 2)], [texture_field((512, 512), 3)]
    fast = C2STProtocol(crop=32, block=64, test_stride=16, steps=10, seeds=(4,), width=8)
    assert c2st(real, cand, fast).accuracies == c2st(real, cand, fast).accuracies


def test_crop_scores_point_at_the_region_that_gives_the_candidate_away() -> None:
    """A tint on the left half only: the crops the classifier catches are the tinted ones,
    and with one classifier seed its accuracy is the classifier test's own."""
    real = [texture_field((512, 512), 5)]
    cand = texture_field((512, 512), 6).astype(np.int16)
    cand[:, :256] += np.array([40, -30, -30], np.int16)
    cand_u8 = [np.clip(cand, 0, 255).astype(np.uint8)]
    res = crop_scores(real, cand_u8, QUICK)
    left = res.cand_where[:, 2] + 2 * QUICK.crop <= 256
    right = res.cand_where[:, 2] >= 256
    assert left.any() and right.any()
    assert res.caught()[left].mean() > 0.9
    assert res.cand_logit[left].mean() > res.cand_logit[right].mean() + 1.0
    assert res.cand_crops.shape == (len(res.cand_logit), QUICK.crop, QUICK.crop, 3)
    assert res.accuracy == c2st(real, cand_u8, QUICK).accuracies[0]


def test_c2st_refuses_scenes_too_small_or_unpaired() -> None:
    with pytest.raises(ValueError, match="too small"):
        c2st([texture_field((128, 128), 0)], [texture_field((128, 128), 1)], QUICK)
    with pytest.raises(ValueError, match="differ"):
        c2st([texture_field((512, 512), 0)], [texture_field((512, 256), 1)], QUICK)


def test_validity_rule() -> None:
    def res(acc: float) -> C2STResult:
        return C2STResult(acc, 0.0, (acc,), 1, (1, 1))

    assert validity(res(0.99), res(0.96), res(0.55)).valid
    bad = validity(res(0.99), res(0.90), res(0.65))
    assert not bad.valid and len(bad.reasons) == 2
    assert not validity(res(0.99), None, res(0.5)).valid


def test_colour_distance_zero_on_identical_and_grows_with_tint() -> None:
    img = texture_field((128, 128), 4)
    labels = two_class_labels(img.shape[:2])
    same = colour_scores([img], [img], [labels])
    assert same.mean_delta_e == 0.0 and same.saturation_ratio == pytest.approx(1.0)
    blue = np.array([0, 0, 1])
    tints = [np.clip(img.astype(int) + t * blue, 0, 255).astype(np.uint8) for t in (10, 30)]
    d10, d30 = (colour_scores([t], [img], [labels]).mean_delta_e for t in tints)
    assert 0 < d10 < d30
    grey = np.repeat(img.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    assert colour_scores([grey], [img], [labels]).saturation_ratio < 0.2


def test_lab_of_white_and_black() -> None:
    lab = srgb_to_lab(np.array([[255, 255, 255], [0, 0, 0]], np.uint8))
    np.testing.assert_allclose(lab, [[100, 0, 0], [0, 0, 0]], atol=0.05)


def test_texture_distance_zero_on_identical_and_large_for_flat_paint() -> None:
    img = texture_field((128, 128), 5)
    labels = two_class_labels(img.shape[:2])
    assert texture_scores([img], [img], [labels]).mean_distance == 0.0
    flat = FlatPainter.from_pairs([img], [labels])(labels)
    scores = texture_scores([flat], [img], [labels])
    assert scores.mean_distance > 0.05 and scores.mean_sharpness < 0.05
    assert texture_scores([blurred(img)], [img], [labels]).mean_sharpness < 0.5


def test_token_period_score_finds_an_injected_16px_grid() -> None:
    img = texture_field((512, 512), 6).astype(np.int16)
    clean = seam_scores(img.astype(np.uint8), 256, 64)
    assert clean.token_mean < 1.1 and clean.token_worst < 1.3 and clean.tile_worst < 1.3
    grid = img.copy()
    grid[:, ::16] += 20
    grid[::16, :] += 20
    scored = seam_scores(np.clip(grid, 0, 255).astype(np.uint8), 256, 64)
    assert scored.token_mean > 1.3 and scored.token_worst > 1.3


def test_tile_line_chance_is_what_content_alone_gives_and_a_seam_exceeds_it() -> None:
    """Edges off the tiling lines (roads, kerbs) raise the chance figure, not the tiling
    lines' score; a step on every tiling line raises the tiling lines well above chance."""
    img = texture_field((640, 640), 7).astype(np.int16)
    at = tile_lines(640, 256, 64)
    xs = np.random.default_rng(1).choice(np.arange(1, 640), 80, replace=False)
    content, seams = img.copy(), img.copy()
    for k, x in enumerate(sorted(int(x) for x in xs if x not in at)):
        content[:, x:] += 15 * (-1) ** k
    for k, x in enumerate(at):
        seams[:, x:] += 10 * (-1) ** k
    plain = seam_scores(img.astype(np.uint8), 256, 64)
    busy = seam_scores(np.clip(content, 0, 255).astype(np.uint8), 256, 64)
    seamed = seam_scores(np.clip(seams, 0, 255).astype(np.uint8), 256, 64)
    assert busy.tile_chance > plain.tile_chance + 0.1 and busy.tile_worst < busy.tile_chance
    assert seamed.tile_worst > seamed.tile_chance + 0.2 and seamed.tile_mean > 1.1
    assert plain.tile_mean < 1.05 and abs(plain.tile_worst - plain.tile_chance) < 0.1
    assert seam_scores(img.astype(np.uint8), 256, 64) == plain  # the chance draws are seeded


def test_pooled_tile_lines_find_a_faint_seam_every_scene_repeats() -> None:
    """A step too faint to beat one scene's content stands out once the scenes' line
    strengths are pooled; content alone (edges at random places) does not."""
    at = tile_lines(640, 256, 64)
    rng = np.random.default_rng(3)
    plain, seamed = [], []
    for k in range(12):
        img = texture_field((640, 640), 20 + k).astype(np.int16)
        for j, x in enumerate(sorted(int(x) for x in rng.choice(np.arange(1, 640), 30))):
            img[:, x:] += 25 * (-1) ** j  # content: edges that fall anywhere
        plain.append(np.clip(img, 0, 255).astype(np.uint8))
        faint = img.copy()
        faint[:, at[2] :] += 10 * (-1) ** k  # one tiling line, in every scene
        seamed.append(np.clip(faint, 0, 255).astype(np.uint8))
    one = seam_scores(seamed[0], 256, 64)
    assert one.tile_worst < one.tile_chance  # in one scene it drowns in content
    worst, chance = pooled_tile_lines(seamed, 256, 64)
    clean_worst, clean_chance = pooled_tile_lines(plain, 256, 64)
    assert worst > chance + 0.1 and worst > clean_worst + 0.15
    assert clean_worst < clean_chance + 0.05
    summary, per_scene = scene_set_seams(seamed, 256, 64)
    assert (summary.tile_pooled, summary.tile_pooled_chance) == (worst, chance)
    assert len(per_scene) == 12 and per_scene[0] == one and one.tile_pooled is None


def test_class_patch_fill_uses_each_class_texture() -> None:
    labels = two_class_labels((96, 96))
    train = np.zeros((96, 96, 3), np.uint8)
    train[labels == 1] = (200, 40, 40)
    train[labels == 2] = (40, 40, 200)
    train[labels == 3] = (40, 200, 40)
    fill = ClassPatchFill.from_pairs([train], [labels], patch=16, per_class=8, purity=1.0)
    out = fill(labels)
    assert out.shape == (96, 96, 3)
    np.testing.assert_array_equal(out[5, 5], (200, 40, 40))
    np.testing.assert_array_equal(out[90, 90], (40, 40, 200))
    assert np.array_equal(fill(labels), out)  # deterministic by its seed


def test_layout_from_labels_rasterises_back_exactly() -> None:
    from rs_seg2any.raster import rasterize_layout

    labels = two_class_labels((64, 80))
    labels[10:20, 10:30] = 4
    layout = layout_from_labels(labels, load_taxonomy("dubai_aerial"))
    assert np.array_equal(rasterize_layout(layout)["label"].values, labels)


def write_tif(path: Path, data: np.ndarray, transform: Affine, crs: str = "EPSG:32640") -> Path:
    bands = data[None] if data.ndim == 2 else data.transpose(2, 0, 1)
    with rasterio.open(path, "w", driver="GTiff", height=data.shape[0], width=data.shape[1],
                       count=bands.shape[0], dtype="uint8", crs=crs,
                       transform=transform) as dst:  # fmt: skip
        dst.write(bands)
    return path


def test_evaluate_writes_its_report_and_picture(tmp_path: Path) -> None:
    real = texture_field((128, 160), 7)
    labels = two_class_labels(real.shape[:2])
    tr = Affine(0.5, 0, 1000.0, 0, -0.5, 2000.0)
    real_tif = write_tif(tmp_path / "real.tif", real, tr)
    labels_tif = write_tif(tmp_path / "labels.tif", labels, tr)
    tinted = np.clip(real.astype(int) + 25, 0, 255).astype(np.uint8)
    out = tmp_path / "eval"
    report = evaluate({"tinted": [tinted]}, real_tif, labels_tif, out=out, classifier=False,
                      taxonomy="dubai_aerial")  # fmt: skip
    assert list(report.rows) == ["tinted", FLAT, BLURRED, REAL]
    assert not report.validity.valid  # no classifier test, so no claim it is valid
    saved = json.loads((out / "report.json").read_text())
    assert saved["rows"]["tinted"]["colour"]["mean_delta_e"] > 5
    assert saved["rows"][REAL]["colour"]["mean_delta_e"] == 0.0
    assert (out / "picture.png").stat().st_size > 0
    assert sorted(p.name for p in out.iterdir()) == ["picture.png", "report.json"]


def test_evaluate_refuses_mismatched_grids(tmp_path: Path) -> None:
    real = texture_field((128, 160), 8)
    labels = two_class_labels(real.shape[:2])
    tr = Affine(0.5, 0, 1000.0, 0, -0.5, 2000.0)
    real_tif = write_tif(tmp_path / "real.tif", real, tr)
    shifted = write_tif(tmp_path / "shifted.tif", real, tr * Affine.translation(3, 0))
    out = tmp_path / "eval"
    with pytest.raises(GridError, match="not on the real image's grid"):
        evaluate({"shifted": shifted}, real_tif, labels, out=out, classifier=False)
    with pytest.raises(GridError, match="px"):
        evaluate({"small": [real[:64]]}, real, labels, out=out, classifier=False)
    with pytest.raises(GridError):
        evaluate({}, real, labels[:100], out=out, classifier=False)
    with pytest.raises(InputError, match="too small for the classifier"):
        evaluate({}, real, labels, out=out)
    assert not (out / "report.json").exists()


def test_evaluate_renders_a_generator_with_the_generate_job(
    tmp_path: Path, tiny_random_weights: Path
) -> None:
    from rs_seg2any.generators.registry import load_generator

    gen = load_generator("tiny", tiny_random_weights, threads=1)
    real = texture_field((64, 112), 9)
    labels = two_class_labels(real.shape[:2])
    settings = RenderSettings(tile_size=64, overlap=16, steps=2)
    report = evaluate({"tiny": gen}, real, labels, out=tmp_path / "eval", classifier=False,
                      controls=False, taxonomy="dubai_aerial",
                      render_settings=settings)  # fmt: skip
    row = report.rows["tiny"]
    assert row.kind == "generator" and row.seams.tile_size == 64
    assert (tmp_path / "eval" / "render" / "tiny" / "scene_000" / "image.tif").is_file()
    assert np.isfinite(row.colour.mean_delta_e)


def test_evaluate_refuses_bad_candidates_before_any_work(
    tmp_path: Path, tiny_random_weights: Path
) -> None:
    from rs_seg2any.errors import LayoutError
    from rs_seg2any.generators.registry import load_generator

    real = texture_field((64, 64), 10)
    labels = two_class_labels(real.shape[:2])
    kw = {"out": tmp_path / "eval", "classifier": False}
    with pytest.raises(InputError, match="reserved"):
        evaluate({REAL: [real]}, real, labels, **kw)
    with pytest.raises(InputError, match="2 images for 1 scenes"):
        evaluate({"two": [real, real]}, real, labels, **kw)
    with pytest.raises(InputError, match="uint8"):
        evaluate({"float": [real.astype(np.float32)]}, real, labels, **kw)
    with pytest.raises(InputError, match="2 real images but 1 label"):
        evaluate({}, [real, real], [labels], **kw)
    gen = load_generator("tiny", tiny_random_weights, threads=1)
    with pytest.raises(LayoutError, match="taxonomy"):
        evaluate({"tiny": gen}, real, labels, **kw)
    assert not (tmp_path / "eval" / "report.json").exists()


def test_evaluate_from_the_cli_and_a_job_file(
    tmp_path: Path, tiny_random_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rs-seg2any evaluate` renders the labels with the chosen generator, scores it next to
    given images, and a job file with the same keys does the same; bad input is one line."""
    from rs_seg2any.cli import main

    real = texture_field((128, 160), 9)
    labels = two_class_labels(real.shape[:2])
    tr = Affine(0.5, 0, 1000.0, 0, -0.5, 2000.0)
    real_tif = write_tif(tmp_path / "real.tif", real, tr)
    labels_tif = write_tif(tmp_path / "labels.tif", labels, tr)
    tinted = write_tif(tmp_path / "tinted.tif", np.clip(real.astype(int) + 25, 0, 255), tr)
    out = tmp_path / "cli"
    args = ["evaluate", "--real", real_tif, "--labels", labels_tif, "--taxonomy", "dubai_aerial",
            "--candidate", f"tinted={tinted}", "--no-classifier", "--model", tiny_random_weights,
            "--steps", "1", "--tile-size", "64", "--overlap", "16", "--out", out,
            "--progress", "none"]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    saved = json.loads((out / "report.json").read_text())
    assert {"tinted", "tiny", REAL} <= set(saved["rows"])
    assert saved["rows"]["tinted"]["colour"]["mean_delta_e"] > 5
    job = tmp_path / "eval.yaml"
    job.write_text(
        f"command: evaluate\nreal: [{real_tif}]\nlabels: [{labels_tif}]\n"
        f"taxonomy: dubai_aerial\nno_generator: true\ncandidate: ['tinted={tinted}']\n"
        f"no_classifier: true\nout: {tmp_path / 'job'}\n"
    )
    assert main(["run", str(job)]) == 0
    again = json.loads((tmp_path / "job" / "report.json").read_text())
    assert set(again["rows"]) == {"tinted", FLAT, BLURRED, REAL}
    capsys.readouterr()
    bad = tmp_path / "bad"
    code = main(["evaluate", "--real", str(real_tif), "--labels", str(labels_tif),
                 "--candidate", "tinted", "--no-generator", "--out", str(bad)])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and len(err) == 1 and "NAME=IMAGE" in err[0]
    assert not (bad / "report.json").exists()


def test_copying_finds_pasted_blocks_in_any_turn_and_not_fresh_texture() -> None:
    from rs_seg2any.quality.copying import NEAR, BlockIndex, copy_scores

    source = texture_field((160, 160), 11)
    index = BlockIndex([source], stride=8)
    # a collage of the source's blocks, turned and flipped, at the index's 8-px grid
    collage = np.concatenate(
        [np.rot90(source[:64, :64], 1), source[32:96, 96:160][:, ::-1]], axis=1
    )
    pasted = copy_scores([np.ascontiguousarray(collage)], index)
    fresh = copy_scores([texture_field((64, 128), 12)], index)
    assert pasted.median_rmse < 1.0 and pasted.share_near == 1.0
    assert fresh.median_rmse > 4 * NEAR and fresh.share_near == 0.0


def test_evaluate_reports_copying_against_a_reference(tmp_path: Path) -> None:
    real = texture_field((128, 160), 7)
    labels = two_class_labels(real.shape[:2])
    copy = np.ascontiguousarray(real[:, ::-1])
    report = evaluate({"copy": [copy]}, real, labels, out=tmp_path / "e", classifier=False,
                      copy_reference=[real])  # fmt: skip
    rows = json.loads((tmp_path / "e" / "report.json").read_text())["rows"]
    assert rows["copy"]["copying"]["median_rmse"] < 1.0
    assert rows[REAL]["copying"]["median_rmse"] < 1.0  # the reference is the real scene here
    assert rows[BLURRED]["copying"]["median_rmse"] > rows["copy"]["copying"]["median_rmse"]
    assert "copy" in report.table().splitlines()[0]
