"""`DialogueModel`: a T5 encoder-decoder and its tokenizer that track the belief state and write the reply.

Loads any Hugging Face T5 directory (t5-small/base/large, a PPTOD checkpoint: the PPTOD marker tokens are
added when absent and the embeddings resized) or a directory this project trained; `save_pretrained` writes
one that loads back identically. `step()` runs both task prompts through one batched greedy decode.
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch

from dialogue import greedy
from dialogue.device import resolve_device
from dialogue.formats import (
    PROMPTS, SPAN_TOKENS, TASKS, TRACK, Prediction, build_context, check_user_text, parse_belief, parse_response,
)
from dialogue.ontology import BeliefState
from dialogue.tokenizer import add_pptod_tokens

log = logging.getLogger(__name__)

SETTINGS_FILE = "i2edit_dialogue.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "spiece.model")
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
IMPLS = ("fast", "reference")


def default_model_dir() -> Path:
    """The trained model that ships with the repository (used when no model directory is given)."""
    return SHIPPED_DIR


@dataclass(frozen=True)
class DialogueSettings:
    """Sequence limits saved beside the weights (`i2edit_dialogue.json`); HF T5 dirs get the defaults."""

    max_source_length: int = 512   # encoder tokens; longer contexts lose their oldest tokens
    max_target_length: int = 120   # new tokens per generated span (PPTOD uses 120)

    @classmethod
    def load(cls, directory: Path) -> "DialogueSettings":
        path = directory / SETTINGS_FILE
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text())
        return cls(**{k: int(data[k]) for k in asdict(cls()) if k in data})


def check_model_dir(directory: Path) -> None:
    """Raise `FileNotFoundError` naming the first missing file of a model directory (and the directory)."""
    if not directory.is_dir():
        raise FileNotFoundError(f"model directory {directory} does not exist")
    needs = [("config.json",), WEIGHT_FILES, TOKENIZER_FILES]
    for options in needs:
        if not any((directory / name).is_file() for name in options):
            what = " or ".join(options)
            raise FileNotFoundError(
                f"model directory {directory} has no {what}; it must hold a Hugging Face T5 model "
                f"(config.json, weights, tokenizer), e.g. one written by `i2edit train-dialogue`"
            )


class DialogueModel:
    """T5 + tokenizer for the two PPTOD tasks. `step` is thread-safe (one generate at a time, under a lock).

    `impl` picks the greedy decoder: "fast" (`dialogue.greedy`: no padding in the encoder, preallocated caches,
    finished rows leave the batch; the default) or "reference" (Hugging Face's `generate`, the truth the fast one
    is tested against: identical tokens).
    """

    def __init__(self, model, tokenizer, settings: DialogueSettings | None = None, impl: str = "fast") -> None:
        if impl not in IMPLS:
            raise ValueError(f"unknown decoder impl {impl!r}; use one of {', '.join(IMPLS)}")
        self.impl = impl
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings or DialogueSettings()
        if add_pptod_tokens(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
        self._lock = threading.Lock()
        vocab = tokenizer.get_vocab()
        self._start_id = {task: vocab[SPAN_TOKENS[task][0]] for task in TASKS}
        self._stop_id = {task: vocab[SPAN_TOKENS[task][1]] for task in TASKS}
        self._prefix_ids = {task: self._ids(f"{PROMPTS[task]} <sos_context>") for task in TASKS}
        self._suffix_ids = self._ids("<eos_context>")
        model.eval()

    # --- loading and saving -------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str | torch.device | None = None
                        ) -> "DialogueModel":
        """Load a model directory (None: the shipped model). `device` defaults to CUDA when present."""
        from transformers import AutoTokenizer, T5ForConditionalGeneration

        directory = Path(path) if path is not None else default_model_dir()
        check_model_dir(directory)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        model = T5ForConditionalGeneration.from_pretrained(directory)
        return cls(model.to(resolve_device(device)), tokenizer, DialogueSettings.load(directory))

    @classmethod
    def from_preset(cls, name: str, texts: Sequence[str], seed: int = 0) -> "DialogueModel":
        """A freshly initialised model of preset `name` with a SentencePiece vocabulary trained on `texts`."""
        from transformers import T5ForConditionalGeneration

        from dialogue.presets import get_preset, t5_config
        from dialogue.tokenizer import tokenizer_from_sentencepiece, train_sentencepiece

        preset = get_preset(name)
        tokenizer = tokenizer_from_sentencepiece(train_sentencepiece(texts, preset.vocab_size))
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(t5_config(preset, tokenizer))
        settings = DialogueSettings(preset.max_source_length, preset.max_target_length)
        return cls(model, tokenizer, settings)

    def save_pretrained(self, path: str | Path) -> None:
        """Write config, weights (safetensors), tokenizer and sequence limits to `path`."""
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        (directory / SETTINGS_FILE).write_text(json.dumps(asdict(self.settings), indent=2) + "\n")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # --- encoding -----------------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode(self, task: str, context: str) -> list[int]:
        """Encoder ids of `task` for `context`, keeping the newest context tokens that fit the source limit."""
        return self._source(task, self._ids(context))

    def _source(self, task: str, body: Sequence[int]) -> list[int]:
        """Task prompt + the newest ids of the tokenised context `body` that fit + `<eos_context>`."""
        prefix, suffix = self._prefix_ids[task], self._suffix_ids
        room = max(self.settings.max_source_length - len(prefix) - len(suffix), 1)
        return prefix + list(body[-room:]) + suffix

    def encode_target(self, target: str) -> list[int]:
        """Decoder ids of a target span (start token first), cut to the target limit keeping its stop token."""
        ids = self._ids(target)
        if len(ids) > self.settings.max_target_length + 1:
            ids = ids[: self.settings.max_target_length] + ids[-1:]
        return ids

    def pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad id lists: (ids [B, T] long, attention mask [B, T] long) on the model's device."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return ids.to(self.device), mask.to(self.device)

    # --- generation ---------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, tasks: Sequence[str], sources: Sequence[Sequence[int]]) -> list[str]:
        """Greedy-decode one span per row (row i starts at its task's `<sos_x>`); returns decoded texts."""
        input_ids, mask = self.pad(sources)
        starts = torch.tensor([self._start_id[t] for t in tasks], dtype=torch.long, device=self.device)
        stops = sorted(set(self._stop_id.values()))
        pad_id = self.tokenizer.pad_token_id
        if self.impl == "fast":
            out = greedy.greedy_generate(self.model, input_ids, mask, starts, stops, pad_id,
                                         self.settings.max_target_length)
        else:
            out = self.model.generate(
                input_ids=input_ids, attention_mask=mask, decoder_input_ids=starts[:, None],
                decoder_start_token_id=starts, eos_token_id=stops, pad_token_id=pad_id,
                max_new_tokens=self.settings.max_target_length, do_sample=False, num_beams=1,
            )
        return self.tokenizer.batch_decode(out, skip_special_tokens=False)

    def predict(self, turns: Sequence[tuple[Sequence[tuple[str, str]], str]],
                tasks: Sequence[str] = TASKS) -> list[Prediction]:
        """Outputs for many (history, user_text) turns, all rows in one batched greedy decode.

        `tasks` picks what to run; a task left out gives an empty state or response.
        """
        contexts = [build_context(history, user_text) for history, user_text in turns]
        bodies = self.tokenizer(contexts, add_special_tokens=False)["input_ids"]  # each context once, one call
        rows_task, rows_src = [], []
        for body in bodies:
            for task in tasks:
                rows_task.append(task)
                rows_src.append(self._source(task, body))
        texts = iter(self.generate(rows_task, rows_src))
        out = []
        for _ in turns:
            state, span, dropped, response = BeliefState(), "", [], ""
            for task in tasks:
                text = next(texts)
                if task == TRACK:
                    span = text
                    state, dropped = parse_belief(text)
                else:
                    response = parse_response(text)
            out.append(Prediction(state, span, dropped, response))
        return out

    def step(self, history: Sequence[tuple[str, str]], user_text: str) -> tuple[BeliefState, str]:
        """Track the whole dialogue's requirements and answer the newest user turn.

        `history` is the list of earlier (user, system) pairs. Empty or whitespace-only `user_text` raises
        `ValueError`. Any length is accepted (the oldest context is cut to fit). Unknown slots or values in
        the generated span are dropped and logged, never raised.
        """
        check_user_text(user_text)
        with self._lock:
            prediction = self.predict([(list(history), user_text)])[0]
        if prediction.dropped:
            log.info("dropped from generated span %r: %s", prediction.belief_span, prediction.dropped)
        return prediction.state, prediction.response
