"""Scenarios over base images that are not 8-bit RGB: uint8, uint16, int16 and float32 with
1, 3, 4 and 13 bands, nodata values and NaN.

What users rely on: ``image.tif`` keeps the base's dtype, band count, nodata and colour
interpretation; every pixel outside the edit mask, and every nodata / NaN pixel, is copied bit
for bit; generated pixels are valid data in the base's range; a base that cannot be edited is
refused with a one-line typed error before any file is written. Real tiny-model code (small
random weights), real GeoTIFFs written and read back with rasterio.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from odc.geo.geobox import GeoBox
from rasterio.enums import ColorInterp as CI
from shapely.geometry import box

pytest.importorskip("torch")

from rs_seg2any.cli import main
from rs_seg2any.errors import Cancelled, InputError, ScenarioError
from rs_seg2any.generators.registry import load_generator
from rs_seg2any.progress import NullProgress
from rs_seg2any.radiometry import analyse_base, mask_from_array
from rs_seg2any.scenarios.common import GenOptions, Polygons, edit_job

CRS = "EPSG:32633"
X0, Y0, N = 500_000.0, 5_000_000.0, 48
GRID = GeoBox.from_bbox((X0, Y0, X0 + N, Y0 + N), CRS, resolution=1.0)
OPTS = GenOptions(steps=1, tile_size=32, overlap=8, seed=5)
NODATA = {"uint8": 0.0, "uint16": 0.0, "int16": -9999.0, "float32": -9999.0}
RANGE = {"uint8": (1, 255), "uint16": (200, 12000), "int16": (-500, 3000),
         "float32": (0.0, 0.6)}  # fmt: skip


@pytest.fixture(scope="module")
def gen(tiny_random_weights: Path) -> object:
    return load_generator("tiny", tiny_random_weights, threads=1)


def town() -> Polygons:
    frame = gpd.GeoDataFrame(
        {"cls": ["water", "land", "building"], "desc": ["a river", "bare sand", "a roof"]},
        geometry=[box(X0, Y0, X0 + 12, Y0 + N), box(X0 + 12, Y0, X0 + N, Y0 + N),
                  box(X0 + 20, Y0 + 20, X0 + 36, Y0 + 36)],
        crs=CRS,
    )  # fmt: skip
    return Polygons.read(frame, "cls", description_field="desc", taxonomy="dubai_aerial")


def interp_for(bands: int, alpha: bool) -> list[CI]:
    """Sentinel-like order for many bands (blue, green, red, then the rest)."""
    if bands == 1:
        return [CI.gray]
    if bands == 3:
        return [CI.red, CI.green, CI.blue]
    if bands == 4:
        return [CI.red, CI.green, CI.blue, CI.alpha if alpha else CI.undefined]
    return [CI.undefined, CI.blue, CI.green, CI.red] + [CI.undefined] * (bands - 4)


def write_base(
    path: Path,
    data: np.ndarray,
    nodata: float | None,
    interp: list[CI],
    grid: GeoBox = GRID,
) -> Path:
    """A plain tiled GeoTIFF as a user's file would be (not written by our own writer)."""
    with rasterio.open(
        path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
        count=data.shape[0], dtype=data.dtype, crs=CRS, transform=grid.affine, nodata=nodata,
        tiled=True, blockxsize=16, blockysize=16, compress="deflate",
    ) as dst:  # fmt: skip
        dst.colorinterp = interp
        dst.write(data)
    return path


def make_image(rng: np.random.Generator, dtype: str, bands: int, nodata: float | None,
               nan: bool, alpha: bool) -> np.ndarray:  # fmt: skip
    """Random imagery in a realistic range, a nodata border on the left and NaN speckles."""
    lo, hi = RANGE[dtype]
    if dtype == "float32":
        data = rng.uniform(lo, hi, size=(bands, N, N)).astype(np.float32)
    else:
        data = rng.integers(lo, hi, size=(bands, N, N)).astype(dtype)
    if alpha:  # opaque, with a few transparent pixels
        data[3] = 1.0 if dtype == "float32" else np.iinfo(np.dtype(dtype)).max
        data[3, rng.integers(0, N, 20), rng.integers(0, N, 20)] = 0
    if nodata is not None:
        width = int(rng.integers(0, 10))
        data[:, :, :width] = nodata  # the black border of a real scene
        data[int(rng.integers(0, bands)), rng.integers(0, N, 30), rng.integers(0, N, 30)] = nodata
    if nan:
        data[int(rng.integers(0, bands)), rng.integers(0, N, 40), rng.integers(0, N, 40)] = np.nan
    return data


