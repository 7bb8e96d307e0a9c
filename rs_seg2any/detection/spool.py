"""JSON items spooled to a scratch file, so big label files are written without holding them.

A COCO file or a GeoJSON of a set with many objects is one JSON document; its arrays are
spooled item by item into hidden ``.tmp-`` scratch files (which a folder's next run sweeps
away if this one is killed) and copied into the final file through the atomic writer at the
end. Memory stays one item, whatever the number of objects.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import IO, Any

from ..atomic import temp_path


class Spool:
    """Comma-separated JSON items in a scratch file beside ``folder / name``."""

    def __init__(self, folder: Path, name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = temp_path(folder / name)
        self.count = 0
        self._fh: IO[str] | None = None

    def add(self, item: Any) -> None:
        if self._fh is None:
            self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (closed in copy/discard)
        self._fh.write(("," if self.count else "") + json.dumps(item) + "\n")
        self.count += 1

    def copy_into(self, out: IO[str]) -> None:
        """The items, comma-separated, into an open text file."""
        if self._fh is None:
            return
        self._fh.close()
        with open(self.path, encoding="utf-8") as src:
            shutil.copyfileobj(src, out)

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
