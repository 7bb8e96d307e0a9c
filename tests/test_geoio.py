"""Raster outputs: real COGs on exactly the job grid, styled label masks, atomic writes."""

from __future__ import annotations

import ctypes
import glob
import hashlib
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.errors
import rasterio.shutil
from odc.geo.geobox import GeoBox
from PIL import Image
from rasterio.crs import CRS

import rs_seg2any
from rs_seg2any.errors import OutputError
from rs_seg2any.geoio import (
    LABEL_DTYPE,
    LABEL_NODATA,
    GridRasterWriter,
    atomic_output,
    category_names_from_sidecar,
    ensure_writable_dir,
    label_mask_style,
    provenance_tags,
    write_cog,
    write_label_mask,
    write_preview_png,
    write_qml,
)
from rs_seg2any.taxonomy import BACKGROUND_NAME, Taxonomy, load_taxonomy

UTM_BBOX = (465180, 5079240, 466180, 5080260)


@pytest.fixture(scope="module")
def worldcover() -> Taxonomy:
    return load_taxonomy("worldcover")  # sparse ids 10..100: exercises '' gaps in names


@pytest.fixture
def utm_box() -> GeoBox:
    return GeoBox.from_bbox(UTM_BBOX, "EPSG:32633", resolution=10)  # 102 x 100 pixels


