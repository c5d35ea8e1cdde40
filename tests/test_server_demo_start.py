"""The server started exactly as `make demo` starts it: from the repository root, the default data dir (`./var`),
the shipped dialogue model and the demo weights; only the port differs. Every image URL it hands out must load.

The other server tests use absolute temporary data dirs, which hid a relative-path bug that made every image
answer 500 on a fresh clone.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def demo_env() -> dict[str, str]:
    """The environment of a newcomer's shell: no `I2EDIT_*` setting at all."""
    return {k: v for k, v in os.environ.items() if not k.startswith("I2EDIT_")}


@pytest.fixture()
def demo_server():
    """`i2edit serve --port 0` in the repository root; yields its base URL and stops it with SIGTERM."""
    proc = subprocess.Popen([sys.executable, "-m", "server.cli", "serve", "--port", "0"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=demo_env())
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            match = re.search(r"running at (http://127\.0\.0\.1:\d+)/", line)
            if match:
                break
        else:
            raise AssertionError("the server printed no URL:\n" + "".join(lines))
        yield match.group(1), "".join(lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fetch(opener, url: str, data: dict | None = None):
    body = None if data is None else json.dumps(data).encode()
    headers = {} if data is None else {"Content-Type": "application/json"}
    return opener.open(urllib.request.Request(url, data=body, headers=headers), timeout=30)


@pytest.mark.slow
def test_make_demo_server_serves_every_image(demo_server):
    base, banner = demo_server
    assert f"{(REPO / 'var').resolve()}" in banner  # the default data dir, made absolute at start-up
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    page = fetch(opener, base + "/").read().decode()
    urls = set(re.findall(r"/api/images/[0-9a-f]{64}\.(?:png|jpg)", page))
    assert len(urls) >= 6, "the page offers no sample faces"
    conversation = json.load(fetch(opener, base + "/api/conversations", {"sample": "alex"}))
    urls.add(conversation["photo"]["url"])
    for url in sorted(urls):
        with fetch(opener, base + url) as response:
            assert response.status == 200, url
            assert response.read(8) == b"\x89PNG\r\n\x1a\n", url
