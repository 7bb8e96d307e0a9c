"""Every numeric option of every subcommand refuses nan, inf, negative, zero and absurd values
with a one-line typed error naming the option, before any output exists; the Python entry
points apply the same rules (one table: rs_seg2any.limits)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytest
from inputs_kit import GRID, assert_one_line_error, files_under, run_cli, town

from rs_seg2any.cli import build_parser, parse_args
from rs_seg2any.errors import GridError, InputError, RsSeg2AnyError
from rs_seg2any.layout import load_layout
from rs_seg2any.limits import RULES, Rule, check_tiling

OUT = "OUT"
BASE: dict[str, list[str]] = {
    "layout": ["layout", "l.gpkg", "--class-field", "c", "--resolution", "10"],
    "generate": ["generate", "l.gpkg", "--class-field", "c", "--resolution", "10"],
    "flood": ["flood", "--image", "i.tif", "--dem", "d.tif", "--level", "3"],
    "plan": ["plan", "--image", "i.tif", "--zones", "z.gpkg", "--zone-description-field", "d"],
    "seasons": ["seasons", "--layout", "l.gpkg", "--class-field", "c", "--resolution", "10"],
    "change": ["change", "--layout", "l.gpkg", "--class-field", "c", "--recipe", "demolition"],
    "cloudfill": ["cloudfill", "--image", "i.tif", "--clouds", "c.tif", "--layout", "l.gpkg"],
    "train-base": ["train-base", "--config", "c.yaml"],
    "evaluate": ["evaluate", "--real", "r.tif", "--labels", "l.tif"],
    "damage": ["damage", "--image", "i.tif"],
    "detection-set": [
        "detection-set",
        "--image",
        "i.tif",
        "--objects",
        "o.gpkg",
        "--object-class-field",
        "c",
    ],
    "train-lora": ["train-lora", "--images", "a.tif", "--labels", "l.gpkg", "--class-field", "c"],
}
STRING_NUMBERS = {"resolution": "--resolution", "extent": "--extent", "seed_xy": "--seed-xy"}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _bad_values(rule: Rule) -> list[str]:
    """nan, inf, negative, zero and absurd values that break ``rule``."""
    values = ["nan", "-nan", "inf", "-inf", "1e300", "-1e300", "12abc", ""]
    if rule.low > -1:
        values.append("-1")
    if rule.low > 0 or rule.low_open:
        values.append("0")
    if rule.integer:
        values += ["2.5", str(2**70)]
    return values


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for command, parser in _subparsers().items():
        if command not in BASE:
            continue
        for action in parser._actions:
            flag = next((f for f in action.option_strings if f.startswith("--")), None)
            if flag is None:
                continue
            if action.dest in RULES:
                cases += [(command, flag, v) for v in _bad_values(RULES[action.dest])]
            elif action.dest in STRING_NUMBERS:
                bad = {"resolution": ["nan", "inf", "0", "-5", "1e300", "10,nan", "1,2,3"],
                       "extent": ["0,0,nan,1", "0,0,inf,1", "1,2,3", "a,b,c,d"],
                       "seed_xy": ["nan,1", "1", "1,inf"]}[action.dest]  # fmt: skip
                cases += [(command, flag, v) for v in bad]
    return cases


CASES = _cases()


def test_the_table_covers_every_numeric_option() -> None:
    """No numeric option escapes: every subcommand's options with int/float values have a rule."""
    flags = {(c, f) for c, f, _ in CASES}
    for command, parser in _subparsers().items():
        for action in parser._actions:
            if action.option_strings and isinstance(action.default, int | float) and not \
                    isinstance(action.default, bool):  # fmt: skip
                assert (command, action.option_strings[-1]) in flags, (command, action.dest)
    for expected in [("generate", "--steps"), ("generate", "--threads"), ("flood", "--level"),
                     ("change", "--pairs"), ("layout", "--max-pixels"), ("cloudfill", "--seed"),
                     ("train-base", "--minutes"), ("flood", "--seed-xy"),
                     ("layout", "--extent"), ("plan", "--overlap")]:  # fmt: skip
        assert expected in flags


@pytest.mark.parametrize("command", list(BASE))
def test_base_command_lines_parse(command: str) -> None:
    """The command lines below are valid but for the one bad number each case adds."""
    args = parse_args([*BASE[command], *(["--out", OUT] if command != "train-base" else [])])
    assert args.command == command


