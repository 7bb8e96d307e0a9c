"""Reading any vector source behind one interface: a file GDAL can open (GeoPackage,
Shapefile, GeoJSON, FlatGeobuf, ...), GeoParquet, or an in-memory GeoDataFrame.

A source yields its features batch by batch (the validation pass) or for one window (a tile),
so memory never grows with the layer. Opening checks what a user can get wrong before any
work: the file, the layer, the fields, the CRS, point or line layers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from odc.geo import CRS, BoundingBox
from pyogrio.errors import DataLayerError, DataSourceError

from ..errors import InputError, LayoutError

PARQUET_SUFFIXES = (".parquet", ".geoparquet")
_BATCH = 20_000


@dataclass(frozen=True)
class LayerSpec:
    """Which layer and which fields to read; ``path`` is None for an in-memory frame."""

    path: Path | None
    layer: str | None
    class_field: str
    description_field: str | None = None
    priority_field: str | None = None

    def columns(self) -> list[str]:
        cols = [self.class_field]
        for extra in (self.description_field, self.priority_field):
            if extra and extra not in cols:
                cols.append(extra)
        return cols

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path) if self.path else None,
            "layer": self.layer,
            "class_field": self.class_field,
            "description_field": self.description_field,
            "priority_field": self.priority_field,
        }


@dataclass(frozen=True)
class _LayerInfo:
    layer: str | None
    crs: CRS | None
    fields: tuple[str, ...]
    geometry_type: str | None
    count: int


def _open_file_layer(path: Path, layer: str | None) -> _LayerInfo:
    if not path.exists():
        raise InputError(f"vector file '{path}' not found")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        raise AssertionError("parquet is read in memory")  # pragma: no cover - routed earlier
    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(path)]
    except (DataSourceError, OSError) as exc:
        raise InputError(f"'{path}' is not a vector file GDAL can read: {exc}") from exc
    if not layers:
        raise InputError(f"'{path}' contains no vector layers")
    if layer is None:
        if len(layers) > 1:
            raise InputError(
                f"'{path}' has {len(layers)} layers ({', '.join(layers)}); choose one with --layer"
            )
        layer = layers[0]
    elif layer not in layers:
        raise InputError(f"layer '{layer}' not found in '{path}'; layers are: {', '.join(layers)}")
    try:
        info = pyogrio.read_info(path, layer=layer, force_feature_count=True)
    except (DataSourceError, DataLayerError) as exc:
        raise InputError(f"cannot read layer '{layer}' of '{path}': {exc}") from exc
    crs = CRS(info["crs"]) if info.get("crs") else None
    return _LayerInfo(
        layer=layer,
        crs=crs,
        fields=tuple(str(f) for f in info["fields"]),
        geometry_type=info.get("geometry_type"),
        count=int(info.get("features") or 0),
    )


def _check_fields(spec: LayerSpec, fields: Sequence[str], where: str) -> None:
    for role, name in (
        ("class field", spec.class_field),
        ("description field", spec.description_field),
        ("priority field", spec.priority_field),
    ):
        if name and name not in fields:
            hint = [f for f in fields if f.casefold() == name.casefold()]
            extra = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise LayoutError(
                f"{role} '{name}' not found in {where}{extra}; fields are: "
                f"{', '.join(fields) if fields else '(none)'}"
            )


_Batch = tuple[np.ndarray, list[Any], list[Any] | None, list[Any] | None, np.ndarray]
"""fids, class values, descriptions, priorities, shapely geometries."""


class _Source:
    spec: LayerSpec
    crs: CRS

    def batches(
        self,
    ) -> Iterator[_Batch]:
        raise NotImplementedError

    def window(self, bounds: BoundingBox) -> _Batch:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError


def _columns_of(
    frame: pd.DataFrame, spec: LayerSpec
) -> tuple[list[Any], list[Any] | None, list[Any] | None]:
    classes = frame[spec.class_field].tolist()
    desc = frame[spec.description_field].tolist() if spec.description_field else None
    pri = frame[spec.priority_field].tolist() if spec.priority_field else None
    return classes, desc, pri


class _FileSource(_Source):
    def __init__(self, spec: LayerSpec, crs: CRS, count: int) -> None:
        self.spec, self.crs, self._count = spec, crs, count

    def count(self) -> int:
        return self._count

    def batches(
        self,
    ) -> Iterator[_Batch]:
        spec = self.spec
        with pyogrio.open_arrow(
            spec.path,  # type: ignore[arg-type]
            layer=spec.layer,
            columns=spec.columns(),
            return_fids=True,
            batch_size=_BATCH,
            use_pyarrow=True,
        ) as (meta, reader):
            geom_name = meta.get("geometry_name") or "wkb_geometry"
            for batch in reader:
                table = batch.to_pandas()
                gcol = geom_name if geom_name in table.columns else table.columns[-1]
                fid_col = "OGC_FID" if "OGC_FID" in table.columns else "fid"
                fids = np.asarray(table[fid_col], dtype=np.int64)
                geoms = shapely.from_wkb(table[gcol].to_numpy(), on_invalid="ignore")
                classes, desc, pri = _columns_of(table, spec)
                yield fids, classes, desc, pri, geoms

    def window(self, bounds: BoundingBox) -> _Batch:
        spec = self.spec
        frame = pyogrio.read_dataframe(
            spec.path,  # type: ignore[arg-type]
            layer=spec.layer,
            columns=spec.columns(),
            bbox=tuple(bounds.bbox),
            fid_as_index=True,
            on_invalid="ignore",
        )
        classes, desc, pri = _columns_of(frame, spec)
        fids = np.asarray(frame.index, dtype=np.int64)
        return fids, classes, desc, pri, np.asarray(frame.geometry.values, dtype=object)


class _FrameSource(_Source):
    def __init__(self, frame: gpd.GeoDataFrame, spec: LayerSpec, crs: CRS) -> None:
        self.spec, self.crs = spec, crs
        self._frame = frame.reset_index(drop=True)
        self._fids = np.arange(len(self._frame), dtype=np.int64)

    def count(self) -> int:
        return len(self._frame)

    def batches(
        self,
    ) -> Iterator[_Batch]:
        for start in range(0, len(self._frame), _BATCH):
            part = self._frame.iloc[start : start + _BATCH]
            classes, desc, pri = _columns_of(part, self.spec)
            geoms = np.asarray(part.geometry.values, dtype=object)
            yield self._fids[start : start + _BATCH], classes, desc, pri, geoms

    def window(self, bounds: BoundingBox) -> _Batch:
        idx = np.sort(self._frame.sindex.query(shapely.box(*bounds.bbox)))
        part = self._frame.iloc[idx]
        classes, desc, pri = _columns_of(part, self.spec)
        return self._fids[idx], classes, desc, pri, np.asarray(part.geometry.values, dtype=object)


def _where(spec: LayerSpec) -> str:
    if spec.path is None:
        return "the GeoDataFrame"
    return f"layer '{spec.layer}' of '{spec.path}'" if spec.layer else f"'{spec.path}'"


def _make_source(
    source: str | Path | gpd.GeoDataFrame,
    class_field: str,
    layer: str | None,
    description_field: str | None,
    priority_field: str | None,
    layer_crs: object | None,
) -> _Source:
    if isinstance(source, gpd.GeoDataFrame):
        spec = LayerSpec(None, None, class_field, description_field, priority_field)
        _check_fields(
            spec, [str(c) for c in source.columns if c != source.geometry.name], "the GeoDataFrame"
        )
        crs = _layer_crs(source.crs, layer_crs, "the GeoDataFrame")
        return _FrameSource(source, spec, crs)
    path = Path(source)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        frame = _read_parquet(path)
        spec = LayerSpec(path, None, class_field, description_field, priority_field)
        _check_fields(
            spec, [str(c) for c in frame.columns if c != frame.geometry.name], f"'{path}'"
        )
        return _FrameSource(frame, spec, _layer_crs(frame.crs, layer_crs, f"'{path}'"))
    info = _open_file_layer(path, layer)
    spec = LayerSpec(path, info.layer, class_field, description_field, priority_field)
    _check_fields(spec, info.fields, _where(spec))
    if info.geometry_type and info.geometry_type.lstrip("3D ").replace("Multi", "") in (
        "Point",
        "LineString",
    ):
        raise LayoutError(
            f"{_where(spec)} holds {info.geometry_type} geometries; polygons are expected. "
            "Buffer points and lines into polygons first"
        )
    return _FileSource(spec, _layer_crs(info.crs, layer_crs, _where(spec)), info.count)


def _read_parquet(path: Path) -> gpd.GeoDataFrame:
    if not path.exists():
        raise InputError(f"vector file '{path}' not found")
    try:
        return gpd.read_parquet(path)
    except Exception as exc:  # pyarrow and geopandas raise many types for bad files
        raise InputError(f"'{path}' is not a GeoParquet file: {exc}") from exc


def _layer_crs(found: Any, override: object | None, where: str) -> CRS:
    if override is not None:
        return CRS(override)  # type: ignore[arg-type]
    if found is None:
        raise LayoutError(
            f"{where} has no CRS; assign one (QGIS: Layer > Set CRS; ogr2ogr -a_srs EPSG:...) "
            "or pass --layer-crs"
        )
    return CRS(found.to_wkt() if hasattr(found, "to_wkt") else found)
