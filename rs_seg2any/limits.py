"""The one set of rules for numeric options, shared by the CLI and the Python API.

Each rule names its option, so the CLI (argparse ``type=`` callables built by
:func:`argtype`) and the library entry points (:func:`check`) refuse ``nan``, ``inf``,
negative, zero or absurd values with the same one-line typed error, before anything is
written. Ranges are generous: they catch unit mistakes and typos, not unusual choices.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import GridError, InputError, RsSeg2AnyError


@dataclass(frozen=True)
class Rule:
    """A finite number of one kind in [low, high] (``low_open``: strictly above ``low``;
    ``high_open``: strictly below ``high``)."""

    option: str
    integer: bool
    low: float
    high: float
    low_open: bool = False
    error: type[RsSeg2AnyError] = InputError
    hint: str = ""
    high_open: bool = False

    def check(self, value: Any) -> Any:
        """``value`` as int or float if it obeys the rule, else the rule's typed error."""
        number = self._number(value)
        below = number <= self.low if self.low_open else number < self.low
        above = number >= self.high if self.high_open else number > self.high
        if below or above:
            raise self.error(f"{self.option} must be {self._range()} (got {value!r}){self.hint}")
        return number

    def _number(self, value: Any) -> Any:
        kind = "an integer" if self.integer else "a number"
        if isinstance(value, bool):
            raise self.error(f"{self.option} must be {kind} (got {value!r})")
        try:
            number = float(value.strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError, OverflowError):
            raise self.error(f"{self.option} must be {kind} (got {value!r})") from None
        if not math.isfinite(number):
            raise self.error(f"{self.option} must be a finite number (got {value!r})")
        if self.integer:
            if isinstance(value, str):
                text = value.strip()
                if not re.fullmatch(r"[+-]?\d+", text):
                    raise self.error(f"{self.option} must be {kind} (got {value!r})")
                return int(text)
            if not number.is_integer():
                raise self.error(f"{self.option} must be {kind} (got {value!r})")
            return int(value)
        return number

    def _range(self) -> str:
        lo, hi = (f"{int(v):,}" if self.integer else f"{v:g}" for v in (self.low, self.high))
        return f"{'>' if self.low_open else '>='} {lo} and {'<' if self.high_open else '<='} {hi}"


MAX_SEED = 2**32 - 1

RULES: dict[str, Rule] = {
    "steps": Rule("--steps", True, 1, 1000),
    "guidance": Rule("--guidance", False, 0, 100),
    "gamma": Rule("--gamma", False, 0, 100),
    "seed": Rule("--seed", True, 0, MAX_SEED),
    "overlap": Rule("--overlap", True, 0, 4096),
    "threads": Rule("--threads", True, 1, 1024),
    "tile_size": Rule("--tile-size", True, 16, 16384),
    "max_pixels": Rule("--max-pixels", False, 1, 1e12, error=GridError),
    "level": Rule("--level", False, -12_000, 100_000, hint="; it is metres in the DEM's datum"),
    "pairs": Rule("--pairs", True, 1, 1000),
    "minutes": Rule("--minutes", False, 0, 1e6, low_open=True),
    "workers": Rule("--workers", True, 1, 4096),
    "attempts": Rule("--attempts", True, 1, 100),
    # generate --refine
    "min_score": Rule("--min-score", False, 0, 1),
    "max_rounds": Rule("--max-rounds", True, 0, 20),
    "time_factor": Rule("--time-factor", False, 1, 100),
    # detection-set
    "chip_size": Rule("--chip-size", True, 8, 16384),
    "chip_stride": Rule("--chip-stride", True, 1, 16384),
    "min_visible": Rule("--min-visible", False, 0, 1),
    "split_block": Rule("--split-block", True, 8, 10**7),
    "split_buffer": Rule("--split-buffer", True, 0, 10**6),
    "insert_count": Rule("--insert-count", True, 0, 100_000),
    "max_leakage": Rule("--max-leakage", False, 0, 1),
    "min_fidelity": Rule("--min-fidelity", False, 0, 1),
    # train-lora
    "border": Rule("--border", True, 0, 100_000),
    "val_fraction": Rule("--val-fraction", False, 0, 1, low_open=True, high_open=True),
    "rank": Rule("--rank", True, 1, 512),
    "alpha": Rule("--alpha", False, 0, 1e4, low_open=True),
    "max_steps": Rule("--max-steps", True, 1, 10_000_000),
    "batch": Rule("--batch", True, 1, 4096),
    "crop": Rule("--crop", True, 8, 4096),
    "lr": Rule("--lr", False, 0, 1, low_open=True),
    "val_every": Rule("--val-every", True, 1, 10_000_000),
    "patience": Rule("--patience", True, 0, 100_000),
    "ckpt_every": Rule("--ckpt-every", True, 1, 10_000_000),
    "segmenter_steps": Rule("--segmenter-steps", True, 0, 10_000_000),
}
"""Rules by argparse ``dest`` (and Python keyword) name."""

