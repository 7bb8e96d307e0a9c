"""The options of ``detection-set`` (CLI flags, job-file keys, API keywords, QGIS form)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from ..limits import check
from ..params import opt
from .chips import parse_fractions
from .export import ChipSettings
from .formats import FORMATS

_RULES = ("chip_size", "chip_stride", "min_visible", "split_block", "split_buffer",
          "insert_count", "max_leakage", "min_fidelity")  # fmt: skip
"""Numeric options, checked by the one table of rules (:mod:`rs_seg2any.limits`)."""

OBJECTS = "objects"
CHIPS = "chips and splits"
INSERT = "rare-object insertion"
FILTER = "filter report"


@dataclass(frozen=True)
class DetectionParams:
    """A detection training set: objects over a background, chipped and exported."""

    objects: str | None = opt(
        None, "polygon layer of the objects (buildings, ships, tanks...)", input=True, group=OBJECTS
    )
    object_class_field: str = opt("class", "class field of --objects and --insert", group=OBJECTS)
    object_description_field: str | None = opt(
        None, "description field of --objects and --insert (default: the class)", group=OBJECTS
    )
    image: str | None = opt(
        None, "real georeferenced background (GeoTIFF); else the layout is rendered", input=True
    )
    chip_size: int = opt(256, "chip side in pixels", group=CHIPS)
    chip_stride: int | None = opt(
        None, "step between chips in pixels (default: chip size)", group=CHIPS
    )
    min_visible: float = opt(
        0.5,
        "an object cut by a chip border is labelled when at least this fraction of it is "
        "visible; else it is left out and reported",
        group=CHIPS,
    )
    skip_empty: bool = opt(False, "leave out chips without objects", group=CHIPS)
    split: str = opt("0.7,0.15,0.15", "train,val,test fractions of the area", group=CHIPS)
    split_block: int | None = opt(
        None, "side of the cells dealt to the splits, in pixels (default: 4 chips)", group=CHIPS
    )
    split_buffer: int = opt(
        32, "pixels between chips of different splits (chips closer are dropped)", group=CHIPS
    )
    formats: str = opt("coco,yolo,dota,vector", "comma list of: " + ", ".join(FORMATS), group=CHIPS)
    segmentation: str = opt(
        "rle", "COCO masks: rle (exact) or polygon", choices=("rle", "polygon"), group=CHIPS
    )
    insert: str | None = opt(
        None,
        "polygon layer of rare objects to insert (class and description fields as --objects)",
        input=True,
        group=INSERT,
    )
    insert_count: int = opt(0, "how many objects to insert at sampled places", group=INSERT)
    insert_kind: tuple[str, ...] = opt(
        (), "kind of sampled object, from the rules (repeatable; taken in turn)", group=INSERT
    )
    insert_description: str | None = opt(
        None, "description of the sampled objects (default: the rule's)", group=INSERT
    )
    insert_rules: str = opt("insertion", "insertion rules: shipped name or YAML path", group=INSERT)
    max_leakage: float = opt(
        0.0, "reject a sample whose inserted object changed pixels around it", group=FILTER
    )
    min_fidelity: float | None = opt(
        None, "reject a sample whose object the segmenter does not recognise", group=FILTER
    )
    segmenter: str | None = opt(
        None, "segmenter weights for the fidelity score", input=True, group=FILTER
    )
    no_filter: bool = opt(False, "keep every sample (the report still scores them)", group=FILTER)
    no_stac: bool = opt(False, "do not write the STAC catalog")

    def __post_init__(self) -> None:
        for name in _RULES:
            check(name, getattr(self, name))
        parse_fractions(self.split)
        self.format_list()
        if self.min_fidelity is not None and not self.segmenter:
            raise InputError("--min-fidelity needs --segmenter (weights of the project segmenter)")
        if self.insert_count and not self.insert_kind:
            raise InputError("--insert-count needs --insert-kind (e.g. vessel, shed, vehicle)")

    def format_list(self) -> tuple[str, ...]:
        names = tuple(n.strip() for n in self.formats.split(",") if n.strip())
        bad = [n for n in names if n not in FORMATS]
        if bad or not names:
            raise InputError(
                f"--formats {self.formats!r}: unknown {', '.join(bad) or '(none)'}; "
                f"choose from {', '.join(FORMATS)}"
            )
        return names

    def settings(self, seed: int) -> ChipSettings:
        stride = self.chip_stride or self.chip_size
        return ChipSettings(
            size=self.chip_size,
            stride=stride,
            min_visible=self.min_visible,
            fractions=parse_fractions(self.split),
            block=self.split_block or 4 * self.chip_size,
            buffer=self.split_buffer,
            seed=seed,
            formats=self.format_list(),
            rle=self.segmentation == "rle",
            skip_empty=self.skip_empty,
        )
