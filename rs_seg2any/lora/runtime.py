"""Adapters at generation time: ``--lora PATH[:WEIGHT]`` on the embedded model.

:class:`AdaptedTiny` loads and checks every adapter before the model is touched (backend,
base weights, band set; the layout's taxonomy and classes when a job starts), injects them
all with their weights, and for adapters trained on other bands maps between the source
bands and the model's RGB with the adapter's band projections.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from ..errors import AdapterMismatchError, WeightsError
from .adapter import (
    Adapter,
    LoraRef,
    apply_adapters,
    check_band_sets,
    check_classes,
    check_compatible,
    read_adapter,
)
from .bands import BandAdapter

U8 = NDArray[np.uint8]


@dataclass
class AdaptedTiny:
    """The adapters attached to one tiny generator."""

    adapters: list[tuple[Adapter, float]] = field(default_factory=list)
    bands: BandAdapter | None = None

    @classmethod
    def attach(cls, impl: Any, base_sha: str, refs: Sequence[str | LoraRef]) -> AdaptedTiny:
        parsed = [LoraRef.parse(r) for r in refs]
        loaded = [(read_adapter(r.path), r.weight) for r in parsed]
        for adapter, _w in loaded:
            check_compatible(adapter, backend="tiny", base_sha256=base_sha)
        check_band_sets([a for a, _ in loaded])
        impl.model = apply_adapters(impl.model, loaded)
        band_state = next((a.bands for a, _ in loaded if a.bands), None)
        bands = None
        if band_state:
            try:
                bands = BandAdapter.from_state(band_state)
            except (KeyError, RuntimeError) as exc:
                raise WeightsError(f"band adapter of '{loaded[0][0].folder}' is malformed") from exc
        return cls(loaded, bands)

    @property
    def card(self) -> dict[str, Any]:
        return self.adapters[0][0].card if self.adapters else {}

    def n_bands(self) -> int:
        return len(self.card.get("bands", [])) if self.bands is not None else 3

    def band_descriptions(self) -> list[str] | None:
        """Names and source band numbers of the output bands (GeoTIFF band descriptions)."""
        if self.bands is None:
            return None
        return [f"{b['name']} (source band {b['source_band']})" for b in self.card["bands"]]

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "name": a.name,
                "weight": w,
                "folder": str(a.folder),
                "steps": a.card.get("steps"),
                "licence": a.card.get("licence"),
            }
            for a, w in self.adapters
        ]

    def check_layout(self, taxonomy: str, classes: Sequence[int]) -> None:
        check_classes([a for a, _ in self.adapters], taxonomy, classes)

    @torch.no_grad()
    def to_rgb(self, known: U8) -> U8:
        """Known band pixels (uint8 in the adapter's scaling) -> the model's RGB view."""
        assert self.bands is not None
        x = torch.from_numpy(known).permute(2, 0, 1)[None].float() / 127.5 - 1
        y = self.bands.to_model(x).clamp(-1, 1)
        return ((y[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)

    @torch.no_grad()
    def to_bands(self, rgb: U8) -> U8:
        assert self.bands is not None
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1
        y = self.bands.to_bands(x).clamp(-1, 1)
        return ((y[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)


def layout_classes(layout: Any) -> list[int]:
    """Class ids of a layout's polygons (one streaming pass over the layer)."""
    found: set[int] = set()
    for frame in layout.iter_batches():
        found.update(int(c) for c in np.unique(frame["class_id"].to_numpy()))
    return sorted(found)


def refuse_foreign_backend(backend: str, refs: Sequence[str]) -> None:
    """A tiny adapter given to another backend (e.g. flux): a clear, typed refusal."""
    for ref in refs:
        path = LoraRef.parse(ref).path
        if (path / "adapter_card.json").is_file():
            adapter = read_adapter(path)
            if adapter.backend != backend:
                raise AdapterMismatchError(
                    f"LoRA '{path}' was trained for the {adapter.backend} backend, not {backend}"
                )
