"""A full disk anywhere in a job: one OutputError line naming the disk, nothing half-written,
and a rerun after freeing space gives the bytes of a clean run.

The disk is a real small tmpfs (root only; skipped elsewhere). It is filled by a real file at
real points of the job: before it starts (the free-space check refuses the job), or from a
progress sink the moment a stage is reached, so the failure hits a tile, a GeoTIFF, the QML,
the preview, the CSV, the JSON report or job.json. A file-size limit (RLIMIT_FSIZE, EFBIG)
is checked on the CLI the same way.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _jobfs_util import assert_one_line_error, layout_args, run_cli, snapshot, temps

from rs_seg2any.demo import write_demo_layer
from rs_seg2any.errors import OutputError
from rs_seg2any.job.runner import run_layout_job
from rs_seg2any.layout import Layout, load_layout

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="tmpfs and rlimits")

PAGE = 4096
TILE = 64  # 12 tiles on the 256 x 192 px grid


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_layer(tmp_path_factory.mktemp("demo") / "town.gpkg")


@pytest.fixture(scope="module")
def layout(layer: Path) -> Layout:
    return load_layout(layer, "landcover", description_field="description",
                       taxonomy="dubai_aerial", resolution=2.0)  # fmt: skip


@pytest.fixture(scope="module")
def reference(layout: Layout, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The files of a clean run with all the space it wants."""
    out = tmp_path_factory.mktemp("reference") / "out"
    run_layout_job(layout, out, tile_size=TILE)
    return snapshot(out)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MiB filesystem."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                          capture_output=True, check=False)  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Take all free space of the disk but ``leave`` bytes, with a real file."""
    filler = disk / f"filler-{uuid.uuid4().hex[:6]}"
    size = shutil.disk_usage(disk).free - leave
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        if size > 0:
            os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)
    return filler


def free_space(disk: Path) -> None:
    for filler in disk.glob("filler-*"):
        filler.unlink()


class FillAt:
    """A progress sink that fills the disk when the job reaches (stage, done) — a real point
    of the job, after the free-space check passed."""

    def __init__(self, disk: Path, stage: str, done: int, leave: int) -> None:
        self.disk, self.trigger, self.leave = disk, (stage, done), leave
        self.stage_name, self.done, self.fired = "", 0, False

    def _check(self) -> None:
        if not self.fired and (self.stage_name, self.done) == self.trigger:
            self.fired = True
            fill(self.disk, self.leave)

    def stage(self, name: str, total: int | None = None) -> None:
        self.stage_name, self.done = name, 0
        self._check()

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._check()

    def message(self, text: str, **fields: Any) -> None:
        pass

    def close(self) -> None:
        pass


def failing_file(message: str) -> str:
    assert message.count("\n") == 0 and "Traceback" not in message
    return message.split(" while writing ")[1].split(";")[0]


def assert_clean_failure(out: Path, exc: OutputError, disk: Path, ref: dict[str, str]) -> str:
    """One line naming the disk and the space; no temp left; every output present is whole."""
    message = str(exc)
    assert f"disk full on {disk}" in message and "free" in message
    assert "this job needs at least" in message
    assert temps(out) == []
    for name, digest in snapshot(out).items():
        assert ref.get(name) == digest, f"{name} is half-written or stale"
    return failing_file(message)


def run_filled(layout: Layout, out: Path, disk: Path, stage: str, done: int, leave: int) -> str:
    """Run with the disk filled at (stage, done); '' when it still fitted."""
    sink = FillAt(disk, stage, done, leave)
    try:
        run_layout_job(layout, out, tile_size=TILE, progress=sink)  # type: ignore[arg-type]
    except OutputError as exc:
        assert sink.fired
        return str(exc)
    return ""


def test_full_disk_at_every_stage_fails_cleanly_and_reruns_identically(
    layout: Layout, reference: dict[str, str], disk: Path
) -> None:
    hit: dict[str, int] = {}
    points = [("tiles", 3, 0), ("write GeoTIFFs", 0, 0), ("write GeoTIFFs", 1, PAGE)]
    points += [("write GeoTIFFs", 3, leave) for leave in range(0, 24 * PAGE, PAGE)]
    for stage, done, leave in points:
        out = disk / "out"
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(out)
        message = run_filled(layout, out, disk, stage, done, leave)
        if message:
            exc = OutputError(message)
            name = assert_clean_failure(out, exc, disk, reference)
            hit[name] = hit.get(name, 0) + 1
            free_space(disk)
            run_layout_job(layout, out, tile_size=TILE)  # the same job, resumed
            assert snapshot(out) == reference
            assert temps(out) == []
        free_space(disk)
        if stage == "write GeoTIFFs" and done == 3 and not message:
            break  # enough space left for everything after the GeoTIFFs
    print("failures by file:", hit)
    names = set(hit)
    # the tile stage: a tile file, or the manifest that records it (written right after)
    assert any(n.endswith(".npz") or n == "manifest.json" for n in names), hit
    assert {"label.tif", "instance.tif"} <= names, hit
    assert {"entities.csv", "layout.json"} <= names, hit


def test_cli_refuses_a_job_that_cannot_fit_before_any_work(
    layer: Path, reference: dict[str, str], disk: Path
) -> None:
    out = disk / "out"
    fill(disk, 16 * 1024)
    refused = run_cli(layout_args(layer, out, "2", "--tile-size", str(TILE)))
    assert refused.returncode == OutputError.exit_code
    line = assert_one_line_error(
        refused.stderr, f"not enough free space on {disk}", "needs at least"
    )
    assert "free" in line
    assert snapshot(out) == {} and temps(out) == []
    assert not (out / ".rs_seg2any" / "tiles").exists() or not any(
        (out / ".rs_seg2any" / "tiles").iterdir()
    )
    free_space(disk)
    done = run_cli(layout_args(layer, out, "2", "--tile-size", str(TILE)))
    assert done.returncode == 0, done.stderr
    assert snapshot(out) == reference


def _limit(size: int) -> Any:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return apply


@pytest.mark.parametrize("limit", [3000, 7000, 10000])
def test_cli_file_size_limit_is_one_line_and_rerun_is_identical(
    layer: Path, reference: dict[str, str], tmp_path: Path, limit: int
) -> None:
    out = tmp_path / "out"
    args = layout_args(layer, out, "2", "--tile-size", str(TILE))
    failed = run_cli(args, preexec=_limit(limit))
    assert failed.returncode == OutputError.exit_code, failed.stderr
    line = assert_one_line_error(failed.stderr, "larger than a file may be", "ulimit -f")
    assert temps(out) == []
    for name, digest in snapshot(out).items():
        assert reference.get(name) == digest, (name, line)
    done = run_cli(args)
    assert done.returncode == 0, done.stderr
    assert snapshot(out) == reference


def test_the_estimate_does_not_refuse_a_job_that_fits(
    layout: Layout, reference: dict[str, str], tmp_path_factory: pytest.TempPathFactory,
    disk: Path,
) -> None:  # fmt: skip
    """The check is a lower estimate: with a few times the final size free (tmpfs rounds every
    tile and temp file up to a page), the job is not refused."""
    ref_out = tmp_path_factory.getbasetemp() / "reference0" / "out"
    final = sum(p.stat().st_size for p in ref_out.iterdir() if p.is_file())
    fill(disk, 3 * final + 16 * PAGE)
    out = disk / "out"
    run_layout_job(layout, out, tile_size=TILE)
    assert snapshot(out) == reference
