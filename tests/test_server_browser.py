"""The page in a real headless Chromium (Debian's, driven by Playwright).

- The server as `make demo` starts it (from the repository root, default data dir, shipped dialogue model, demo
  weights): pick a sample, send three example requests, wait for each edit, and check that every image on the
  page loads, the larger view and the before/after comparison included; a screenshot is saved. This page runs
  under its real Content-Security-Policy, and any violation fails the test.
- With fake models (fast and deterministic): upload and chat, responses, chips, progress and live preview;
  dialogue-only mode; the character limit; dismissible notices; honest replies and the banner on an upload the
  weights cannot edit; cancel, retry and a reload during an edit; chips of the viewed turn; earlier
  conversations reopened.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import FakeDialogue, LiveServer, fake_editing, make_settings, png_bytes  # noqa: E402
from test_server_demo_start import demo_server  # noqa: E402,F401  (the fixture: `i2edit serve` as make demo)

from server.app import create_app, shutdown, start as start_app  # noqa: E402
from server.pages import EXAMPLE_REQUESTS  # noqa: E402

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("I2EDIT_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def chromium(system_parts):
    path = chromium_path()
    if path is None:
        system_parts.missing("no chromium executable (apt-get install chromium, or set I2EDIT_CHROMIUM)")
    sync_api = system_parts.import_module("playwright.sync_api", "playwright (python) is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def browser(chromium):
    # Playwright's wait_for_function evaluates strings, which the page's CSP forbids (on purpose)
    context = chromium.new_context(bypass_csp=True)
    yield context
    context.close()


@pytest.fixture
def strict_context(chromium):
    """A fresh browser profile that keeps the page's Content-Security-Policy (wait with `wait_until`)."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    yield context
    context.close()


def wait_until(page, expression: str, timeout: float = 30.0):
    """Poll a JavaScript expression (evaluated by the driver, so the page's CSP allows it) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {expression}")
        time.sleep(0.1)


def images_not_loaded(page, with_source_only: bool = False) -> list[str]:
    """Every <img> on the page that shows no picture (naturalWidth 0), by id or alt and src; with
    `with_source_only`, only those that were given a source (the larger view's get theirs when it opens)."""
    return page.evaluate("only => [...document.images].filter(i => !(only && !i.getAttribute('src')))"
                         ".filter(i => !(i.complete && i.naturalWidth > 0))"
                         ".map(i => `${i.id || i.alt}: ${i.getAttribute('src')}`)", with_source_only)


def replies(page) -> list[str]:
    return page.locator("#transcript li.system").all_inner_texts()


def chip_values(page) -> list[str]:
    return [c.split(": ", 1)[1] for c in page.locator("#chips .chip:not(.removed)").all_inner_texts()]


@pytest.fixture
def live(tmp_path):
    servers = []

    def start(editing):
        app = create_app(make_settings(tmp_path), dialogue=FakeDialogue(), editing=editing)
        start_app(app)
        server = LiveServer(app)
        servers.append((server, app))
        return server

    yield start
    for server, app in servers:
        server.stop()
        shutdown(app)


def chat(page, tmp_path: Path, texts: list[str]) -> None:
    photo = tmp_path / "face.png"
    photo.write_bytes(png_bytes((64, 64), (180, 140, 120)))
    page.set_input_files("#photo-input", str(photo))
    page.wait_for_selector("#workspace:not([hidden])")
    assert page.get_attribute("#original", "src").startswith("/api/images/")
    for number, text in enumerate(texts, start=1):
        page.fill("#turn-text", text)
        page.click("#send")
        page.wait_for_function("n => document.querySelectorAll('#transcript li.system').length >= n", arg=number)


def test_upload_and_three_turns_show_responses_chips_progress_and_edit(browser, live, tmp_path):
    server = live(fake_editing(steps=40, step_s=0.03))
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url + "/")
    chat(page, tmp_path, ["make her smile", "now black hair please", "and add lipstick"])
    page.wait_for_selector("#progress:not([hidden])", timeout=10_000)  # the last edit is running
    page.wait_for_function("document.getElementById('current').src.endsWith('.jpg')", timeout=15_000)  # preview
    page.wait_for_selector("#progress", state="hidden", timeout=30_000)
    page.wait_for_function("document.getElementById('current').src.endsWith('.png')")

    replies = page.locator("#transcript li.system").all_inner_texts()
    assert len(replies) == 3 and all(r.startswith("Done") for r in replies)
    assert "lipstick" in replies[2]
    chips = page.locator("#chips .chip").all_inner_texts()
    assert [c.split(": ")[1] for c in chips] == ["smiling", "black hair", "lipstick"]
    assert page.locator("#gallery li").count() == 3
    assert page.get_attribute("#download", "href").endswith("?download=1")
    assert page.is_visible("#original") and page.is_visible("#current")

    page.click("#undo")  # back to turn 2: two requirements
    page.wait_for_function("document.querySelectorAll('#chips .chip').length === 2")
    page.locator("#gallery li").nth(0).locator("button.continue").click()  # branch from turn 1
    assert page.is_visible("#branch-note")
    page.fill("#turn-text", "gray hair")
    page.click("#send")
    page.wait_for_function("document.querySelectorAll('#gallery li').length === 4")
    chips = page.locator("#chips .chip").all_inner_texts()
    assert [c.split(": ")[1] for c in chips] == ["smiling", "gray hair"]
    assert errors == []
    page.close()


