"""The I2Edit-format reader, writer and validator, including hostile files."""
from __future__ import annotations

import json
import random

import pytest

from dialogue.records import (
    MAX_LINE_BYTES, DataError, Dialogue, Problem, Turn, iter_problems, read_dialogues, write_dialogues,
)
from dialogue.ontology import BeliefState
from server.cli import main


def good_record(dialogue_id: str = "d-1", **extra) -> dict:
    return {
        "dialogue_id": dialogue_id, "image": "celeba_hq/1234.jpg",
        "turns": [
            {"user": "Please try to look pale.", "belief_state": {"makeup": ["pale skin"]},
             "system_act": "next", "system": "Done. What else do you want to manipulate?"},
            {"user": "Let me have a look. Emm we should try black hair.",
             "belief_state": {"makeup": ["pale skin"], "hair color": ["black hair"]},
             "system_act": "request", "system": "This is it. Do you want to manipulate the makeup?"},
        ],
        **extra,
    }


def write_lines(path, lines: list[str | bytes]) -> None:
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines) + b"\n")


def reasons(path) -> list[str]:
    return [str(p) for p in iter_problems(path)]


def test_reads_the_design_example_and_keeps_extra_keys(tmp_path):
    path = tmp_path / "ok.jsonl"
    write_lines(path, [json.dumps(good_record(profile=["smiling"])), "", json.dumps(good_record("d-2"))])
    dialogues = read_dialogues(path)
    assert [d.dialogue_id for d in dialogues] == ["d-1", "d-2"]
    first = dialogues[0]
    assert first.image == "celeba_hq/1234.jpg" and first.extra == {"profile": ["smiling"]}
    assert first.turns[1].belief_state == BeliefState.of("pale skin", "black hair")
    assert first.turns[0].system_act == "next"
    assert list(iter_problems(path)) == []


def test_write_then_read_round_trips(tmp_path):
    dialogue = Dialogue("x-1", None, [Turn("Make her smile.", BeliefState.of("smiling"), "Done.", None),
                                      Turn("Now bangs.", BeliefState.of("smiling", "bangs"), "Here.", "suggest")],
                        {"profile": ["no smiling"], "gender": "female"})
    path = tmp_path / "out" / "x.jsonl"
    assert write_dialogues(path, [dialogue]) == 1
    assert read_dialogues(path) == [dialogue]
    line = json.loads(path.read_text())
    assert "system_act" not in line["turns"][0]  # optional key omitted when unknown


def test_write_refuses_a_bad_record_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "x.jsonl"
    write_lines(path, [json.dumps(good_record())])
    before = path.read_bytes()
    bad = Dialogue("x-1", None, [Turn("   ", BeliefState(), "ok", "next")])
    with pytest.raises(DataError, match="empty 'user' text"):
        write_dialogues(path, [bad])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.jsonl"]  # no temporary file left behind


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r.pop("turns"), "missing key 'turns'"),
    (lambda r: r.pop("dialogue_id"), "missing key 'dialogue_id'"),
    (lambda r: r.update(turns=[]), "'turns' is empty"),
    (lambda r: r.update(turns="hello"), "'turns' must be an array"),
    (lambda r: r.update(image=5), "'image' must be a string or null"),
    (lambda r: r["turns"][0].update(user=""), "turn 1: empty 'user' text"),
    (lambda r: r["turns"][1].update(user=["a"]), "turn 2: 'user' must be a string, got array"),
    (lambda r: r["turns"][0].pop("system"), "turn 1: missing key 'system'"),
    (lambda r: r["turns"][0].pop("belief_state"), "turn 1: missing key 'belief_state'"),
    (lambda r: r["turns"][0].update(belief_state=["pale skin"]), "'belief_state' must be an object"),
    (lambda r: r["turns"][0].update(belief_state={"mood": ["happy"]}), "unknown slot 'mood'"),
    (lambda r: r["turns"][0].update(belief_state={"makeup": ["glitter"]}), "unknown value 'glitter'"),
    (lambda r: r["turns"][0].update(belief_state={"makeup": ["grey hair"]}), "unknown value 'grey hair'"),
    (lambda r: r["turns"][0].update(belief_state={"makeup": ["black hair"]}), "belongs to slot 'hair color'"),
    (lambda r: r["turns"][0].update(belief_state={"makeup": "pale skin"}), "must hold an array"),
    (lambda r: r["turns"][0].update(belief_state={"makeup": [3]}), "holds a number"),
    (lambda r: r["turns"][0].update(belief_state={"expression": ["smiling", "sad"]}), "exclude each other"),
    (lambda r: r["turns"][0].update(belief_state={"makeup": ["no makeup", "lipstick"]}), "exclude each other"),
    (lambda r: r["turns"][0].update(system_act="greet"), "unknown system_act 'greet'"),
    (lambda r: r["turns"].append(7), "turn 3: a turn must be an object"),
])
def test_each_kind_of_problem_is_reported_with_its_location(tmp_path, mutate, expected):
    record = good_record("bad-7")
    mutate(record)
    path = tmp_path / "bad.jsonl"
    write_lines(path, [json.dumps(good_record("ok-1")), json.dumps(record)])
    found = reasons(path)
    assert any(expected in r for r in found), found
    assert all(r.startswith(f"{path}:2:") for r in found)
    with pytest.raises(DataError):
        read_dialogues(path)


