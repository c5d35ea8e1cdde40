"""`i2edit run-script`: reading prompt files (YAML, JSON, JSON Lines) with errors that name the file, the entry
and the field; a two-dialogue run on the fixture weights with the shipped dialogue model that writes every
turn and the HTML report (opened in a real Chromium: every image loads); a bad entry is reported and skipped
while the rest runs; a second run skips finished dialogues and an interrupted one resumes."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from editing_pipe_fixtures import astronaut, editor, weight_set  # noqa: E402
from test_editing_report import page_sources  # noqa: E402
from test_server_browser import CHROMIUM_ARGS, chromium_path  # noqa: E402

from dialogue.ontology import BeliefState  # noqa: E402
from editing.evaluation.prompt_script import ScriptFileError, read_script  # noqa: E402
from editing.evaluation.run_script import run_script  # noqa: E402
from server.cli import main  # noqa: E402

SCRIPT = """\
- id: smile-then-hair
  photo: photos/astronaut.png
  turns:
    - make her smile
    - user: now give her black hair
- id: fixed
  sample: astro
  states:
    - "makeup: lipstick"
    - [lipstick, goatee]
- id: typo
  photo: photos/astronaut.png
  turns:
    - make her smile
    - stat: "hair color: black hair"
- id: no-photo
  photo: photos/missing.png
  states: ["beard: goatee"]
"""


@pytest.fixture(scope="module")
def script_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("script")
    (folder / "photos").mkdir()
    (folder / "samples").mkdir()
    astronaut().save(folder / "photos" / "astronaut.png")
    astronaut().save(folder / "samples" / "astro.png")
    (folder / "script.yaml").write_text(SCRIPT)
    return folder


def _run(script_dir: Path, out: Path, *extra: str) -> int:
    return main(["run-script", str(script_dir / "script.yaml"), "--out", str(out), "--steps", "1",
                 "--weights-dir", str(weight_set().root), "--device", "cpu", "--no-align", "--quiet",
                 "--samples", str(script_dir / "samples"), *extra])


@pytest.fixture(scope="module")
def finished_run(script_dir, tmp_path_factory):
    """The script run once on the fixture weights: (output folder, exit code, stdout, stderr)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("run") / "out"
    stdout, stderr = io.StringIO(), io.StringIO()  # module fixtures cannot use capsys
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = _run(script_dir, out)
    return out, code, stdout.getvalue(), stderr.getvalue()


# --- reading ------------------------------------------------------------------------------------------------

def test_yaml_json_and_jsonl_scripts_read_the_same(tmp_path):
    entries = [{"id": "a", "photo": "face.png", "turns": ["make her smile", {"user": "now black hair"}]},
               {"sample": "alex", "states": ["expression: smiling", {"beard": ["goatee"]}, ["lipstick"]]}]
    (tmp_path / "s.json").write_text(json.dumps({"dialogues": entries}))
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(e) + "\n\n" for e in entries))
    import yaml

    (tmp_path / "s.yaml").write_text(yaml.safe_dump(entries))
    read = {suffix: read_script(tmp_path / f"s.{suffix}") for suffix in ("json", "jsonl", "yaml")}
    for suffix, (good, errors) in read.items():
        assert errors == [], suffix
        assert [e.describe() for e in good] == [e.describe() for e in read["json"][0]], suffix
    first, second = read["yaml"][0]
    assert first.dialogue_id == "a" and first.photo == tmp_path / "face.png" and first.needs_tracker
    assert [t.user for t in first.turns] == ["make her smile", "now black hair"]
    assert second.dialogue_id == "entry-2" and second.sample == "alex" and not second.needs_tracker
    assert [t.state for t in second.turns] == [BeliefState.of("smiling"), BeliefState.of("goatee"),
                                               BeliefState.of("lipstick")]
    assert [e.line for e in read["jsonl"][0]] == [1, 3] and [e.line for e in read["yaml"][0]] == [1, 6]