def _labels(shape: tuple[int, ...], ids: list[int], cell: int = 7) -> np.ndarray:
    """Blocky mask that uses every id in ``ids`` (like rasterised polygons)."""
    yy, xx = np.indices(shape)
    pick = (yy // cell + 3 * (xx // cell)) % len(ids)
    out: np.ndarray = np.asarray(ids, dtype=np.uint8)[pick]
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*"))


# ----------------------------------------------------------------------------- grid / COG


@pytest.mark.parametrize(
    "geobox",
    [
        GeoBox.from_bbox(UTM_BBOX, "EPSG:32633", resolution=10),
        GeoBox.from_bbox((10.0, 45.0, 10.7, 45.4), "EPSG:4326", resolution=0.005),
    ],
    ids=["utm33n", "geographic"],
)
def test_output_grid_is_exactly_the_geobox(tmp_path: Path, geobox: GeoBox) -> None:
    data = np.arange(geobox.shape[0] * geobox.shape[1], dtype="float32").reshape(geobox.shape)
    out = write_cog(tmp_path / "img.tif", data, geobox, categorical=False)
    assert geobox.crs is not None
    with rasterio.open(out) as src:
        assert src.crs == CRS.from_wkt(geobox.crs.to_wkt())
        assert src.crs == CRS.from_user_input(str(geobox.crs))
        assert src.transform == geobox.affine
        assert src.shape == tuple(geobox.shape)
        np.testing.assert_array_equal(src.read(1), data)


def test_output_is_a_tiled_cog_with_overviews(tmp_path: Path) -> None:
    geobox = GeoBox.from_bbox((465180, 5079240, 476180, 5090240), "EPSG:32633", resolution=10)
    assert tuple(geobox.shape) == (1100, 1100)
    data = np.random.default_rng(1).integers(0, 4000, (2, 1100, 1100), dtype="uint16")
    out = write_cog(tmp_path / "big.tif", data, geobox, categorical=False)
    with rasterio.open(out) as src:
        structure = src.tags(ns="IMAGE_STRUCTURE")
        assert structure["LAYOUT"] == "COG"
        assert structure["COMPRESSION"] == "DEFLATE"
        assert structure["PREDICTOR"] == "2"
        assert src.block_shapes == [(512, 512), (512, 512)]
        assert src.overviews(1) and src.overviews(1)[0] == 2


def test_continuous_overviews_are_averaged(tmp_path: Path) -> None:
    geobox = GeoBox.from_bbox((0, 0, 11000, 11000), "EPSG:32633", resolution=10)
    yy, xx = np.indices(geobox.shape)
    checker = np.where((yy + xx) % 2 == 0, 0.0, 100.0).astype("float32")
    out = write_cog(tmp_path / "c.tif", checker, geobox, categorical=False)
    with rasterio.open(out, overview_level=0) as ovr:
        np.testing.assert_allclose(ovr.read(1), 50.0)


def test_writing_twice_is_byte_identical(tmp_path: Path, utm_box: GeoBox) -> None:
    data = np.random.default_rng(3).random((3, *utm_box.shape)).astype("float32")
    tags = provenance_tags(inputs={"layout": "a.gpkg"}, seed=7)
    a = write_cog(tmp_path / "a.tif", data, utm_box, categorical=False, tags=tags)
    b = write_cog(tmp_path / "b.tif", data, utm_box, categorical=False, tags=tags)
    assert _sha(a) == _sha(b)


def test_streamed_windows_equal_in_memory_write(tmp_path: Path, utm_box: GeoBox) -> None:
    data = np.random.default_rng(4).integers(0, 1000, (2, *utm_box.shape), dtype="int16")
    whole = write_cog(tmp_path / "whole.tif", data, utm_box, categorical=False, nodata=-1)
    h, w = utm_box.shape
    with GridRasterWriter(
        tmp_path / "streamed.tif", utm_box, dtype="int16", count=2, nodata=-1
    ) as wr:
        for rows in (slice(0, 37), slice(37, h)):
            for cols in (slice(60, w), slice(0, 60)):
                wr.write(data[:, rows, cols], rows, cols)
        streamed = wr.finalize(categorical=False)
    assert _sha(streamed) == _sha(whole)


def test_streamed_label_mask_equals_write_label_mask(
    tmp_path: Path, utm_box: GeoBox, worldcover: Taxonomy
) -> None:
    labels = _labels(tuple(utm_box.shape), [0, *worldcover.ids])
    direct = write_label_mask(tmp_path / "direct.tif", labels, utm_box, worldcover)
    with GridRasterWriter(
        tmp_path / "streamed.tif", utm_box, dtype=LABEL_DTYPE, nodata=LABEL_NODATA
    ) as wr:
        for r0 in range(0, utm_box.shape[0], 40):
            rows = slice(r0, min(r0 + 40, utm_box.shape[0]))
            wr.write(labels[rows], rows, slice(None))
        streamed = wr.finalize(**label_mask_style(worldcover))
    assert _sha(streamed) == _sha(direct)
    assert category_names_from_sidecar(streamed) == category_names_from_sidecar(direct)


def test_explicit_workdir_holds_the_intermediate(tmp_path: Path, utm_box: GeoBox) -> None:
    job, out = tmp_path / "job", tmp_path / "out"
    wr = GridRasterWriter(out / "img.tif", utm_box, dtype="uint8", workdir=job)
    wr.write(np.ones(utm_box.shape, dtype="uint8"), slice(None), slice(None))
    assert [p.suffix for p in job.iterdir()] == [".tif"]  # the partial file lives in the job
    assert list(out.iterdir()) == []
    wr.finalize(categorical=False)
    assert list(job.iterdir()) == []
    assert _files(out) == ["img.tif"]


def test_write_rejects_windows_outside_the_grid(tmp_path: Path, utm_box: GeoBox) -> None:
    with GridRasterWriter(tmp_path / "x.tif", utm_box, dtype="uint8") as wr:
        with pytest.raises(ValueError, match="outside the grid"):
            wr.write(np.zeros((10, 10), "uint8"), slice(95, 105), slice(0, 10))
        with pytest.raises(ValueError, match="cannot write float"):
            wr.write(np.zeros((10, 10), "float32"), slice(0, 10), slice(0, 10))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- label masks


def _gdal_category_names(path: Path) -> list[str] | None:
    """Category names as GDAL itself reports them (rasterio has no getter); None if no libgdal."""
    libs = glob.glob(
        os.path.join(os.path.dirname(rasterio.__file__), "..", "rasterio.libs", "libgdal*")
    )
    if not libs:
        return None
    gdal = ctypes.CDLL(libs[0])
    gdal.GDALOpen.restype = ctypes.c_void_p
    gdal.GDALOpen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    gdal.GDALGetRasterBand.restype = ctypes.c_void_p
    gdal.GDALGetRasterBand.argtypes = [ctypes.c_void_p, ctypes.c_int]
    gdal.GDALGetMetadata.restype = ctypes.c_void_p
    gdal.GDALGetMetadata.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    gdal.GDALGetRasterCategoryNames.restype = ctypes.POINTER(ctypes.c_char_p)
    gdal.GDALGetRasterCategoryNames.argtypes = [ctypes.c_void_p]
    gdal.GDALClose.argtypes = [ctypes.c_void_p]
    gdal.GDALAllRegister()
    ds = gdal.GDALOpen(str(path).encode(), 0)
    try:
        band = gdal.GDALGetRasterBand(ds, 1)
        gdal.GDALGetMetadata(band, None)  # GTiff loads PAM lazily, like gdalinfo triggers it
        names = gdal.GDALGetRasterCategoryNames(band)
        out: list[str] = []
        while names and names[len(out)] is not None:
            out.append(names[len(out)].decode())
        return out
    finally:
        gdal.GDALClose(ds)


def test_label_mask_colour_table_and_class_names_round_trip(
    tmp_path: Path, utm_box: GeoBox, worldcover: Taxonomy
) -> None:
    labels = _labels(tuple(utm_box.shape), [0, *worldcover.ids])
    out = write_label_mask(tmp_path / "labels.tif", labels, utm_box, worldcover)
    expected = [""] * 101
    expected[0] = BACKGROUND_NAME
    for c in worldcover.classes:
        expected[c.id] = c.name
    with rasterio.open(out) as src:
        assert src.dtypes == ("uint8",)
        assert src.nodata == 0
        assert src.descriptions == ("label",)
        cmap = src.colormap(1)
        for c in worldcover.classes:
            assert cmap[c.id][:3] == c.colour
        assert cmap[0][:3] == (0, 0, 0)
        band_tags = src.tags(1)
        assert json.loads(band_tags["CLASS_NAMES"]) == expected
        assert band_tags["CLASS_10"] == "tree cover"
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        np.testing.assert_array_equal(src.read(1), labels)
    assert category_names_from_sidecar(out) == expected
    gdal_names = _gdal_category_names(out)
    if gdal_names is not None:
        assert gdal_names == expected
    assert _files(tmp_path) == ["labels.tif", "labels.tif.aux.xml"]


def test_label_overviews_are_nearest(tmp_path: Path, worldcover: Taxonomy) -> None:
    geobox = GeoBox.from_bbox((0, 0, 11000, 11000), "EPSG:32633", resolution=10)
    yy, xx = np.indices(geobox.shape)
    # a pixel checkerboard of classes 10 and 30: averaging would invent 20 (shrubland)
    labels = np.where((yy + xx) % 2 == 0, 10, 30).astype("uint8")
    labels[:200, :200] = 0
    out = write_label_mask(tmp_path / "m.tif", labels, geobox, worldcover)
    with rasterio.open(out) as src:
        assert src.overviews(1)
    with rasterio.open(out, overview_level=0) as ovr:
        assert set(np.unique(ovr.read(1)).tolist()) <= {0, 10, 30}


def test_label_mask_rejects_ids_outside_the_taxonomy(
    tmp_path: Path, utm_box: GeoBox, worldcover: Taxonomy
) -> None:
    labels = np.full(utm_box.shape, 15, dtype="uint8")
    with pytest.raises(ValueError, match=r"\[15\]"):
        write_label_mask(tmp_path / "m.tif", labels, utm_box, worldcover)
    with pytest.raises(ValueError, match="uint8"):
        write_label_mask(tmp_path / "m.tif", labels.astype("int32"), utm_box, worldcover)
    assert list(tmp_path.iterdir()) == []


def test_rewriting_without_classes_removes_stale_names(
    tmp_path: Path, utm_box: GeoBox, worldcover: Taxonomy
) -> None:
    dest = tmp_path / "out.tif"
    write_label_mask(dest, np.zeros(utm_box.shape, "uint8"), utm_box, worldcover)
    write_cog(dest, np.zeros(utm_box.shape, "float32"), utm_box, categorical=False)
    assert _files(tmp_path) == ["out.tif"]


def test_qml_is_a_paletted_style_with_every_class(tmp_path: Path, worldcover: Taxonomy) -> None:
    out = write_qml(tmp_path / "labels.qml", worldcover)
    root = ET.parse(out).getroot()
    assert root.tag == "qgis"
    renderer = root.find("./pipe/rasterrenderer")
    assert renderer is not None
    assert renderer.get("type") == "paletted" and renderer.get("band") == "1"
    entries = {int(e.get("value", "-1")): e for e in renderer.iter("paletteEntry")}
    assert entries[0].get("alpha") == "0"
    assert set(entries) == {0, *worldcover.ids}
    for c in worldcover.classes:
        assert entries[c.id].get("label") == c.name
        assert entries[c.id].get("color") == "#{:02x}{:02x}{:02x}".format(*c.colour)


# ----------------------------------------------------------------------------- previews


def test_label_preview_is_downsampled_with_class_colours_only(
    tmp_path: Path, worldcover: Taxonomy
) -> None:
    labels = _labels((300, 2000), [0, *worldcover.ids], cell=50)
    out = write_preview_png(tmp_path / "p.png", labels, taxonomy=worldcover, max_size=500)
    with Image.open(out) as im:
        assert im.mode == "RGB" and im.size == (500, 75)
        colours = {tuple(int(v) for v in px) for px in np.asarray(im).reshape(-1, 3)}
    assert colours <= {(0, 0, 0), *(c.colour for c in worldcover.classes)}
    assert len(colours) == len(worldcover.ids) + 1


def test_image_preview_stretches_non_uint8_and_keeps_uint8(tmp_path: Path) -> None:
    image = np.random.default_rng(5).normal(1000, 50, (4, 64, 80)).astype("float32")
    with Image.open(write_preview_png(tmp_path / "f.png", image, max_size=40)) as im:
        arr = np.asarray(im)
    assert im.size == (40, 32) and arr.dtype == np.uint8
    assert arr.min() == 0 and arr.max() == 255
    rgb = np.zeros((3, 10, 10), dtype="uint8") + np.array([10, 20, 30], "uint8")[:, None, None]
    with Image.open(write_preview_png(tmp_path / "u.png", rgb)) as im:
        assert im.size == (10, 10)
        assert np.all(np.asarray(im) == [10, 20, 30])


# ----------------------------------------------------------------------------- provenance


def test_provenance_tags_are_complete_and_timeless(tmp_path: Path, utm_box: GeoBox) -> None:
    tags = provenance_tags(
        inputs={"layout": "zones.gpkg", "base": "t1.tif"},
        taxonomy="worldcover",
        seed=42,
        extra={"steps": 20, "guidance": 3.5},
    )
    assert tags["RS_SEG2ANY_VERSION"] == rs_seg2any.__version__
    assert json.loads(tags["RS_SEG2ANY_INPUTS"]) == {"layout": "zones.gpkg", "base": "t1.tif"}
    assert tags["RS_SEG2ANY_TAXONOMY"] == "worldcover"
    assert tags["RS_SEG2ANY_SEED"] == "42"
    assert tags["RS_SEG2ANY_PARAMS"] == '{"guidance": 3.5, "steps": 20}'
    out = write_cog(
        tmp_path / "t.tif", np.zeros(utm_box.shape, "uint8"), utm_box, categorical=False, tags=tags
    )
    with rasterio.open(out) as src:
        written = src.tags()
    assert {k: written[k] for k in tags} == tags
    assert not any("DATETIME" in k.upper() for k in written)


# ----------------------------------------------------------------------------- failures


def test_atomic_output_failure_leaves_nothing_and_keeps_old_file(tmp_path: Path) -> None:
    dest = tmp_path / "result.bin"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(dest) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".")
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert _files(tmp_path) == ["result.bin"]
    assert dest.read_bytes() == b"old"


