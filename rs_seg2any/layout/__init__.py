"""Layouts: a polygon layer + a class field + a taxonomy + a target grid, validated once."""

from .model import (
    BACKGROUND_DESCRIPTION,
    CENSUS_POINTS,
    LON_EPS,
    PARQUET_SUFFIXES,
    LayerSpec,
    Layout,
    LayoutReport,
    UnknownClassPolicy,
    _layer_crs,
    _open_file_layer,
    _read_parquet,
    load_layout,
)

__all__ = [
    "BACKGROUND_DESCRIPTION",
    "CENSUS_POINTS",
    "LON_EPS",
    "PARQUET_SUFFIXES",
    "LayerSpec",
    "Layout",
    "LayoutReport",
    "UnknownClassPolicy",
    "_layer_crs",
    "_open_file_layer",
    "_read_parquet",
    "load_layout",
]