def test_problem_line_format():
    assert str(Problem("a.jsonl", 3, "empty 'user' text", "d-1", 2)) == "a.jsonl:3: dialogue d-1 turn 2: empty 'user' text"
    assert str(Problem("a.jsonl", 4, "missing key 'turns'", "d-1")) == "a.jsonl:4: dialogue d-1: missing key 'turns'"
    assert str(Problem("a.jsonl", 5, "malformed JSON: x")) == "a.jsonl:5: malformed JSON: x"
    assert str(Problem("a.jsonl", 0, "the file is empty")) == "a.jsonl: the file is empty"


def test_every_problem_of_a_file_is_reported_not_just_the_first(tmp_path):
    path = tmp_path / "many.jsonl"
    truncated = json.dumps(good_record("t"))[:-25]
    wrong_types = json.dumps({"dialogue_id": 12, "image": [], "turns": {"user": "hi"}})
    two_bad_turns = good_record("two")
    two_bad_turns["turns"][0]["user"] = ""
    two_bad_turns["turns"][1]["belief_state"] = {"beard": ["mustache", "beard"]}
    write_lines(path, [
        json.dumps(good_record("fine-1")), truncated, wrong_types, json.dumps(two_bad_turns), "[1, 2]", "null",
        json.dumps(good_record("fine-1")),  # duplicate id
    ])
    problems = list(iter_problems(path))
    lines = {p.line for p in problems}
    assert lines == {2, 3, 4, 5, 6, 7}
    assert any("malformed JSON" in p.reason for p in problems if p.line == 2)
    assert {p.turn for p in problems if p.line == 4} == {1, 2}
    assert sum(1 for p in problems if p.line == 3) == 3  # id, image and turns are each wrong
    assert any("duplicate dialogue_id (first used on line 1)" in p.reason for p in problems)
    with pytest.raises(DataError) as info:
        read_dialogues(path)
    assert info.value.problems == problems
    assert f"{path}:2: malformed JSON" in str(info.value)


def test_binary_junk_never_crashes(tmp_path):
    rng = random.Random(1)
    path = tmp_path / "junk.jsonl"
    junk = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))) for _ in range(50)]
    junk += [b"\x00\x00\x00", b"\xff\xfe{\"a\": 1}", b'{"dialogue_id": "n\\u0000", "turns": []}',
             b'{"dialogue_id": "nul", "image": null, "turns": [{"user": "a\\u0000b", "belief_state": {}, "system": ""}]}',
             b"\x1b[31m", "caf\u00e9 \u2603".encode("utf-16")]
    write_lines(path, junk)
    problems = list(iter_problems(path))
    assert problems and all(isinstance(p, Problem) for p in problems)
    assert any("not UTF-8" in p.reason for p in problems)
    assert any("NUL character" in p.reason for p in problems)


