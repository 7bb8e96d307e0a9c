"""rs_seg2any: georeferenced land-cover polygons to realistic remote-sensing imagery.

The front door: ``import rs_seg2any as rs`` gives the typed verbs (``rs.load_layout``,
``rs.rasterize``, ``rs.generate``, ``rs.flood``, ``rs.plan``, ``rs.seasons``, ``rs.change``,
``rs.cloudfill``, ``rs.scenario``, ``rs.run``, ``rs.load_generator``, ``rs.list_backends``,
``rs.list_scenarios``), their params dataclasses and the error types. Names resolve lazily on
first use, so importing the package stays light (no torch): the geo paths work in
environments without a deep-learning stack, such as QGIS.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # verbs
    "load_layout": "api",
    "rasterize": "api",
    "generate": "api",
    "flood": "api",
    "plan": "api",
    "seasons": "api",
    "change": "api",
    "cloudfill": "api",
    "damage": "api",
    "scenario": "api",
    "run": "api",
    "evaluate": "api",
    "load_generator": "api",
    "list_backends": "api",
    "list_scenarios": "api",
    "train_lora": "api",
    "list_adapters": "api",
    "LoraTrainParams": "lora.params",
    "AdapterMismatchError": "errors",
    "Result": "api",
    "detection_set": "api",
    "DetectionParams": "detection.params",
    # typed params and the job model
    "LayerOptions": "options",
    "GridParams": "params",
    "SamplerParams": "params",
    "TileParams": "params",
    "EvaluateParams": "params",
    "Job": "jobmodel",
    "load_job": "jobmodel",
    "Layout": "layout",
    "write_demo_layer": "demo",
    # registries
    "BackendSpec": "generators.registry",
    "register_backend": "generators.registry",
    "ScenarioSpec": "scenarios.spec",
    "ScenarioInputs": "scenarios.spec",
    "register_scenario": "scenarios.registry",
    # errors
    "RsSeg2AnyError": "errors",
    "InputError": "errors",
    "LayoutError": "errors",
    "TaxonomyError": "errors",
    "GridError": "errors",
    "WeightsError": "errors",
    "GenerationError": "errors",
    "OutputError": "errors",
    "JobError": "errors",
    "ScenarioError": "errors",
    "Cancelled": "errors",
}

__all__ = [
    "AdapterMismatchError",
    "BackendSpec",
    "Cancelled",
    "DetectionParams",
    "EvaluateParams",
    "GenerationError",
    "GridError",
    "GridParams",
    "InputError",
    "Job",
    "JobError",
    "LayerOptions",
    "Layout",
    "LayoutError",
    "LoraTrainParams",
    "OutputError",
    "Result",
    "RsSeg2AnyError",
    "SamplerParams",
    "ScenarioError",
    "ScenarioInputs",
    "ScenarioSpec",
    "TaxonomyError",
    "TileParams",
    "WeightsError",
    "__version__",
    "change",
    "cloudfill",
    "damage",
    "detection_set",
    "evaluate",
    "flood",
    "generate",
    "list_adapters",
    "list_backends",
    "list_scenarios",
    "load_generator",
    "load_job",
    "load_layout",
    "plan",
    "rasterize",
    "register_backend",
    "register_scenario",
    "run",
    "scenario",
    "seasons",
    "train_lora",
    "write_demo_layer",
]


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first use (PEP 562)."""
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module 'rs_seg2any' has no attribute '{name}'")
    value = getattr(import_module(f".{where}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # what type checkers and IDEs see
    from .api import (
        Result,
        change,
        cloudfill,
        damage,
        detection_set,
        evaluate,
        flood,
        generate,
        list_adapters,
        list_backends,
        list_scenarios,
        load_generator,
        load_layout,
        plan,
        rasterize,
        run,
        scenario,
        seasons,
        train_lora,
    )
    from .demo import write_demo_layer
    from .detection.params import DetectionParams
    from .errors import (
        AdapterMismatchError,
        Cancelled,
        GenerationError,
        GridError,
        InputError,
        JobError,
        LayoutError,
        OutputError,
        RsSeg2AnyError,
        ScenarioError,
        TaxonomyError,
        WeightsError,
    )
    from .generators.registry import BackendSpec, register_backend
    from .jobmodel import Job, load_job
    from .layout import Layout
    from .lora.params import LoraTrainParams
    from .options import LayerOptions
    from .params import EvaluateParams, GridParams, SamplerParams, TileParams
    from .scenarios.registry import register_scenario
    from .scenarios.spec import ScenarioInputs, ScenarioSpec