def test_dialogue_only_page_says_so_and_still_chats(browser, live, tmp_path):
    from server.editing_setup import dialogue_only

    server = live(dialogue_only("no editing weights were found."))
    page = browser.new_page()
    page.goto(server.url + "/")
    assert "Dialogue-only mode" in page.inner_text("#notices")
    chat(page, tmp_path, ["make her smile"])
    assert page.locator("#chips .chip").all_inner_texts() == ["expression: smiling"]
    assert page.is_hidden("#progress")
    page.close()


# --- the server as `make demo` starts it -------------------------------------------------------------

@pytest.mark.slow
def test_make_demo_page_sample_three_turns_every_image_loads(strict_context, demo_server, tmp_path):
    base, _ = demo_server
    page = strict_context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(base + "/")
    page.wait_for_selector("#start:not([hidden])")
    assert page.locator("#samples .sample").count() >= 6
    wait_until(page, "[...document.querySelectorAll('#samples img')].every(i => i.complete && i.naturalWidth > 0)")
    page.click("#samples .sample >> nth=0")
    page.wait_for_selector("#workspace:not([hidden])")
    assert page.inner_text("#current-caption") == "No edit yet · showing the original"

    examples = page.locator("#examples .example")
    assert examples.all_inner_texts() == list(EXAMPLE_REQUESTS)
    for number in range(1, 4):
        examples.nth(number - 1).click()
        assert page.input_value("#turn-text") == EXAMPLE_REQUESTS[number - 1]
        page.click("#send")
        wait_until(page, f"document.querySelectorAll('#transcript li.system').length === {number}")
        wait_until(page, f"document.querySelector('#gallery li[data-index=\"{number - 1}\"] img')", timeout=240)
        wait_until(page, "document.getElementById('progress').hidden")
    assert len(chip_values(page)) == 3, page.inner_text("#chips")  # the shipped tracker read all three requests
    assert page.inner_text("#current-caption") == "Turn 3"
    assert not any("Nothing was edited" in r for r in replies(page))
    wait_until(page, "[...document.images].every(i => i.complete)")
    assert images_not_loaded(page, with_source_only=True) == []
    assert images_not_loaded(page) == ["stage-before: null", "stage-after: null"]  # the closed larger view
    assert page.locator("#gallery li img").count() == 3
    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot of the page after three turns: {shot}")

    page.click("#current-frame")  # the larger view, then before / after
    assert page.is_visible("#viewer") and page.is_visible("#stage-after") and page.is_hidden("#stage-before")
    page.click("#viewer .modes button[data-mode=compare]")
    assert page.is_visible("#stage-before") and page.is_visible("#compare-slider")
    box = page.locator("#stage").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.25, box["y"] + box["height"] / 2)
    assert abs(int(page.input_value("#compare-slider")) - 25) <= 1
    wait_until(page, "[...document.images].every(i => i.complete)")
    assert images_not_loaded(page) == []  # now every <img>, the viewer's too, has a source
    page.screenshot(path=str(tmp_path / "compare.png"))
    page.keyboard.press("Escape")
    assert page.is_hidden("#viewer")
    assert problems == []
    page.close()


# --- fake models: what the page does ---------------------------------------------------------------------

@pytest.fixture
def sample_faces(tmp_path) -> dict[str, Path]:
    folder = tmp_path / "samples"
    folder.mkdir()
    Image.new("RGB", (64, 64), (150, 110, 90)).save(folder / "ada.png")
    return {"ada": folder / "ada.png"}