def test_absurd_json_never_crashes(tmp_path):
    path = tmp_path / "absurd.jsonl"
    write_lines(path, [
        "[" * 200_000 + "]" * 200_000,                   # nesting deeper than the recursion limit
        '{"dialogue_id": ' + "9" * 100_000 + "}",        # integer beyond Python's str->int limit
        '{"dialogue_id": NaN, "turns": [Infinity]}',
        json.dumps(good_record("ok")),
    ])
    problems = list(iter_problems(path))
    assert {p.line for p in problems} == {1, 2, 3}
    assert all("malformed JSON" in p.reason or "must be" in p.reason for p in problems)
    with pytest.raises(DataError):
        read_dialogues(path)


def test_a_50_megabyte_line_is_reported_and_the_next_line_still_read(tmp_path):
    path = tmp_path / "huge.jsonl"
    with open(path, "wb") as out:
        out.write(b'{"dialogue_id": "huge", "turns": [{"user": "')
        out.write(b"a" * (50 * 1024 * 1024))
        out.write(b'"}]}\n')
        out.write(json.dumps(good_record("after")).encode() + b"\n")
    problems = list(iter_problems(path))
    assert len(problems) == 1 and problems[0].line == 1
    assert f"{MAX_LINE_BYTES:,}-byte limit" in problems[0].reason
    assert len(str(problems[0])) < 300


def test_missing_and_empty_files(tmp_path):
    missing = list(iter_problems(tmp_path / "nope.jsonl"))
    assert len(missing) == 1 and "cannot read the file" in missing[0].reason
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"\n\n")
    assert [p.reason for p in iter_problems(empty)] == ["the file holds no dialogues (it is empty or blank)"]


def test_validate_command_exit_codes_and_output(tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    bad = tmp_path / "bad.jsonl"
    write_lines(good, [json.dumps(good_record())])
    record = good_record("bad-1")
    record["turns"][1]["user"] = " "
    write_lines(bad, [json.dumps(record), b"\xff\xff"])
    assert main(["data", "validate", str(good)]) == 0
    assert capsys.readouterr().out.strip() == f"{good}: ok"
    assert main(["data", "validate", str(good), str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"{bad}:1: dialogue bad-1 turn 2: empty 'user' text" in out
    assert f"{bad}:2: not UTF-8 text (bad byte at column 1)" in out
    assert f"{bad}: 2 problem(s)" in out


def test_the_optional_act_update_and_delexicalised_reply_round_trip_and_are_checked(tmp_path):
    from dialogue.acts import Act, Update

    record = good_record()
    record["turns"][1].update({"dialogue_act": "edit request [makeup]",
                               "system_delex": "This is it. Do you want to manipulate the [slot]?"})
    record["turns"].append({"user": "remove the goatee", "belief_state": record["turns"][1]["belief_state"],
                            "update": {"remove": ["goatee"]}, "dialogue_act": "edit next",
                            "system": "I never added a goatee.", "system_delex": "I never added [missing]."})
    path = tmp_path / "acts.jsonl"
    write_lines(path, [json.dumps(record)])
    dialogue = read_dialogues(path)[0]
    assert dialogue.turns[1].act == Act("edit", "request", slot="makeup")
    assert dialogue.turns[2].update == Update(remove=("goatee",)) and dialogue.turns[0].update is None
    write_dialogues(tmp_path / "again.jsonl", [dialogue])
    assert read_dialogues(tmp_path / "again.jsonl") == [dialogue]

    bad = json.loads(json.dumps(record))
    bad["turns"][2]["update"] = {"add": ["bangs"]}  # would add bangs, but the state lacks them
    bad["turns"][1]["dialogue_act"] = "edit suggest [wings]"
    bad["turns"][0]["system_delex"] = "Hello [name]."
    bad["turns"][0]["update"] = {"add": ["wings"]}
    write_lines(path, [json.dumps(bad)])
    found = "\n".join(reasons(path))
    assert "does not give this turn's 'belief_state'" in found and "unknown value 'wings'" in found
    assert "unknown placeholder [name]" in found and "unknown value 'wings' in 'update.add'" in found