def invalid_pixels(data: np.ndarray, nodata: float | None, alpha: bool) -> np.ndarray:
    bad = np.zeros(data.shape[1:], dtype=bool)
    if np.issubdtype(data.dtype, np.floating):
        bad |= np.isnan(data).any(axis=0)
    if nodata is not None and not math.isnan(nodata):
        bad |= (data == nodata).any(axis=0)
    if alpha:
        bad |= data[3] == 0
    return bad


def bits(a: np.ndarray) -> np.ndarray:
    """The raw bits, so NaN == NaN and -0.0 != 0.0: bit for bit."""
    return a.view(np.dtype(f"u{a.dtype.itemsize}"))


def no_files(folder: Path) -> bool:
    return not folder.exists() or not any(p.is_file() for p in folder.rglob("*"))


@st.composite
def cases(draw: st.DrawFn) -> dict[str, object]:
    dtype = draw(st.sampled_from(["uint8", "uint16", "int16", "float32"]))
    bands = draw(st.sampled_from([1, 3, 4, 13]))
    nodata_kind = draw(st.sampled_from(["none", "value"] + (["nan"] if dtype == "float32" else [])))
    nodata = {"none": None, "value": NODATA[dtype], "nan": float("nan")}[nodata_kind]
    rects = draw(st.lists(st.tuples(*[st.integers(0, N - 1)] * 4), min_size=1, max_size=3))
    return {
        "dtype": dtype,
        "bands": bands,
        "nodata": nodata,
        "nan": dtype == "float32" and draw(st.booleans()),
        "alpha": bands == 4 and draw(st.booleans()),
        "rects": rects,
        "seed": draw(st.integers(0, 2**31 - 1)),
    }


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_kept_pixels_are_bit_exact_for_every_dtype_and_band_count(gen: object, case: dict) -> None:  # type: ignore[type-arg]
    dtype, bands, nodata = str(case["dtype"]), int(case["bands"]), case["nodata"]
    rng = np.random.default_rng(int(case["seed"]))
    alpha = bool(case["alpha"])
    data = make_image(rng, dtype, bands, nodata, bool(case["nan"]), alpha)  # type: ignore[arg-type]
    mask = np.zeros((N, N), dtype=bool)
    for r0, r1, c0, c1 in case["rects"]:  # type: ignore[attr-defined]
        mask[min(r0, r1) : max(r0, r1) + 1, min(c0, c1) : max(c0, c1) + 1] = True
    bad = invalid_pixels(data, nodata, alpha)  # type: ignore[arg-type]
    interp = interp_for(bands, alpha)
    with tempfile.TemporaryDirectory() as tmp:
        base = write_base(Path(tmp) / "base.tif", data, nodata, interp)  # type: ignore[arg-type]
        out = Path(tmp) / "out"
        if not (mask & ~bad).any():
            with pytest.raises(ScenarioError, match="only nodata") as err:
                edit_job(town(), GRID, base, mask, out, gen, OPTS)  # type: ignore[arg-type]
            assert "\n" not in str(err.value)
            assert no_files(out)
            return
        res = edit_job(town(), GRID, base, mask, out, gen, OPTS)  # type: ignore[arg-type]
        with rasterio.open(res.outputs["image"]) as src:
            got = src.read()
            assert src.dtypes[0] == dtype and src.count == bands
            assert (src.nodata is None) == (nodata is None)
            if nodata is not None:
                assert bits(np.array([src.nodata], dtype)) == bits(np.array([nodata], dtype))
            if bands != 13:  # GeoTIFF stores 13 undefined bands as gray + undefined
                assert list(src.colorinterp) == interp
    kept = ~mask | bad
    assert np.array_equal(bits(got[:, kept]), bits(data[:, kept]))
    edited = mask & ~bad
    assert not invalid_pixels(got, nodata, alpha)[edited].any()  # type: ignore[arg-type]
    if alpha:
        assert (got[3][edited] == got[3][~bad].max()).all()


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_generated_values_avoid_nodata_and_stay_in_range(dtype: str) -> None:
    """Even when the inverse stretch lands exactly on the nodata value, it is stepped off."""
    data = np.empty((3, N, N), dtype=dtype)
    lo, hi = (0, 100) if dtype != "float32" else (0.0, 1.0)
    data[:] = np.linspace(lo, hi, N * N).reshape(N, N).astype(dtype)
    nodata = float(data[0, 0, 5])  # a value inside the stretch range
    mask = np.zeros((N, N), dtype=bool)
    mask[10:20, 10:20] = True
    with tempfile.TemporaryDirectory() as tmp:
        base = write_base(Path(tmp) / "b.tif", data, nodata, interp_for(3, False))
        rad = analyse_base(base, mask_from_array(mask))
    rgb = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), -1)
    rgb = np.concatenate([rgb, rgb[..., :1]], axis=-1).astype(np.uint8)
    native = rad.from_display(rgb)
    assert native.dtype == np.dtype(dtype)
    assert not (native == np.asarray(nodata, dtype)).any()
    assert np.isfinite(native.astype(np.float64)).all()


