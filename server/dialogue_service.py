"""The dialogue model behind the chat: loaded once per server, shared by all request threads.

Request threads hand their turn to one runner thread and wait. The runner takes every turn waiting at that
moment, plus those that keep arriving less than `gather_gap_s` apart; after a batch of N turns it waits for
up to N again, for at most that batch's duration (and `gather_max_s`), because a burst of users answered
together comes back together, spread out by the time each needs to store its turn: a small batch started on
the first few would make all the others wait a whole batch longer. It serves each batch with one
model call (`model.predict`, which runs many turns through one batched `generate`, when the model has it;
else `model.step` one after another). So the model is never used by two threads at once, and under load
turns are batched instead of queueing one by one behind a lock. A lone user's turn waits `gather_gap_s` (5 ms).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from dialogue.ontology import BeliefState

log = logging.getLogger(__name__)

History = Sequence[tuple[str, str]]


class DialogueModelLike(Protocol):
    def step(self, history: History, user_text: str) -> tuple[BeliefState, str]: ...


class _Prediction(Protocol):
    state: BeliefState
    response: str


@dataclass(frozen=True)
class DialogueStatus:
    """Whether a dialogue model is loaded, and a sentence for the page (what is loaded, or what is missing)."""

    available: bool
    detail: str


class DialogueService:
    """Thread-safe, batching front of one dialogue model (see the module docstring)."""

    def __init__(self, model: DialogueModelLike, max_batch: int = 64, gather_gap_s: float = 0.005,
                 gather_max_s: float = 0.5):
        self.model = model
        self.max_batch = max_batch
        self.gather_gap_s = gather_gap_s
        self.gather_max_s = gather_max_s
        self._last_size, self._last_seconds = 1, 0.0
        self._queue: queue.Queue[tuple[History, str, Future] | None] = queue.Queue()
        self._runner = threading.Thread(target=self._run, name="dialogue-runner", daemon=True)
        self._runner.start()

    def step(self, history: History, user_text: str) -> tuple[BeliefState, str]:
        """Track the state and answer `user_text` after `history` (earlier `(user, system)` pairs).

        Raises `ValueError` for empty text, and whatever the model raises for this turn.
        """
        if not isinstance(user_text, str) or not user_text.strip():
            raise ValueError("user text is empty: write what to change in the photo")
        future: Future = Future()
        self._queue.put((list(history), user_text, future))
        return future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._runner.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            # After a burst, expect another of the same size: wait for it up to one batch's duration (a small
            # batch now would make the rest wait that long anyway); else only while turns keep coming.
            target = self._last_size
            window = min(self.gather_max_s, self._last_seconds) if target > 1 else self.gather_gap_s
            deadline = time.monotonic() + window
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                wait = remaining if len(batch) < target else min(self.gather_gap_s, remaining)
                try:
                    item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._serve(batch)
                    return
                batch.append(item)
            self._serve(batch)

    def _serve(self, batch: list[tuple[History, str, Future]]) -> None:
        started = time.monotonic()
        try:
            self._answer(batch)
        finally:
            self._last_size, self._last_seconds = len(batch), time.monotonic() - started

    def _answer(self, batch: list[tuple[History, str, Future]]) -> None:
        predict = getattr(self.model, "predict", None)
        if predict is not None and len(batch) > 1:
            try:
                predictions: list[_Prediction] = predict([(history, text) for history, text, _ in batch])
            except Exception:  # one bad turn must not fail the others: retry them one by one
                log.debug("batched dialogue step failed; retrying turn by turn", exc_info=True)
            else:
                for (_, _, future), prediction in zip(batch, predictions):
                    future.set_result((prediction.state, prediction.response))
                return
        for history, text, future in batch:
            try:
                future.set_result(self.model.step(history, text))
            except Exception as exc:
                future.set_exception(exc)


def load_dialogue(model_path: str | None) -> tuple[DialogueService | None, DialogueStatus]:
    """Load the dialogue model at `model_path` (None: the shipped one); on failure say what is missing."""
    if model_path is not None and not Path(model_path).is_dir():  # say so before importing torch
        return None, DialogueStatus(False, f"the dialogue model could not be loaded from {model_path}: "
                                           "no such directory")
    try:
        from dialogue import DialogueModel
    except (ImportError, AttributeError) as exc:
        return None, DialogueStatus(False, f"the dialogue model code is not available ({exc})")
    try:
        model = DialogueModel.from_pretrained(model_path)
    except Exception as exc:  # any load failure leaves the server up, saying why
        where = model_path or "the shipped model (dialogue/shipped/)"
        log.warning("dialogue model %s could not be loaded: %s", where, exc)
        return None, DialogueStatus(False, f"the dialogue model could not be loaded from {where}: {exc}")
    where = model_path or "the shipped model"
    return DialogueService(model), DialogueStatus(True, f"dialogue model: {where}")