def start_with_sample(page, server) -> None:
    page.goto(server.url + "/")
    page.click("#samples .sample >> nth=0")
    page.wait_for_selector("#workspace:not([hidden])")


def send(page, text: str) -> None:
    count = page.locator("#transcript li.system").count()
    page.fill("#turn-text", text)
    page.click("#send")
    wait_until(page, f"document.querySelectorAll('#transcript li.system').length > {count}")


def test_character_limit_is_shown_and_enforced_and_notices_can_be_dismissed(browser, live):
    server = live(fake_editing())
    page = browser.new_page()
    page.goto(server.url + "/")
    page.click("#start-without-photo")
    page.wait_for_selector("#workspace:not([hidden])")
    assert page.inner_text("#counter") == "0 / 1000 characters"
    page.fill("#turn-text", "smile " * 200)  # 1,200 characters: kept whole, not cut
    assert len(page.input_value("#turn-text")) == 1200
    assert "too long by 200" in page.inner_text("#counter") and page.is_disabled("#send")
    page.press("#turn-text", "Enter")  # Enter sends, but not over the limit
    assert page.locator("#transcript li.user").count() == 0
    page.fill("#turn-text", "smile " * 166)
    assert page.inner_text("#counter") == "996 / 1000 characters" and page.is_enabled("#send")
    page.press("#turn-text", "Enter")
    wait_until(page, "document.querySelectorAll('#transcript li.system').length === 1")

    page.fill("#turn-text", "   ")
    for _ in range(3):  # the same notice three times is shown once
        page.click("#send")
    assert page.locator("#notices .notice").all_inner_texts() == ["Write what to change first.\n×"]
    page.click("#notices .notice .dismiss")
    assert page.locator("#notices .notice").count() == 0
    page.close()


def test_upload_the_weights_cannot_edit_says_why_and_the_banner_stays_with_it(browser, live, sample_faces, tmp_path):
    editing = dataclasses.replace(
        fake_editing(samples=sample_faces, real_photos=False),
        real_photo_note="The fake set edits only its sample faces; `i2edit weights list` shows the others.")
    server = live(editing)
    page = browser.new_page()
    page.goto(server.url + "/")
    assert page.is_visible("#upload-note")  # said before the upload too
    photo = tmp_path / "face.png"
    photo.write_bytes(png_bytes((64, 64), (180, 140, 120)))
    page.set_input_files("#photo-input", str(photo))
    page.wait_for_selector("#workspace:not([hidden])")
    detail = page.inner_text("#editing-detail")
    assert "`" not in detail and page.inner_text("#editing-detail code") == "i2edit weights list"
    assert "not edited" in detail and page.is_visible("#editing-note.blocked")
    send(page, "make her smile")
    assert replies(page)[0].startswith("Your requirements so far: smiling. Nothing was edited: the weights")
    assert page.is_hidden("#progress") and chip_values(page) == ["smiling"]

    page.click("#note-start")  # the banner's own way to a sample face
    page.wait_for_selector("#start:not([hidden])")
    page.click("#samples .sample >> nth=0")
    page.wait_for_selector("#workspace:not([hidden])")
    assert page.is_hidden("#editing-note.blocked") and "not edited" not in page.inner_text("body")
    assert page.is_hidden("#note-start")
    page.close()


def test_cancel_retry_and_a_reload_during_an_edit(browser, live, sample_faces):
    gate = threading.Event()
    server = live(fake_editing(samples=sample_faces, gate=gate, steps=8, step_s=0.02))
    page = browser.new_page()
    start_with_sample(page, server)
    gate.set()
    send(page, "make her smile")
    wait_until(page, "document.querySelector('#gallery li[data-index=\"0\"] img')")
    gate.clear()
    send(page, "and black hair")  # its edit waits at the gate
    wait_until(page, "!document.getElementById('progress').hidden")
    page.reload()
    page.wait_for_selector("#workspace:not([hidden])")
    wait_until(page, "!document.getElementById('progress').hidden")
    assert page.inner_text("#current-caption").startswith("Turn 2: editing")

    page.click("#cancel-edit")
    wait_until(page, "!document.getElementById('job-status').hidden", timeout=15)
    assert "cancelled (cancelled at your request)" in page.inner_text("#job-status-text")
    assert page.inner_text("#current-caption") == "Turn 2: edit cancelled · showing turn 1's image"
    assert page.is_hidden("#progress")
    page.click("#retry-edit")
    wait_until(page, "!document.getElementById('progress').hidden")
    assert page.is_hidden("#job-status")
    gate.set()
    wait_until(page, "document.querySelector('#gallery li[data-index=\"1\"] img')", timeout=15)
    wait_until(page, "document.getElementById('current-caption').textContent === 'Turn 2'")
    assert page.is_hidden("#job-status") and page.is_hidden("#progress")
    page.close()


