"""The one YAML reader of the product: bounded size, bounded alias expansion, typed errors.

Every YAML the product reads (taxonomies, presets, job files, training configs, ``--param``
values) goes through :func:`load_yaml_text` or :func:`load_yaml_file`. ``yaml.safe_load``
alone accepts a few hundred bytes of nested aliases ("billion laughs") that expand to
gigabytes as soon as anything walks the result, and reports bad files as tracebacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, RsSeg2AnyError, one_line

MAX_YAML_BYTES = 1_000_000
"""Largest YAML file read (1 MB): configs are a few kB; more is a wrong file."""

MAX_YAML_NODES = 100_000
"""Most nodes a document may have once its aliases are expanded."""


MAX_YAML_DEPTH = 64
"""Deepest nesting of collections (flow or block): configs use a handful of levels; the
scanner is quadratic in unclosed flow levels, so a deeper file costs minutes, not a config."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses nesting beyond MAX_YAML_DEPTH and documents whose alias
    expansion exceeds MAX_YAML_NODES, before they cost time or memory."""

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        if self.flow_level >= MAX_YAML_DEPTH:
            self._too_deep()
        super().fetch_flow_collection_start(TokenClass)  # type: ignore[misc]

    def add_indent(self, column: int) -> bool:
        if len(self.indents) >= MAX_YAML_DEPTH:
            self._too_deep()
        added: bool = super().add_indent(column)  # type: ignore[misc]
        return added

    def _too_deep(self) -> None:
        raise yaml.scanner.ScannerError(
            None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", self.get_mark()
        )

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node)
        return node


def _expanded_size(root: yaml.Node) -> int:
    """Node count with every alias expanded (memoised, so costs O(distinct nodes))."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise yaml.YAMLError("recursive alias (a node that contains itself)")
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        active.discard(key)
        if total > MAX_YAML_NODES:
            raise yaml.YAMLError(f"expands to more than {MAX_YAML_NODES:,} nodes (nested aliases?)")
        sizes[key] = total
        return total

    return size(root)


def load_yaml_text(text: str, where: str, error: type[RsSeg2AnyError] = InputError) -> Any:
    """Parse ``text`` safely; ``where`` names the file (or option) in the one-line error."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise error(f"{where} is larger than {MAX_YAML_BYTES:,} bytes; not a config file")
    try:
        return yaml.load(text, Loader=_BoundedLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise error(f"{where} is not valid YAML{at}: {problem}") from exc
    except yaml.YAMLError as exc:
        raise error(f"{where} is not valid YAML: {one_line(exc)}") from exc
    except RecursionError as exc:
        raise error(f"{where} is not valid YAML for a config: nested too deeply") from exc


def load_yaml_file(path: str | Path, what: str, error: type[RsSeg2AnyError] = InputError) -> Any:
    """Read and parse a UTF-8 YAML file; ``what`` says what it is ("job file", "preset")."""
    p = Path(path)
    where = f"{what} '{p}'"
    if not p.is_file():
        raise error(f"{where} not found")
    try:
        size = p.stat().st_size
        if size > MAX_YAML_BYTES:
            raise error(f"{where} is larger than {MAX_YAML_BYTES:,} bytes; not a config file")
        raw = p.read_bytes()
    except OSError as exc:
        raise error(f"{where} cannot be read: {exc.strerror or exc}") from exc
    return load_yaml_text(decode_utf8(raw, where, error), where, error)


def decode_utf8(raw: bytes, where: str, error: type[RsSeg2AnyError] = InputError) -> str:
    """UTF-8 text (a BOM is fine), or a typed error naming the line of the first bad byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(
            f"{where} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at line {line}); "
            "save it as UTF-8"
        ) from exc