def test_uint8_rgb_display_is_the_image_itself() -> None:
    """An 8-bit RGB base is shown to the generator unchanged, and generated RGB comes back
    unchanged: the behaviour of 8-bit photos is what it was."""
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, size=(3, N, N), dtype=np.uint8)
    mask = np.zeros((N, N), dtype=bool)
    mask[:8] = True
    with tempfile.TemporaryDirectory() as tmp:
        rad = analyse_base(write_base(Path(tmp) / "b.tif", data, None, interp_for(3, False)),
                           mask_from_array(mask))  # fmt: skip
    pixels = data.transpose(1, 2, 0)
    assert np.array_equal(rad.to_display(pixels), pixels)
    assert np.array_equal(rad.from_display(pixels), pixels)


def test_complex_base_is_refused_before_anything_is_written(gen: object, tmp_path: Path) -> None:
    data = np.ones((1, N, N), dtype=np.complex64)
    base = write_base(tmp_path / "c.tif", data, None, [CI.gray])
    mask = np.ones((N, N), dtype=bool)
    with pytest.raises(InputError, match="complex64 pixels") as err:
        edit_job(town(), GRID, base, mask, tmp_path / "out", gen, OPTS)  # type: ignore[arg-type]
    assert "\n" not in str(err.value)
    assert no_files(tmp_path / "out")


# ----------------------------------------------------------------------------- the CLI


S2_BANDS = 5  # Sentinel-like: blue, green, red, NIR, SWIR (uint16, nodata 0)


