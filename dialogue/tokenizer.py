"""Tokenizers: a SentencePiece model trained on a corpus, wrapped as a Hugging Face tokenizer, and the
PPTOD marker tokens on any tokenizer.

The corpus tokenizer is a SentencePiece unigram model with byte fallback, so words and scripts it never saw
(emoji, Cyrillic, typos) become byte pieces instead of `<unk>`. Its ids follow T5's layout: `<pad>`=0,
`</s>`=1, `<unk>`=2.
"""
from __future__ import annotations

import io
import logging
import tempfile
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Iterable

from dialogue.formats import PPTOD_SPECIAL_TOKENS

log = logging.getLogger(__name__)


def add_pptod_tokens(tokenizer) -> int:
    """Add the 19 PPTOD marker tokens that `tokenizer` lacks, as ordinary added tokens (PPTOD's way).

    Returns how many were added; the caller resizes the model's embeddings when it is not 0.
    """
    from tokenizers import AddedToken

    vocab = tokenizer.get_vocab()
    missing = [t for t in PPTOD_SPECIAL_TOKENS if t not in vocab]
    if missing:  # the spaces around a marker carry no meaning: strip them instead of making `▁` pieces
        tokenizer.add_tokens([AddedToken(t, lstrip=True, rstrip=True, normalized=False) for t in missing])
    return len(missing)


def seed_pieces(texts: Iterable[str], max_length: int = 16, max_pieces: int = 1_000_000) -> list[tuple[str, int]]:
    """Candidate pieces for the unigram trainer: every substring (up to `max_length` characters, at least 2) of
    the NFKC-normalised, `▁`-prefixed words of `texts` that occurs at least twice, with its frequency, most
    frequent-times-longest first.

    sentencepiece 0.2.3's own seed miner keeps only about 2,000 candidates on a small templated corpus (its log
    says "candidates in heap=2000"), so common words such as "here" or "would" never become pieces and are cut
    into letters; handing it these seeds gives whole-word pieces for the corpus's words.
    """
    words: Counter[str] = Counter()
    for text in texts:
        words.update("▁" + word for word in unicodedata.normalize("NFKC", text).split())
    counts: Counter[str] = Counter()
    for word, count in words.items():
        for start in range(len(word)):
            for end in range(start + 2, min(len(word), start + max_length) + 1):
                counts[word[start:end]] += count
    seeds = [(piece, count) for piece, count in counts.items() if count >= 2]
    seeds.sort(key=lambda item: (-item[1] * len(item[0]), item[0]))
    return seeds[:max_pieces]


def train_sentencepiece(texts: Iterable[str], vocab_size: int, max_sentences: int = 200_000) -> bytes:
    """Train a SentencePiece unigram model (byte fallback, T5 id layout) on `texts`; returns the model bytes.

    `vocab_size` is an upper bound: a small corpus whose words are all whole pieces yields fewer.
    """
    import sentencepiece as spm

    sentences = list(texts)[:max_sentences]
    model = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        seeds_file = Path(tmp) / "seeds.tsv"
        seeds_file.write_text("".join(f"{piece}\t{count}\n" for piece, count in seed_pieces(sentences)))
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            vocab_size=vocab_size,
            model_type="unigram",
            seed_sentencepieces_file=str(seeds_file),
            pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
            byte_fallback=True,
            character_coverage=1.0,
            normalization_rule_name="nmt_nfkc",
            hard_vocab_limit=False,
            minloglevel=2,
        )
    return model.getvalue()


def tokenizer_from_sentencepiece(model_bytes: bytes):
    """Wrap a SentencePiece unigram model as a Hugging Face fast tokenizer (with the PPTOD tokens added).

    The pieces and scores are read with the sentencepiece library; normalisation is NFKC plus whitespace
    collapsing (what the model was trained with), decoding undoes the `▁` spaces and the byte pieces.
    """
    import sentencepiece as spm
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    processor = spm.SentencePieceProcessor(model_proto=model_bytes)
    vocab = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
    backend = Tokenizer(models.Unigram(vocab, unk_id=processor.unk_id(), byte_fallback=True))
    backend.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()]
    )
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    backend.decoder = decoders.Sequence(
        [decoders.Metaspace(replacement="▁", prepend_scheme="always"), decoders.ByteFallback(), decoders.Fuse()]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
    )
    add_pptod_tokens(tokenizer)
    log.info("corpus tokenizer: %d pieces + %d added tokens", processor.get_piece_size(),
             len(tokenizer) - processor.get_piece_size())
    return tokenizer
