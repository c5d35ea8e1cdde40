"""`i2edit demo-world eval` on a handful of dialogues: the JSON has Table 4, the judge's per-turn success, the
distances to the true targets and the generator's Fréchet distances; the contact sheets are written."""
from __future__ import annotations

import json

from dialogue.records import Dialogue, Turn, write_dialogues
from dialogue.ontology import BeliefState
from server.cli import main


def _dialogue(number: int, profile: tuple[str, ...], states: list[tuple[str, ...]]) -> Dialogue:
    turns = [Turn(user=f"please {' and '.join(s) or 'nothing'}", belief_state=BeliefState.of(*s), system="Done.")
             for s in states]
    return Dialogue(f"test-{number:06d}", f"sim/{number:06d}.png", turns, {"profile": list(profile)})


def test_eval_command_runs_on_a_few_dialogues(tmp_path, capsys):
    path = tmp_path / "test.jsonl"
    write_dialogues(path, [
        _dialogue(1, ("no smiling", "brown hair", "straight hair", "no makeup"),
                  [("smiling",), ("smiling", "black hair")]),
        _dialogue(2, ("smiling", "blond hair", "wavy hair", "lipstick"),
                  [("mustache",), ("mustache", "pale skin"), ("pale skin",)]),
    ])
    out = tmp_path / "eval"
    code = main(["demo-world", "eval", "--dialogues", str(path), "--steps", "2", "--out", str(out), "--json",
                 "--fid-samples", "64"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dialogues"] == 2
    for mode in ("multi", "single"):
        figures = result["modes"][mode]
        for key in ("avg_rel", "min_rel", "lpips", "identity"):
            assert isinstance(figures[key], float)
        assert len(figures["success_by_turn"]) == 3
        assert all(0 <= s <= 1 for s in figures["success_by_turn"])
        assert figures["marginal_success_by_turn"][2] is None  # turn 3 only removes a value
        asked = {value: counts[1] for value, counts in figures["found_by_value"].items()}
        assert asked == {"smiling": 2, "black hair": 1, "mustache": 2, "pale skin": 2}
        found = sum(counts[0] for counts in figures["found_by_value"].values())
        assert figures["values_found"] == found / 7
        # every edited turn asked for something the profile lacks: the original is away from its target
        assert figures["original_target_lpips"] > 0 and figures["original_target_l1"] > 0
        assert figures["target_ratio"] == figures["target_lpips"] / figures["original_target_lpips"]
        assert len(figures["target_lpips_by_turn"]) == 3 and isinstance(figures["fid_targets"], float)
    fidelity = result["fidelity"]
    assert fidelity["n"] == 64 and fidelity["random"] > 0 and fidelity["e4e"] > 0
    turns = [json.loads(line) for line in (out / "turns.jsonl").read_text().splitlines()]
    assert all(t["extra"]["target_lpips"] >= 0 for t in turns)
    assert sorted(result["sheets"]) == ["sheets/test-000001.png", "sheets/test-000002.png"]
    from PIL import Image

    sheet = Image.open(out / "sheets" / "test-000002.png")
    assert sheet.height > 3 * 128 and sheet.width > 4 * 128  # multi, single, target rows; original + 3 turns
    assert Image.open(out / "random_samples.png").size[0] > 8 * 128
    assert (out / "demo_world.md").is_file() and (out / "table4.json").is_file()
    # the HTML report: the demo world's table, success and target-distance plots, the true target per turn
    import re

    assert result["report"] == "report.html"
    html = (out / "report.html").read_text(encoding="utf-8")
    images = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert all((out / src).is_file() for src in images)
    assert {"report/plots/success.png", "report/plots/target_lpips.png", "images/target/test-000002-t3.png",
            "images/multi/test-000002-t3.png", "images/original/test-000002.png"} <= set(images)
    assert "<th>target</th>" in html and "Judge success per turn" in html


def test_values_found_counts_each_requested_value_once_per_edit():
    from types import SimpleNamespace

    from editing.demo_world.evaluate import values_found

    rows = [SimpleNamespace(state={"hair color": ["gray hair"], "makeup": ["lipstick", "pale skin"]},
                            extra={"judge_values": ["gray hair", "pale skin", "smiling"]}),
            SimpleNamespace(state={"makeup": ["pale skin"]}, extra={"judge_values": []}),
            SimpleNamespace(state={}, extra={"judge_values": ["smiling"]})]
    assert values_found(rows) == {"values_found": 2 / 4, "found_by_value": {
        "gray hair": [1, 1], "lipstick": [0, 1], "pale skin": [1, 2]}}
    assert values_found(rows[2:]) == {"values_found": None, "found_by_value": {}}


def test_critic_agreement_compares_the_critic_with_the_judge_and_the_true_targets():
    from types import SimpleNamespace

    from editing.demo_world.evaluate import critic_agreement

    rows = [SimpleNamespace(extra={"judge_values": ["smiling"], "critic_rounds": 1,
                                   "verdicts": {"smiling": True, "goatee": True, "bangs": None},
                                   "target_verdicts": {"smiling": True, "goatee": False, "bangs": None}}),
            SimpleNamespace(extra={"judge_values": [], "critic_rounds": 0, "verdicts": {"smiling": False},
                                   "target_verdicts": {"smiling": True}}),
            SimpleNamespace(extra={"judge_values": ["smiling"]})]  # no calibrated critic: not counted
    figures = critic_agreement(rows)
    assert figures["critic_by_value"] == {"smiling": [2, 2, 2, 2], "goatee": [0, 1, 0, 1]}
    assert figures["critic_agrees_with_judge"] == 2 / 3 and figures["critic_on_targets"] == 2 / 3
    assert figures["refined_edits"] == 1 / 2
    assert critic_agreement(rows[2:]) == {"critic_agrees_with_judge": None, "critic_on_targets": None,
                                          "critic_by_value": {}, "refined_edits": None}
