"""The refine loop's settings: one dataclass, from which the CLI flags and job keys come."""

from __future__ import annotations

from dataclasses import dataclass

from ..limits import check
from ..params import opt


@dataclass(frozen=True)
class RefineParams:
    """Score each entity after generation and regenerate only those that fail."""

    refine: bool = opt(False, "score entities after generating and regenerate failing ones")
    min_score: float = opt(0.5, "an entity passes when its worst critic score is at least this")
    max_rounds: int = opt(2, "at most this many regeneration rounds")
    time_factor: float = opt(
        2.0, "total time (plain generation + refining) at most this times the plain generation"
    )

    def __post_init__(self) -> None:
        for name in ("min_score", "max_rounds", "time_factor"):  # rs_seg2any.limits' table
            check(name, getattr(self, name))
