# SPDX-License-Identifier: Apache-2.0
"""A generator as plain data: how a Dask worker rebuilds the client's generator, no pickle.

A :class:`GeneratorRecipe` is a small JSON document: the backend's registry name, its model
and options (paths made absolute), its thread count, the sha256 of every file or folder it
names (weights, reference images, LoRA adapters) and the content digests the backend itself
reports (``describe()`` entries ending in ``sha256``). A worker rebuilds the generator by
name through the backend registry (so backends that other packages declare as entry points
travel the same way), after checking every file against its digest: a recipe whose digests
do not match the files it names is refused with a :class:`~rs_seg2any.errors.RecipeError`
before any weights are read, and a rebuilt generator that reports other content digests
than the client's is refused too. Nothing executable travels in a recipe.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RecipeError

__all__ = ["RECIPE_FORMAT", "GeneratorRecipe", "path_digest"]

RECIPE_FORMAT = "rs_seg2any.generator-recipe/1"
BIG_FILE = 64 << 20
"""Inside a folder (a FLUX model), files above this size are identified by their size and
their first and last MiB: hashing tens of GB on every worker would cost minutes."""
_EDGE = 1 << 20


def _sha_file(path: Path, sha: Any, *, sampled: bool = False) -> None:
    with path.open("rb") as fh:
        if sampled:
            size = path.stat().st_size
            sha.update(fh.read(_EDGE))
            fh.seek(max(size - _EDGE, 0))
            sha.update(fh.read(_EDGE))
            return
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)


def path_digest(path: Path) -> str:
    """sha256 of a file, or of a folder (its files' relative paths, sizes and contents)."""
    sha = hashlib.sha256()
    if path.is_file():
        _sha_file(path, sha)
        return sha.hexdigest()
    for sub in sorted(p for p in path.rglob("*") if p.is_file()):
        size = sub.stat().st_size
        sha.update(f"{sub.relative_to(path).as_posix()}|{size}|".encode())
        _sha_file(sub, sha, sampled=size > BIG_FILE)
    return sha.hexdigest()


def _content_digests(info: Any) -> dict[str, str]:
    """The digests a backend reports about itself (``describe()`` keys ending in sha256)."""
    if not isinstance(info, dict):
        return {}
    return {str(k): str(v) for k, v in info.items() if str(k).endswith("sha256") and v}


@dataclass(frozen=True)
class GeneratorRecipe:
    """What a worker needs to rebuild a registry-built generator, and the digests to check."""

    backend: str
    model: str | None
    threads: int | None
    options: dict[str, Any]
    files: dict[str, str]
    """Absolute path -> sha256 of each file or folder the model and options name."""
    digests: dict[str, str]
    """``describe()`` entries ending in sha256, as the client's generator reported them."""

    @classmethod
    def of(cls, generator: Any) -> GeneratorRecipe | None:
        """The recipe of a generator built by :func:`~.registry.load_generator` (None for one
        built otherwise, e.g. an object a library user constructed)."""
        made = getattr(generator, "_rs_recipe", None)
        if not (isinstance(made, tuple) and len(made) == 4):
            return None
        backend, model, threads, options = made
        files: dict[str, str] = {}
        model_value = None if model is None else _pin(str(model), files)
        pinned = {str(k): _pin_value(str(k), v, files) for k, v in dict(options).items()}
        recipe = cls(str(backend), model_value, threads, pinned, files,
                     _content_digests(generator.describe()))  # fmt: skip
        recipe.to_json()  # only JSON values travel: fail here, not on a worker
        return recipe

    def to_json(self) -> str:
        try:
            return json.dumps(
                {"format": RECIPE_FORMAT, "backend": self.backend, "model": self.model,
                 "threads": self.threads, "options": self.options, "files": self.files,
                 "digests": self.digests},
                sort_keys=True,
            )  # fmt: skip
        except (TypeError, ValueError) as exc:
            raise RecipeError(
                f"backend {self.backend}'s options cannot travel to Dask workers as JSON "
                f"({exc}); give them as text, numbers or lists"
            ) from exc

    @classmethod
    def from_json(cls, text: str) -> GeneratorRecipe:
        """Parse and type-check a recipe (a malformed one is a :class:`RecipeError`)."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RecipeError(f"the generator recipe is not JSON ({exc})") from exc
        ok = (
            isinstance(data, dict)
            and data.get("format") == RECIPE_FORMAT
            and isinstance(data.get("backend"), str)
            and isinstance(data.get("model"), str | None)
            and (data.get("threads") is None or type(data.get("threads")) is int)
            and isinstance(data.get("options"), dict)
            and _str_map(data.get("files"))
            and _str_map(data.get("digests"))
        )
        if not ok:
            raise RecipeError(f"the generator recipe is malformed (expected {RECIPE_FORMAT})")
        return cls(data["backend"], data["model"], data["threads"], data["options"],
                   data["files"], data["digests"])  # fmt: skip

    @property
    def key(self) -> str:
        """Identity of the generator this recipe builds (its digests included)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:20]

    def verify(self) -> None:
        """Every named file exists here with the digest the client saw, else RecipeError."""
        for name, want in sorted(self.files.items()):
            path = Path(name)
            if not path.exists():
                raise RecipeError(
                    f"{name} (named by the {self.backend} generator) is missing on this Dask "
                    f"worker; every worker must see the client's files at the same path"
                )
            got = path_digest(path)
            if got != want:
                raise RecipeError(
                    f"{name} has sha256 {got[:12]}... on this Dask worker, the generator "
                    f"recipe says {want[:12]}...; the file changed since the job started or "
                    "the worker sees another file at that path: refusing to load it"
                )

    def load(self) -> Any:
        """The generator, rebuilt by backend name after :meth:`verify`; refused when it
        reports other content digests than the client's generator did."""
        from .registry import load_generator

        self.verify()
        generator = load_generator(self.backend, self.model, threads=self.threads, **self.options)
        got = _content_digests(generator.describe())
        if got != self.digests:
            diff = sorted(k for k in {*got, *self.digests} if got.get(k) != self.digests.get(k))
            raise RecipeError(
                f"the {self.backend} generator rebuilt on this Dask worker reports other "
                f"{', '.join(diff)} than the client's; install the same package version and "
                "model files on every worker"
            )
        return generator


