"""`DialogueModel`: a T5 encoder-decoder and its tokenizer that track the belief state and answer.

Loads any Hugging Face T5 directory (t5-small/base/large, a PPTOD checkpoint: the PPTOD marker tokens are
added when absent and the embeddings resized) or a directory this project trained; `save_pretrained` writes
one that loads back identically. How the model reads and writes (`dialogue.formats.TextFormat`) is saved with
it. `step()` decodes the tracking span and the act (or, wave 1, the literal reply) in one batch, applies the
update to the state it was given, and then samples a few delexicalised replies in a second batch, keeping one
that it can fill from what really changed.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from dialogue import greedy
from dialogue.device import resolve_device
from dialogue.acts import Act, Change, Update, false_claims, fill, person_of, reply_frame_span
from dialogue.formats import (
    ACT, PROMPTS, REPLY, RESPOND, SPAN_TOKENS, TASKS, TRACK, Prediction, TextFormat, WAVE1_FORMAT,
    check_user_text, parse_act, parse_belief, parse_response, parse_update, span_body, state_text,
)
from dialogue.ontology import BeliefState, OntologyError
from dialogue.tokenizer import add_pptod_tokens

log = logging.getLogger(__name__)

SETTINGS_FILE = "i2edit_dialogue.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "spiece.model")
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
IMPLS = ("fast", "reference")
History = Sequence[tuple[str, str]]
StateLike = BeliefState | Mapping[str, Sequence[str]] | None


def default_model_dir() -> Path:
    """The trained model that ships with the repository (used when no model directory is given)."""
    return SHIPPED_DIR


@dataclass(frozen=True)
class DialogueSettings:
    """Sequence limits, text format and decoding, saved beside the weights (`i2edit_dialogue.json`).

    A directory without the file (a stock T5 or PPTOD) gets these defaults; a file written before the format
    was saved (wave 1) means the `history` / `literal` format. `top_p` 0 decodes every task greedily;
    `reply_samples` is how many replies are drawn to pick one from."""

    max_source_length: int = 512   # encoder tokens; longer contexts lose their oldest tokens
    max_target_length: int = 120   # new tokens per generated span (PPTOD uses 120)
    tracking: str = "update"
    responses: str = "delexicalised"
    context_turns: int = 1
    top_p: float = 0.9
    reply_samples: int = 4

    def __post_init__(self) -> None:
        self.text_format  # checks the format fields
        if not 0.0 <= self.top_p <= 1.0 or self.reply_samples < 1:
            raise ValueError(f"top_p must be in [0, 1] and reply_samples at least 1, got {self.top_p}, "
                             f"{self.reply_samples}")

    @property
    def text_format(self) -> TextFormat:
        return TextFormat(self.tracking, self.responses, self.context_turns)

    @classmethod
    def load(cls, directory: Path) -> "DialogueSettings":
        path = directory / SETTINGS_FILE
        if not path.is_file():
            return cls()
        data = json.loads(path.read_text())
        if "tracking" not in data:  # written by wave 1
            data = {**asdict(WAVE1_FORMAT), **data}
        types = {k: type(v) for k, v in asdict(cls()).items()}
        return cls(**{k: types[k](data[k]) for k in types if k in data})


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


def as_state(state: StateLike) -> BeliefState:
    """A `BeliefState` from a state or its JSON form; anything the ontology does not allow raises
    `OntologyError` (a `ValueError`) naming the problem."""
    if state is None:
        return BeliefState()
    if isinstance(state, BeliefState):
        return state
    try:
        return BeliefState.from_dict(state)
    except OntologyError as exc:
        raise OntologyError(f"the dialogue state given to the tracker breaks the ontology: {exc}") from None


def turn_seed(history: History, user_text: str) -> int:
    """The default sampling seed of a turn: a checksum of its text, so that the same turn gets the same reply."""
    text = "\n".join([*(f"{u}\n{s}" for u, s in history), user_text])
    return zlib.crc32(text.encode("utf-8"))


class DialogueModel:
    """T5 + tokenizer for the PPTOD tasks. `step` is thread-safe (one decode at a time, under a lock).

    `impl` picks the decoder: "fast" (`dialogue.greedy`: no padding in the encoder, preallocated caches,
    finished rows leave the batch; the default) or "reference" (Hugging Face's `generate`, the truth the fast one
    is tested against: identical greedy tokens).
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
        self._prompt_ids = {task: self._ids(PROMPTS[task]) for task in TASKS}
        self._open_ids = self._ids("<sos_context>")
        self._close_ids = self._ids("<eos_context>")
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
    def from_preset(cls, name: str, texts: Sequence[str], seed: int = 0,
                    text_format: TextFormat | None = None) -> "DialogueModel":
        """A freshly initialised model of preset `name` with a SentencePiece vocabulary trained on `texts`."""
        from transformers import T5ForConditionalGeneration

        from dialogue.presets import get_preset, t5_config
        from dialogue.tokenizer import tokenizer_from_sentencepiece, train_sentencepiece

        preset = get_preset(name)
        tokenizer = tokenizer_from_sentencepiece(train_sentencepiece(texts, preset.vocab_size))
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(t5_config(preset, tokenizer))
        settings = DialogueSettings(preset.max_source_length, preset.max_target_length)
        if text_format is not None:
            settings = replace(settings, **asdict(text_format))
        return cls(model, tokenizer, settings)

    def save_pretrained(self, path: str | Path) -> None:
        """Write config, weights (safetensors), tokenizer and settings to `path`."""
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        (directory / SETTINGS_FILE).write_text(json.dumps(asdict(self.settings), indent=2) + "\n")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def text_format(self) -> TextFormat:
        return self.settings.text_format

    # --- encoding -----------------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode(self, task: str, context: str, state: BeliefState | None = None) -> list[int]:
        """Encoder ids of a task, keeping the newest context tokens that fit the source limit. The previous
        `state` is part of the input in the `update` format (and ignored otherwise). For `reply`, `context` is
        the act frame (`<sos_a> … <eos_a>`)."""
        if task == REPLY:
            return (self._prompt_ids[REPLY] + self._ids(context))[: self.settings.max_source_length]
        return self.source_ids(task, self._ids(context), state)

    def source_ids(self, task: str, body: Sequence[int], state: BeliefState | None = None) -> list[int]:
        """Prompt [+ state span] + `<sos_context>` + the newest ids of the context `body` that fit +
        `<eos_context>`."""
        prefix = list(self._prompt_ids[task])
        if state is not None and self.text_format.state_input:
            prefix += self._ids(state_text(state))
        prefix += self._open_ids
        room = max(self.settings.max_source_length - len(prefix) - len(self._close_ids), 1)
        return prefix + list(body[-room:]) + self._close_ids

    def encode_reply(self, change: Change, act: Act) -> list[int]:
        """Encoder ids of the `reply` task for what a turn changed and the act."""
        return self.encode(REPLY, reply_frame_span(change, act))

    def encode_target(self, target: str) -> list[int]:
        """Decoder ids of a target span (start token first), cut to the target limit keeping its stop token."""
        ids = self._ids(target)
        if len(ids) > self.settings.max_target_length + 1:
            ids = ids[: self.settings.max_target_length] + ids[-1:]
        return ids

    def pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad id lists or integer arrays: (ids [B, T] long, attention mask [B, T] long) on the model's
        device."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.from_numpy(np.asarray(row, dtype=np.int64))
            mask[i, : len(row)] = 1
        return ids.to(self.device), mask.to(self.device)

    # --- generation ---------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, tasks: Sequence[str], sources: Sequence[Sequence[int]],
                 seeds: Sequence[int | None] | None = None) -> list[str]:
        """Decode one span per row (row i starts at its task's `<sos_x>`); returns decoded texts. Rows with a
        seed are top-p samples (`settings.top_p`; 0 makes every row greedy), the others greedy."""
        seeds = list(seeds) if seeds is not None and self.settings.top_p > 0 else [None] * len(tasks)
        input_ids, mask = self.pad(sources)
        starts = torch.tensor([self._start_id[t] for t in tasks], dtype=torch.long, device=self.device)
        stops = sorted(set(self._stop_id.values()))
        pad_id = self.tokenizer.pad_token_id
        limit = self.settings.max_target_length
        if self.impl == "fast":
            out = greedy.greedy_generate(self.model, input_ids, mask, starts, stops, pad_id, limit, seeds,
                                         self.settings.top_p)
            return self.tokenizer.batch_decode(out, skip_special_tokens=False)
        texts: list[str | None] = [None] * len(tasks)
        greedy_rows = [i for i, seed in enumerate(seeds) if seed is None]
        groups = [(greedy_rows, None)] if greedy_rows else []
        groups += [([i], seed) for i, seed in enumerate(seeds) if seed is not None]
        for rows, seed in groups:
            with torch.random.fork_rng(devices=[]):
                if seed is not None:
                    torch.manual_seed(seed)
                out = self.model.generate(
                    input_ids=input_ids[rows], attention_mask=mask[rows], decoder_input_ids=starts[rows, None],
                    decoder_start_token_id=starts[rows], eos_token_id=stops, pad_token_id=pad_id,
                    max_new_tokens=limit, num_beams=1,
                    **({"do_sample": True, "top_p": self.settings.top_p, "top_k": 0} if seed is not None
                       else {"do_sample": False}),
                )
            for i, text in zip(rows, self.tokenizer.batch_decode(out, skip_special_tokens=False)):
                texts[i] = text
        return texts

    def predict(self, turns: Sequence[tuple], track_only: bool = False,
                seeds: Sequence[int | None] | None = None) -> list[Prediction]:
        """Outputs for many turns, each `(history, user_text)` or `(history, user_text, state)`: `state` is the
        confirmed state before the turn (a `BeliefState` or its JSON form; a state that breaks the ontology
        raises `OntologyError`). A turn of an `update` model given history but no state first has its state
        rebuilt by tracking the history turn by turn. All turns' rows run in one batched decode per stage.

        `track_only` skips the act and the reply; `seeds` (default: `turn_seed` of each turn) fixes sampling.
        """
        fmt = self.text_format
        items = []
        for turn in turns:
            history, user_text = list(turn[0]), turn[1]
            given = turn[2] if len(turn) > 2 else None
            if given is None and fmt.state_input and history:
                state = self._rebuild_state(history)
            else:
                state = as_state(given)
            items.append((history, user_text, state))
        seeds = list(seeds) if seeds is not None else [turn_seed(h, u) for h, u, _ in items]
        first = (TRACK,) if track_only else fmt.first_tasks
        contexts = [fmt.context(h, u) for h, u, _ in items]
        bodies = self.tokenizer(contexts, add_special_tokens=False)["input_ids"]  # each context once, one call
        rows_task, rows_src, rows_seed = [], [], []
        for body, (_, _, state), seed in zip(bodies, items, seeds):
            for task in first:
                rows_task.append(task)
                rows_src.append(self.source_ids(task, body, state))
                rows_seed.append(seed if task == ACT else None)
        texts = iter(self.generate(rows_task, rows_src, rows_seed))
        outputs = []
        for history, user_text, state in items:
            span = next(texts)
            if fmt.state_input:
                update, dropped = parse_update(span)
                change = update.apply(state)
            else:
                new_state, dropped = parse_belief(span)
                change = Update.between(state, new_state).apply(state)
            act, response = None, ""
            if not track_only:
                second = next(texts)
                if fmt.responses == "delexicalised":
                    act, more = parse_act(second)
                    act = self._checked_act(act, change)
                    dropped = dropped + more
                else:
                    response = parse_response(second)
            outputs.append(Prediction(change.state, span, dropped, response, act, "", change))
        if track_only or fmt.responses != "delexicalised":
            return outputs
        return self._replies(items, outputs, seeds)

    @staticmethod
    def _checked_act(act: Act, change: Change) -> Act:
        """The act, with a suggestion of a value the new state holds or the turn just removed (nothing to
        offer) turned into `next`."""
        if act.value is not None and (act.value in change.state or act.value in change.removed
                                      or act.value in change.missing):
            return replace(act, policy="next", value=None)
        return act

    def _replies(self, items, outputs: list[Prediction], seeds: Sequence[int]) -> list[Prediction]:
        """Sample `reply_samples` delexicalised replies per turn in one batch and keep, per turn, the first that
        fills and names nothing it should not and that repeats the fewest word pairs of the earlier system
        replies (so one conversation does not say the same thing twice); `fallback_reply` when none fills."""
        k = self.settings.reply_samples
        rows_src, rows_seed = [], []
        for prediction, seed in zip(outputs, seeds):
            source = self.encode_reply(prediction.change, prediction.act)
            for j in range(k):
                rows_src.append(source)
                rows_seed.append(seed + 1 + j)
        texts = self.generate([REPLY] * len(rows_src), rows_src, rows_seed)
        done = []
        for index, ((history, user_text, _), prediction, seed) in enumerate(zip(items, outputs, seeds)):
            person = person_of([u for u, _ in history] + [user_text])
            earlier = [s for _, s in history]
            best = None
            for j in range(k):
                delex = span_body(texts[index * k + j], REPLY)
                reply = fill(delex, prediction.change, prediction.act, person, random.Random(seed + j))
                if not reply or false_claims(reply, prediction.change, prediction.act):
                    continue
                score = _repeated_pairs(reply, earlier)
                if best is None or score < best[0]:
                    best = (score, reply, delex)
            if best is None:
                delex = fallback_reply(prediction.change, prediction.act)
                best = (0, fill(delex, prediction.change, prediction.act, person, random.Random(seed)), delex)
            done.append(replace(prediction, response=best[1], delex=best[2]))
        return done

    def _rebuild_state(self, history: History) -> BeliefState:
        """The state after `history`, tracked turn by turn from an empty one (for callers that give none)."""
        state = BeliefState()
        for i, (user, _) in enumerate(history):
            state = self.predict([(history[:i], user, state)], track_only=True)[0].state
        return state

    def step(self, history: History, user_text: str, state: StateLike = None,
             seed: int | None = None) -> tuple[BeliefState, str]:
        """Track the dialogue's requirements and answer the newest user turn.

        `history` is the list of earlier (user, system) pairs; `state` the confirmed state the user sees now
        (a `BeliefState` or `{slot: [values]}`; None: empty for a first turn, else rebuilt from `history`).
        Empty or whitespace-only `user_text` raises `ValueError`, a `state` that breaks the ontology
        `OntologyError` (a `ValueError`). Any length is accepted (the oldest context is cut to fit). Unknown
        slots or values in the generated spans are dropped and logged, never raised. `seed` fixes the sampled
        act and reply (default: from the turn's text).
        """
        check_user_text(user_text)
        checked = as_state(state) if state is not None else None
        with self._lock:
            prediction = self.predict([(list(history), user_text, checked)],
                                      seeds=None if seed is None else [seed])[0]
        if prediction.dropped:
            log.info("dropped from generated spans %r: %s", prediction.belief_span, prediction.dropped)
        return prediction.state, prediction.response


def _repeated_pairs(reply: str, earlier: Sequence[str]) -> int:
    """How many of `reply`'s word pairs (lowercased) occur in the `earlier` replies."""
    def pairs(text: str) -> set[tuple[str, str]]:
        words = text.lower().split()
        return set(zip(words, words[1:]))

    seen = set().union(*(pairs(e) for e in earlier)) if earlier else set()
    return len(pairs(reply) & seen)


def fallback_reply(change: Change, act: Act) -> str:
    """A plain delexicalised reply for when no sampled one can be filled: it only names what `change` and
    `act` hold."""
    parts = []
    if change.added:
        parts.append("I've added [added].")
    if change.removed:
        parts.append("I've removed [removed].")
    if change.missing:
        parts.append("There was no [missing] to remove.")
    if change.already:
        parts.append("[subj] already [has] [already].")
    if act.intent == "unsupported":
        parts.append("Sorry, I can't change that." if not act.topic else "Sorry, I can only do [options].")
    if not parts:
        parts.append("Okay.")
    parts.append({"next": "What else would you like to change?", "request": "Do you want to change the [slot]?",
                  "suggest": "How about [value]?", "end": "Bye!"}[act.policy])
    return " ".join(parts)
