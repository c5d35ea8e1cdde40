"""The page in a real headless Chromium (Debian's, driven by Playwright): upload a photo, chat three turns,
see the responses, the requirement chips, the progress bar with its live preview and the edited image."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from server_fixtures import FakeDialogue, LiveServer, fake_editing, make_settings, png_bytes  # noqa: E402

from server.app import create_app, shutdown  # noqa: E402

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
def browser(system_parts):
    path = chromium_path()
    if path is None:
        system_parts.missing("no chromium executable (apt-get install chromium, or set I2EDIT_CHROMIUM)")
    sync_api = system_parts.import_module("playwright.sync_api", "playwright (python) is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        # Playwright's wait_for_function evaluates strings, which the page's CSP forbids (on purpose)
        context = browser.new_context(bypass_csp=True)
        yield context
        context.close()
        browser.close()


@pytest.fixture
def live(tmp_path):
    servers = []

    def start(editing):
        app = create_app(make_settings(tmp_path), dialogue=FakeDialogue(), editing=editing)
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
