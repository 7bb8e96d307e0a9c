"""The command line as data: ``rs-seg2any schema`` prints it as JSON for other programs.

The QGIS plugin (and any other front end) reads this at run time from the backend it drives,
so its forms and argument lists follow the installed CLI instead of a hand-copied list of
flags. The schema is built by walking :func:`rs_seg2any.cli.build_parser` generically, so it
stays true whichever way the parser itself is produced.

Format (``schema_version`` 1; a reader refuses other versions)::

    {
      "schema_version": 1,
      "program": "rs-seg2any",
      "version": "<package version>",
      "commands": {
        "<command>": {
          "help": "<one line>",
          "arguments": [
            {
              "dest": "tile_size",          # the argparse dest (the Python keyword)
              "flag": "--tile-size",        # the long option; null for a positional
              "positional": false,
              "type": "int",                # path | text | int | float | bool | choice
              "choices": null,              # the allowed values when type is "choice"
              "default": 256,               # a JSON value; null: the CLI decides
              "required": false,
              "repeatable": false,          # give the flag once per value
              "help": "tile size in pixels",
              "group": "job"                # the help section ("" for the plain ones)
            }
          ]
        }
      }
    }

``bool`` options are switches (the flag alone, no value). Arguments are listed in the
parser's order, positionals in the order they are given on the command line. Adding keys
or commands keeps version 1; renaming or removing a key, or changing what one means,
raises it.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from .. import __version__
from ..limits import RULES

SCHEMA_VERSION = 1
"""Bumped when a reader of the previous version would misread the schema."""

PATH_DESTS = frozenset(
    {
        "after",  # change: after layout
        "after_like",  # change: grid raster of the after layout
        "clouds",  # cloudfill: mask raster or polygons
        "config",  # train-base: YAML
        "damage_layer",  # damage: polygons with levels and types
        "dem",
        "flood_polygons",
        "image",
        "job",  # run: job YAML
        "layout",
        "like",
        "lora",  # PATH[:WEIGHT]; the path is what a form asks for
        "images",  # train-lora: GeoTIFFs
        "ignore_mask",  # train-lora: cloud/ignore rasters
        "model",
        "out",
        "path",  # demo-layer: where to write
        "reference_image",
        "reference_labels",
        "real",  # evaluate: real scenes
        "labels",  # evaluate: their class rasters
        "segmenter",  # evaluate: weights
        "copy_reference",  # evaluate: imagery the generator drew from
        "zones",
        "objects",  # detection-set: objects layer
        "insert",  # detection-set: objects to insert
    }
)
"""Options whose value is a file or folder (a file picker in a form)."""

TEXT_DESTS = frozenset(
    {
        "backend",
        "caption",
        "candidate",  # evaluate: NAME=IMAGE[,IMAGE...]
        "class_field",
        "crs",
        "description_field",
        "device",
        "dtype",
        "extent",  # xmin,ymin,xmax,ymax
        "extent_crs",
        "layer_crs",
        "layer",
        "param",  # KEY=VALUE
        "preset",  # a name or a YAML path
        "priority_field",
        "resolution",  # 10 or 10,10
        "roles",
        "scheduler",  # a Dask scheduler address, tcp://HOST:8786
        "gpu_resource",  # auto, none or a Dask resource name
        "seasons",  # comma list
        "seed_xy",  # X,Y
        "taxonomy",  # a shipped name or a YAML path
        "zone_class_field",
        "zone_description_field",
        "damage_level_field",
        "damage_type_field",
        "damage_description_field",
        "origin",  # X,Y
        "bands",  # train-lora: 1-based band numbers, comma list
        "rgb",  # train-lora: three of them
        "licence",  # train-lora: as the user declares it
        "object_class_field",  # detection-set
        "object_description_field",
        "split",  # train,val,test fractions
        "formats",  # comma list
        "insert_kind",
        "insert_description",
        "insert_rules",  # a name or a YAML path
    }
)
"""Options whose value is free text (names, comma lists, CRSs) though some name a file too."""


def cli_schema(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The schema of ``parser`` (the ``rs-seg2any`` parser: ``cli.build_parser()``)."""
    commands: dict[str, Any] = {}
    for sub in _subparser_actions(parser):
        helps = {c.dest: c.help or "" for c in getattr(sub, "_choices_actions", [])}
        for name, command in sub.choices.items():
            commands[name] = {
                "help": _text(helps.get(name) or command.description or ""),
                "arguments": _arguments(command),
            }
    return {
        "schema_version": SCHEMA_VERSION,
        "program": "rs-seg2any",
        "version": __version__,
        "commands": commands,
    }


def print_schema(parser: argparse.ArgumentParser) -> int:
    """``rs-seg2any schema``: the schema of ``parser`` as JSON on stdout."""
    print(json.dumps(cli_schema(parser), indent=1, sort_keys=False))
    return 0


def _subparser_actions(parser: argparse.ArgumentParser) -> list[Any]:
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


def _group_titles(parser: argparse.ArgumentParser) -> dict[int, str]:
    """Action id -> the title of the help section it is listed in ("" for the default two)."""
    plain = {id(parser._positionals), id(parser._optionals)}
    titles: dict[int, str] = {}
    for group in parser._action_groups:
        title = "" if id(group) in plain else (group.title or "")
        for action in group._group_actions:
            titles[id(action)] = title
    return titles


def _arguments(parser: argparse.ArgumentParser) -> list[dict[str, Any]]:
    titles = _group_titles(parser)
    found = []
    for action in parser._actions:
        if action.default == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue  # --help, --version: they print and exit, nothing to fill in
        positional = not action.option_strings
        found.append(
            {
                "dest": action.dest,
                "flag": None if positional else _long_flag(action.option_strings),
                "positional": positional,
                "type": kind(action),
                "choices": None if action.choices is None else [_json(c) for c in action.choices],
                "default": _json(action.default),
                "required": bool(action.required) or (positional and action.nargs is None),
                "repeatable": _repeatable(action),
                "help": _text(action.help or ""),
                "group": titles.get(id(action), ""),
            }
        )
    return found


def kind(action: argparse.Action) -> str:
    """The schema type of one action, by explicit rules (see PATH_DESTS and TEXT_DESTS)."""
    if action.nargs == 0:
        return "bool"
    if action.choices is not None:
        return "choice"
    number = _number_kind(action.type, action.dest)
    if number is not None:
        return number
    if action.dest in PATH_DESTS or _is_path_type(action.type):
        return "path"
    return "text"


def _number_kind(converter: Callable[..., Any] | str | None, dest: str) -> str | None:
    """int/float for plain converters and for the rules :func:`limits.install_types` puts in."""
    if converter is int:
        return "int"
    if converter is float:
        return "float"
    if converter is None or converter is str:
        rule = RULES.get(dest)  # a number option before its rule was installed
    else:
        rule = RULES.get(getattr(converter, "__name__", ""))  # None: a validator of its own
    if rule is None:
        return None
    return "int" if rule.integer else "float"


def _is_path_type(converter: Any) -> bool:
    return isinstance(converter, type) and issubclass(converter, os.PathLike)


def _long_flag(option_strings: Sequence[str]) -> str:
    longs = [s for s in option_strings if s.startswith("--")]
    return (longs or option_strings)[0]


def _repeatable(action: argparse.Action) -> bool:
    return isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+")


def _json(value: Any) -> Any:
    """A default or choice as JSON: containers become lists, unknown objects their text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_json(v) for v in value]
    return str(value)


def _text(help_text: str) -> str:
    """Help as one line, with argparse's ``%%`` escapes undone."""
    return " ".join(help_text.replace("%%", "%").split())
