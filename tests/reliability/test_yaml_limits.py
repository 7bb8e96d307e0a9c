"""Every YAML the product reads goes through one bounded loader: malformed, non-UTF-8,
oversized and alias-bomb files (taxonomies, presets, job files, training configs, --param
values) fail fast with a one-line typed error naming the file (and line), in little memory."""

from __future__ import annotations

import re
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from inputs_kit import assert_one_line_error, files_under, run_cli

from rs_seg2any.errors import InputError, RsSeg2AnyError, TaxonomyError
from rs_seg2any.jobmodel import load_job
from rs_seg2any.scenarios.presets import SHIPPED, load_preset
from rs_seg2any.taxonomy import load_taxonomy, shipped_taxonomies
from rs_seg2any.yamlio import MAX_YAML_BYTES, load_yaml_text

PACKAGE = Path(__file__).resolve().parents[2] / "rs_seg2any"


def laughs(levels: int = 9) -> str:
    """A few hundred bytes that expand to 9**levels strings once aliases are followed."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*l{i - 1}"] * 9)
        lines.append(f"l{i}: &l{i} [{refs}]")
    return "\n".join(lines) + "\n"


def _train_config() -> Callable[[Path], Any]:
    pytest.importorskip("torch")  # imported before the measurement starts
    from rs_seg2any.train.base import TrainConfig

    return TrainConfig.from_yaml


LOADERS: dict[str, tuple[Callable[[], Callable[[Path], Any]], type[RsSeg2AnyError]]] = {
    "taxonomy": (lambda: load_taxonomy, TaxonomyError),
    "preset": (lambda: load_preset, InputError),
    "job": (lambda: load_job, InputError),
    "training config": (_train_config, InputError),
}

BAD_TEXTS: dict[str, tuple[bytes, str]] = {
    "alias bomb": (laughs().encode(), "nested aliases"),
    "recursive alias": (b"a: &a [1, *a]\n", "recursive alias"),
    "malformed": (b"name: x\nclasses: [\n  - id: 1\n  name: [\n", "line "),
    "tab indent": (b"name: x\n\tclasses: 1\n", "line 2"),
    "latin-1": ("name: caf\xe9\nclasses: []\n".encode("latin-1"), "not UTF-8 text"),
    "too large": (b"# " + b"x" * (MAX_YAML_BYTES + 10) + b"\n", "larger than"),
    "deep nesting": (b"[" * 50_000, "YAML"),
}


@pytest.mark.parametrize("case", list(BAD_TEXTS))
@pytest.mark.parametrize("loader", list(LOADERS))
def test_bad_yaml_gives_typed_one_line_error_fast(loader: str, case: str, tmp_path: Path) -> None:
    factory, error = LOADERS[loader]
    load = factory()
    text, fragment = BAD_TEXTS[case]
    path = tmp_path / "bad.yaml"
    path.write_bytes(text)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(error) as info:
            load(path)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "\n" not in message and str(path) in message and fragment in message, message
    assert seconds < 10 and peak < 64 * 2**20, (seconds, peak)


def test_alias_bomb_is_small_but_would_be_huge() -> None:
    """The bomb is a few hundred bytes; expanded it has 9**9 (387 million) strings."""
    assert len(laughs()) < 800
    with pytest.raises(InputError, match="nested aliases"):
        load_yaml_text(laughs(), "x")
    assert load_yaml_text(laughs(3), "x")["l2"][0][0] == ["lol"] * 9


def test_a_few_aliases_still_work() -> None:
    data = load_yaml_text("base: &b {colour: '#FF0000'}\none: *b\ntwo: *b\n", "x")
    assert data["two"] == {"colour": "#FF0000"}


def test_malformed_taxonomy_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "tax.yaml"
    path.write_text("name: t\nclasses:\n  - id: 1\n    name: a\n  - id: 2\n   name: b\n")
    with pytest.raises(TaxonomyError, match=r"tax\.yaml.* at line 6"):
        load_taxonomy(path)


def test_shipped_yaml_still_loads() -> None:
    for name in shipped_taxonomies():
        assert load_taxonomy(name).classes
    for name in SHIPPED:
        assert load_preset(name)


def test_no_yaml_parsing_outside_the_one_loader() -> None:
    pattern = re.compile(r"yaml\.(safe_load|load|unsafe_load|full_load|load_all|safe_load_all)")
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "yamlio.py" and pattern.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []


# ---- job files (run JOB.yaml) and --param values through the real CLI --------------------

JOB_ERRORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "unknown key": ("scenario: flood\nlevl: 3\n", ("unknown key 'levl'", "keys are:")),
    "list for a single option": ("scenario: flood\nlevel: [1, 2]\n", ("key 'level'", "list")),
    "mapping value": ("scenario: flood\nlevel: {a: 1}\n", ("key 'level'", "dict")),
    "bool for a value": ("scenario: flood\nlevel: true\n", ("key 'level'",)),
    "text for a switch": ("scenario: flood\nrestart: 'yes'\n", ("key 'restart'", "switch")),
    "no scenario": ("level: 3\n", ("needs 'scenario:'",)),
    "not a mapping": ("- flood\n", ("needs 'scenario:'",)),
    "bad number": ("scenario: flood\nlevel: .nan\nout: o\n", ("--level",)),
    "bad choice": ("scenario: flood\nunknown_class: maybe\nout: o\n", ("--unknown-class",)),
    "missing out": ("scenario: flood\nlevel: 3\n", ("--out",)),
    "bad recipe": ("scenario: change\nrecipe: teleport\nout: o\n", ("--recipe", "teleport")),
}


@pytest.mark.parametrize("case", list(JOB_ERRORS))
def test_bad_job_file_is_one_line_naming_key_and_file(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, fragments = JOB_ERRORS[case]
    job = tmp_path / "job.yaml"
    job.write_text(text)
    code, err = run_cli(["run", job], capsys)
    assert_one_line_error(code, err, str(job), *fragments)
    assert files_under(tmp_path / "o") == []


def test_latin1_job_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "job.yaml"
    job.write_bytes("scenario: plan\nzone_description_field: d\xe9\n".encode("latin-1"))
    code, err = run_cli(["run", job], capsys)
    assert_one_line_error(code, err, str(job), "not UTF-8", "line 2")


def test_job_values_load_into_the_typed_params(tmp_path: Path) -> None:
    from rs_seg2any.scenarios.builtin import FloodParams

    dem = tmp_path / "dem.tif"
    dem.touch()
    job = tmp_path / "job.yaml"
    job.write_text(
        f"scenario: flood\nlevel: -3\nseed_xy: ['-73.5,40.7', '1,2']\nrestart: true\n"
        f"keep_tiles: false\ndem: {dem}\nflood_polygons: null\nout: o\n"
    )
    loaded = load_job(job)
    assert loaded.command == "flood" and loaded.out == Path("o")
    assert loaded.params == FloodParams(dem=str(dem), level=-3.0, seed_xy=("-73.5,40.7", "1,2"))
    assert loaded.tiles.restart is True and loaded.tiles.keep_tiles is False


PARAMS = {
    "count=[": "--param count",
    "count": "KEY=VALUE",
    "count=.nan": "finite",
    "count=" + "[" * 5000: "--param count",
}


@pytest.mark.parametrize("param", list(PARAMS))
def test_bad_param_values(param: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from inputs_kit import town, write_gpkg

    pytest.importorskip("torch")
    layer = write_gpkg(town(), tmp_path / "t.gpkg")
    out = tmp_path / "out"
    code, err = run_cli(["change", "--layout", layer, "--class-field", "cls", "--taxonomy",
                         "dubai_aerial", "--resolution", 1, "--recipe", "new_buildings",
                         "--param", param, "--out", out, "--progress", "none"], capsys)  # fmt: skip
    assert_one_line_error(code, err, PARAMS[param])
    assert files_under(out) == []


def test_param_alias_bomb(tmp_path: Path) -> None:
    from rs_seg2any.scenarios.builtin import parse_param

    bomb = "[" + ",".join(f"&a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9))
    bomb = "[&a0 [1,1,1,1,1,1,1,1,1]," + bomb[1:] + "]"
    with pytest.raises(InputError, match=r"--param count.*nested aliases"):
        parse_param("count=" + bomb)


PRESET_SHAPES = {
    "class: 3\n": "'class' must be a mapping",
    "class: {colour: '#FF0000'}\n": "'class' must be a mapping with a 'name'",
    "class: {name: w, colour: blue}\n": "colour or priority",
    "class: {name: w}\ndepth_thresholds_m: [1.5, .nan]\n": "depth_thresholds_m",
    "class: {name: w}\ndepth_thresholds_m: [1.5, 0.5]\n": "increasing",
    "class: {name: w}\nroles: {worldcover: {building: b}}\n": "roles 'worldcover'",
    "class: {name: w}\nseasons: [spring]\n": "'seasons' must be a mapping",
    "depth_thresholds_m: [0.5]\n": "lacks 'class'",
}


@pytest.mark.parametrize("text", list(PRESET_SHAPES))
def test_preset_of_the_wrong_shape_names_the_key(
    text: str, tmp_path: Path, tiny_random_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hand-edited preset fails on load with its key named, through the real CLI."""
    from inputs_kit import photo, zones

    preset = tmp_path / "my_flood.yaml"
    preset.write_text(text)
    out = tmp_path / "out"
    code, err = run_cli(["flood", "--image", photo(tmp_path / "p.tif"), "--flood-polygons",
                         zones(tmp_path / "z.gpkg"), "--preset", preset, "--model",
                         tiny_random_weights, "--out", out, "--progress", "none"],
                        capsys)  # fmt: skip
    assert_one_line_error(code, err, str(preset), PRESET_SHAPES[text])
    assert files_under(out) == []


@pytest.mark.parametrize(
    ("text", "key"),
    [("lr: fast\n", "'lr'"), ("minutes: .inf\n", "'minutes'"), ("batch: 2.5\n", "'batch'"),
     ("train_tiles: 3\n", "'train_tiles'"), ("bf16: 1\n", "'bf16'"), ("crop: true\n", "'crop'")],
)  # fmt: skip
def test_training_config_of_the_wrong_kind(text: str, key: str, tmp_path: Path) -> None:
    load = _train_config()
    path = tmp_path / "train.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=re.escape(key)) as info:
        load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    path.write_text("lr: 1\nminutes: 2\n")  # ints where floats are expected are fine
    assert load(path).lr == 1
