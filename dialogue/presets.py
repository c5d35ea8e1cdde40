"""From-scratch model presets: a corpus SentencePiece vocabulary and a T5 config small enough for a CPU.

`scratch` is the shipped model's preset (trained on 2 shared CPU cores); `tiny` is for tests.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Preset:
    """Sizes of a from-scratch T5 (see `transformers.T5Config` for each field) and its training defaults."""

    vocab_size: int          # SentencePiece pieces (the 19 PPTOD tokens come on top)
    d_model: int
    d_kv: int
    d_ff: int
    num_layers: int          # encoder layers
    num_decoder_layers: int
    num_heads: int
    dropout_rate: float
    max_source_length: int   # encoder tokens; longer contexts are cut on the left
    max_target_length: int   # decoder tokens of a target span, and the generate limit
    lr: float                # AdamW peak learning rate


PRESETS: dict[str, Preset] = {
    "scratch": Preset(vocab_size=4000, d_model=128, d_kv=32, d_ff=512, num_layers=2, num_decoder_layers=2,
                      num_heads=4, dropout_rate=0.0, max_source_length=256, max_target_length=40, lr=2e-3),
    "tiny": Preset(vocab_size=400, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1,
                   num_heads=4, dropout_rate=0.0, max_source_length=128, max_target_length=32, lr=3e-3),
}


def get_preset(name: str) -> Preset:
    """The preset called `name`; an unknown name raises `ValueError` listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None


def t5_config(preset: Preset, tokenizer):
    """A `transformers.T5Config` for `preset` sized to `tokenizer` (ids: pad 0, eos 1, decoder start = pad)."""
    from transformers import T5Config

    sizes = {k: v for k, v in asdict(preset).items()
             if k not in ("vocab_size", "max_source_length", "max_target_length", "lr")}
    return T5Config(
        vocab_size=len(tokenizer),
        feed_forward_proj="relu",
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        **sizes,
    )
