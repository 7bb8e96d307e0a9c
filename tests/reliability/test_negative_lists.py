"""Negative numbers are values, not options: west and south coordinates in comma lists
(``--extent -100,5079244,1000,5080254``, ``--seed-xy -73.5,40.7``) and negative levels
(``--level -3``) go through the real CLI, in ``--opt VALUE`` and ``--opt=VALUE`` form."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from inputs_kit import files_under, run_cli
from odc.geo.geobox import GeoBox
from shapely.geometry import box

from rs_seg2any.cli import parse_args
from rs_seg2any.geoio import write_cog

REPO = Path(__file__).resolve().parents[2]
EXTENT = "-100,5079244,1000,5080254"


@pytest.mark.parametrize("glued", [False, True])
@pytest.mark.parametrize(
    ("argv", "dest", "expected"),
    [
        (["layout", "l.gpkg", "--class-field", "c", "--extent", EXTENT], "extent", EXTENT),
        (["generate", "l.gpkg", "--class-field", "c", "--extent", "-1e3,-2,-0.5,.5"],
         "extent", "-1e3,-2,-0.5,.5"),
        (["flood", "--seed-xy", "-73.5,40.7"], "seed_xy", ["-73.5,40.7"]),
        (["flood", "--seed-xy", "-73.5,-40.7", "--seed-xy", "-1,-2"], "seed_xy",
         ["-73.5,-40.7", "-1,-2"]),
        (["flood", "--level", "-3"], "level", -3.0),
        (["flood", "--level", "-.5"], "level", -0.5),
        (["layout", "l.gpkg", "--class-field", "c", "--extent", "-100 5079244 1000 5080254"],
         "extent", "-100 5079244 1000 5080254"),
    ],
)  # fmt: skip
def test_negative_values_parse(argv: list[str], dest: str, expected: object, glued: bool) -> None:
    if glued:  # --opt=VALUE
        words: list[str] = []
        for word in argv:
            if words and words[-1].startswith("--") and word.startswith("-") and word[1:2] != "-":
                words[-1] = f"{words[-1]}={word}"
            else:
                words.append(word)
        argv = words
    args = parse_args([*argv, "--out", "o"])
    assert getattr(args, dest) == expected


def test_options_still_look_like_options() -> None:
    """A value that is a number never swallows the next option, and options still parse."""
    args = parse_args(["flood", "--level", "-3", "--restart", "--out", "o"])
    assert args.level == -3 and args.restart


def test_layout_with_a_west_extent_through_the_real_cli(tmp_path: Path) -> None:
    layer = tmp_path / "west.gpkg"
    frame = gpd.GeoDataFrame({"cls": ["water", "land"]},
                             geometry=[box(-500, 5_079_000, 200, 5_081_000),
                                       box(200, 5_079_000, 1_500, 5_081_000)],
                             crs="EPSG:3857")  # fmt: skip
    frame.to_file(layer, driver="GPKG", engine="pyogrio")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "rs_seg2any.cli", "layout", str(layer), "--class-field", "cls",
         "--taxonomy", "dubai_aerial", "--resolution", "10", "--extent", EXTENT, "--out",
         str(out), "--progress", "none"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with rasterio.open(out / "label.tif") as src:
        left, bottom, right, top = src.bounds
        label = src.read(1)
    assert left <= -100 < right and left > -110 and right >= 1000
    assert bottom <= 5_079_244 and top >= 5_080_254
    assert src.crs.to_epsg() == 3857
    assert set(np.unique(label).tolist()) == {2, 5}  # land and water both inside


def test_flood_with_west_seed_and_negative_level(
    tmp_path: Path, tiny_random_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    grid = GeoBox.from_bbox((-73.6, 40.6, -73.4, 40.8), "EPSG:4326", shape=(32, 32))
    rng = np.random.default_rng(0)
    image = write_cog(tmp_path / "photo.tif", rng.integers(0, 256, (3, 32, 32), dtype=np.uint8),
                      grid, categorical=False)  # fmt: skip
    heights = np.full((32, 32), 10.0, dtype=np.float32)
    heights[:, :20] = -10.0  # below sea level west of x = -73.475
    heights[:, 5] = 0.0  # a dyke at column 5: the seed's side floods, the far west does not
    dem = write_cog(tmp_path / "dem.tif", heights[None], grid, categorical=False)
    common = ["--image", image, "--dem", dem, "--model", tiny_random_weights, "--steps", "1",
              "--tile-size", "64", "--overlap", "16", "--progress", "none"]  # fmt: skip
    out = tmp_path / "out"
    code, err = run_cli(["flood", *common, "--level", "-3", "--seed-xy", "-73.5,40.7",
                         "--out", out], capsys)  # fmt: skip
    assert code == 0, err
    with rasterio.open(out / "flood_mask.tif") as src:
        flooded = src.read(1).astype(bool)
    expected = np.zeros((32, 32), dtype=bool)
    expected[:, 6:20] = True
    assert np.array_equal(flooded, expected)
    # the same job as a YAML file: negative values in a job file too
    job = tmp_path / "job.yaml"
    job.write_text(
        f"scenario: flood\nimage: {image}\ndem: {dem}\nmodel: {tiny_random_weights}\n"
        f"steps: 1\ntile_size: 64\noverlap: 16\nprogress: none\nlevel: -3\n"
        f"seed_xy: ['-73.5,40.7']\nout: {tmp_path / 'job_out'}\n"
    )
    code, err = run_cli(["run", job], capsys)
    assert code == 0, err
    with rasterio.open(tmp_path / "job_out" / "flood_mask.tif") as src:
        assert np.array_equal(src.read(1).astype(bool), expected)
    assert files_under(tmp_path / "job_out")