def _str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _pin(text: str, files: dict[str, str]) -> str:
    """``text`` made absolute and its digest recorded when it names a file or folder here;
    anything else (a hub id, ``cuda``) as is."""
    path = Path(text).expanduser()
    if not path.exists():
        return text
    absolute = Path(os.path.abspath(path))
    files[str(absolute)] = path_digest(absolute)
    return str(absolute)


def _pin_value(key: str, value: Any, files: dict[str, str]) -> Any:
    if key == "lora" and isinstance(value, list | tuple):
        return [_pin_lora(str(v), files) for v in value]
    if isinstance(value, str):
        return _pin(value, files)
    if isinstance(value, list | tuple):
        return [_pin_value(key, v, files) for v in value]
    return value


def _pin_lora(text: str, files: dict[str, str]) -> str:
    """A LoRA reference (``FOLDER``, ``FOLDER:WEIGHT`` or an installed adapter's name) with
    its folder made absolute and its digest recorded; the weight kept as written."""
    head, sep, tail = text.rpartition(":")
    if Path(text).expanduser().exists() or not (sep and head and _is_float(tail)):
        head, tail = text, ""
    folder = Path(head).expanduser()
    if not folder.exists():  # an installed adapter's name
        from ..lora.adapter import resolve_path

        folder = resolve_path(head)
    pinned = _pin(str(folder), files) if folder.exists() else head
    return f"{pinned}:{tail}" if tail else pinned


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
