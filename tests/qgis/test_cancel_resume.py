"""Cancel sends SIGINT: the CLI stops cleanly (its child process is gone), and the same job
run again resumes from the tiles the first run finished."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from conftest import wait_for

# 128 m x 64 m of the demo town at 0.5 m with 64 px tiles: 18 tiles; 40 steps each, so the job
# is still running when the test cancels it after the first finished tile.
EXTENT = (300000.0, 2780150.0, 300128.0, 2780214.0)


def spec_for(demo_town: Path, weights: Path, out: Path) -> Any:
    from rs_seg2any_qgis.jobs import JobSpec

    return JobSpec("generate", str(demo_town), "landcover", str(out), taxonomy="dubai_aerial",
                   resolution=0.5, extent=EXTENT, crs="EPSG:32640", tile_size=64,
                   model=str(weights), steps=40, seed=1, threads=1)  # fmt: skip


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_cancel_stops_the_child_and_a_rerun_resumes(
    plugin: Any, demo_town: Path, weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "job"
    task = plugin.start_job(spec_for(demo_town, weights, out))

    tiles = out / ".rs_seg2any" / "tiles"

    def a_tile_is_done() -> bool:
        # The tile files are the ground truth (progress events may arrive later than them).
        return tiles.is_dir() and any(tiles.glob("r*.npz"))

    wait_for(a_tile_is_done, timeout=120)
    assert plugin.start_job(spec_for(demo_town, weights, out)) is None  # folder is busy
    pid = task.pid
    assert pid is not None and not process_gone(pid)
    task.cancel()
    wait_for(lambda: task in plugin.finished, timeout=90)

    result = task.result
    assert result.cancelled and result.error_type == "Cancelled"
    assert result.returncode == 130  # the CLI's own clean stop (SIGINT), not a kill
    assert "resume" in (result.error_message or "")
    assert process_gone(pid)
    assert list((out / ".rs_seg2any" / "tiles").iterdir())  # finished tiles were kept
    assert not (out / "image.tif").exists()

    again = plugin.start_job(spec_for(demo_town, weights, out))
    wait_for(lambda: again in plugin.finished, timeout=300)
    assert again.result.ok, again.result.summary()
    assert 1 <= again.result.tiles_resumed < again.result.tiles_total
    assert (out / "image.tif").is_file()
