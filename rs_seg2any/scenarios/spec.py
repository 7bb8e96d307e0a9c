"""What a scenario is to the registry: its spec and the inputs every run gets.

Kept apart from the registry so that the shipped scenarios (``builtin``) and plug-ins can
build specs without importing the registry that lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from odc.geo.geobox import GeoBox

from ..generators.base import Generator
from ..params import SamplerParams, TileParams
from ..progress import Progress


@dataclass
class ScenarioInputs:
    """What every scenario run gets: its folder, its layout (as polygons) and grid, the
    generator settings and the progress channel. The generator is loaded on first use."""

    out: Path
    polygons: Any  # rs_seg2any.scenarios.common.Polygons | None
    grid: GeoBox | None
    sampler: SamplerParams
    tiles: TileParams
    progress: Progress | None = None
    layer_options: Any = None  # rs_seg2any.options.LayerOptions of the layout, for sibling layers
    refine: Any = None  # rs_seg2any.critics.RefineParams, for specs with refine=True
    _generators: dict[tuple[str, ...], Generator] = field(default_factory=dict, repr=False)

    def generator(self, extra_lora: Sequence[str] = ()) -> Generator:
        """The generator (``extra_lora``: adapters of this render only, e.g. a season)."""
        from ..generators.registry import generator_from

        key = tuple(extra_lora)
        if key not in self._generators:
            self._generators[key] = generator_from(self.sampler, extra_lora)
        return self._generators[key]

    def options(self) -> Any:
        """The sampler and tiling settings as the scenario functions take them."""
        from .common import GenOptions

        opts = GenOptions.from_params(self.sampler, self.tiles)
        return replace(opts, refine=self.refine) if self.refine is not None else opts


@dataclass(frozen=True)
class ScenarioSpec:
    """What the registry knows about a scenario."""

    name: str
    params: type
    """Its own options: a frozen dataclass whose fields carry help in their metadata."""
    run: Callable[[ScenarioInputs, Any], Any]
    """``run(inputs, params)`` -> a result with ``outputs()`` (or ``.outputs``), or a mapping
    of output names to paths."""
    help: str = ""
    layout: str = "optional"
    """``required``, ``optional`` (the base may be an ``image``) or ``none``."""
    grid: bool = True
    """Whether the grid options apply (False: the grid is always the base image's)."""
    presets: tuple[str, ...] = ()
    refine: bool = False
    """Whether it takes ``--refine`` (:class:`~rs_seg2any.critics.RefineParams`): the loop
    on every render it makes, inside the edit for edits."""

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary (``rs-seg2any scenarios``)."""
        return {
            "name": self.name,
            "help": self.help,
            "layout": self.layout,
            "grid": self.grid,
            "presets": list(self.presets),
        }
