"""Provenance tags: GDAL metadata that says how a file was made (version, inputs, taxonomy, seed,
parameters), without timestamps so reruns are byte-identical, and with long CRS definitions
stored once so tags stay small.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any


def _package_version() -> str:
    import rs_seg2any

    version = getattr(rs_seg2any, "__version__", None)
    if isinstance(version, str):
        return version
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("rs-seg2any")
    except PackageNotFoundError:
        return "0+unknown"


def provenance_tags(
    *,
    inputs: Mapping[str, str],
    taxonomy: str | None = None,
    seed: int | None = None,
    extra: Mapping[str, object] | None = None,
) -> dict[str, str]:
    """GDAL metadata that says how a file was made; no timestamps, so reruns are identical."""
    tags = {
        "RS_SEG2ANY_VERSION": _package_version(),
        "RS_SEG2ANY_INPUTS": json.dumps(dict(inputs), sort_keys=True, ensure_ascii=False),
    }
    if taxonomy is not None:
        tags["RS_SEG2ANY_TAXONOMY"] = taxonomy
    if seed is not None:
        tags["RS_SEG2ANY_SEED"] = str(int(seed))
    if extra is not None:
        crs_defs: list[str] = []
        short = _short_crs_values(json.loads(json.dumps(dict(extra), default=str)), crs_defs)
        tags["RS_SEG2ANY_PARAMS"] = json.dumps(short, sort_keys=True, ensure_ascii=False)
        if crs_defs:
            tags["RS_SEG2ANY_CRS"] = json.dumps(
                [json.loads(d) for d in crs_defs], sort_keys=True, separators=(",", ":")
            )
    return tags


_WKT_KEYWORDS = "PROJCRS|GEOGCRS|BOUNDCRS|COMPOUNDCRS|GEODCRS|VERTCRS|ENGCRS|PROJCS|GEOGCS|COMPD_CS"
_WKT_START = re.compile(rf"^\s*(\+proj=|({_WKT_KEYWORDS}|GEOCCS|LOCAL_CS)\[)", re.IGNORECASE)


def short_crs(text: str, defs: list[str]) -> str:
    """'EPSG:<code>' for a CRS text that has one; else 'RS_SEG2ANY_CRS[i]', with its PROJJSON
    stored once in ``defs`` (the tag RS_SEG2ANY_CRS): tags stay small, nothing is lost."""
    from pyproj import CRS as ProjCRS
    from pyproj.exceptions import CRSError

    try:
        crs = ProjCRS.from_user_input(text)
    except CRSError:
        return text
    epsg = crs.to_epsg(min_confidence=100)
    if epsg is not None:
        return f"EPSG:{epsg}"
    definition = crs.to_json()
    if definition not in defs:
        defs.append(definition)
    return f"RS_SEG2ANY_CRS[{defs.index(definition)}]"


def _short_crs_values(value: Any, defs: list[str]) -> Any:
    """Every WKT string in a JSON-like value replaced by :func:`short_crs`."""
    if isinstance(value, dict):
        return {k: _short_crs_values(v, defs) for k, v in value.items()}
    if isinstance(value, list):
        return [_short_crs_values(v, defs) for v in value]
    if isinstance(value, str) and _WKT_START.match(value):
        return short_crs(value, defs)
    return value
