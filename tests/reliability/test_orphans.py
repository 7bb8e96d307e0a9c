"""No orphans: a run killed (SIGKILL) while writing outputs leaves only temp files of the one
naming scheme (``.tmp-*``), which reopening the job deletes; side files (``.aux.xml``) never
outlive their raster. The rerun gives the bytes of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
from _jobfs_util import layout_args, run_cli, snapshot, start_cli, temps

from rs_seg2any.demo import write_demo_layer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

RESOLUTION = "0.5"  # 1024 x 768 px: output writing takes long enough to be caught


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_layer(tmp_path_factory.mktemp("demo") / "town.gpkg")


@pytest.fixture(scope="module")
def reference(layer: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("reference") / "out"
    assert run_cli(layout_args(layer, out, RESOLUTION)).returncode == 0
    return snapshot(out)


def orphans(out: Path) -> list[Path]:
    """Temp files, and side files whose main file is missing."""
    lonely = [p for p in out.glob("*.aux.xml") if not p.with_name(p.name[:-8]).exists()]
    return temps(out) + lonely


def _kill_when(
    layer: Path, out: Path, prefix: str, timeout: float = 120
) -> tuple[bool, list[Path]]:
    """Start the job; SIGKILL it as soon as a file named ``prefix*`` appears in the output
    folder or its state folder. Returns whether it was caught, and the temps it left."""
    proc = start_cli(layout_args(layer, out, RESOLUTION))
    caught = False
    deadline = time.monotonic() + timeout
    folders = (out, out / ".rs_seg2any")
    while proc.poll() is None and time.monotonic() < deadline:
        if any(e.name.startswith(prefix) for f in folders if f.is_dir() for e in os.scandir(f)):
            os.kill(proc.pid, signal.SIGKILL)
            caught = True
            break
    proc.communicate(timeout=60)
    return caught, temps(out)


@pytest.mark.parametrize(
    "prefix",
    [
        ".tmp-label-",  # the intermediate GeoTIFF, then the COG
        ".tmp-contour-",
        ".tmp-label.tif.aux-",  # the category names sidecar
        ".tmp-preview-",
        ".tmp-entities-",
        ".tmp-layout-",
    ],
)
def test_kill_during_output_writing_then_rerun_leaves_no_orphans(
    layer: Path, reference: dict[str, str], tmp_path: Path, prefix: str
) -> None:
    out = tmp_path / "out"
    left: list[Path] = []
    for _attempt in range(4):  # the kill races the writer; a few tries catch a temp file
        caught, left = _kill_when(layer, out, prefix)
        if caught and left:
            break
    if not (caught and left):
        pytest.skip(f"never caught the job while a {prefix}* file existed")
    rerun = run_cli(layout_args(layer, out, RESOLUTION))
    assert rerun.returncode == 0, rerun.stderr
    assert orphans(out) == []
    assert snapshot(out) == reference


def test_reopening_cleans_every_kind_of_leftover(
    layer: Path, reference: dict[str, str], tmp_path: Path
) -> None:
    """What older versions and killed runs left: a zero-byte temp preview, a legacy-named temp
    GeoTIFF, a lonely sidecar of a raster that is gone, temps of job.json and tiles."""
    out = tmp_path / "out"
    assert run_cli(layout_args(layer, out, RESOLUTION)).returncode == 0
    (out / "label.tif").unlink()  # a replacement that failed after removing the raster
    leftovers = [
        out / ".tmp-preview-0a1b2c3d4e5f.png",
        out / ".label.tif.0a1b2c3d4e5f.tmp.tif",
        out / ".rs_seg2any" / ".tmp-job-0a1b2c.json",
        out / ".rs_seg2any" / ".tmp-label-0a1b2c3d4e5f.partial.tif",
    ]
    for path in leftovers:
        path.write_bytes(b"")
    assert orphans(out)
    rerun = run_cli(layout_args(layer, out, RESOLUTION))
    assert rerun.returncode == 0, rerun.stderr
    assert not any(p.exists() for p in leftovers)
    assert orphans(out) == []
    assert snapshot(out) == reference
