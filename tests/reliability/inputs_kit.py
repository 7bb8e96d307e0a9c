"""Small real inputs for the reliability tests of the scenario, number and YAML options.

A 64 x 64 px grid at 1 m in EPSG:32640 with a town layer (dubai_aerial classes), a photo, a
DEM, zones and cloud masks written as real GeoTIFFs / GeoPackages, and helpers that run the
real CLI and check its one-line typed error.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.transform import from_origin
from shapely.geometry import box

from rs_seg2any.cli import main

CRS = "EPSG:32640"
X0, Y0, N = 300_000.0, 2_780_000.0, 64
GRID = GeoBox.from_bbox((X0, Y0, X0 + N, Y0 + N), CRS, resolution=1.0)
TYPED_CODES = {2, 3, 4, 5, 6, 7, 8, 9}
GEN = ["--steps", "1", "--tile-size", "64", "--overlap", "16", "--progress", "none"]


def town(crs: str | None = CRS) -> gpd.GeoDataFrame:
    """Water on the left, bare land elsewhere, two buildings and a road (dubai_aerial)."""
    return gpd.GeoDataFrame(
        {
            "cls": ["water", "land", "building", "building", "road"],
            "desc": ["a river", "bare sand", "a flat roof", "a flat roof", "asphalt road"],
        },
        geometry=[
            box(X0, Y0, X0 + 12, Y0 + N),
            box(X0 + 12, Y0, X0 + N, Y0 + N),
            box(X0 + 30, Y0 + 30, X0 + 44, Y0 + 44),
            box(X0 + 50, Y0 + 8, X0 + 60, Y0 + 18),
            box(X0 + 12, Y0 + 22, X0 + N, Y0 + 26),
        ],
        crs=crs,
    )


def write_gpkg(frame: gpd.GeoDataFrame, path: Path) -> Path:
    frame.to_file(path, driver="GPKG", engine="pyogrio")
    return path


def write_tif(path: Path, data: np.ndarray, crs: str | None = CRS) -> Path:
    """A plain GeoTIFF on GRID (``crs=None``: a raster without CRS)."""
    bands, h, w = data.shape
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=bands,
                       dtype=data.dtype, crs=crs, transform=from_origin(X0, Y0 + N, 1, 1)
                       ) as dst:  # fmt: skip
        dst.write(data)
    return path


def photo(path: Path, crs: str | None = CRS) -> Path:
    rng = np.random.default_rng(0)
    return write_tif(path, rng.integers(0, 256, (3, N, N), dtype=np.uint8), crs)


def dem(path: Path, crs: str | None = CRS) -> Path:
    """Terrain rising 0.1 m per column: a level of 3 floods columns 0-29."""
    heights = np.tile(np.arange(N, dtype=np.float32) * 0.1, (N, 1))
    return write_tif(path, heights[None], crs)


def zones(path: Path, crs: str | None = CRS) -> Path:
    shape = box(X0 + 20, Y0 + 20, X0 + 40, Y0 + 40)
    frame = gpd.GeoDataFrame({"desc": ["a park with a pond"]}, geometry=[shape], crs=crs)
    return write_gpkg(frame, path)


def bad_file(kind: str, path: Path, tmp: Path, expect: str) -> Path:
    """A wrong input of one ``kind`` at ``path`` for an option that expects ``expect``
    ("vector" or "raster"); returns the path to pass."""
    if kind == "missing":
        return path
    if kind == "empty":
        path.write_bytes(b"")
        return path
    if kind == "random":
        path.write_bytes(np.random.default_rng(1).bytes(4096))
        return path
    if kind == "wrong_kind":  # a raster where a vector is expected, and vice versa
        return photo(tmp / "wrong.tif") if expect == "vector" else zones(tmp / "wrong.gpkg")
    if kind == "no_crs":
        return zones(path, crs=None) if expect == "vector" else photo(path, crs=None)
    raise AssertionError(kind)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    """A typed exit code and exactly one line ``error: ...`` naming every fragment."""
    assert code in TYPED_CODES, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def files_under(folder: Path) -> list[Path]:
    """Every file in ``folder`` (none when it does not exist)."""
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
