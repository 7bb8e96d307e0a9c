"""Scenarios by name: a registry, open to other packages through entry points.

A scenario is a :class:`ScenarioSpec`: a name, a typed params dataclass (its own options; the
layout, grid, sampler and tiling options are common to all), and a ``run`` function over
:class:`ScenarioInputs`. The API verb, the CLI subcommand, the job-file kind and the schema the
QGIS plugin reads all come from the spec, so adding a scenario is one registration. Another
package adds one by declaring an entry point in the group ``rs_seg2any.scenarios`` that names
a ``ScenarioSpec`` (or a function returning one).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..plugins import Registry
from .spec import ScenarioInputs, ScenarioSpec

__all__ = ["ScenarioInputs", "ScenarioSpec", "register_scenario", "scenario_spec", "scenarios"]

ENTRY_POINT_GROUP = "rs_seg2any.scenarios"


def _shipped() -> tuple[ScenarioSpec, ...]:
    from .builtin import SHIPPED

    return SHIPPED


SCENARIOS: Registry[ScenarioSpec] = Registry(ScenarioSpec, ENTRY_POINT_GROUP, "scenario", _shipped)


def register_scenario(spec: ScenarioSpec) -> ScenarioSpec:
    """Add (or replace) a scenario; returns ``spec``."""
    return SCENARIOS.register(spec)


def scenarios() -> dict[str, ScenarioSpec]:
    """Every scenario: the shipped ones, then those declared by other packages."""
    return SCENARIOS.all()


def scenario_spec(name: str) -> ScenarioSpec:
    """The scenario called ``name``, or a one-line error listing those available."""
    return SCENARIOS.get(name)


def outputs_of(result: Any) -> dict[str, Path]:
    """The output paths of whatever a scenario's ``run`` returned."""
    outs = result.outputs if hasattr(result, "outputs") else result
    outs = outs() if callable(outs) else outs
    if not isinstance(outs, Mapping):
        raise TypeError(f"a scenario returned {type(result).__name__}, not outputs")
    return {str(k): Path(v) for k, v in outs.items()}
