"""Captions to FLUX text tokens: the global caption plus one bounded caption per entity.

Each entity text is encoded on its own (no description mixes with another inside T5) and
truncated to ``regional_tokens``; its padding tokens are dropped and the batch is right-padded,
with a token -> slot map telling the masks which caption each token belongs to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class EncodedText:
    """T5 tokens ``(B, L, D)``, their slots ``(B, L)`` and the pooled CLIP vector ``(B, P)``."""

    tokens: Tensor
    slots: Tensor
    pooled: Tensor
    entity_valid: Tensor  # (B, E) bool


def _t5(tokenizer: Any, encoder: Any, texts: list[str], length: int) -> tuple[Tensor, Tensor]:
    dev = next(encoder.parameters()).device
    enc = tokenizer(
        texts, padding="max_length", max_length=length, truncation=True, return_tensors="pt"
    )
    ids = enc.input_ids.to(dev)
    hidden = encoder(ids, output_hidden_states=False)[0]
    return hidden, enc.attention_mask.bool().to(dev)


def _clip_pooled(tokenizer: Any, encoder: Any, texts: list[str]) -> Tensor:
    dev = next(encoder.parameters()).device
    enc = tokenizer(
        texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
        return_tensors="pt",
    )  # fmt: skip
    out = encoder(enc.input_ids.to(dev), output_hidden_states=False)
    return out.pooler_output  # type: ignore[no-any-return]


def encode_texts(
    components: Any,
    captions: Sequence[str],
    entities: Sequence[Sequence[str]],
    *,
    caption_tokens: int,
    regional_tokens: int,
    dtype: torch.dtype,
    caption_padding: bool = True,
) -> EncodedText:
    """Encode a batch: caption ``i`` and the entity texts ``entities[i]`` of tile ``i``.

    ``caption_padding=False`` drops the caption's padding tokens as Seg2Any's published
    pipeline does (they would otherwise be caption tokens every image token reads).
    """
    b = len(captions)
    cap, cap_mask = _t5(components.tokenizer_2, components.text_encoder_2, list(captions),
                        caption_tokens)  # fmt: skip
    flat = [t for ents in entities for t in ents]
    reg, reg_mask = (
        _t5(components.tokenizer_2, components.text_encoder_2, flat, regional_tokens)
        if flat
        else (cap[:0, :regional_tokens], cap_mask[:0, :regional_tokens])
    )
    e_max = max((len(ents) for ents in entities), default=0)
    rows: list[Tensor] = []
    slots: list[Tensor] = []
    start = 0
    for i, ents in enumerate(entities):
        # with caption_padding the caption keeps FLUX's usual padded length; entity texts
        # always lose their padding
        cap_i = cap[i] if caption_padding else cap[i][cap_mask[i]]
        parts, sl = [cap_i], [torch.zeros(cap_i.shape[0], dtype=torch.long)]
        for j in range(len(ents)):
            keep = reg_mask[start + j].cpu()
            parts.append(reg[start + j][keep.to(reg.device)])
            sl.append(torch.full((int(keep.sum()),), j + 1, dtype=torch.long))
        start += len(ents)
        rows.append(torch.cat(parts))
        slots.append(torch.cat(sl))
    length = max(r.shape[0] for r in rows)
    tokens = torch.zeros(b, length, cap.shape[-1], dtype=cap.dtype, device=cap.device)
    slot_t = torch.full((b, length), -1, dtype=torch.long)
    for i, (r, s) in enumerate(zip(rows, slots, strict=True)):
        tokens[i, : r.shape[0]] = r
        slot_t[i, : s.shape[0]] = s
    valid = torch.zeros(b, e_max, dtype=torch.bool)
    for i, ents in enumerate(entities):
        valid[i, : len(ents)] = True
    pooled = _clip_pooled(components.tokenizer, components.text_encoder, list(captions))
    return EncodedText(tokens.to(dtype), slot_t, pooled.to(dtype), valid)
