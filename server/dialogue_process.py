"""The dialogue model in a child process of its own, so that its Python work never waits for the GIL.

A batched greedy decode makes hundreds of small torch calls, each giving the GIL away and waiting to get it back.
In the server's process the request threads hold it in between (HTTP, JSON, SQL), and Python hands it back only
every switch interval (5 ms): one batched call on 50 turns that takes 0.44 s alone took 89 s while three
pure-Python threads ran beside it (`sys.setswitchinterval` 1 ms: 14 s). In a child process the model has an
interpreter of its own, and the parent's runner thread only waits on a pipe.

The child is started with `spawn` (no fork of a process that has threads), loads the model, answers one warm-up
turn, and then serves `predict` calls one at a time. If it dies, the call that was waiting fails with a clear
error and the next call starts a new child. A call that gets no answer within `call_timeout_s` (a hung child)
kills the child and fails the same way, so one stuck child holds up its turns (and their conversations) for
that long at most.

Threads: the model runs on `torch_threads` (default: two where the machine has them). The child sets
`OMP_WAIT_POLICY=PASSIVE` (unless the environment sets it) so that an idle OpenMP thread sleeps instead of
spinning on a core the server's request threads need. (`bench/server_load.py --users 50`, with the fast greedy
decoder of `dialogue.greedy`: p95 419-447 ms with two threads, 445-463 ms with one; README, *Load*.)
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from multiprocessing.connection import Connection
from typing import Mapping, Sequence

from dialogue.formats import Prediction, check_user_text
from dialogue.ontology import BeliefState

log = logging.getLogger(__name__)

History = Sequence[tuple[str, str]]
StateLike = BeliefState | Mapping[str, Sequence[str]] | None


class DialogueProcessError(RuntimeError):
    """The child process could not load the model, failed a call, or stopped."""


class DialogueProcess:
    """`predict` / `step` of a `DialogueModel` (the shipped one when `model_path` is None) in a child process.

    Construction starts the child and waits until the model is loaded (`DialogueProcessError` with the child's
    reason otherwise). One call at a time; `close()` stops the child.
    """

    def __init__(self, model_path: str | None, torch_threads: int | None = None, start_timeout_s: float = 300.0,
                 call_timeout_s: float = 30.0):
        self.model_path = model_path
        self.torch_threads = torch_threads or default_dialogue_threads()
        self.start_timeout_s = start_timeout_s
        self.call_timeout_s = call_timeout_s
        self.description = ""
        self._lock = threading.Lock()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=_child_main,
                                  args=(child, self.model_path, self.torch_threads),
                                  name="i2edit-dialogue", daemon=True)
        process.start()
        child.close()
        if not parent.poll(self.start_timeout_s):
            process.kill()
            raise DialogueProcessError(f"the dialogue process did not load the model in {self.start_timeout_s:.0f} s")
        try:
            kind, payload = parent.recv()
        except EOFError:
            process.join(5)
            raise DialogueProcessError(f"the dialogue process stopped while loading (exit code {process.exitcode})")
        if kind != "ready":
            process.join(5)
            raise DialogueProcessError(payload)
        self.description = payload
        self._process, self._conn = process, parent

    def predict(self, turns: Sequence[tuple]) -> list[Prediction]:
        """`DialogueModel.predict` for many (history, user_text[, state]) turns: one `Prediction` per turn."""
        request = [(list(turn[0]), turn[1], turn[2] if len(turn) > 2 else None) for turn in turns]
        with self._lock:
            if self._process is None or not self._process.is_alive():
                log.warning("the dialogue process is not running; starting a new one")
                self._start()
            try:
                self._conn.send(request)
                if not self._conn.poll(self.call_timeout_s):
                    self._process.kill()
                    self._process.join(5)
                    self._process = None
                    raise DialogueProcessError(f"the dialogue process did not answer within "
                                               f"{self.call_timeout_s:g} s and was stopped; the next turn starts "
                                               "a new one")
                kind, payload = self._conn.recv()
            except (EOFError, OSError):
                self._process.join(5)
                code = self._process.exitcode
                self._process = None
                raise DialogueProcessError(f"the dialogue process stopped (exit code {code}); "
                                           "the next turn starts a new one") from None
        if kind == "value_error":
            raise ValueError(payload)
        if kind != "ok":
            raise DialogueProcessError(payload)
        return payload

    def step(self, history: History, user_text: str, state: StateLike = None) -> tuple[BeliefState, str]:
        """Track and answer one turn (`ValueError` for empty text or a state that breaks the ontology, like
        `DialogueModel.step`)."""
        check_user_text(user_text)
        prediction = self.predict([(history, user_text, state)])[0]
        return prediction.state, prediction.response

    def close(self) -> None:
        """Stop the child (it also exits by itself when this process goes away)."""
        with self._lock:
            if self._process is None:
                return
            try:
                self._conn.send(None)
            except OSError:
                pass
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()
            self._conn.close()
            self._process = None


def default_dialogue_threads() -> int:
    """Torch threads of the dialogue process: one. Under load on a 2-core machine the web process's request
    threads need the other core: 50 users, `bench/server_load.py`, p95 378-447 ms with one thread against
    486-565 ms with two (`results/server_load.json`, `results/server_load_dialogue_2threads.json`). More cores
    were not available to measure; `--torch-threads` sets it."""
    return 1


def _child_main(conn: Connection, model_path: str | None, torch_threads: int) -> None:
    """Child: load the model, say ("ready", what) or ("error", why), then answer requests until None or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes us
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when torch loads OpenMP: before the import
    try:
        import torch

        from dialogue.model import DialogueModel

        torch.set_num_threads(torch_threads)
        model = DialogueModel.from_pretrained(model_path, device="cpu")
        model.predict([([], "hello")])  # warm-up: the first call pays torch's lazy set-up (~0.3 s), not a user
    except Exception as exc:  # the parent reports it; the server stays up without a dialogue model
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", f"{model_path or 'the shipped model'} (in a child process, {torch_threads} torch "
                        f"thread(s))"))
    while True:
        try:
            request = conn.recv()
        except EOFError:  # the parent went away
            return
        if request is None:
            return
        try:
            conn.send(("ok", model.predict(request)))
        except ValueError as exc:
            conn.send(("value_error", str(exc)))
        except Exception as exc:  # one bad batch must not end the process
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