@pytest.mark.parametrize(("command", "flag", "value"), CASES)
def test_bad_number_is_one_line_typed_error(
    command: str, flag: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    tail = ["--out", out] if command != "train-base" else []
    code, err = run_cli([*BASE[command], *tail, f"{flag}={value}"], capsys)
    assert_one_line_error(code, err, flag)
    assert files_under(out) == [] and not out.exists()


@pytest.mark.parametrize("command", ["generate", "flood", "plan", "seasons", "cloudfill"])
def test_overlap_must_leave_a_tile_core(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli([*BASE[command], "--out", OUT, "--tile-size", "64", "--overlap", "32"],
                        capsys)  # fmt: skip
    assert_one_line_error(code, err, "--overlap 32", "--tile-size 64")


def test_layer_crs_not_a_code(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli([*BASE["layout"], "--out", OUT, "--layer-crs", "EPSG:notacode"], capsys)
    assert_one_line_error(code, err, "--layer-crs 'EPSG:notacode'")
    assert code == GridError.exit_code


def test_resolution_absurd_does_not_make_a_one_pixel_grid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layer = tmp_path / "t.gpkg"
    town().to_file(layer, driver="GPKG", engine="pyogrio")
    out = tmp_path / "out"
    code, err = run_cli(["layout", layer, "--class-field", "cls", "--taxonomy", "dubai_aerial",
                         "--resolution", "1e300", "--out", out], capsys)  # fmt: skip
    assert_one_line_error(code, err, "--resolution")
    assert files_under(out) == []


# ---- the Python API applies the same rules ------------------------------------------------


def test_load_layout_rules() -> None:
    frame = town()
    for kwargs in ({"resolution": 1e300}, {"resolution": math.nan}, {"resolution": "0"},
                   {"max_pixels": math.inf}, {"max_pixels": -5},
                   {"layer_crs": "EPSG:notacode"}):  # fmt: skip
        with pytest.raises(GridError):
            load_layout(frame, "cls", taxonomy="dubai_aerial", **kwargs)  # type: ignore[arg-type]


def test_scenario_and_job_entry_points(tmp_path: Path, tiny_random_weights: Path) -> None:
    pytest.importorskip("torch")
    from rs_seg2any.generators.registry import load_generator
    from rs_seg2any.job.generate_job import run_generate_job
    from rs_seg2any.scenarios.change import change_pairs
    from rs_seg2any.scenarios.common import GenOptions, Polygons
    from rs_seg2any.scenarios.flood import DemFlood

    bad_opts = [{"steps": 0}, {"guidance": math.nan}, {"gamma": math.inf}, {"seed": -1},
                {"seed": 2**40}, {"tile_size": -5}, {"tile_size": 64, "overlap": 32}]  # fmt: skip
    for kwargs in bad_opts:
        with pytest.raises(InputError):
            GenOptions(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="--threads"):
        load_generator("tiny", tiny_random_weights, threads=-1)
    with pytest.raises(InputError, match="--level"):
        DemFlood(tmp_path / "dem.tif", math.nan)
    gen = load_generator("tiny", tiny_random_weights, threads=1)
    layout = load_layout(town(), "cls", taxonomy="dubai_aerial", grid=GRID)
    for kwargs in bad_opts[:-1]:
        job_kwargs = {"tile_size": 64, "overlap": 16, **kwargs}
        with pytest.raises(InputError):
            run_generate_job(layout, tmp_path / "job", gen, **job_kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "job").exists()
    polys = Polygons.read(town(), "cls", taxonomy="dubai_aerial")
    with pytest.raises(InputError, match="--pairs"):
        change_pairs(tmp_path / "c", gen, polys, GRID, recipe="demolition", pairs=0)
    assert not (tmp_path / "c").exists()


def test_train_lora_params_use_the_rules_table() -> None:
    """The API's LoraTrainParams refuses what the CLI refuses, with the table's message."""
    from rs_seg2any.lora.params import LoraTrainParams

    base = {"images": ("a.tif",), "labels": "l.gpkg"}
    names = ("rank", "max_steps", "batch", "crop", "val_every", "patience", "ckpt_every",
             "segmenter_steps", "border", "val_fraction", "lr", "alpha", "minutes", "seed",
             "threads")  # fmt: skip
    for name in names:
        rule = RULES[name]
        for bad in (math.nan, math.inf, -1, rule.high * 10, True):
            with pytest.raises(InputError) as err:
                LoraTrainParams(**{**base, name: bad})  # type: ignore[arg-type]
            assert str(err.value).startswith(rule.option), (name, bad, str(err.value))
    LoraTrainParams(**base, patience=0, border=0, val_fraction=0.5, lr=1.0)  # type: ignore[arg-type]


def test_rules_accept_their_boundaries() -> None:
    for rule in RULES.values():
        step = 1 if rule.integer else min(1.0, (rule.high - rule.low) / 2)
        low = rule.low if not rule.low_open else rule.low + step
        assert rule.check(str(int(low) if rule.integer else low)) == low
        if rule.high_open:  # the bound itself is refused, a value just inside is not
            with pytest.raises(RsSeg2AnyError):
                rule.check(rule.high)
            assert rule.check(rule.high - step / 2) == rule.high - step / 2
        else:
            assert rule.check(rule.high) == rule.high
    check_tiling(64, 31)
    with pytest.raises(RsSeg2AnyError):
        check_tiling(64, 32)
    assert np.isfinite(RULES["level"].check("-3.5"))


def test_the_top_seed_runs_a_scenario_to_the_end(
    tmp_path: Path, tiny_random_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The edit render derives seed + 1: at the top of the range it wraps instead of failing
    after the before image was written."""
    pytest.importorskip("torch")
    from inputs_kit import GEN, photo, zones

    out = tmp_path / "out"
    code, err = run_cli(["flood", "--image", photo(tmp_path / "p.tif"), "--flood-polygons",
                         zones(tmp_path / "z.gpkg"), "--seed", str(RULES["seed"].high),
                         "--model", tiny_random_weights, "--out", out, *GEN], capsys)  # fmt: skip
    assert code == 0, err
    assert (out / "after" / "image.tif").is_file()