@pytest.mark.parametrize("entry, field, reason", [
    ({"photo": "a.png", "turns": [{"state": "hair color: pink"}]}, "turns[1].state", "unknown value 'pink'"),
    ({"photo": "a.png", "turns": ["hi", {"stat": "x"}]}, "turns[2].stat", "unknown key"),
    ({"photo": "a.png", "turns": ["hi", "  "]}, "turns[2].user", "non-empty string"),
    ({"photo": "a.png", "turns": []}, "turns", "non-empty list"),
    ({"photo": "a.png", "sample": "alex", "turns": ["hi"]}, "photo", "exactly one of"),
    ({"turns": ["hi"]}, "photo", "exactly one of"),
    ({"photo": "a.png", "turns": ["hi"], "states": ["smiling"]}, "turns", "one of the two"),
    ({"photo": "a.png", "states": [{"expression": ["smiling", "sad"]}]}, "states[1]", "exclude each other"),
    ({"id": "../up", "photo": "a.png", "turns": ["hi"]}, "id", "not a usable id"),
    ({"photo": "a.png", "turn": ["hi"]}, "turn", "unknown key"),
    ("just text", None, "an entry is a mapping"),
])
def test_a_bad_entry_is_named_by_file_entry_line_and_field(tmp_path, entry, field, reason):
    good = {"id": "ok", "photo": "a.png", "turns": ["make her smile"]}
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(entry) + "\n")
    entries, errors = read_script(path)
    assert [e.dialogue_id for e in entries] == ["ok"]
    (error,) = errors
    assert (error.file, error.entry, error.line, error.field) == (str(path), 2, 2, field)
    assert reason in error.reason
    message = str(error)
    assert message.startswith(f"{path}: entry 2 (line 2)") and reason in message
    if field:
        assert f"field {field}: " in message


def test_broken_lines_and_repeated_ids_fail_alone(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "a", "photo": "x.png", "turns": ["hi"]}\n{"id": "b", "photo": \n'
                    '{"id": "a", "photo": "y.png", "turns": ["hi"]}\n')
    entries, errors = read_script(path)
    assert [e.dialogue_id for e in entries] == ["a"]
    assert [(e.entry, e.line, e.field) for e in errors] == [(2, 2, None), (3, 3, "id")]
    assert "not JSON" in errors[0].reason and "same id as an earlier entry" in errors[1].reason


def test_an_unreadable_file_is_one_clear_error(tmp_path):
    with pytest.raises(ScriptFileError, match="no such file"):
        read_script(tmp_path / "missing.yaml")
    (tmp_path / "s.txt").write_text("- photo: a.png")
    with pytest.raises(ScriptFileError, match="unknown script format '.txt'"):
        read_script(tmp_path / "s.txt")
    (tmp_path / "s.yaml").write_text("- photo: [a.png\n")
    with pytest.raises(ScriptFileError, match="not YAML"):
        read_script(tmp_path / "s.yaml")
    (tmp_path / "s.json").write_text('{"photo": "a.png"}')
    with pytest.raises(ScriptFileError, match="must be a list of entries"):
        read_script(tmp_path / "s.json")


# --- running ------------------------------------------------------------------------------------------------

def test_two_dialogues_run_and_the_bad_entries_are_reported(finished_run, script_dir):
    out, code, stdout, stderr = finished_run
    assert code == 1  # two entries failed
    script = script_dir / "script.yaml"
    assert f"error: {script}: entry 3 (line 11), id 'typo': field turns[2].stat: unknown key" in stderr
    assert f"error: {script}: entry 4 (line 16), id 'no-photo': field photo: file " in stderr
    assert stderr.count("error: ") == 2
    assert "2 dialogues run, 0 already finished (skipped), 2 failed" in stdout
    errors = json.loads((out / "errors.json").read_text())
    assert [(e["entry"], e["dialogue_id"], e["field"]) for e in errors] == [(3, "typo", "turns[2].stat"),
                                                                             (4, "no-photo", "photo")]
    assert "photos/missing.png not found" in errors[1]["message"]

    tracked = json.loads((out / "dialogues" / "smile-then-hair" / "dialogue.json").read_text())
    assert [t["state_from"] for t in tracked["turns"]] == ["tracker", "tracker"]
    assert tracked["turns"][0]["user"] == "make her smile" and tracked["turns"][0]["reply"]
    assert tracked["turns"][0]["state"] == {"expression": ["smiling"]}  # the shipped tracker hears the smile
    assert "black hair" in tracked["turns"][1]["state"].get("hair color", [])
    fixed = json.loads((out / "dialogues" / "fixed" / "dialogue.json").read_text())
    assert [t["state"] for t in fixed["turns"]] == [{"makeup": ["lipstick"]},
                                                     {"beard": ["goatee"], "makeup": ["lipstick"]}]
    assert all(t["reply"] is None and t["state_from"] == "script" for t in fixed["turns"])
    for result in (tracked, fixed):
        records = result["records"]
        assert [(r["mode"], r["turn"]) for r in records] == [("multi", 1), ("multi", 2), ("single", 1), ("single", 2)]
        assert all((out / r["image_file"]).is_file() and r["min_rel"] <= r["avg_rel"] for r in records)
    assert (out / "dialogues" / "fixed" / "sheet.png").is_file()
    turns = [json.loads(line) for line in (out / "turns.jsonl").read_text().splitlines()]
    assert len(turns) == 8
    table = json.loads((out / "table4.json").read_text())
    assert table["table"]["multi"]["turns"] == 4 and table["input"] == "belief states tracked or given"

    html = (out / "report.html").read_text(encoding="utf-8")
    sources = page_sources(out / "report.html")
    assert all((out / src).is_file() for src in sources.images + sources.links)
    assert {r["image_file"] for r in turns} <= set(sources.images)
    assert "<td>Multi-turn</td><td>tracked+given</td>" in html
    assert "“now give her black hair”" in html and "entry 4 (line 16), id &#x27;no-photo&#x27;" in html