MAX_RESOLUTION = 1e7
"""Largest pixel size (CRS units): 10,000 km; anything above is a unit or typing mistake."""


def check(name: str, value: Any) -> Any:
    """Apply the rule of option ``name`` (its dest, e.g. ``tile_size``); None passes."""
    return None if value is None else RULES[name].check(value)


def check_tiling(tile_size: int, overlap: int) -> None:
    """Tile size and overlap together: the overlap must leave a core in every tile."""
    check("tile_size", tile_size)
    check("overlap", overlap)
    if 2 * overlap >= tile_size:
        raise InputError(
            f"--overlap {overlap} must be less than half of --tile-size {tile_size}, so each "
            "tile keeps a core of its own"
        )


def check_sampler(
    *, steps: Any = None, guidance: Any = None, gamma: Any = None, seed: Any = None
) -> None:
    """The sampler numbers of a generate job or scenario (None: not given)."""
    for name, value in (("steps", steps), ("guidance", guidance), ("gamma", gamma),
                        ("seed", seed)):  # fmt: skip
        check(name, value)


def check_resolution(value: Any, option: str = "--resolution") -> Any:
    """One or two finite pixel sizes in (0, MAX_RESOLUTION]; returns ``value`` unchanged."""
    if value is None:
        return None
    parts: list[Any]
    if isinstance(value, str):
        parts = [p for p in value.replace(" ", ",").split(",") if p]
    elif isinstance(value, int | float):
        parts = [value]
    else:
        try:
            parts = list(value)
        except TypeError:
            raise GridError(f"{option} {value!r} must be one or two numbers") from None
    if len(parts) not in (1, 2):
        raise GridError(f"{option} {value!r} must be one or two numbers (e.g. 10 or 10,10)")
    rule = Rule(option, False, 0, MAX_RESOLUTION, low_open=True, error=GridError,
                hint="; it is the pixel size in CRS units")  # fmt: skip
    for p in parts:
        rule.check(p)
    return value


def check_number_list(
    value: str,
    option: str,
    count: int | None = None,
    error: type[RsSeg2AnyError] = InputError,
) -> list[float]:
    """Comma (or space) separated finite numbers, e.g. an extent or an X,Y pair."""
    parts = [p for p in str(value).replace(" ", ",").split(",") if p]
    want = {2: "two numbers (X,Y)", 4: "four numbers (xmin,ymin,xmax,ymax)"}.get(
        count or 0, f"{count} numbers" if count else "numbers"
    )
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise error(f"{option} {value!r} must be {want} separated by commas") from None
    if count is not None and len(numbers) != count:
        raise error(f"{option} {value!r} must be {want} separated by commas")
    if not all(math.isfinite(n) for n in numbers):
        raise error(f"{option} {value!r} must hold finite numbers")
    return numbers


def check_crs(value: Any, option: str) -> Any:
    """A CRS pyproj understands (EPSG code, WKT, PROJ); returns ``value`` unchanged."""
    if value is None:
        return None
    from .grid import parse_crs

    try:
        parse_crs(value)
    except GridError:
        raise GridError(
            f"{option} {value!r} is not a CRS; use e.g. 'EPSG:32633' or a WKT string"
        ) from None
    return value


def argtype(name: str) -> Callable[[str], Any]:
    """argparse ``type=`` for option ``name``: the rule's typed error, not argparse's usage."""

    def parse(text: str) -> Any:
        return RULES[name].check(text)

    parse.__name__ = name
    return parse


EXTRA_TYPES: dict[str, Callable[[str], Any]] = {
    "resolution": check_resolution,
    "extent": lambda text: (check_number_list(text, "--extent", 4, GridError), text)[1],
    "seed_xy": lambda text: (check_number_list(text, "--seed-xy", 2), text)[1],
    "layer_crs": lambda text: check_crs(text, "--layer-crs"),
}
"""Validators of string options that keep their text (the parser's consumers parse it)."""
