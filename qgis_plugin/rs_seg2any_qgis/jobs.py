# SPDX-License-Identifier: GPL-2.0-or-later
"""What a run asks of the CLI, as one value the dialog, the algorithms and the tests build.

Kept free of QGIS imports: it only turns choices into ``rs-seg2any`` arguments, so the
argument spelling lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

UNKNOWN_CLASS_CHOICES = ("error", "skip", "background")
CLI_DEFAULT_OVERLAP = 64


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

    def grid_problems(self) -> list[str]:
        found = []
        if self.like is None and not (self.resolution and self.resolution > 0):
            found.append("give a resolution > 0, or a raster whose grid to match")
        if self.extent is not None:
            xmin, ymin, xmax, ymax = self.extent
            if not (xmax > xmin and ymax > ymin):
                found.append("the extent is empty")
        return found

    def _overlap(self) -> int | None:
        """The CLI's default overlap (64 px) needs tiles over 128 px; smaller tiles get 1/4."""
        if self.overlap is not None:
            return self.overlap
        if self.tile_size and self.tile_size <= 2 * CLI_DEFAULT_OVERLAP:
            return self.tile_size // 4
        return None

    def add_grid(self, opt: _Options) -> None:
        if self.like:
            opt.add("--like", self.like)
            return
        opt.add("--resolution", _num(self.resolution))
        opt.add("--crs", self.crs)
        if self.extent is not None:
            opt.add("--extent", ",".join(_num(v) for v in self.extent))

    def add_generator(self, opt: _Options) -> None:
        opt.add("--backend", self.backend)
        opt.add("--model", self.model)
        opt.add("--steps", self.steps)
        opt.add("--guidance", self.guidance)
        opt.add("--gamma", self.gamma)
        opt.add("--seed", self.seed)
        opt.add("--caption", self.caption)
        opt.add("--overlap", self._overlap())
        opt.add("--threads", self.threads or None)

    def add_job(self, opt: _Options, out_dir: str) -> None:
        """Tile size, restart and the output folder, then ``--progress json`` (always last)."""
        opt.add("--tile-size", self.tile_size)
        if self.restart:
            opt.args.append("--restart")
        opt.args += ["--out", out_dir, "--progress", "json"]


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
        if self.unknown_class is not None and self.unknown_class not in UNKNOWN_CLASS_CHOICES:
            found.append(f"unknown-class must be one of {', '.join(UNKNOWN_CLASS_CHOICES)}")
        if self.command == "generate" and self.steps is not None and self.steps < 1:
            found.append("steps must be at least 1")
        return found

    def verb(self) -> str:
        """What the task manager shows the job doing."""
        return "Generating imagery" if self.command == "generate" else "Rasterising"

    def input_name(self) -> str:
        return Path(self.layer_path).stem

    def to_args(self) -> list[str]:
        """The CLI arguments, always with ``--progress json`` for the plugin to read."""
        args = [self.command, self.layer_path, "--class-field", self.class_field]
        opt = _Options(args)
        opt.add("--layer", self.layer_name)
        opt.add("--description-field", self.description_field)
        opt.add("--taxonomy", self.taxonomy)
        opt.add("--unknown-class", self.unknown_class)
        self.add_grid(opt)
        if self.command == "generate":
            self.add_generator(opt)
        self.add_job(opt, self.out_dir)
        return args


class _Options:
    def __init__(self, args: list[str]) -> None:
        self.args = args

    def add(self, flag: str, value: object) -> None:
        if value is None or value == "":
            return
        self.args += [flag, value if isinstance(value, str) else _num(value)]


def _num(value: object) -> str:
    """Numbers as the shortest exact text (``10`` not ``10.0``): the CLI parses both."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)
