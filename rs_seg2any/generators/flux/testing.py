"""Tiny random FLUX model folders, for tests and ``bench_flux.py --tiny`` (nothing fetched).

Same architecture classes and folder layout as a real FLUX.1 download, with a few hundred
kilobytes of random weights and word-level tokenizers built from a small vocabulary.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import torch

_WORDS = """top-down aerial photograph showing tree cover grassland cropland built-up water
bare sparse snow ice wetland mangroves moss lichen red roof building road field forest
river lake flood muddy summer winter green brown house car ship a of the and with"""
VOCAB = _WORDS.split()


def _tokenizer(max_length: int, bos: bool) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    fast: Any = importlib.import_module("transformers").PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "<s>", "</s>"]
    vocab = {t: i for i, t in enumerate([*specials, *VOCAB])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    single = "<s> $A </s>" if bos else "$A </s>"
    tok.post_processor = processors.TemplateProcessing(
        single=single, special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])]
    )
    return fast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="<s>",
        eos_token="</s>", model_max_length=max_length,
    )  # fmt: skip


def build_tiny_flux(folder: str | Path, *, seed: int = 0, vae_blocks: int = 2) -> Path:
    """Write a diffusers-layout FLUX folder with tiny random weights; returns the folder."""
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    dm: Any = importlib.import_module("diffusers")  # untyped library

    out = Path(folder)
    torch.manual_seed(seed)
    n_vocab = 4 + len(VOCAB)
    dm.FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=2, num_single_layers=2, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        guidance_embeds=True, axes_dims_rope=(4, 6, 6),
    ).save_pretrained(out / "transformer")  # fmt: skip
    dm.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8,) * vae_blocks,
        down_block_types=("DownEncoderBlock2D",) * vae_blocks,
        up_block_types=("UpDecoderBlock2D",) * vae_blocks, layers_per_block=1,
        norm_num_groups=4, shift_factor=0.1, scaling_factor=0.5,
    ).save_pretrained(out / "vae")  # fmt: skip
    CLIPTextModel(
        CLIPTextConfig(
            vocab_size=n_vocab, hidden_size=32, intermediate_size=37, num_hidden_layers=1,
            num_attention_heads=2, max_position_embeddings=77, projection_dim=32,
            pad_token_id=0, bos_token_id=2, eos_token_id=3,
        )
    ).save_pretrained(out / "text_encoder")  # fmt: skip
    T5EncoderModel(
        T5Config(
            vocab_size=n_vocab, d_model=32, d_ff=37, d_kv=16, num_layers=1, num_heads=2,
            pad_token_id=0, eos_token_id=3,
        )
    ).save_pretrained(out / "text_encoder_2")  # fmt: skip
    _tokenizer(77, bos=True).save_pretrained(out / "tokenizer")
    _tokenizer(512, bos=False).save_pretrained(out / "tokenizer_2")
    dm.FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True).save_pretrained(
        out / "scheduler"
    )
    (out / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    return out
