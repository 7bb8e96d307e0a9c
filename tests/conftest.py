"""Shared fixtures: the real open data folder and writers of real vector files."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from hypothesis import settings

# CI runs property tests with a fixed seed, so a submission is judged on the same examples
# every time; locally they keep exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

VectorWriter = Callable[[gpd.GeoDataFrame, str], Path]
"""write(frame, file name) -> path of a real vector file in tmp_path (driver from the suffix)."""

DRIVERS: dict[str, str | None] = {
    ".gpkg": "GPKG",
    ".shp": "ESRI Shapefile",
    ".geojson": "GeoJSON",
    ".fgb": "FlatGeobuf",
    ".parquet": None,  # GeoParquet, written by geopandas/pyarrow
}


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` next to the repository (the real open data sets), else skip."""
    folder = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not folder.is_dir():
        pytest.skip(f"{folder}: ../shared/data is absent (a fresh clone does not have it)")
    return folder


def write_vector(frame: gpd.GeoDataFrame, path: Path, **options: str) -> Path:
    """Write ``frame`` with the driver its suffix names (GeoParquet for .parquet)."""
    driver = DRIVERS[path.suffix.lower()]
    if driver is None:
        frame.to_parquet(path)
    else:
        frame.to_file(path, driver=driver, engine="pyogrio", **options)
    return path


@pytest.fixture
def write_layer(tmp_path: Path) -> VectorWriter:
    """Factory: write a GeoDataFrame to tmp_path under a name whose suffix picks the format.

    FlatGeobuf is written without its spatial index: the index re-orders features along a
    Hilbert curve, and instance ids follow the order of the file.
    """

    def write(frame: gpd.GeoDataFrame, name: str) -> Path:
        path = tmp_path / name
        if path.suffix.lower() == ".fgb":
            return write_vector(frame, path, SPATIAL_INDEX="NO")
        return write_vector(frame, path)

    return write


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A real Dask LocalCluster of 2 single-thread worker processes, one per test module (a
    module may kill its workers)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, env={"OMP_NUM_THREADS": "1"},
                                  silence_logs=40) as lc:  # fmt: skip
        yield lc


@pytest.fixture(scope="session")
def tiny_random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tiny-model weights file with small random weights: the real model code at test
    speed. Output layers are randomised too (the real init zeroes them), so pixels vary."""
    torch = pytest.importorskip("torch")
    from rs_seg2any.generators.tiny.model import TinyConfig, TinySeg2Any
    from rs_seg2any.generators.tiny.weights import save_weights

    torch.manual_seed(0)
    model = TinySeg2Any(TinyConfig(patch=8, width=32, depth=1, heads=2, ctx_depth=1,
                                   bottleneck=16))  # fmt: skip
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.2)
    path = tmp_path_factory.mktemp("weights") / "tiny_test.safetensors"
    save_weights(model, path)
    return path
