"""The dialogue model in a child process (`server.dialogue_process`) and the batching front in front of it."""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
import torch

from dialogue.model import DialogueModel
from dialogue.ontology import BeliefState
from server.dialogue_process import DialogueProcess, DialogueProcessError
from server.dialogue_service import DialogueService, load_dialogue

TEXTS = ["make her smile please", "now black hair", "Done. What else do you want?",
         "[expression] smiling [hair color] black hair", "translate dialogue to belief state:"] * 20
TURNS = [([], "make her smile please", None), ([("now black hair", "Done.")], "take the mustache off",
                                              {"hair color": ["black hair"]}), ([], "🙂 ok", BeliefState())]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tiny")
    DialogueModel.from_preset("tiny", TEXTS).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def process(tiny_dir):
    proc = DialogueProcess(str(tiny_dir))
    yield proc
    proc.close()


def test_the_child_answers_like_the_model_in_this_process(process, tiny_dir, one_torch_thread):
    local = DialogueModel.from_pretrained(tiny_dir, device="cpu")
    assert process.predict(TURNS) == local.predict(TURNS)
    assert process.step(*TURNS[1]) == local.step(*TURNS[1])
    assert "child process" in process.description
    assert f"{process.torch_threads} torch thread(s)" in process.description


def test_empty_text_and_a_bad_state_are_value_errors_like_the_model(process):
    with pytest.raises(ValueError, match="empty"):
        process.step([], "   ")
    with pytest.raises(ValueError, match="breaks the ontology"):
        process.step([], "add bangs", {"hairstyle": ["wings"]})


def test_a_child_that_dies_during_a_call_fails_it_clearly_and_the_next_call_starts_a_new_one(process,
                                                                                           monkeypatch):
    old = process._process
    os.kill(old.pid, signal.SIGKILL)
    old.join(10)
    monkeypatch.setattr(old, "is_alive", lambda: True)  # as if it died after the call began
    with pytest.raises(DialogueProcessError, match="stopped .*exit code -9.*next turn starts a new one"):
        process.step([], "make her smile please")
    state, response = process.step([], "make her smile please")
    assert isinstance(response, str) and process._process.pid != old.pid


def test_a_child_found_dead_before_a_call_is_replaced(process):
    old = process._process
    os.kill(old.pid, signal.SIGKILL)
    old.join(10)
    state, response = process.step([], "now black hair")
    assert isinstance(response, str) and process._process.pid != old.pid


def test_a_missing_model_is_a_load_error_that_names_it(tmp_path):
    empty = tmp_path / "model"
    empty.mkdir()
    with pytest.raises(DialogueProcessError, match="config.json"):
        DialogueProcess(str(empty))
    service, status = load_dialogue(str(empty))
    assert service is None and not status.available and "config.json" in status.detail
    service, status = load_dialogue(str(tmp_path / "nowhere"))
    assert service is None and "no such directory" in status.detail


def test_load_dialogue_serves_through_the_child_and_close_stops_it(tiny_dir):
    service, status = load_dialogue(str(tiny_dir))
    assert service is not None and status.available, status.detail
    child = service.model._process
    state, response = service.step([], "now black hair")
    assert isinstance(response, str)
    service.close()
    child.join(10)
    assert not child.is_alive()


class GatedModel:
    """A model whose first call blocks until `release` is set; records the size of every batch."""

    def __init__(self):
        self.sizes: list[int] = []
        self.release = threading.Event()
        self.busy = threading.Event()

    def predict(self, turns):
        from dialogue.formats import Prediction

        self.sizes.append(len(turns))
        self.busy.set()
        self.release.wait(10)
        return [Prediction(BeliefState.from_dict(state or {}), "", [], f"reply to {text}")
                for _, text, state in turns]

    def step(self, history, text, state=None):
        prediction = self.predict([(history, text, state)])[0]
        return prediction.state, prediction.response


def test_turns_that_arrive_while_a_batch_runs_form_the_next_batch():
    model = GatedModel()
    service = DialogueService(model)
    replies: dict[int, str] = {}

    def ask(i: int) -> None:
        replies[i] = service.step([], f"turn {i}")[1]

    first = threading.Thread(target=ask, args=(0,))
    first.start()
    assert model.busy.wait(10)
    others = [threading.Thread(target=ask, args=(i,)) for i in range(1, 6)]
    for thread in others:
        thread.start()
    while service._queue.qsize() < 5:  # all five are waiting behind the running batch
        threading.Event().wait(0.01)
    model.release.set()
    for thread in [first, *others]:
        thread.join(10)
    service.close()
    assert model.sizes == [1, 5]
    assert replies == {i: f"reply to turn {i}" for i in range(6)}


def test_the_chat_passes_the_state_the_user_sees(tmp_path):
    """Each turn is tracked from its parent turn's state (a branch from turn 0 starts from turn 0's state)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from server_fixtures import FakeDialogue, fake_editing, make_settings

    from server.app import create_app, shutdown, start as start_app

    dialogue = FakeDialogue()
    app = create_app(make_settings(tmp_path), dialogue=dialogue, editing=fake_editing())
    start_app(app)
    try:
        client = app.test_client()
        cid = client.post("/api/conversations", json={}).get_json()["id"]
        for text, extra in (("smile", {}), ("black hair", {}), ("lipstick", {"parent_turn": 0})):
            assert client.post(f"/api/conversations/{cid}/turns", json={"text": text, **extra}).status_code == 201
    finally:
        shutdown(app)
    assert dialogue.states == [{}, {"expression": ["smiling"]}, {"expression": ["smiling"]}]


def test_the_service_hands_the_state_to_the_model():
    model = GatedModel()
    model.release.set()
    service = DialogueService(model)
    try:
        state, reply = service.step([], "hi", {"hairstyle": ["bangs"]})
    finally:
        service.close()
    assert state == BeliefState.of("bangs") and reply == "reply to hi"
