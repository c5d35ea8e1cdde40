"""The critic's verdicts in the chat: the follow-up message, Try harder (API), progress through refinement rounds."""
from __future__ import annotations

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import FakeEditor, fake_editing, wait_for  # noqa: E402
from test_server_api import assert_error, make_app, samples, start, turn  # noqa: E402,F401

from server import critique  # noqa: E402


def test_follow_up_names_what_did_not_come_out_and_offers_to_push():
    metrics = {"verdicts": {"smiling": False, "black hair": True, "goatee": None}}
    assert critique.shortfalls(metrics) == ["smiling"]
    assert critique.follow_up("done", metrics, 0) == "The smile did not come out clearly; press Try harder to push it."
    two = {"verdicts": {"smiling": False, "lipstick": False}}
    assert critique.follow_up("done", two, 1) == (
        "The smile and the lipstick did not come out clearly; press Try harder to push them.")
    spent = critique.follow_up("done", metrics, critique.MAX_EFFORT)
    assert spent.startswith("The smile did not come out clearly, even after trying harder")
    assert critique.follow_up("done", {"verdicts": {"smiling": True}}, 0) is None
    assert critique.follow_up("done", {}, 0) is None and critique.follow_up("failed", metrics, 0) is None
    assert not critique.can_try_harder("done", metrics, critique.MAX_EFFORT)
    from dialogue.ontology import VALUES
    assert set(critique.VALUE_NOUNS) == set(VALUES)


def done_job(client, job_id):
    return wait_for(lambda: (j := client.get(f"/api/jobs/{job_id}").get_json())["status"] == "done" and j)


def test_try_harder_pushes_a_value_that_fell_short_and_the_turn_takes_the_new_image(make_app, samples):
    client = make_app(editing=fake_editing(samples=samples, hard=("smiling",))).test_client()
    cid = start(client, sample="ada")["id"]
    first = done_job(client, turn(client, cid, "smile").get_json()["turn"]["job"]["id"])
    assert first["verdicts"] == {"smiling": False} and first["can_try_harder"] and first["effort"] == 0
    assert first["follow_up"] == "The smile did not come out clearly; press Try harder to push it."

    pushed = client.post(f"/api/jobs/{first['id']}/harder")
    assert pushed.status_code == 201
    harder = done_job(client, pushed.get_json()["id"])
    assert harder["effort"] == 1 and harder["verdicts"] == {"smiling": True} and harder["follow_up"] is None
    assert not harder["can_try_harder"] and harder["image_url"] != first["image_url"]
    view = client.get(f"/api/conversations/{cid}").get_json()
    assert view["turns"][0]["image_url"] == harder["image_url"] and view["turns"][0]["job"]["id"] == harder["id"]
    assert FakeEditor.instances[-1].efforts == [0, 1]
    assert_error(client.post(f"/api/jobs/{harder['id']}/harder"), 409, "nothing_short")


def test_try_harder_refuses_what_it_cannot_push(make_app, samples, monkeypatch):
    gate = threading.Event()
    client = make_app(editing=fake_editing(samples=samples, hard=("smiling",), gate=gate)).test_client()
    cid = start(client, sample="ada")["id"]
    job = turn(client, cid, "smile").get_json()["turn"]["job"]
    assert_error(client.post(f"/api/jobs/{job['id']}/harder"), 409, "job_not_done")
    gate.set()
    done = done_job(client, job["id"])
    monkeypatch.setattr(critique, "MAX_EFFORT", 0)
    assert_error(client.post(f"/api/jobs/{done['id']}/harder"), 409, "effort_spent")
    assert "even after trying harder" in client.get(f"/api/jobs/{done['id']}").get_json()["follow_up"]
    assert_error(client.post("/api/jobs/nope/harder"), 404)


def test_without_verdicts_there_is_nothing_to_push(make_app, samples):
    client = make_app(editing=fake_editing(samples=samples)).test_client()
    cid = start(client, sample="ada")["id"]
    done = done_job(client, turn(client, cid, "smile").get_json()["turn"]["job"]["id"])
    assert done["verdicts"] is None and done["follow_up"] is None and not done["can_try_harder"]
    assert_error(client.post(f"/api/jobs/{done['id']}/harder"), 409, "nothing_short")


def test_a_running_edit_reports_its_refinement_round(make_app, samples):
    gate = threading.Event()
    client = make_app(editing=fake_editing(samples=samples, hard=("smiling",), gate=gate)).test_client()
    cid = start(client, sample="ada")["id"]
    first = turn(client, cid, "smile").get_json()["turn"]["job"]
    gate.set()
    done_job(client, first["id"])
    gate.clear()
    pushed = client.post(f"/api/jobs/{first['id']}/harder").get_json()  # effort 1: twice the steps, round 1 last
    running = wait_for(lambda: (j := client.get(f"/api/jobs/{pushed['id']}").get_json())["round"] == 1 and j)
    assert running["status"] == "running" and running["step"] == running["total"] == 12
    gate.set()
    assert done_job(client, pushed["id"])["effort"] == 1



def test_a_turn_that_reuses_an_image_shows_the_verdicts_of_the_edit_that_made_it(make_app, samples):
    client = make_app(editing=fake_editing(samples=samples, hard=("lipstick",))).test_client()
    cid = start(client, sample="ada")["id"]
    first = done_job(client, turn(client, cid, "smile").get_json()["turn"]["job"]["id"])
    assert first["verdicts"] == {"smiling": True}
    again = turn(client, cid, "thanks, that's all").get_json()["turn"]  # nothing changes: the image is reused
    assert again["job"] is None
    view = client.get(f"/api/conversations/{cid}").get_json()
    assert view["turns"][1]["image_url"] == first["image_url"]
    assert view["turns"][1]["verdicts"] == view["turns"][0]["verdicts"] == {"smiling": True}
