"""What concurrent areas share in the client process: stderr, the progress reporter.

On a Dask cluster the areas of a job run on client threads at once (rs_seg2any.areapool);
these tests need no cluster: threads writing GeoTIFFs at once must leave file descriptor 2
where it was (each GeoTIFF write sends it to a temp file for a moment), and each area's view
of a shared reporter must keep its own counts and name its area.
"""

from __future__ import annotations

import io
import json
import os
import threading
from pathlib import Path

import numpy as np
from odc.geo.geobox import GeoBox

from rs_seg2any.areaprogress import SharedProgress
from rs_seg2any.geoio.cog import write_cog
from rs_seg2any.progress import BarProgress, JsonProgress

GRID = GeoBox.from_bbox((300000, 2780000, 300640, 2780640), "EPSG:32640", resolution=10)


def test_geotiff_writes_in_threads_leave_stderr_where_it_was(tmp_path: Path) -> None:
    before = os.fstat(2)
    lines = io.StringIO()
    progress = JsonProgress(lines)
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            for i in range(8):
                data = np.full((3, *GRID.shape), (k * 8 + i) % 255, dtype="uint8")
                write_cog(tmp_path / f"t{k}_{i}.tif", data, GRID, categorical=False)
                progress.message(f"thread {k} wrote {i}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    events = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert len(events) == 32  # one whole line per event, none lost


def test_json_events_of_concurrent_areas_name_their_area_and_keep_their_counts() -> None:
    stream = io.StringIO()
    shared = SharedProgress(JsonProgress(stream), 2)
    views = {name: shared.area(name) for name in ("north", "south")}

    def run(name: str, total: int) -> None:
        view = views[name]
        assert view is not None
        view.stage("tiles", total)
        for _ in range(total):
            view.advance(1)
        view.message("done", level="info")

    threads = [threading.Thread(target=run, args=a) for a in (("north", 40), ("south", 30))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert all(e["area"] in ("north", "south") for e in events)
    for name, total in (("north", 40), ("south", 30)):
        counts = [e["done"] for e in events if e["area"] == name and e["event"] == "progress"]
        assert counts == list(range(1, total + 1))  # its own counter, in order
        assert all(e["total"] == total for e in events
                   if e["area"] == name and e["event"] == "progress")  # fmt: skip


def test_the_bar_counts_every_area_and_prefixes_messages() -> None:
    stream = io.StringIO()
    shared = SharedProgress(BarProgress(stream), 2)
    north, south = shared.area("north"), shared.area("south")
    assert north is not None and south is not None
    north.stage("validate layer", 5)  # an area's own stages get no bar
    north.advance(5)
    north.stage("tiles", 9)
    south.stage("tiles", 4)
    north.advance(3)
    south.advance(4)
    south.message("4 of 4 tiles done")
    bar = shared._bar
    assert bar is not None and bar.total == 13 and bar.n == 7
    shared.close()
    assert "south: 4 of 4 tiles done" in stream.getvalue()
