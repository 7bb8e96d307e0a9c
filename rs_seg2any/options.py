"""How to read a polygon layer: the options every command that takes a layer accepts.

:class:`LayerOptions` is the one typed carrier from the command line (or a notebook) into the
library; :func:`add_layer_options` is the one place that defines the flags, so ``layout``,
``generate`` and every scenario accept the same ``--layer``, ``--class-field``,
``--description-field``, ``--priority-field``, ``--taxonomy``, ``--unknown-class`` and
``--layer-crs``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from .errors import LayoutError
from .limits import check_crs

UNKNOWN_POLICIES: tuple[str, ...] = ("error", "skip", "background")


@dataclass(frozen=True)
class LayerOptions:
    """Which layer and fields of a vector file to read, how to name classes and unknowns."""

    class_field: str
    layer: str | None = None
    description_field: str | None = None
    priority_field: str | None = None
    taxonomy: Any = "worldcover"  # a shipped name, a YAML path or a Taxonomy
    unknown_class: str = "error"
    layer_crs: str | None = None

    def __post_init__(self) -> None:
        if self.unknown_class not in UNKNOWN_POLICIES:
            raise LayoutError(
                f"--unknown-class {self.unknown_class!r} is not one of "
                f"{', '.join(UNKNOWN_POLICIES)}"
            )
        check_crs(self.layer_crs, "--layer-crs")

    @classmethod
    def from_args(cls, args: argparse.Namespace, class_field: str | None = None) -> LayerOptions:
        """The options of a parsed command line (``class_field`` overrides ``--class-field``)."""
        name = class_field or args.class_field
        if not name:
            raise LayoutError("--class-field is required with a layout")
        return cls(
            class_field=name,
            layer=args.layer_name,
            description_field=args.description_field,
            priority_field=args.priority_field,
            taxonomy=args.taxonomy,
            unknown_class=args.unknown_class,
            layer_crs=args.layer_crs,
        )

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


def add_layer_options(group: argparse._ActionsContainer, *, class_field_required: bool) -> None:
    """The layer flags, identical on every command (the layer path itself is the caller's)."""
    group.add_argument("--layer", dest="layer_name", help="layer name inside a multi-layer file")
    group.add_argument("--class-field", required=class_field_required,
                       help="field holding each polygon's class")  # fmt: skip
    group.add_argument("--description-field", help="optional field with a free-text description")
    group.add_argument("--priority-field", help="optional numeric field: higher is drawn on top")
    group.add_argument(
        "--taxonomy",
        default="worldcover",
        help="shipped taxonomy name or YAML path (see `rs-seg2any taxonomies`)",
    )
    group.add_argument(
        "--unknown-class",
        choices=list(UNKNOWN_POLICIES),
        default="error",
        help="classes not in the taxonomy: fail (default), leave out, or draw as class 0",
    )
    group.add_argument("--layer-crs", help="CRS to assume for a layer that has none")
