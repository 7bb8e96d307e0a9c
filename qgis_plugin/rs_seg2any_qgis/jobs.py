# SPDX-License-Identifier: GPL-2.0-or-later
"""What a run asks of the CLI, as one value the dialog, the algorithms and the tests build.

Kept free of QGIS imports: it only turns choices into values by CLI dest; the backend's
schema (``cli_schema``) spells the arguments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cli_schema import CliSchema


@dataclass(kw_only=True)
class CliOptions:
    """Grid, generator and job options that ``generate`` and the scenario commands share.

    ``None`` leaves the CLI's default. The grid options apply where a layout is rendered.
    """

    like: str | None = None
    resolution: float | None = None
    crs: str | None = None
    extent: tuple[float, float, float, float] | None = None
    tile_size: int | None = None
    restart: bool = False
    # generator
    backend: str | None = None
    model: str | None = None
    steps: int | None = None
    guidance: float | None = None
    gamma: float | None = None
    seed: int | None = None
    caption: str | None = None
    overlap: int | None = None
    threads: int | None = None
    #: further options by their CLI dest (the dialogs' generic "more options" from the schema)
    extra: dict[str, Any] = field(default_factory=dict)

    def grid_problems(self) -> list[str]:
        found = []
        if self.like is None and not (self.resolution and self.resolution > 0):
            found.append("give a resolution > 0, or a raster whose grid to match")
        if self.extent is not None:
            xmin, ymin, xmax, ymax = self.extent
            if not (xmax > xmin and ymax > ymin):
                found.append("the extent is empty")
        return found

    def _overlap(self, default: Any) -> int | None:
        """The CLI's default overlap (``default``, 64 px) needs tiles over twice as large;
        smaller tiles get a quarter of their size."""
        if self.overlap is not None:
            return self.overlap
        if isinstance(default, int) and self.tile_size and self.tile_size <= 2 * default:
            return self.tile_size // 4
        return None

    def grid_values(self) -> dict[str, Any]:
        """The target grid: a raster's, or resolution, CRS and extent."""
        if self.like:
            return {"like": self.like}
        return {"resolution": self.resolution, "crs": self.crs, "extent": self.extent}

    def generator_values(self, schema: CliSchema, command: str) -> dict[str, Any]:
        """The generator options (the overlap fitted to small tiles, by the CLI's default)."""
        overlap = schema.default(command, "overlap") if schema.has(command, "overlap") else None
        return {
            "backend": self.backend,
            "model": self.model,
            "steps": self.steps,
            "guidance": self.guidance,
            "gamma": self.gamma,
            "seed": self.seed,
            "caption": self.caption,
            "overlap": self._overlap(overlap),
            "threads": self.threads or None,
        }

    def job_values(self, out_dir: str) -> dict[str, Any]:
        """The options from the form's "more options" (``extra``), then tile size, restart
        and the output folder, then ``progress: json`` (always last, for the plugin)."""
        return {
            **{k: v for k, v in self.extra.items() if v is not None},
            "tile_size": self.tile_size,
            "restart": self.restart,
            "out": out_dir,
            "progress": "json",
        }


@dataclass
class JobSpec(CliOptions):
    """One ``rs-seg2any layout`` or ``generate`` run. ``None`` leaves the CLI's default."""

    command: str  # "layout" or "generate"
    layer_path: str
    class_field: str
    out_dir: str
    layer_name: str | None = None
    description_field: str | None = None
    taxonomy: str | None = None
    unknown_class: str | None = None

    def problems(self) -> list[str]:
        """Mistakes the CLI would reject, caught before a process is started."""
        found = []
        if self.command not in ("layout", "generate"):
            found.append(f"unknown command {self.command!r}")
        if not self.layer_path:
            found.append("choose a polygon layer")
        if not self.class_field:
            found.append("choose the field that holds each polygon's class")
        if not self.out_dir:
            found.append("choose an output folder")
        found += self.grid_problems()
        if self.command == "generate" and self.steps is not None and self.steps < 1:
            found.append("steps must be at least 1")
        return found

    def verb(self) -> str:
        """What the task manager shows the job doing."""
        return "Generating imagery" if self.command == "generate" else "Rasterising"

    def input_name(self) -> str:
        return Path(self.layer_path).stem

    def values(self, schema: CliSchema) -> dict[str, Any]:
        """The job by CLI dest, in command-line order (the schema spells the flags)."""
        values: dict[str, Any] = {
            "layout": self.layer_path,
            "class_field": self.class_field,
            "layer": self.layer_name,
            "description_field": self.description_field,
            "taxonomy": self.taxonomy,
            "unknown_class": self.unknown_class,
            **self.grid_values(),
        }
        if self.command == "generate":
            values |= self.generator_values(schema, self.command)
        return merge_values(values, self.job_values(self.out_dir))

    def to_args(self, schema: CliSchema) -> list[str]:
        """The CLI arguments, always with ``--progress json`` for the plugin to read."""
        return schema.build_argv(self.command, self.values(schema))

    def to_job(self, schema: CliSchema) -> dict[str, Any]:
        """The same run as a job file's mapping (``rs-seg2any run``, ``rs.run``)."""
        return schema.build_job(self.command, self.values(schema), "command")


def write_job_file(path: Path, job: dict[str, Any]) -> Path:
    """Write ``job`` as a job file a server can run (``rs-seg2any run FILE``). JSON is YAML,
    so no YAML library is needed here; written whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(
        "# rs_seg2any job exported from QGIS: rs-seg2any run " + path.name + "\n"
        + json.dumps(job, indent=2) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    tmp.replace(path)
    return path


def merge_values(values: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """``values`` then ``job``; a key of ``job`` already in ``values`` keeps its place."""
    merged = dict(values)
    for key, value in job.items():
        if key in merged and value in (None, ""):
            continue
        merged[key] = value
    return merged
