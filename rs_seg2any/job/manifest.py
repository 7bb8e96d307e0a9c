# SPDX-License-Identifier: Apache-2.0
"""The job manifest: every tile and output of a job with its seed, status, attempts and
sha256, in ``<out>/.rs_seg2any/manifest.json``.

A rerun trusts a tile only when the manifest says it finished *and* the file's sha256 still
matches, so a tile file replaced or damaged after the fact is recomputed; a failed tile keeps
its last error, so a partial job says exactly what went wrong where. Only the coordinating
process (the one holding the folder's lock) writes the manifest, always atomically; workers
report their tiles' hashes back to it. Writes are throttled (a job of thousands of tiles would
otherwise rewrite it thousands of times); a tile file that landed after the last write is
still found on disk and verified by reading it whole.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import write_json
from ..digest import file_sha256

__all__ = ["MANIFEST_NAME", "Manifest", "TileOutcome"]

MANIFEST_NAME = "manifest.json"
_FORMAT = 1
_SAVE_EVERY_S = 2.0

DONE, FAILED, BLOCKED = "done", "failed", "blocked"


@dataclass(frozen=True)
class TileOutcome:
    """What became of one tile: ``done`` (with the file's sha256), ``failed`` (with the last
    error after ``attempts`` tries) or ``blocked`` (a tile it reads failed, so it was not
    tried: its pixels would differ from a complete run's)."""

    seed_key: str
    status: str
    attempts: int = 0
    sha256: str | None = None
    error: str | None = None
    seconds: float = 0.0
    worker: str | None = None  # the Dask worker that ran it (None: this process)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "status": self.status,
            "attempts": self.attempts,
            "sha256": self.sha256,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }
        if self.worker:
            data["worker"] = self.worker
        return data


class Manifest:
    """The manifest of one job folder; ``save`` writes it atomically (throttled unless
    ``force``)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / MANIFEST_NAME
        self._data: dict[str, Any] = self._read()
        self._dirty = False
        self._saved_at = 0.0

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None  # missing or unreadable: tiles on disk are verified by reading them
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            data = {"format": _FORMAT, "tiles": {}, "outputs": {}}
        data.setdefault("tiles", {})
        data.setdefault("outputs", {})
        return data

    @property
    def tiles(self) -> dict[str, dict[str, Any]]:
        """seed_key -> {index, seed, status, attempts, sha256, error}."""
        tiles: dict[str, dict[str, Any]] = self._data["tiles"]
        return tiles

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        """name -> {path (relative to the output folder), sha256}."""
        outputs: dict[str, dict[str, Any]] = self._data["outputs"]
        return outputs

    def plan_tiles(self, entries: Mapping[str, Mapping[str, Any]]) -> None:
        """Make sure every tile of the plan has an entry (index and seed), keeping outcomes."""
        for key, value in entries.items():
            entry = self.tiles.setdefault(key, {"status": "pending", "attempts": 0})
            entry.update(value)
        self._dirty = True

    def record(self, outcome: TileOutcome) -> None:
        entry = self.tiles.setdefault(outcome.seed_key, {})
        entry.pop("worker", None)  # from an earlier run elsewhere
        entry.update(outcome.to_dict())
        self._dirty = True

    def record_done(self, seed_key: str, sha256: str) -> None:
        """A tile file found finished on disk (written after the manifest's last save)."""
        entry = self.tiles.setdefault(seed_key, {})
        entry.update(status=DONE, sha256=sha256, error=None)
        entry.setdefault("attempts", 1)
        self._dirty = True

    def verified_sha(self, seed_key: str, path: Path) -> bool:
        """Whether the manifest records ``seed_key`` as done with exactly this file's bytes."""
        entry = self.tiles.get(seed_key) or {}
        if entry.get("status") != DONE or not entry.get("sha256"):
            return False
        try:
            return bool(file_sha256(path) == entry["sha256"])
        except OSError:
            return False

    def set_outputs(self, outputs: Mapping[str, Path], out_dir: Path) -> None:
        """Record the finished outputs with their hashes (files only; folders are skipped)."""
        table: dict[str, dict[str, Any]] = {}
        for name, path in outputs.items():
            p = Path(path)
            if p.is_file():
                rel = p.relative_to(out_dir) if p.is_relative_to(out_dir) else p
                table[name] = {"path": str(rel), "sha256": file_sha256(p)}
        self._data["outputs"] = table
        self._dirty = True

    def outputs_intact(self, out_dir: Path) -> bool:
        """True when outputs are recorded and every one still has its recorded bytes."""
        if not self.outputs:
            return False
        for entry in self.outputs.values():
            path = out_dir / entry["path"]
            try:
                if file_sha256(path) != entry["sha256"]:
                    return False
            except OSError:
                return False
        return True

    def set_summary(self, summary: Mapping[str, Any]) -> None:
        self._data["summary"] = dict(summary)
        self._dirty = True

    def counts(self) -> dict[str, int]:
        """How many tiles are in each status."""
        counts: dict[str, int] = {}
        for entry in self.tiles.values():
            status = str(entry.get("status", "pending"))
            counts[status] = counts.get(status, 0) + 1
        return counts

    def failures(self) -> list[tuple[str, str]]:
        """(seed_key, error) of every failed tile, in key order."""
        return [
            (key, str(e.get("error")))
            for key, e in sorted(self.tiles.items())
            if e.get("status") == FAILED
        ]

    def save(self, *, force: bool = False) -> None:
        """Write the manifest atomically: now with ``force``, else at most every few seconds."""
        now = time.monotonic()
        if not self._dirty or (not force and now - self._saved_at < _SAVE_EVERY_S):
            return
        write_json(self.path, self._data)
        self._dirty, self._saved_at = False, now

    def clear(self) -> None:
        """Forget every tile and output (a restarted or replaced job)."""
        self._data = {"format": _FORMAT, "tiles": {}, "outputs": {}}
        self._dirty = True