def test_abort_and_exception_leave_no_files(tmp_path: Path, utm_box: GeoBox) -> None:
    with (
        pytest.raises(KeyError),
        GridRasterWriter(tmp_path / "a.tif", utm_box, dtype="uint8") as wr,
    ):
        wr.write(np.ones((10, 10), "uint8"), slice(0, 10), slice(0, 10))
        raise KeyError("generator crashed")
    wr2 = GridRasterWriter(tmp_path / "b.tif", utm_box, dtype="uint8")
    wr2.write(np.ones((10, 10), "uint8"), slice(0, 10), slice(0, 10))
    wr2.abort()
    assert list(tmp_path.iterdir()) == []


def test_conversion_failure_is_an_output_error_and_leaves_nothing(
    tmp_path: Path, utm_box: GeoBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise rasterio.errors.RasterioIOError("No space left on device")

    monkeypatch.setattr(rasterio.shutil, "copy", fail)
    with pytest.raises(OutputError, match=r"disk full on .* while writing x\.tif"):
        write_cog(tmp_path / "x.tif", np.ones(utm_box.shape, "uint8"), utm_box, categorical=False)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_is_an_output_error(tmp_path: Path, utm_box: GeoBox) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="cannot create output folder"):
        ensure_writable_dir(blocker / "sub")
    with pytest.raises(OutputError, match="not a folder"):
        ensure_writable_dir(blocker)
    with pytest.raises(OutputError):
        GridRasterWriter(blocker / "sub" / "x.tif", utm_box, dtype="uint8")
    assert ensure_writable_dir(tmp_path / "new" / "deep") == tmp_path / "new" / "deep"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_read_only_folder_is_an_output_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            ensure_writable_dir(locked)
    finally:
        locked.chmod(0o700)


def test_rgb_image_is_tagged_as_true_colour(tmp_path: Path) -> None:
    from rasterio.enums import ColorInterp

    grid = GeoBox.from_bbox((465180, 5079240, 466180, 5080260), "EPSG:32633", resolution=10)
    data = np.random.default_rng(1).integers(0, 255, (3, *grid.shape), dtype=np.uint8)
    writer = GridRasterWriter(tmp_path / "rgb2.tif", grid, dtype="uint8", count=3)
    writer.write(data, slice(0, grid.shape[0]), slice(0, grid.shape[1]))
    writer.finalize(categorical=False, rgb=True, band_descriptions=["red", "green", "blue"])
    with rasterio.open(tmp_path / "rgb2.tif") as src:
        assert src.descriptions == ("red", "green", "blue")
        assert src.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        np.testing.assert_array_equal(src.read(), data)
