"""`i2edit serve` and `i2edit worker` as commands: waitress starts, prints the URL, serves, stops on SIGTERM."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

I2EDIT = [sys.executable, "-m", "server.cli"]


def run_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["I2EDIT_DIALOGUE_MODEL"] = str(tmp_path / "no-model")  # the command's wiring, not the model, is tested
    env.pop("I2EDIT_DEBUG", None)
    return env


def test_serve_prints_the_url_serves_and_stops_on_sigterm(tmp_path):
    data = tmp_path / "data"
    proc = subprocess.Popen([*I2EDIT, "serve", "--port", "0", "--data-dir", str(data), "--weights", "none"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=run_env(tmp_path))
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            match = re.search(r"running at (http://127\.0\.0\.1:\d+/)", line)
            if match:
                url = match.group(1)
                break
        else:
            raise AssertionError("no URL printed:\n" + "".join(lines))
        output = "".join(lines)
        assert "Dialogue-only mode" in output and "no-model" in output
        with urllib.request.urlopen(url) as page:
            assert page.status == 200 and b"i2edit" in page.read()
        request = urllib.request.Request(url + "api/conversations", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as response:
            assert response.status == 201 and json.load(response)["turns"] == []
            assert response.headers["Server"] == "i2edit"  # waitress, not Flask's development server
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (data / "i2edit.sqlite3").is_file()


def test_worker_without_weights_says_why(tmp_path):
    result = subprocess.run([*I2EDIT, "worker", "--data-dir", str(tmp_path), "--weights", "none"],
                            capture_output=True, text=True, env=run_env(tmp_path), timeout=120)
    assert result.returncode == 1
    assert "error: this worker cannot edit" in result.stderr and "Traceback" not in result.stderr


def test_bad_setting_is_an_error_not_a_traceback(tmp_path):
    env = run_env(tmp_path)
    env["I2EDIT_RATE_LIMIT"] = "plenty"
    result = subprocess.run([*I2EDIT, "serve", "--data-dir", str(tmp_path), "--port", "0"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 1 and "I2EDIT_RATE_LIMIT" in result.stderr and "Traceback" not in result.stderr