def s2_like(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(7)
    data = rng.integers(300, 9000, size=(S2_BANDS, N, N)).astype(np.uint16)
    data[:, :, :6] = 0  # the no-data border of a real scene
    interp = [CI.blue, CI.green, CI.red, CI.undefined, CI.undefined]
    return write_base(tmp_path / "s2.tif", data, 0.0, interp), data


def cli_common(tmp_path: Path, weights: Path) -> list[str]:
    layer = tmp_path / "town.gpkg"
    town().frame.to_file(layer)
    return ["--layout", str(layer), "--class-field", "cls", "--description-field", "desc",
            "--taxonomy", "dubai_aerial", "--model", str(weights), "--steps", "1",
            "--tile-size", "32", "--overlap", "8"]  # fmt: skip


def zone_file(tmp_path: Path, x0: float, x1: float) -> Path:
    path = tmp_path / f"zone_{x0}_{x1}.geojson"
    shape = box(X0 + x0, Y0 + 8, X0 + x1, Y0 + 40)
    gpd.GeoDataFrame({"d": ["a new park"]}, geometry=[shape], crs=CRS).to_file(path)
    return path


def zone_mask(x0: int, x1: int) -> np.ndarray:
    """Pixel centres inside the zone box (rows count from the top)."""
    mask = np.zeros((N, N), dtype=bool)
    mask[N - 40 : N - 8, x0:x1] = True
    return mask


def check_native(image: Path, data: np.ndarray, mask: np.ndarray) -> None:
    with rasterio.open(image) as src:
        got = src.read()
        assert src.dtypes[0] == "uint16" and src.count == S2_BANDS and src.nodata == 0
        assert list(src.colorinterp)[:3] == [CI.blue, CI.green, CI.red]
    border = (data == 0).any(axis=0)
    kept = ~mask | border
    assert np.array_equal(got[:, kept], data[:, kept])  # includes the border inside the zone
    edited = mask & ~border
    assert edited.any() and (got[:, edited] != 0).all()
    assert not np.array_equal(got[:, edited], data[:, edited])
    for band in range(3):  # blue, green, red: the inverse of the 2-98 % display stretch
        lo, hi = np.percentile(data[band][~mask & ~border], [2, 98])
        assert np.floor(lo) <= got[band][edited].min() <= got[band][edited].max() <= np.ceil(hi)


@pytest.mark.parametrize("command", ["cloudfill", "plan", "flood"])
def test_cli_keeps_uint16_multiband_pixels_bit_exact(
    command: str, tmp_path: Path, tiny_random_weights: Path
) -> None:
    base, data = s2_like(tmp_path)
    zone = zone_file(tmp_path, 2, 30)  # reaches into the no-data border
    out = tmp_path / command
    argv = [command, "--image", str(base), *cli_common(tmp_path, tiny_random_weights),
            "--out", str(out)]  # fmt: skip
    if command == "cloudfill":
        argv += ["--clouds", str(zone)]
    elif command == "plan":
        argv += ["--zones", str(zone), "--zone-description-field", "d"]
    else:
        argv += ["--flood-polygons", str(zone)]
    assert main(argv) == 0
    image = out / "image.tif" if command == "cloudfill" else out / "after" / "image.tif"
    check_native(image, data, zone_mask(2, 30))
    assert (image.parent / "preview.png").is_file()


@pytest.mark.parametrize("command", ["cloudfill", "plan", "flood"])
def test_cli_refuses_an_edit_inside_nodata_and_writes_nothing(
    command: str, tmp_path: Path, tiny_random_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, _ = s2_like(tmp_path)
    zone = zone_file(tmp_path, 1, 5)  # only the no-data border
    out = tmp_path / command
    argv = [command, "--image", str(base), *cli_common(tmp_path, tiny_random_weights),
            "--out", str(out)]  # fmt: skip
    if command == "cloudfill":
        argv += ["--clouds", str(zone)]
    elif command == "plan":
        argv += ["--zones", str(zone), "--zone-description-field", "d"]
    else:
        argv += ["--flood-polygons", str(zone)]
    assert main(argv) == ScenarioError.exit_code
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the edit area covers only nodata") and "\n" not in err
    assert "Traceback" not in err
    assert no_files(out)


def test_real_landsat_flood_never_edits_its_nodata(
    shared_data: Path, gen: object, tmp_path: Path
) -> None:
    """A real Landsat scene (uint8 SWIR1, NIR, red, green; nodata 0): a flood over pixels
    that hold nodata leaves them nodata, and every pixel outside the flood is unchanged."""
    from rasterio.windows import Window

    from rs_seg2any.scenarios.flood import flood

    src_path = shared_data / "opengeos_naip_landsat" / "landsat" / "2020.tif"
    crop = tmp_path / "landsat_crop.tif"
    window = Window(256, 0, 96, 64)
    with rasterio.open(src_path) as src:
        data = src.read(window=window)
        profile = src.profile | {"width": 96, "height": 64,
                                 "transform": src.window_transform(window)}  # fmt: skip
    with rasterio.open(crop, "w", **profile) as dst:
        dst.write(data)
    nodata = (data == 0).any(axis=0)
    assert nodata.sum() >= 2  # the real scene's missing pixels lie inside the flood
    with rasterio.open(crop) as src:
        left, _bottom, right, top = src.bounds
    step = (right - left) / 96
    extent = gpd.GeoDataFrame(geometry=[box(left, top - 32 * step, right, top)], crs="EPSG:4326")
    res = flood(tmp_path / "out", gen, extent=extent, base_image=crop, opts=OPTS)  # type: ignore[arg-type]
    with rasterio.open(res.after.outputs["image"]) as src:
        got = src.read()
        assert src.dtypes[0] == "uint8" and src.count == 4 and src.nodata == 0
    flooded = np.zeros((64, 96), dtype=bool)
    flooded[:32] = True
    assert (nodata & flooded).any()
    kept = ~flooded | nodata
    assert np.array_equal(got[:, kept], data[:, kept])
    assert (got[:, flooded & ~nodata] != 0).all()  # generated pixels are never nodata


class _StopAfter(NullProgress):
    """Interrupts the job (as Ctrl-C would) after ``n`` tiles."""

    def __init__(self, n: int) -> None:
        self.left = n

    def advance(self, n: int = 1) -> None:
        self.left -= n
        if self.left < 0:
            raise KeyboardInterrupt


def test_resumed_float_job_is_bit_identical(gen: object, tmp_path: Path) -> None:
    """The radiometry is part of the job: an interrupted float32 / NaN job resumes to exactly
    the bytes of an uninterrupted run."""
    rng = np.random.default_rng(3)
    data = make_image(rng, "float32", 4, float("nan"), True, False)
    base = write_base(tmp_path / "f.tif", data, float("nan"), interp_for(4, False))
    mask = np.zeros((N, N), dtype=bool)
    mask[5:40, 3:45] = True
    whole = edit_job(town(), GRID, base, mask, tmp_path / "a", gen, OPTS)  # type: ignore[arg-type]
    with pytest.raises(Cancelled):
        edit_job(town(), GRID, base, mask, tmp_path / "b", gen, OPTS, _StopAfter(1))  # type: ignore[arg-type]
    resumed = edit_job(town(), GRID, base, mask, tmp_path / "b", gen, OPTS)  # type: ignore[arg-type]
    assert resumed.tiles_resumed >= 1
    assert whole.outputs["image"].read_bytes() == resumed.outputs["image"].read_bytes()
