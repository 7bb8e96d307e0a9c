"""The CLI runner and the job arguments, with stand-in CLIs for the edge cases.

The real CLI is tested end to end elsewhere; stand-ins make the rare paths (a child that
ignores SIGINT, a crash without an error event) quick and certain.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rs_seg2any_qgis.backend import child_env, discover_cli, parse_event, run_job
from rs_seg2any_qgis.jobs import JobSpec


def fake_cli(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rs-seg2any"
    path.write_text(f"#!{sys.executable}\nimport json, signal, sys, time\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_spec_arguments_match_the_cli(schema: Any) -> None:
    spec = JobSpec("generate", "/d/town.gpkg", "landcover", "/o", layer_name="town",
                   taxonomy="dubai_aerial", resolution=0.5, crs="EPSG:32640",
                   extent=(300000.0, 2780150.0, 300064.0, 2780182.5), tile_size=64, seed=3,
                   steps=2, model="/w.safetensors", threads=None, restart=True)  # fmt: skip
    args = spec.to_args(schema)
    assert args[:4] == ["generate", "/d/town.gpkg", "--class-field", "landcover"]
    pairs = dict(zip(args[4::2], args[5::2], strict=False))
    assert pairs["--resolution"] == "0.5" and pairs["--crs"] == "EPSG:32640"
    assert "--extent" in args and "300000,2780150,300064,2780182.5" in args
    assert args[args.index("--overlap") + 1] == "16"  # 64 px tiles: the default 64 cannot fit
    assert "--threads" not in args and "--restart" in args
    assert args[-4:] == ["--out", "/o", "--progress", "json"]
    like = JobSpec("layout", "/a.gpkg", "c", "/o", like="/grid.tif", resolution=10, crs="X")
    assert "--like" in like.to_args(schema) and "--resolution" not in like.to_args(schema)
    assert "--seed" not in like.to_args(schema)


def test_spec_problems_are_caught_before_running() -> None:
    assert JobSpec("generate", "/a.gpkg", "c", "/o", resolution=1).problems() == []
    bad = JobSpec("generate", "", "", "", extent=(1, 1, 0, 2), steps=0).problems()
    assert len(bad) == 6


def test_parse_event_ignores_other_lines() -> None:
    assert parse_event('{"event": "stage", "stage": "tiles"}') == {"event": "stage",
                                                                   "stage": "tiles"}  # fmt: skip
    for line in ("Loading weights: 100%", "{not json", '{"no_event": 1}', ""):
        assert parse_event(line) is None


def test_child_environment_drops_qgis_python_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/usr/share/qgis/python")
    monkeypatch.setenv("PYTHONHOME", "/usr")
    monkeypatch.setenv("PROJ_LIB", "/usr/share/proj")
    env = child_env("/env/bin/rs-seg2any")
    assert not {"PYTHONPATH", "PYTHONHOME", "PROJ_LIB"} & set(env)
    assert env["PATH"].split(os.pathsep)[0] == str(Path("/env/bin").resolve())


def test_discover_prefers_setting_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = fake_cli(tmp_path, ""), tmp_path / "other" / "bin" / "rs-seg2any"
    b.parent.mkdir(parents=True)
    b.write_text("")
    monkeypatch.setenv("RS_SEG2ANY_CLI", str(a))
    assert discover_cli(str(b)) == b
    assert discover_cli(str(tmp_path / "other")) == b  # an environment folder works too
    assert discover_cli("/nonexistent") == a


def test_events_outputs_and_clean_error(tmp_path: Path) -> None:
    cli = fake_cli(
        tmp_path,
        """
e = lambda **k: print(json.dumps(k), file=sys.stderr, flush=True)
e(event="stage", stage="tiles", total=2)
e(event="progress", stage="tiles", done=1, total=2)
print("Loading weights: 100%", file=sys.stderr)
e(event="error", type="GridError", message="the grid is absurd")
print("error: the grid is absurd", file=sys.stderr)
sys.exit(6)
""",
    )
    seen: list[dict[str, object]] = []
    result = run_job(cli, [], on_event=seen.append)
    assert [e["event"] for e in seen] == ["stage", "progress", "error"]
    assert result.returncode == 6 and not result.ok and not result.cancelled
    assert (result.error_type, result.summary()) == ("GridError", "the grid is absurd")
    assert "Loading weights: 100%" in result.log


def test_crash_without_error_event_reports_the_last_lines(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path, "print('Traceback: boom', file=sys.stderr); sys.exit(1)")
    result = run_job(cli, [])
    assert not result.ok and result.error_type == "ExitStatus"
    assert "boom" in result.summary()


def test_a_child_that_ignores_sigint_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    cli = fake_cli(
        tmp_path,
        """
signal.signal(signal.SIGINT, signal.SIG_IGN)
print(json.dumps({"event": "stage", "stage": "tiles", "total": 9}), file=sys.stderr, flush=True)
time.sleep(60)
""",
    )
    started = time.monotonic()
    result = run_job(cli, [], is_canceled=lambda: time.monotonic() - started > 0.5, grace_s=1.0)
    assert result.cancelled and result.returncode is not None and result.returncode < 0
    assert time.monotonic() - started < 10


def test_sigint_stops_cleanly_even_when_qgis_ignores_it(tmp_path: Path) -> None:
    """An ignored SIGINT is inherited by children; the runner resets it for the CLI."""
    import signal

    cli = fake_cli(
        tmp_path,
        """
print(json.dumps({"event": "stage", "stage": "tiles", "total": 9}), file=sys.stderr, flush=True)
try:
    time.sleep(60)
except KeyboardInterrupt:
    print(json.dumps({"event": "error", "type": "Cancelled", "message": "interrupted"}),
          file=sys.stderr, flush=True)
    sys.exit(130)
""",
    )
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        started = time.monotonic()
        result = run_job(cli, [], is_canceled=lambda: time.monotonic() - started > 1.0,
                         grace_s=30)  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.cancelled and result.returncode == 130
    assert result.error_message == "interrupted"
