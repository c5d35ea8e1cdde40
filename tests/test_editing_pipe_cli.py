"""`i2edit edit` and `i2edit eval-editing` end to end on the fixture weights, plus the evaluation library."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from editing_pipe_fixtures import astronaut, coffee, editor, record_optimiser_texts, weight_set  # noqa: E402

from dialogue.records import read_dialogues  # noqa: E402
from editing.evaluation.evaluate import evaluate_editing, images_from_dir  # noqa: E402
from server.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    astronaut().save(folder / "astronaut.png")
    coffee().save(folder / "coffee.jpg")
    return folder


def _dialogues(path: Path) -> Path:
    turns_a = [
        {"user": "make her smile", "belief_state": {"expression": ["smiling"]}, "system": "Done."},
        {"user": "and black hair", "belief_state": {"expression": ["smiling"], "hair color": ["black hair"]},
         "system": "Here it is."},
    ]
    turns_b = [
        {"user": "hello", "belief_state": {}, "system": "Hi! What should I change?"},
        {"user": "lipstick please", "belief_state": {"makeup": ["lipstick"]}, "system": "Done."},
    ]
    lines = [{"dialogue_id": "d1", "image": "astronaut.png", "turns": turns_a},
             {"dialogue_id": "d2", "image": "astronaut.png", "turns": turns_b},
             {"dialogue_id": "d3", "image": "coffee.jpg", "turns": turns_b[1:]}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_edit_command_writes_images_and_metrics(photos, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["edit", "--image", str(photos / "astronaut.png"), "--requirements",
                 "expression: smiling; hair color: black hair", "--out", str(out), "--steps", "2",
                 "--weights-dir", str(weight_set().root), "--device", "cpu", "--json"])
    assert code == 0
    size = editor().generator.size
    from PIL import Image

    for name in ("edited.png", "reconstruction.png", "aligned.png"):
        with Image.open(out / name) as image:
            assert image.size == (size, size)
    metrics = json.loads((out / "metrics.json").read_text())
    printed = json.loads(capsys.readouterr().out)
    assert printed == metrics
    assert set(metrics["per_attribute"]) == {"smiling", "black hair"}
    assert metrics["min_rel"] <= metrics["avg_rel"]
    assert metrics["lpips"] is None and "lpips" in metrics["skipped"]
    assert metrics["steps"] == 2 and metrics["device"] == "cpu" and metrics["seconds"] > 0
    assert metrics["text"] == "a face of a person with a smile and black hair"


def test_edit_command_takes_the_text_objective(photos, tmp_path, monkeypatch):
    calls = record_optimiser_texts(monkeypatch)
    common = ["edit", "--image", str(photos / "astronaut.png"), "--requirements", "expression: smiling; "
              "hair color: black hair", "--steps", "1", "--weights-dir", str(weight_set().root), "--device", "cpu",
              "--json"]
    assert main(common + ["--out", str(tmp_path / "a")]) == 0
    assert main(common + ["--out", str(tmp_path / "b"), "--text-objective", "per_attribute"]) == 0
    assert calls == [("a face of a person with a smile and black hair",),
                     ("a face of a person with a smile", "a face of a person with black hair")]


def test_edit_command_reports_bad_input(photos, tmp_path, capsys):
    args = ["--out", str(tmp_path), "--weights-dir", str(weight_set().root), "--steps", "1", "--device", "cpu"]
    assert main(["edit", "--image", str(photos / "astronaut.png"), "--requirements", "hair color: pink",
                 *args]) == 1
    assert "unknown value 'pink'" in capsys.readouterr().err
    assert main(["edit", "--image", str(photos / "coffee.jpg"), "--requirements", "beard: goatee", *args]) == 1
    assert "no face found" in capsys.readouterr().err
    assert main(["edit", "--image", str(photos / "missing.png"), "--requirements", "beard: goatee", *args]) == 1
    assert "missing.png does not exist" in capsys.readouterr().err


def test_eval_editing_command_writes_table_4(photos, tmp_path, capsys):
    dialogues = _dialogues(tmp_path / "dialogues.jsonl")
    out = tmp_path / "eval"
    code = main(["eval-editing", "--dialogues", str(dialogues), "--images", str(photos), "--out", str(out),
                 "--steps", "1", "--weights-dir", str(weight_set().root), "--device", "cpu", "--no-align"])
    assert code == 0
    table = json.loads((out / "table4.json").read_text())
    assert set(table["table"]) == {"multi", "single"}
    for mode, row in table["table"].items():
        assert row["turns"] == 4 and row["empty_turns"] == 1  # --no-align: the coffee photo is edited too
        assert row["min_rel"] <= row["avg_rel"]
        assert row["lpips"] is None and row["fid"] is None
    assert [r["turn"] for r in table["per_turn"]["multi"]] == [1, 2]
    assert table["per_turn"]["multi"][0]["n"] == 2  # turn 1 of d1 and d3 (d2 starts empty)
    assert table["skipped_metrics"]["fid"] and table["skipped_metrics"]["lpips"]
    markdown = (out / "table4.md").read_text()
    assert "| Multi-turn | UER |" in markdown and "| Single-turn | UER |" in markdown
    assert "MinRel / AvgRel per turn" in markdown
    records = [json.loads(line) for line in (out / "turns.jsonl").read_text().splitlines()]
    assert len(records) == 2 * 5
    assert all((out / r["image_file"]).is_file() for r in records)
    assert [r["user"] for r in records[:2]] == ["make her smile", "and black hair"]
    assert "Multi-turn" in capsys.readouterr().out
    # the HTML report: the table, plots by turn, the originals and every edit, side by side per dialogue
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<td>Multi-turn</td><td>UER</td>" in html
    images = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert all((out / src).is_file() for src in images)
    assert {"report/plots/avg_rel.png", "report/plots/min_rel.png", "report/plots/identity.png"} <= set(images)
    assert {r["image_file"] for r in records} | {f"images/original/{d}.png" for d in ("d1", "d2", "d3")} <= set(images)
    assert "Not measured in this run: Success" in html
    assert sorted(p.name for p in (out / "report" / "sheets").iterdir()) == ["d1.png", "d2.png", "d3.png"]


def test_evaluate_editing_modes_hooks_and_skipped_photos(photos, tmp_path):
    d1, _, d3 = read_dialogues(_dialogues(tmp_path / "dialogues.jsonl"))
    seen = []

    def hook(dialogue, turn_index, mode, result):
        seen.append((dialogue.dialogue_id, turn_index, mode, result.text))
        return {"judge": turn_index}

    report = evaluate_editing(editor(), [d1, d3], images_from_dir(photos), modes=("single", "multi"), steps=1,
                              per_turn_hook=hook, show_progress=False)
    assert report.skipped_dialogues.keys() == {"d3"} and "no face" in report.skipped_dialogues["d3"]
    assert report.dialogues == 1
    assert seen[:2] == [("d1", 0, "single", "a face of a person with a smile"),
                        ("d1", 1, "single", "a face of a person with black hair")]
    assert ("d1", 1, "multi", "a face of a person with a smile and black hair") in seen
    assert [r.extra for r in report.records][:2] == [{"judge": 0}, {"judge": 1}]
    assert list(report.summaries) == ["single", "multi"]


def test_evaluate_editing_takes_an_image_provider_and_limit(tmp_path):
    dialogues = read_dialogues(_dialogues(tmp_path / "dialogues.jsonl"))
    asked = []

    def provider(dialogue):
        asked.append(dialogue.dialogue_id)
        return astronaut()

    report = evaluate_editing(editor(), dialogues, provider, modes=("multi",), limit=1, steps=1, align=False,
                              show_progress=False)
    assert asked == ["d1"]
    assert report.summaries["multi"].turns == 2
    with pytest.raises(ValueError, match="modes must be among"):
        evaluate_editing(editor(), dialogues, provider, modes=("both",))


def test_evaluate_editing_computes_fid_between_edited_and_original_sets(tmp_path):
    import torch

    from editing.pipeline.metrics import FidInception

    class MeanColour(torch.nn.Module):  # stands in for InceptionV3: [B, 3, H, W] -> [[B, 3, 1, 1]]
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(1))

        def forward(self, x):
            return [x.mean(dim=(2, 3), keepdim=True) * self.scale]

    d1, d2, _ = read_dialogues(_dialogues(tmp_path / "dialogues.jsonl"))
    report = evaluate_editing(editor(), [d1, d2], lambda d: astronaut(), modes=("multi",), steps=1, align=False,
                              fid_inception=FidInception(MeanColour()), show_progress=False)
    summary = report.summaries["multi"]
    assert summary.fid_images == (3, 2)  # 3 non-empty turns; one original per dialogue
    assert summary.fid is not None and summary.fid >= 0
    assert "fid" not in report.skipped_metrics
    assert "FID (multi) from 3 edited vs 2 original images" in report.to_markdown()
