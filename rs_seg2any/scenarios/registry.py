"""Scenarios by name: a registry, open to other packages through entry points.

A scenario is a :class:`ScenarioSpec`: a name, a typed params dataclass (its own options; the
layout, grid, sampler and tiling options are common to all), and a ``run`` function over
:class:`ScenarioInputs`. The API verb, the CLI subcommand, the job-file kind and the schema the
QGIS plugin reads all come from the spec, so adding a scenario is one registration. Another
package adds one by declaring an entry point in the group ``rs_seg2any.scenarios`` that names
a ``ScenarioSpec`` (or a function returning one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odc.geo.geobox import GeoBox

from ..errors import InputError
from ..generators.base import Generator
from ..params import SamplerParams, TileParams
from ..progress import Progress

ENTRY_POINT_GROUP = "rs_seg2any.scenarios"


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

        steps, guidance = self.sampler.sampler()
        s, t = self.sampler, self.tiles
        return GenOptions(
            steps=steps,
            guidance=guidance,
            gamma=s.gamma,
            seed=s.seed,
            tile_size=t.tile_size,
            overlap=t.overlap,
            caption=s.caption,
            restart=t.restart,
        )


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

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary (``rs-seg2any scenarios``)."""
        return {
            "name": self.name,
            "help": self.help,
            "layout": self.layout,
            "grid": self.grid,
            "presets": list(self.presets),
        }


_REGISTRY: dict[str, ScenarioSpec] = {}
_LOADED = False


def register_scenario(spec: ScenarioSpec) -> ScenarioSpec:
    """Add (or replace) a scenario; returns ``spec``."""
    _REGISTRY[spec.name] = spec
    return spec


def scenarios() -> dict[str, ScenarioSpec]:
    """Every scenario: the shipped ones, then those declared by other packages."""
    global _LOADED
    if not _LOADED:
        _LOADED = True
        from ..generators.registry import load_entry_points
        from . import builtin  # noqa: F401  (registers the shipped scenarios)

        for spec in load_entry_points(ENTRY_POINT_GROUP, ScenarioSpec):
            _REGISTRY.setdefault(spec.name, spec)
    return dict(_REGISTRY)


def scenario_spec(name: str) -> ScenarioSpec:
    """The scenario called ``name``, or a one-line error listing those available."""
    table = scenarios()
    if name not in table:
        raise InputError(f"unknown scenario '{name}'; available: {', '.join(sorted(table))}")
    return table[name]


def outputs_of(result: Any) -> dict[str, Path]:
    """The output paths of whatever a scenario's ``run`` returned."""
    outs = result.outputs if hasattr(result, "outputs") else result
    outs = outs() if callable(outs) else outs
    if not isinstance(outs, Mapping):
        raise TypeError(f"a scenario returned {type(result).__name__}, not outputs")
    return {str(k): Path(v) for k, v in outs.items()}
