"""What validating a layer found: the counts and warnings a user sees before trusting the outputs
(printed by the CLI, written to layout.json).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LayoutReport:
    """What validation found: counts a user should see before trusting the outputs."""

    features: int
    used_features: int
    entities: int
    null_geometries: int = 0
    empty_geometries: int = 0
    repaired_geometries: int = 0
    unknown_classes: dict[str, int] = field(default_factory=dict)
    unknown_policy: str = "error"
    outside_grid: int = 0
    below_pixel: int = 0
    crosses_antimeridian: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def entities_without_pixels(self) -> int:
        """Entities listed in entities.csv that cannot have a pixel in label.tif."""
        return self.outside_grid + self.below_pixel

    def lines(self) -> list[str]:
        """Human-readable summary, one fact per line (printed by the CLI)."""
        out = [
            f"{self.features} features read, {self.used_features} used, "
            f"{self.entities} entities (polygon parts)"
        ]
        if self.null_geometries:
            out.append(f"{self.null_geometries} features without geometry skipped")
        if self.empty_geometries:
            out.append(f"{self.empty_geometries} empty or zero-area geometries skipped")
        if self.repaired_geometries:
            out.append(f"{self.repaired_geometries} invalid geometries repaired with make_valid")
        if self.unknown_classes:
            total = sum(self.unknown_classes.values())
            what = "skipped" if self.unknown_policy == "skip" else "drawn as class 0 (unlabeled)"
            out.append(
                f"{total} features of unknown class {what}: " + _fmt_counts(self.unknown_classes)
            )
        if self.crosses_antimeridian:
            out.append("the layer crosses the antimeridian: longitudes unwrapped past +-180")
        return out + [f"warning: {w}" for w in self.warning_lines()]

    def warning_lines(self) -> list[str]:
        """What may surprise a user: entities without pixels and grid caveats."""
        out = []
        if self.outside_grid:
            out.append(
                f"{self.outside_grid} of {self.entities} entities lie outside the grid and have "
                "no pixels (they stay in entities.csv); widen --extent to include them"
            )
        if self.below_pixel:
            out.append(
                f"{self.below_pixel} of {self.entities} entities are smaller or thinner than a "
                "pixel (no pixel centre inside) and have no pixels (they stay in entities.csv); "
                "use a finer --resolution to see them"
            )
        return out + list(self.warnings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "used_features": self.used_features,
            "entities": self.entities,
            "null_geometries": self.null_geometries,
            "empty_geometries": self.empty_geometries,
            "repaired_geometries": self.repaired_geometries,
            "unknown_classes": dict(sorted(self.unknown_classes.items())),
            "unknown_policy": self.unknown_policy,
            "entities_without_pixels": {
                "total": self.entities_without_pixels,
                "outside_grid": self.outside_grid,
                "smaller_than_a_pixel": self.below_pixel,
            },
            "crosses_antimeridian": self.crosses_antimeridian,
            "warnings": self.warning_lines(),
        }


def _fmt_counts(counts: dict[str, int], limit: int = 12) -> str:
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{k!r} ({v})" for k, v in items[:limit])
    return text + (f", ... {len(items) - limit} more" if len(items) > limit else "")
