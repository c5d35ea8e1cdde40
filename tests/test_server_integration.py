"""The server with the real parts: the shipped dialogue model (committed: its absence fails) and the real `Editor`
on fixture weights from `i2edit weights make-fixtures` (random networks in the public formats), in the API and
in headless Chromium (progress bar, edited image)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import FakeDialogue, LiveServer, make_settings, png_bytes, wait_for  # noqa: E402

from dialogue.model import default_model_dir  # noqa: E402
from dialogue.ontology import BeliefState  # noqa: E402
from editing.weights import fixtures  # noqa: E402
from server.app import create_app, shutdown, start  # noqa: E402
from server.dialogue_service import DialogueService, load_dialogue  # noqa: E402
from server.editing_setup import probe_editing  # noqa: E402
from server.models import Turn  # noqa: E402
from sqlalchemy import select  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Like `i2edit serve`: one thread per op (on a busy machine more threads made a dialogue step 80x slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dialogue():
    """The shipped dialogue model behind the server's batching front."""
    shipped = default_model_dir()
    assert (shipped / "config.json").is_file(), f"the shipped dialogue model is missing from {shipped}"
    service, status = load_dialogue(None)
    assert service is not None, status.detail
    yield service
    service.close()


@pytest.fixture(scope="module")
def fixture_weights(tmp_path_factory):
    out = tmp_path_factory.mktemp("weights")
    fixtures.make_fixtures(out, size=32)
    return out


def test_shipped_dialogue_model_through_the_api(tmp_path, dialogue):
    app = create_app(make_settings(tmp_path, weights="none"), dialogue=dialogue.model)
    start(app)
    try:
        client = app.test_client()
        cid = client.post("/api/conversations", json={}).get_json()["id"]
        texts = ["Please make her smile.", "Now give her black hair.", "Actually, no smile. Make her sad."]
        history, shown = [], BeliefState()
        for text in texts:
            response = client.post(f"/api/conversations/{cid}/turns", json={"text": text})
            assert response.status_code == 201
            body = response.get_json()["turn"]
            assert body["job"] is None and "Nothing was edited" in body["response"]  # dialogue-only: said honestly
            # the server tracks exactly what the model tracks from the same history and shown state (the reply is
            # seeded by the turn), and keeps the model's own reply as the history it gives back next turn
            state, reply = dialogue.model.step(history, text, shown)
            assert BeliefState.from_dict(body["belief_state"]) == state
            with app.extensions["i2edit"].db.read() as session:
                stored = session.scalars(select(Turn.model_response).order_by(Turn.id.desc()).limit(1)).one()
            assert stored == reply
            history.append((text, reply))
            shown = state
        view = client.get(f"/api/conversations/{cid}").get_json()
        assert [t["user"] for t in view["turns"]] == texts
        assert client.post(f"/api/conversations/{cid}/turns", json={"text": "  "}).status_code == 400
    finally:
        shutdown(app)


@pytest.mark.slow
@pytest.mark.browser
def test_real_editor_in_the_browser(tmp_path, dialogue, fixture_weights, system_parts):
    """Upload, three turns, responses and chips, then the progress bar and the edited image from the real Editor."""
    from test_server_browser import CHROMIUM_ARGS, chromium_path

    path = chromium_path()
    if path is None:
        system_parts.missing("no chromium executable (apt-get install chromium, or set I2EDIT_CHROMIUM)")
    sync_api = system_parts.import_module("playwright.sync_api", "playwright (python) is not installed")
    editing = probe_editing(str(fixture_weights), "cpu", align="off", preview_every=1)
    assert editing.available, editing.detail
    settings = make_settings(tmp_path, edit_steps=3)
    app = create_app(settings, dialogue=dialogue.model, editing=editing)
    start(app)
    server = LiveServer(app)
    photo = tmp_path / "face.png"
    photo.write_bytes(png_bytes((96, 96), (170, 130, 110)))
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_context(bypass_csp=True).new_page()
            page.goto(server.url + "/")
            page.set_input_files("#photo-input", str(photo))
            page.wait_for_selector("#workspace:not([hidden])")
            for number, text in enumerate(["make her smile", "now black hair please", "and add lipstick"], 1):
                page.fill("#turn-text", text)
                page.click("#send")
                page.wait_for_function("n => document.querySelectorAll('#transcript li.system').length >= n",
                                       arg=number, timeout=60_000)
            page.wait_for_selector("#progress:not([hidden])", timeout=30_000)
            page.wait_for_selector("#progress", state="hidden", timeout=240_000)
            page.wait_for_function("document.getElementById('current').src.endsWith('.png')")
            replies = page.locator("#transcript li.system").all_inner_texts()
            assert len(replies) == 3 and all(r.strip() for r in replies)
            chips = [c.split(": ", 1)[1] for c in page.locator("#chips .chip").all_inner_texts()]
            assert "lipstick" in chips
            current = page.get_attribute("#current", "src")
            browser.close()
        client = app.test_client()
        image = client.get(current)  # another client: not the owner
        assert image.status_code == 404
        rt = app.extensions["i2edit"]
        key = current.rsplit("/", 1)[1]
        from PIL import Image

        assert Image.open(rt.store.path(key)).size == (32, 32)  # the fixture generator's size
    finally:
        server.stop()
        shutdown(app)


