"""Helpers of the job-folder reliability tests: real CLI subprocesses and folder snapshots."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import rasterio

REPO = Path(__file__).resolve().parents[2]
DEMO_EXTENT = "300000,2780150,300064,2780214"  # 64 m x 64 m of the demo town


def layout_args(layer: Path, out: Path, resolution: str = "2", *extra: str) -> list[str]:
    """`layout` of the demo town (2 m: 256 x 192 px)."""
    return ["layout", str(layer), "--class-field", "landcover", "--description-field",
            "description", "--taxonomy", "dubai_aerial", "--resolution", resolution,
            "--progress", "none", "--out", str(out), *extra]  # fmt: skip


def generate_args(layer: Path, weights: Path, out: Path, resolution: str = "0.5",
                  *extra: str) -> list[str]:  # fmt: skip
    """`generate` of a 64 m corner of the demo town with the tiny model (0.5 m: 128 px)."""
    return ["generate", str(layer), "--class-field", "landcover", "--description-field",
            "description", "--taxonomy", "dubai_aerial", "--resolution", resolution,
            "--extent", DEMO_EXTENT, "--model", str(weights), "--steps", "1",
            "--tile-size", "64", "--overlap", "16", "--progress", "none",
            "--out", str(out), *extra]  # fmt: skip


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def run_cli(
    args: list[str], *, timeout: float = 300, preexec: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real CLI in a fresh interpreter (exit code and stderr as a user sees them)."""
    return subprocess.run(
        [sys.executable, "-m", "rs_seg2any.cli", *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=timeout,
        preexec_fn=preexec,
        check=False,
    )


def start_cli(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rs_seg2any.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )


def assert_one_line_error(stderr: str, *needles: str) -> str:
    """The CLI's failure is one `error: ...` line, no traceback; returns the message."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path, *, state: bool = False) -> dict[str, str]:
    """relative path -> sha256 of every file (the job state folder only if ``state``)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and (state or ".rs_seg2any" not in rel.parts):
            out[str(rel)] = sha(path)
    return out


def temps(folder: Path) -> list[Path]:
    """Temporary files of any output, tile or job record left anywhere in the folder."""
    return sorted(p for p in folder.rglob("*") if p.name.startswith(".tmp-"))


def grids(folder: Path) -> set[tuple[object, ...]]:
    """The distinct (crs, transform, shape) of all GeoTIFFs in the folder (top level)."""
    found = set()
    for path in sorted(folder.glob("*.tif")):
        with rasterio.open(path) as src:
            found.add((src.crs.to_string(), tuple(src.transform)[:6], src.shape))
    return found