def test_chips_and_caption_follow_the_turn_viewed_in_the_gallery(browser, live, sample_faces):
    server = live(fake_editing(samples=sample_faces))
    page = browser.new_page()
    start_with_sample(page, server)
    send(page, "make her smile")
    send(page, "black hair and remove smile")
    wait_until(page, "document.querySelectorAll('#gallery li img').length === 2")
    assert chip_values(page) == ["black hair"]
    assert page.locator("#chips .chip.removed").all_inner_texts() == ["expression: smiling"]
    page.locator("#gallery li").nth(0).click()
    assert chip_values(page) == ["smiling"] and page.locator("#chips .chip.removed").count() == 0
    assert "turn 1" in page.text_content("#chips-label") and page.inner_text("#current-caption") == "Turn 1"
    assert page.locator("#transcript li.viewed").all_inner_texts()[0] == "make her smile"
    page.locator("#gallery li").nth(1).click()
    assert chip_values(page) == ["black hair"] and page.text_content("#chips-label") == "Requirements"
    page.close()


def test_earlier_conversations_are_listed_newest_first_and_reopen(browser, live, sample_faces):
    server = live(fake_editing(samples=sample_faces))
    page = browser.new_page()
    start_with_sample(page, server)
    send(page, "make her smile")
    page.click("#new-conversation")
    wait_until(page, "document.querySelectorAll('#past .past-item').length === 1")
    assert page.is_visible("#back-to-current")
    page.click("#start-without-photo")
    page.wait_for_selector("#workspace:not([hidden])")
    send(page, "wavy hair")
    page.click("#new-conversation")
    wait_until(page, "document.querySelectorAll('#past .past-item').length === 2")
    titles = page.locator("#past .past-item strong").all_inner_texts()
    assert titles == ["wavy hair", "make her smile"]
    page.locator("#past .past-item").nth(1).click()
    page.wait_for_selector("#workspace:not([hidden])")
    assert page.locator("#transcript li.user").all_inner_texts() == ["make her smile"]
    assert chip_values(page) == ["smiling"]
    page.close()


def test_a_failed_edit_says_why_and_offers_a_retry(browser, live, sample_faces):
    server = live(fake_editing(samples=sample_faces, fail="out of memory"))
    page = browser.new_page()
    start_with_sample(page, server)
    send(page, "make her smile")
    wait_until(page, "!document.getElementById('job-status').hidden")
    assert page.inner_text("#job-status-text") == "The edit of turn 1 failed: out of memory."
    assert page.inner_text("#retry-edit") == "Retry edit"
    assert page.inner_text("#current-caption") == "Turn 1: edit failed · showing the original"
    first = page.get_attribute("#retry-edit", "data-job")
    page.click("#retry-edit")  # runs again (and, with this editor, fails again)
    wait_until(page, f"!document.getElementById('job-status').hidden && "
                     f"document.getElementById('retry-edit').dataset.job !== '{first}'")
    assert page.locator("#notices .notice").count() == 0  # said once, beside the image, not as a notice
    page.close()


def test_the_critics_verdicts_follow_up_and_try_harder(browser, live, sample_faces):
    server = live(fake_editing(samples=sample_faces, hard=("smiling",), steps=6, step_s=0.02))
    page = browser.new_page()
    start_with_sample(page, server)
    send(page, "make her smile")  # the fake dialogue tracks "smile"; its critic misses the smile at first
    wait_until(page, "document.querySelector('#transcript li.follow-up') !== null")
    assert page.inner_text("#transcript li.follow-up").startswith(
        "The smile did not come out clearly; press Try harder to push it.")
    assert page.inner_text("#verdicts li.missing") == "\u2717 smiling"
    before = page.get_attribute("#current", "src")
    page.click("#transcript li.follow-up button.try-harder")
    wait_until(page, "document.querySelector('#verdicts li.found') !== null", timeout=60)
    assert page.inner_text("#verdicts li.found") == "\u2713 smiling"
    assert page.locator("#transcript li.follow-up").count() == 0
    assert page.get_attribute("#current", "src") != before and not images_not_loaded(page, with_source_only=True)
    page.close()
