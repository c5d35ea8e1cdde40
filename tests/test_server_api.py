"""Every API endpoint and every error, through the Flask test client, with a fake dialogue model and editor."""
from __future__ import annotations

import io
import json
import re
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import FakeDialogue, fake_editing, png_bytes, make_settings, wait_for  # noqa: E402

from server.app import create_app, shutdown, start as start_app  # noqa: E402
from server.editing_setup import dialogue_only  # noqa: E402
from server.settings import MAX_UPLOAD_BYTES, RateLimit  # noqa: E402


@pytest.fixture
def samples(tmp_path):
    folder = tmp_path / "samples"
    folder.mkdir()
    Image.new("RGB", (40, 40), (10, 200, 30)).save(folder / "ada.png")
    return {"ada": folder / "ada.png"}


@pytest.fixture
def make_app(tmp_path, samples):
    apps = []

    def make(dialogue=None, editing="fake", **settings):
        if editing == "fake":
            editing = fake_editing(samples=samples)
        app = create_app(make_settings(tmp_path, **settings), dialogue=dialogue or FakeDialogue(),
                         editing=editing)
        start_app(app)
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        shutdown(app)


@pytest.fixture
def client(make_app):
    return make_app().test_client()


def start(client, **json_body):
    response = client.post("/api/conversations", json=json_body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def upload(client, data: bytes, name: str = "face.png"):
    return client.post("/api/conversations", data={"photo": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def turn(client, conversation_id: str, text: str, **extra):
    return client.post(f"/api/conversations/{conversation_id}/turns", json={"text": text, **extra})


def assert_error(response, status: int, code: str | None = None):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()
    assert set(body) == {"error", "detail"}
    assert body["detail"] and "Traceback" not in body["detail"]
    if code:
        assert body["error"] == code
    return body


# --- conversations --------------------------------------------------------------------------------

def test_create_without_photo_sets_an_httponly_owner_cookie(client):
    response = client.post("/api/conversations", json={})
    assert response.status_code == 201
    body = response.get_json()
    assert body["photo"] is None and body["turns"] == [] and body["head"] is None
    assert response.headers["Location"] == f"/api/conversations/{body['id']}"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("i2edit_owner=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_create_with_empty_body_is_allowed(client):
    response = client.post("/api/conversations")
    assert response.status_code == 201


def test_second_conversation_keeps_the_owner_token(client):
    first = start(client)
    second = client.post("/api/conversations", json={})
    assert "Set-Cookie" in second.headers  # refreshed, same token
    assert client.get(f"/api/conversations/{first['id']}").status_code == 200
    assert client.get(f"/api/conversations/{second.get_json()['id']}").status_code == 200


def test_upload_is_reencoded_and_served_to_its_owner_only(make_app):
    app = make_app()
    client = app.test_client()
    original = png_bytes((50, 30), (1, 2, 3), fmt="JPEG")
    response = upload(client, original, "face.jpg")
    assert response.status_code == 201
    photo = response.get_json()["photo"]
    assert (photo["width"], photo["height"], photo["source"]) == (50, 30, "upload")
    image = client.get(photo["url"])
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert image.data != original and Image.open(io.BytesIO(image.data)).size == (50, 30)
    stranger = app.test_client()
    assert_error(stranger.get(photo["url"]), 404, "not_found")


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "JPEG"])
def test_accepted_upload_formats(client, fmt):
    assert upload(client, png_bytes(fmt=fmt), f"x.{fmt.lower()}").status_code == 201


def test_upload_rejects_non_images_and_other_formats(client):
    assert_error(upload(client, b"%PDF-1.4 not an image"), 400, "bad_photo")
    assert_error(upload(client, png_bytes(fmt="GIF"), "x.gif"), 400, "bad_photo")
    assert_error(upload(client, b""), 400, "bad_photo")
    assert_error(upload(client, png_bytes()[:60]), 400, "bad_photo")  # truncated PNG


def test_upload_too_many_bytes_is_413(client):
    assert_error(upload(client, b"\0" * (MAX_UPLOAD_BYTES + 1)), 413)


def test_request_bigger_than_the_limit_is_413(client):
    response = upload(client, b"\0" * (MAX_UPLOAD_BYTES + 400 * 1024))
    assert_error(response, 413)


def test_decompression_bomb_is_refused_before_decoding(client):
    buffer = io.BytesIO()
    Image.new("1", (8000, 8000)).save(buffer, format="PNG")  # 64 megapixels in a few kB
    assert len(buffer.getvalue()) < 200_000
    body = assert_error(upload(client, buffer.getvalue()), 413, "photo_too_large")
    assert "megapixels" in body["detail"]


def test_sample_photo(client):
    body = start(client, sample="ada")
    assert body["photo"]["source"] == "sample:ada"
    assert client.get(body["photo"]["url"]).status_code == 200
    assert_error(client.post("/api/conversations", json={"sample": "nobody"}), 400, "unknown_sample")
    assert_error(client.post("/api/conversations", json={"sample": 3}), 400)


def test_bad_json_and_wrong_content_type(client):
    assert_error(client.post("/api/conversations", data="{nope", content_type="application/json"), 400, "bad_json")
    assert_error(client.post("/api/conversations", data="x", content_type="text/plain"), 415)
    conversation = start(client)
    url = f"/api/conversations/{conversation['id']}/turns"
    assert_error(client.post(url, data="text=hi", content_type="application/x-www-form-urlencoded"), 415)
    assert_error(client.post(url, json=["hi"]), 400, "bad_json")


# --- turns ----------------------------------------------------------------------------------------

def test_turn_returns_state_response_and_job(client):
    conversation = start(client, sample="ada")
    response = turn(client, conversation["id"], "make her smile")
    assert response.status_code == 201
    body = response.get_json()["turn"]
    assert body["index"] == 0 and body["parent"] is None and body["user"] == "make her smile"
    assert body["belief_state"] == {"expression": ["smiling"]}
    assert body["response"].startswith("Done")
    assert body["job"]["status"] in ("queued", "running", "done") and 0 <= body["job"]["progress"] <= 1


def test_turn_text_limits(client):
    conversation = start(client)
    assert_error(turn(client, conversation["id"], ""), 400, "empty_text")
    assert_error(turn(client, conversation["id"], "   \n "), 400, "empty_text")
    assert_error(turn(client, conversation["id"], "x" * 1001), 413, "text_too_long")
    assert turn(client, conversation["id"], "smile " + "x" * 994).status_code == 201
    assert_error(client.post(f"/api/conversations/{conversation['id']}/turns", json={"text": 5}), 400)
    assert_error(client.post(f"/api/conversations/{conversation['id']}/turns", json={}), 400)


def test_unicode_text_round_trips(client):
    conversation = start(client)
    body = turn(client, conversation["id"], "笑顔にして 😊 black hair").get_json()["turn"]
    assert body["user"] == "笑顔にして 😊 black hair"
    assert body["belief_state"] == {"hair color": ["black hair"]}


def test_history_is_the_branch_up_to_the_parent(make_app):
    dialogue = FakeDialogue()
    client = make_app(dialogue=dialogue).test_client()
    cid = start(client)["id"]
    turn(client, cid, "smile")
    turn(client, cid, "black hair")
    branch = turn(client, cid, "lipstick", parent_turn=0).get_json()["turn"]
    assert branch["parent"] == 0 and branch["index"] == 2
    assert branch["belief_state"] == {"expression": ["smiling"], "makeup": ["lipstick"]}
    assert [u for u, _ in dialogue.histories[-1]] == ["smile"]
    view = client.get(f"/api/conversations/{cid}").get_json()
    assert view["head"] == 2 and view["path"] == [0, 2] and len(view["turns"]) == 3
    assert [t["parent"] for t in view["turns"]] == [None, 0, 0]


def test_parent_turn_must_exist_and_be_an_integer(client):
    cid = start(client)["id"]
    turn(client, cid, "smile")
    assert_error(turn(client, cid, "x", parent_turn=7), 400, "unknown_parent_turn")
    assert_error(turn(client, cid, "x", parent_turn="0"), 400)
    assert_error(turn(client, cid, "x", parent_turn=True), 400)


def test_concurrent_turn_on_one_conversation_gets_409(make_app):
    dialogue = FakeDialogue(delay_s=1.0)
    app = make_app(dialogue=dialogue)
    client = app.test_client()
    cid = start(client)["id"]
    results = {}

    def first():
        results["first"] = turn(client, cid, "smile").status_code

    thread = threading.Thread(target=first)
    thread.start()
    wait_for(lambda: dialogue.calls >= 1 or results)
    second = turn(client, cid, "black hair")
    thread.join()
    assert results["first"] == 201
    assert_error(second, 409, "turn_in_progress")
    assert turn(client, cid, "black hair").status_code == 201  # the lock is released afterwards


def test_dialogue_model_missing_gives_503_and_keeps_data(tmp_path, samples):
    settings = make_settings(tmp_path, dialogue_model=str(tmp_path / "no-model-here"))
    app = create_app(settings, editing=fake_editing(samples=samples))
    start_app(app)
    try:
        assert app.extensions["i2edit"].dialogue is None
        client = app.test_client()
        cid = start(client)["id"]
        assert_error(turn(client, cid, "smile"), 503, "dialogue_unavailable")
        page = client.get("/").get_data(as_text=True)
        assert "could not be loaded" in page and "no-model-here" in page
        assert client.get(f"/api/conversations/{cid}").status_code == 200
    finally:
        shutdown(app)


# --- ownership, CSRF, rate limit ------------------------------------------------------------------

def test_other_clients_get_404_everywhere(make_app):
    app = make_app()
    owner, stranger = app.test_client(), app.test_client()
    conversation = start(owner, sample="ada")
    cid = conversation["id"]
    job = turn(owner, cid, "smile").get_json()["turn"]["job"]
    start(stranger)  # the stranger has a token of their own
    assert_error(stranger.get(f"/api/conversations/{cid}"), 404, "not_found")
    assert_error(turn(stranger, cid, "smile"), 404)
    assert_error(stranger.post(f"/api/conversations/{cid}/undo"), 404)
    assert_error(stranger.get(f"/api/jobs/{job['id']}"), 404)
    anonymous = app.test_client()
    assert_error(anonymous.get(f"/api/conversations/{cid}"), 404)
    assert_error(anonymous.get(f"/api/jobs/{job['id']}"), 404)
    assert_error(owner.get("/api/conversations/0123456789abcdef0123456789abcdef"), 404)
    assert_error(owner.get("/api/jobs/nope"), 404)


def test_cross_site_posts_are_refused(client):
    assert_error(client.post("/api/conversations", json={}, headers={"Origin": "https://evil.example"}), 403,
                 "cross_site_request")
    assert_error(client.post("/api/conversations", json={}, headers={"Sec-Fetch-Site": "cross-site"}), 403)
    assert_error(client.post("/api/conversations", json={}, headers={"Origin": "null"}), 403)
    ok = client.post("/api/conversations", json={},
                     headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 201


def test_rate_limit_per_client(make_app):
    client = make_app(rate_limit=RateLimit(3, 60.0)).test_client()
    for _ in range(3):
        start(client)
    body = assert_error(client.post("/api/conversations", json={}), 429, "rate_limited")
    assert "try again" in body["detail"]
    assert int(client.post("/api/conversations", json={}).headers["Retry-After"]) >= 1
    assert client.get("/api/openapi.json").status_code == 200  # reads are not limited


# --- jobs, images, undo ---------------------------------------------------------------------------

def test_job_runs_to_done_with_progress_and_image(make_app):
    app = make_app()
    client = app.test_client()
    cid = start(client, sample="ada")["id"]
    job = turn(client, cid, "smile").get_json()["turn"]["job"]
    done = wait_for(lambda: (j := client.get(f"/api/jobs/{job['id']}").get_json())["status"] == "done" and j)
    assert set(done) >= {"id", "status", "progress", "preview_url", "image_url", "error"}
    assert done["progress"] == 1.0 and done["error"] is None and done["preview_url"] is None
    assert done["metrics"]["avg_rel"] == pytest.approx(0.25)
    image = client.get(done["image_url"])
    assert image.status_code == 200 and image.mimetype == "image/png"
    download = client.get(done["image_url"] + "?download=1")
    assert download.headers["Content-Disposition"].startswith("attachment")
    view = client.get(f"/api/conversations/{cid}").get_json()
    assert view["turns"][0]["image_url"] == done["image_url"]


def test_same_state_reuses_the_image_without_a_new_job(make_app):
    client = make_app().test_client()
    cid = start(client, sample="ada")["id"]
    job = turn(client, cid, "smile").get_json()["turn"]["job"]
    wait_for(lambda: client.get(f"/api/jobs/{job['id']}").get_json()["status"] == "done")
    again = turn(client, cid, "yes, keep the smile").get_json()["turn"]
    assert again["job"] is None and again["image_url"] is not None


def test_empty_state_and_no_photo_need_no_job(client):
    cid = start(client, sample="ada")["id"]
    assert turn(client, cid, "hello there").get_json()["turn"]["job"] is None
    cid2 = start(client)["id"]
    assert turn(client, cid2, "smile").get_json()["turn"]["job"] is None


def test_demo_set_explains_that_uploads_need_ffhq(make_app, samples):
    client = make_app(editing=fake_editing(samples=samples, real_photos=False)).test_client()
    conversation = upload(client, png_bytes()).get_json()
    assert conversation["editing"]["available"] is False
    assert "sample faces" in conversation["editing"]["detail"]
    assert turn(client, conversation["id"], "smile").get_json()["turn"]["job"] is None
    sample = start(client, sample="ada")
    assert sample["editing"]["available"] is True


def test_dialogue_only_mode_is_said_on_the_page_and_in_the_api(make_app):
    client = make_app(editing=dialogue_only("no editing weights were found.")).test_client()
    page = client.get("/")
    assert page.status_code == 200 and "Dialogue-only mode" in page.get_data(as_text=True)
    conversation = upload(client, png_bytes()).get_json()
    assert conversation["editing"] == {"available": False, "blocker": "no_weights",
                                       "detail": "Dialogue-only mode: no editing weights were found."}
    body = turn(client, conversation["id"], "smile").get_json()["turn"]
    assert body["job"] is None and body["belief_state"] == {"expression": ["smiling"]}
    assert body["response"].startswith("Your requirements so far: smiling. Nothing was edited")
    assert "dialogue-only" in body["response"]


def test_undo_moves_the_head_back(client):
    cid = start(client)["id"]
    assert_error(client.post(f"/api/conversations/{cid}/undo"), 409, "nothing_to_undo")
    turn(client, cid, "smile")
    turn(client, cid, "black hair")
    after = client.post(f"/api/conversations/{cid}/undo")
    assert after.status_code == 200
    body = after.get_json()
    assert body["head"] == 0 and body["path"] == [0] and len(body["turns"]) == 2
    nxt = turn(client, cid, "lipstick").get_json()["turn"]
    assert nxt["parent"] == 0 and nxt["belief_state"] == {"expression": ["smiling"], "makeup": ["lipstick"]}
    client.post(f"/api/conversations/{cid}/undo")
    assert client.post(f"/api/conversations/{cid}/undo").get_json()["head"] is None


def test_image_keys_cannot_escape_the_data_dir(client, tmp_path):
    (tmp_path / "data" / "secret.txt").write_text("secret")
    for key in ["../secret.txt", "..%2Fsecret.txt", "%2e%2e/i2edit.sqlite3", "../../etc/passwd",
                "a" * 64 + ".png/../../secret.txt", "A" * 64 + ".png", "a" * 64 + ".gif", "a" * 64 + ".png"]:
        response = client.get(f"/api/images/{key}")
        assert response.status_code == 404, key
        assert b"secret" not in response.data


def test_every_error_is_json(client):
    assert_error(client.get("/no/such/page"), 404)
    assert_error(client.delete("/api/conversations"), 405)
    assert_error(client.put("/api/conversations"), 405)
    assert_error(client.get("/api/jobs/x/cancel"), 405)


def test_openapi_documents_exactly_the_api_routes(make_app):
    """The hand-kept spec: every API route documented, nothing documented that the app does not serve."""
    app = make_app()
    spec = app.test_client().get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops
                  if method != "parameters"}
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "{" + {"conversation_id": "id", "job_id": "id"}.get(
                m.group(1), m.group(1)) + "}", rule.rule)
            served |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == served
    for path, ops in spec["paths"].items():  # every path parameter is declared
        for method, op in ops.items():
            names = {p.get("name") or spec["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]["name"]
                     for p in op.get("parameters", [])}
            assert set(re.findall(r"{(\w+)}", path)) <= names, (path, method)


def test_page_lists_samples_and_sends_security_headers(client):
    page = client.get("/")
    html = page.get_data(as_text=True)
    config = json.loads(html.split('type="application/json">', 1)[1].split("</script>", 1)[0])
    assert [s["name"] for s in config["samples"]] == ["ada"]
    assert config["editing"]["available"] is True
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/static/app.js").status_code == 200


def test_a_turn_added_by_another_server_process_meanwhile_gives_409(make_app):
    """Across processes the unique (conversation, index) key refuses the second of two simultaneous turns."""
    from server.models import Turn

    class RacingDialogue(FakeDialogue):
        def step(self, history, user_text, state=None):
            result = super().step(history, user_text, state)
            if user_text == "race":  # another process stores its turn while this one is thinking
                with app.extensions["i2edit"].db.write() as session:
                    session.add(Turn(conversation_id=cid, index=1, user_text="other", belief_state={},
                                     response="ok"))
            return result

    app = make_app(dialogue=RacingDialogue())
    client = app.test_client()
    cid = start(client)["id"]
    turn(client, cid, "smile")
    assert_error(turn(client, cid, "race"), 409, "turn_in_progress")
    view = client.get(f"/api/conversations/{cid}").get_json()
    assert [t["user"] for t in view["turns"]] == ["smile", "other"] and view["head"] == 0


def test_a_dialogue_process_that_stopped_is_a_503_that_stores_nothing(make_app):
    from server.dialogue_process import DialogueProcessError

    class StoppedDialogue(FakeDialogue):
        def step(self, history, user_text, state=None):
            if user_text == "crash":
                raise DialogueProcessError("the dialogue process stopped (exit code -9); the next turn starts a new one")
            return super().step(history, user_text, state)

    client = make_app(dialogue=StoppedDialogue()).test_client()
    cid = start(client)["id"]
    turn(client, cid, "smile")
    response = turn(client, cid, "crash")
    assert_error(response, 503, "dialogue_unavailable")
    assert "exit code -9" in response.get_json()["detail"] and "again" in response.get_json()["detail"]
    view = client.get(f"/api/conversations/{cid}").get_json()
    assert [t["user"] for t in view["turns"]] == ["smile"] and view["head"] == 0
    assert turn(client, cid, "black hair").status_code == 201


def test_undo_to_a_turn_whose_edit_was_skipped_renders_it_again(make_app, samples):
    gate = threading.Event()
    client = make_app(editing=fake_editing(samples=samples, gate=gate), stale_after_s=1.2).test_client()
    cid = start(client, sample="ada")["id"]
    first = turn(client, cid, "smile").get_json()["turn"]["job"]
    wait_for(lambda: client.get(f"/api/jobs/{first['id']}").get_json()["status"] == "running")
    turn(client, cid, "black hair")
    wait_for(lambda: client.get(f"/api/jobs/{first['id']}").get_json()["status"] == "cancelled")
    view = client.post(f"/api/conversations/{cid}/undo").get_json()
    again = view["turns"][0]["job"]
    assert view["head"] == 0 and again["id"] != first["id"] and again["status"] in ("queued", "running")
    gate.set()
    done = wait_for(lambda: (j := client.get(f"/api/jobs/{again['id']}").get_json())["status"] == "done" and j)
    assert client.get(f"/api/conversations/{cid}").get_json()["turns"][0]["image_url"] == done["image_url"]


@pytest.mark.parametrize("trust_proxy", [False, True])
def test_rate_limit_uses_forwarded_address_only_behind_a_trusted_proxy(make_app, trust_proxy):
    client = make_app(rate_limit=RateLimit(2, 60.0), trust_proxy=trust_proxy).test_client()
    for address in ("10.0.0.1", "10.0.0.1"):
        assert client.post("/api/conversations", json={}, headers={"X-Forwarded-For": address}).status_code == 201
    other = client.post("/api/conversations", json={}, headers={"X-Forwarded-For": "10.0.0.2, 10.9.9.9"})
    assert other.status_code == (201 if trust_proxy else 429)


# --- honest replies, cancel, retry, the conversation list --------------------------------------------

def test_replies_say_why_nothing_was_edited_and_the_model_keeps_its_own(make_app, samples):
    dialogue = FakeDialogue()
    client = make_app(dialogue=dialogue, editing=fake_editing(samples=samples, real_photos=False)).test_client()
    no_photo = start(client)
    assert no_photo["editing"]["blocker"] == "no_photo" and "no photo" in no_photo["editing"]["detail"]
    first = turn(client, no_photo["id"], "make her smile").get_json()["turn"]
    assert first["response"] == ("Your requirements so far: smiling. Nothing was edited: this conversation has no "
                                 "photo. To see edits, start a new conversation with a sample face.")
    second = turn(client, no_photo["id"], "hello").get_json()["turn"]
    assert second["response"].startswith("Your requirements so far: smiling. Nothing was edited")
    assert dialogue.histories[-1] == [("make her smile", "Done: expression: smiling. What else?")]

    uploaded = upload(client, png_bytes()).get_json()
    assert uploaded["editing"]["blocker"] == "samples_only" and "`" not in uploaded["editing"]["detail"]
    reply = turn(client, uploaded["id"], "hi there").get_json()["turn"]["response"]
    assert reply.startswith("No requirements yet. Nothing was edited: the weights on this server edit only their "
                            "own sample faces")
    assert "Done" not in reply and "start a new conversation with a sample face" in reply

    sample = start(client, sample="ada")
    assert sample["editing"]["blocker"] is None
    assert turn(client, sample["id"], "smile").get_json()["turn"]["response"].startswith("Done")


def test_cancel_a_running_and_a_queued_edit(make_app, samples):
    gate = threading.Event()
    app = make_app(editing=fake_editing(samples=samples, gate=gate))
    client = app.test_client()
    first = turn(client, start(client, sample="ada")["id"], "smile").get_json()["turn"]["job"]
    wait_for(lambda: client.get(f"/api/jobs/{first['id']}").get_json()["status"] == "running")
    second = turn(client, start(client, sample="ada")["id"], "black hair").get_json()["turn"]["job"]
    assert second["status"] == "queued"  # the one worker is busy with the first

    queued = client.post(f"/api/jobs/{second['id']}/cancel")
    assert queued.status_code == 200
    assert queued.get_json()["status"] == "cancelled" and queued.get_json()["error"] == "cancelled at your request"
    running = client.post(f"/api/jobs/{first['id']}/cancel").get_json()
    assert running["status"] == "running" and running["cancel_requested"] is True
    stopped = wait_for(lambda: (j := client.get(f"/api/jobs/{first['id']}").get_json())["status"] != "running"
                       and j)
    assert stopped["status"] == "cancelled" and stopped["error"] == "cancelled at your request"

    assert_error(client.post(f"/api/jobs/{first['id']}/cancel"), 409, "job_finished")
    assert_error(app.test_client().post(f"/api/jobs/{second['id']}/cancel"), 404, "not_found")
    assert_error(client.post("/api/jobs/nope/cancel"), 404, "not_found")


def test_retry_queues_the_turn_again_until_it_is_done(make_app, samples):
    gate = threading.Event()
    client = make_app(editing=fake_editing(samples=samples, gate=gate)).test_client()
    cid = start(client, sample="ada")["id"]
    job = turn(client, cid, "smile").get_json()["turn"]["job"]
    assert_error(client.post(f"/api/jobs/{job['id']}/retry"), 409, "job_pending")
    client.post(f"/api/jobs/{job['id']}/cancel")
    wait_for(lambda: client.get(f"/api/jobs/{job['id']}").get_json()["status"] == "cancelled")

    retried = client.post(f"/api/jobs/{job['id']}/retry")
    assert retried.status_code == 201
    again = retried.get_json()
    assert again["id"] != job["id"] and again["status"] in ("queued", "running") and again["turn"] == 0
    assert client.post(f"/api/jobs/{job['id']}/retry").get_json()["id"] == again["id"]  # already waiting: 200
    gate.set()
    done = wait_for(lambda: (j := client.get(f"/api/jobs/{again['id']}").get_json())["status"] == "done" and j)
    view = client.get(f"/api/conversations/{cid}").get_json()
    assert view["turns"][0]["image_url"] == done["image_url"] and view["turns"][0]["job"]["id"] == again["id"]
    assert_error(client.post(f"/api/jobs/{again['id']}/retry"), 409, "job_done")
    assert_error(client.post(f"/api/jobs/{job['id']}/retry"), 409, "nothing_to_retry")  # the turn has its image


def test_retry_a_failed_edit_runs_it_again(make_app, samples):
    client = make_app(editing=fake_editing(samples=samples, fail="out of memory")).test_client()
    cid = start(client, sample="ada")["id"]
    job = turn(client, cid, "smile").get_json()["turn"]["job"]
    failed = wait_for(lambda: (j := client.get(f"/api/jobs/{job['id']}").get_json())["status"] == "failed" and j)
    assert "out of memory" in failed["error"]
    again = client.post(f"/api/jobs/{job['id']}/retry").get_json()
    assert again["id"] != job["id"]
    assert wait_for(lambda: client.get(f"/api/jobs/{again['id']}").get_json()["status"] == "failed")


def test_conversation_list_is_the_owners_newest_first(make_app):
    app = make_app()
    client, stranger = app.test_client(), app.test_client()
    assert client.get("/api/conversations").get_json() == {"conversations": []}  # no cookie yet
    older = start(client, sample="ada")
    turn(client, older["id"], "smile")
    turn(client, older["id"], "black hair")
    client.post(f"/api/conversations/{older['id']}/undo")
    newer = start(client)
    start(stranger)
    listed = client.get("/api/conversations").get_json()["conversations"]
    assert [c["id"] for c in listed] == [newer["id"], older["id"]]
    assert listed[0] == {"id": newer["id"], "created_at": newer["created_at"], "updated_at": listed[0]["updated_at"],
                         "photo_source": None, "turn_count": 0, "first_message": None, "last_message": None,
                         "image_url": None}
    assert (listed[1]["photo_source"], listed[1]["turn_count"]) == ("sample:ada", 2)
    assert (listed[1]["first_message"], listed[1]["last_message"]) == ("smile", "smile")  # the head after undo
    assert listed[1]["image_url"] in (older["photo"]["url"], wait_for(
        lambda: client.get(f"/api/conversations/{older['id']}").get_json()["turns"][0]["image_url"]))
    turn(client, older["id"], "lipstick")  # a new turn moves it to the top
    assert client.get("/api/conversations").get_json()["conversations"][0]["id"] == older["id"]
    assert [c["id"] for c in client.get("/api/conversations?limit=1").get_json()["conversations"]] == [older["id"]]
    for bad in ("0", "201", "x", "-1"):
        assert_error(client.get(f"/api/conversations?limit={bad}"), 400, "bad_request")
    assert len(stranger.get("/api/conversations").get_json()["conversations"]) == 1
