"""Named specs open to other packages: the one registry shape behind backends and scenarios.

A :class:`Registry` holds specs registered in code (the shipped ones) and, loaded once on
first use, those other packages declare in an entry-point group, so a third party adds a
backend or a scenario without editing this package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any, Generic, Protocol, TypeVar

from .errors import InputError


class Named(Protocol):
    @property
    def name(self) -> str: ...


S = TypeVar("S", bound=Named)


class Registry(Generic[S]):
    """Specs of one ``kind`` by name; ``what`` names them in errors (``backend``)."""

    def __init__(
        self,
        kind: type[S],
        group: str,
        what: str,
        shipped: Callable[[], Iterable[S]] = tuple,
    ) -> None:
        self.kind, self.group, self.what, self._shipped = kind, group, what, shipped
        self._specs: dict[str, S] = {}
        self._loaded = False

    def register(self, spec: S) -> S:
        """Add (or replace) a spec; returns it, so it can be kept as a module constant."""
        self._specs[spec.name] = spec
        return spec

    def all(self) -> dict[str, S]:
        """Every spec: registered ones, the shipped ones, then the entry points' (loaded once;
        a name already taken keeps its first spec)."""
        if not self._loaded:
            self._loaded = True
            for spec in (*self._shipped(), *load_entry_points(self.group, self.kind)):
                self._specs.setdefault(spec.name, spec)
        return dict(self._specs)

    def get(self, name: str) -> S:
        """The spec called ``name``, or a one-line error listing those available."""
        table = self.all()
        if name not in table:
            raise InputError(f"unknown {self.what} '{name}'; available: {', '.join(sorted(table))}")
        return table[name]

    def fresh(self) -> Registry[S]:
        """A copy with the specs registered in code, whose entry points load again (tests)."""
        copy: Registry[S] = Registry(self.kind, self.group, self.what, self._shipped)
        copy._specs = {k: v for k, v in self._specs.items()}
        return copy


def load_entry_points(group: str, kind: type[Any]) -> list[Any]:
    """The objects of an entry-point group (a ``kind`` instance, or a function returning one);
    a broken plug-in is a one-line error naming it, not a traceback."""
    found = []
    for ep in metadata.entry_points(group=group):
        try:
            obj = ep.load()
            obj = obj if isinstance(obj, kind) else obj()
        except Exception as exc:  # a third-party plug-in: report, do not crash the import
            raise InputError(
                f"plug-in '{ep.name}' ({ep.value}) of {group} failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(obj, kind):
            raise InputError(
                f"plug-in '{ep.name}' ({ep.value}) of {group} is not a {kind.__name__}"
            )
        found.append(obj)
    return found
