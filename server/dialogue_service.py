"""The dialogue model behind the chat: loaded once per server, shared by all request threads.

Request threads hand their turn to one runner thread and wait. The runner serves every turn waiting at that
moment as one batch (and, with `gather_gap_s` > 0, those arriving less than that apart), in one model call
(`model.predict`, which runs many turns through one batched greedy decode, when the model has it; else
`model.step` one after another). So the model is never used by two threads at once; under load, turns that
arrive while a batch runs form the next batch, and the server's request work (HTTP, SQL) overlaps the model's.
Greedy batching measured best in `bench/server_load.py` (50 users, with `generate`: p95 0.51-0.59 s; waiting
after a batch for as many turns as it held, up to 0.5 s: 0.90-1.36 s).
"""
from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol, Sequence

from dialogue.formats import check_user_text
from dialogue.ontology import BeliefState

log = logging.getLogger(__name__)

History = Sequence[tuple[str, str]]
StateLike = BeliefState | Mapping[str, Sequence[str]] | None


class DialogueModelLike(Protocol):
    def step(self, history: History, user_text: str, state: StateLike = None) -> tuple[BeliefState, str]: ...


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

    def __init__(self, model: DialogueModelLike, max_batch: int = 64, gather_gap_s: float = 0.0,
                 owns_model: bool = False):
        self.model = model
        self.owns_model = owns_model
        self.max_batch = max_batch
        self.gather_gap_s = gather_gap_s
        self._queue: queue.Queue[tuple[History, str, StateLike, Future] | None] = queue.Queue()
        self._runner = threading.Thread(target=self._run, name="dialogue-runner", daemon=True)
        self._runner.start()

    def step(self, history: History, user_text: str, state: StateLike = None) -> tuple[BeliefState, str]:
        """Track the state and answer `user_text` after `history` (earlier `(user, system)` pairs), `state` being
        the confirmed state before it (a `BeliefState` or its JSON form).

        Raises `ValueError` for empty text or a state that breaks the ontology, and whatever the model raises
        for this turn.
        """
        check_user_text(user_text)
        future: Future = Future()
        self._queue.put((list(history), user_text, state, future))
        return future.result()

    def close(self) -> None:
        """Stop the runner thread, and the model too when this service owns it (`owns_model`)."""
        self._queue.put(None)
        self._runner.join(timeout=10)
        if self.owns_model:
            self.model.close()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            # every turn already waiting, and those arriving less than gather_gap_s after the previous one
            while batch[-1] is not None and len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get(timeout=self.gather_gap_s) if self.gather_gap_s > 0
                                 else self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = batch[-1] is None
            turns = [item for item in batch if item is not None]
            if turns:
                self._answer(turns)
            if stop:
                return

    def _answer(self, batch: list[tuple[History, str, StateLike, Future]]) -> None:
        predict = getattr(self.model, "predict", None)
        if predict is not None and len(batch) > 1:
            try:
                predictions: list[_Prediction] = predict([(history, text, state) for history, text, state, _ in batch])
            except Exception:  # one bad turn must not fail the others: retry them one by one
                log.debug("batched dialogue step failed; retrying turn by turn", exc_info=True)
            else:
                for (*_, future), prediction in zip(batch, predictions):
                    future.set_result((prediction.state, prediction.response))
                return
        for history, text, state, future in batch:
            try:
                future.set_result(self.model.step(history, text, state))
            except Exception as exc:
                future.set_exception(exc)


def load_dialogue(model_path: str | None, torch_threads: int | None = None, call_timeout_s: float = 30.0
                  ) -> tuple[DialogueService | None, DialogueStatus]:
    """Load the dialogue model at `model_path` (None: the shipped one) in a child process (see
    `server.dialogue_process`; a call it does not answer in `call_timeout_s` fails) behind a batching front; on
    failure say what is missing."""
    if model_path is not None and not Path(model_path).is_dir():  # say so before starting a process
        return None, DialogueStatus(False, f"the dialogue model could not be loaded from {model_path}: "
                                           "no such directory")
    from server.dialogue_process import DialogueProcess, DialogueProcessError

    try:
        model = DialogueProcess(model_path, torch_threads, call_timeout_s=call_timeout_s)
    except DialogueProcessError as exc:  # any load failure leaves the server up, saying why
        where = model_path or "the shipped model (dialogue/shipped/)"
        log.warning("dialogue model %s could not be loaded: %s", where, exc)
        return None, DialogueStatus(False, f"the dialogue model could not be loaded from {where}: {exc}")
    return DialogueService(model, owns_model=True), DialogueStatus(True, f"dialogue model: {model.description}")