@pytest.mark.browser
def test_the_report_opens_in_chromium_and_every_image_loads(finished_run, system_parts):
    path = chromium_path()
    if path is None:
        system_parts.missing("no chromium executable (apt-get install chromium, or set I2EDIT_CHROMIUM)")
    sync_api = system_parts.import_module("playwright.sync_api", "playwright (python) is not installed")
    out = finished_run[0]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto((out / "report.html").as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all(
            "img", "els => els.map(e => ({src: e.getAttribute('src'), complete: e.complete, width: e.naturalWidth}))")
        browser.close()
    assert errors == []
    assert len(images) >= 8 + 2 + 3  # the edits, the originals, the plots
    broken = [i["src"] for i in images if not i["complete"] or i["width"] == 0]
    assert broken == []


def test_a_second_run_skips_finished_dialogues(finished_run, script_dir, monkeypatch, capsys):
    out = finished_run[0]
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("dialogues/*/dialogue.json")}
    assert len(stamps) == 2
    from editing.pipeline.editor import Editor

    def no_edit(*args, **kwargs):
        raise AssertionError("a finished dialogue was edited again")

    monkeypatch.setattr(Editor, "edit", no_edit)
    assert _run(script_dir, out) == 1  # the two bad entries still fail
    assert "0 dialogues run, 2 already finished (skipped), 2 failed" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.glob("dialogues/*/dialogue.json")} == stamps
    assert len((out / "turns.jsonl").read_text().splitlines()) == 8  # the report still covers both


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, script_dir):
    entries, _ = read_script(script_dir / "script.yaml")
    entries = [e for e in entries if e.dialogue_id == "fixed"]  # the sample entry, editing only
    entries.append(type(entries[0])(**{**entries[0].__dict__, "dialogue_id": "fixed-2"}))
    real = editor()
    calls = []
    interrupt_at = [5]

    class Interrupting:
        """The fixture editor, interrupted (as by Ctrl-C) at edit number `interrupt_at[0]`: the first edit of the
        second dialogue."""

        settings = real.settings

        def invert(self, photo):
            return real.invert(photo, align=False)

        def edit(self, *args, **kwargs):
            calls.append(args[1])
            if len(calls) == interrupt_at[0]:
                raise KeyboardInterrupt
            return real.edit(*args, **kwargs)

    samples = script_dir / "samples"
    with pytest.raises(KeyboardInterrupt):
        run_script(entries, Interrupting(), tmp_path, steps=1, sample_dir=samples, show_progress=False)
    assert (tmp_path / "dialogues" / "fixed" / "dialogue.json").is_file()
    assert not (tmp_path / "dialogues" / "fixed-2" / "dialogue.json").exists()
    calls.clear()
    interrupt_at[0] = None
    run = run_script(entries, Interrupting(), tmp_path, steps=1, sample_dir=samples, show_progress=False)
    assert (run.resumed, run.ran, run.failed) == (["fixed"], ["fixed-2"], [])
    assert len(calls) == 4 and len(run.records) == 8
    # a changed entry is not taken for finished
    entries[0].turns = entries[0].turns[:1]
    run = run_script(entries, Interrupting(), tmp_path, steps=1, sample_dir=samples, show_progress=False)
    assert (run.resumed, run.ran) == (["fixed-2"], ["fixed"])