@pytest.mark.slow
def test_worker_command_runs_the_servers_jobs(tmp_path, fixture_weights):
    """`i2edit worker` in its own process picks up a job queued by a server that runs no worker of its own."""
    import io
    import signal
    import subprocess

    editing = probe_editing(str(fixture_weights), "cpu", align="off")
    app = create_app(make_settings(tmp_path, workers=0), dialogue=FakeDialogue(), editing=editing)
    start(app)
    worker = None
    try:
        client = app.test_client()
        cid = client.post("/api/conversations", data={"photo": (io.BytesIO(png_bytes((48, 48))), "f.png")},
                          content_type="multipart/form-data").get_json()["id"]
        job = client.post(f"/api/conversations/{cid}/turns", json={"text": "smile"}).get_json()["turn"]["job"]
        assert job["status"] == "queued"
        worker = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "worker", "--data-dir", str(tmp_path / "data"),
             "--weights", str(fixture_weights), "--align", "off", "--edit-steps", "2", "--device", "cpu",
             "--torch-threads", "1"])
        done = wait_for(lambda: (j := client.get(f"/api/jobs/{job['id']}").get_json())["status"]
                        in ("done", "failed") and j, timeout=240, interval=0.5)
        assert done["status"] == "done", done["error"]
        assert done["metrics"]["min_rel"] is not None and client.get(done["image_url"]).status_code == 200
        assert list((tmp_path / "data" / "images").glob("*/*.inv"))  # the inversion, cached in the image store
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        shutdown(app)


def test_batched_turns_answer_like_single_turns(dialogue):
    """Turns that arrive together share one batched `predict`; each gets what a lone `step` would give."""
    import threading

    turns = [([], "Please make her smile."), ([("Make him sad.", "Done. What else?")], "Add a goatee."),
             ([], "black hair and lipstick please"), ([], "Can you take the earrings off?"),
             ([("Give her bangs.", "Done.")], "No, wavy hair instead."), ([], "hmm")]
    results: dict[int, tuple] = {}
    start = threading.Barrier(len(turns))

    service = DialogueService(dialogue.model, gather_gap_s=0.25)  # wide window: never split

    def ask(i: int) -> None:
        start.wait()
        results[i] = service.step(*turns[i])

    sizes: list[int] = []
    predict = dialogue.model.predict

    def counting_predict(batch, *args, **kwargs):
        sizes.append(len(batch))
        return predict(batch, *args, **kwargs)

    dialogue.model.predict = counting_predict
    try:
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(turns))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        del dialogue.model.predict  # back to the class's method
        service.close()
    assert sizes == [len(turns)]  # one batched call answered them all
    for i, (history, text) in enumerate(turns):
        assert results[i] == dialogue.model.step(history, text)


def test_a_weight_set_says_how_to_edit_with_it_and_what_photos_it_takes(tmp_path, fixture_weights):
    """The manifest's `editor` entry (as the demo set's) gives the optimiser settings, the alignment and whether
    real photos work; the server reads it whatever the set is called, and without it edits the paper's way."""
    import json
    import shutil

    from PIL import Image

    own = tmp_path / "sample_faces_only"
    shutil.copytree(fixture_weights, own)
    manifest = json.loads((own / "manifest.json").read_text())
    entry = {"optimizer": {"steps": 7, "lr": 0.1, "l2_lambda": 0.008, "id_lambda": 0.005}, "align_faces": False,
             "real_photos": False}
    (own / "manifest.json").write_text(json.dumps({**manifest, "name": "faces", "editor": entry}))
    (own / "samples").mkdir()
    Image.new("RGB", (32, 32), (150, 110, 90)).save(own / "samples" / "alex.png")
    editing = probe_editing(str(own), "cpu")
    assert editing.available and not editing.real_photos
    assert list(editing.samples) == ["alex"]
    assert "The faces weight set edits only its own sample faces" in editing.real_photo_note
    editor = editing.factory()
    assert editor.settings.steps == 7 and editor.settings.preview_every > 0 and editor.align_faces is False
    assert probe_editing(str(own), "cpu", align="on").factory().align_faces is True  # --align wins

    plain = probe_editing(str(fixture_weights), "cpu")
    assert plain.real_photos and plain.real_photo_note is None
    editor = plain.factory()
    assert editor.settings.steps == 300 and editor.align_faces is True

    (own / "manifest.json").write_text(json.dumps({**manifest, "editor": {"optimizer": {"stepz": 3}}}))
    broken = probe_editing(str(own), "cpu")
    assert not broken.available and "stepz" in broken.detail and "Dialogue-only" in broken.detail
