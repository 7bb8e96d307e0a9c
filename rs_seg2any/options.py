"""How to read a polygon layer: the options every verb that takes a layer accepts.

:class:`LayerOptions` is the one typed carrier of ``--layer``, ``--class-field``,
``--description-field``, ``--priority-field``, ``--taxonomy``, ``--unknown-class`` and
``--layer-crs`` from the command line, a job file or a notebook into the library; the CLI
builds those flags from its fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import LayoutError
from .limits import check_crs
from .params import meta, opt

UNKNOWN_POLICIES: tuple[str, ...] = ("error", "skip", "background")


@dataclass(frozen=True)
class LayerOptions:
    """Which layer and fields of a vector file to read, how to name classes and unknowns."""

    class_field: str = opt("", "field holding each polygon's class")
    layer: str | None = opt(None, "layer name inside a multi-layer file")
    description_field: str | None = opt(None, "optional field with a free-text description")
    priority_field: str | None = opt(None, "optional numeric field: higher is drawn on top")
    taxonomy: Any = field(  # a shipped name, a YAML path or a Taxonomy
        default="worldcover",
        metadata=meta("shipped taxonomy name or YAML path (see `rs-seg2any taxonomies`)"),
    )
    unknown_class: str = opt(
        "error",
        "classes not in the taxonomy: fail (default), leave out, or draw as class 0",
        choices=UNKNOWN_POLICIES,
    )
    layer_crs: str | None = opt(None, "CRS to assume for a layer that has none")

    def __post_init__(self) -> None:
        if self.unknown_class not in UNKNOWN_POLICIES:
            raise LayoutError(
                f"--unknown-class {self.unknown_class!r} is not one of "
                f"{', '.join(UNKNOWN_POLICIES)}"
            )
        check_crs(self.layer_crs, "--layer-crs")

    def required(self, what: str = "a layout") -> LayerOptions:
        """These options, refusing a missing class field (``what`` names the layer)."""
        if not self.class_field:
            raise LayoutError(f"--class-field is required with {what}")
        return self

    def layout_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`rs_seg2any.layout.load_layout` for these options."""
        return {
            "layer": self.layer,
            "description_field": self.description_field,
            "priority_field": self.priority_field,
            "taxonomy": self.taxonomy,
            "unknown_class": self.unknown_class,
            "layer_crs": self.layer_crs,
        }
