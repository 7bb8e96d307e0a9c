"""The refine loop's settings: one dataclass, from which the CLI flags and job keys come."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
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
        if not 0.0 <= self.min_score <= 1.0:
            raise InputError(f"--min-score must be in [0, 1], got {self.min_score}")
        if not 0 <= self.max_rounds <= 20:
            raise InputError(f"--max-rounds must be in 0..20, got {self.max_rounds}")
        if not 1.0 <= self.time_factor <= 100.0:
            raise InputError(f"--time-factor must be in [1, 100], got {self.time_factor}")
