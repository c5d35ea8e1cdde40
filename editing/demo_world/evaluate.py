"""`i2edit demo-world eval`: the paper's multi-turn vs single-turn editing experiment on the demo world.

Every test-split dialogue is about a face rendered from its `"profile"` (the identity comes from the
dialogue's image name). `editing.evaluation.evaluate_editing` edits every turn in both modes with the demo
set (Table 4: AvgRel / MinRel with the demo CLIP, identity similarity); a per-turn hook adds what the
independent attribute judge sees:

- success at turn t: the judge finds every value of the turn's belief state in the edited image;
- marginal success at turn t: it finds every value added at turn t (turns that add nothing are left out),
  the turn-level view of multi-turn editing (EdiVal / MT-EditFlow's "marginal success rate");
- `lpips`: an LPIPS-style distance between the edited image and the original render computed with the
  judge's features (unit-normalised channels, squared difference, spatial mean, summed over the four
  stages), because the real LPIPS needs AlexNet weights that cannot be downloaded here.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dialogue.ontology import VALUE_INDEX, BeliefState
from editing.demo_world.judge import AttributeJudge, present_values
from editing.weights import DEMO_SET_DIR

log = logging.getLogger(__name__)

DEFAULT_DIALOGUES = Path("var/corpus/test.jsonl")


@dataclass
class JudgeHook:
    """The per-turn hook: the judge's verdict on each edited image."""

    judge: AttributeJudge
    size: int

    def __post_init__(self) -> None:
        self._originals: dict[str, torch.Tensor] = {}  # the current dialogue's original render only

    def original(self, dialogue) -> torch.Tensor:
        if dialogue.dialogue_id not in self._originals:
            self._originals = {dialogue.dialogue_id: face_of(dialogue, self.size)}
        return self._originals[dialogue.dialogue_id]

    @torch.no_grad()
    def __call__(self, dialogue, index: int, mode: str, result) -> dict[str, Any]:
        image = result.tensor.float()
        present = self.judge.present(image)[0]
        state: BeliefState = dialogue.turns[index].belief_state
        previous = dialogue.turns[index - 1].belief_state if index else BeliefState()
        added, _ = state.diff(previous)
        shows = lambda values: all(bool(present[VALUE_INDEX[v]]) for v in values)  # noqa: E731
        return {
            "judge_values": list(present_values(present.view(1, -1))[0]),
            "success": shows(state.values) if state else None,
            "marginal_success": shows(added) if added else None,
            "judge_lpips": float(self.judge.feature_distance(image, self.original(dialogue).unsqueeze(0))[0]),
        }


def face_of(dialogue, size: int) -> torch.Tensor:
    """The render [3, size, size] of the face a dialogue is about (its profile on its image name's identity)."""
    from editing.demo_world.world import render_profile

    profile = dialogue.extra.get("profile")
    if not profile:
        raise ValueError(f"dialogue {dialogue.dialogue_id} has no 'profile' (the face's values); demo-world "
                         "evaluation needs dialogues written by `i2edit data build`")
    return render_profile(dialogue.image or dialogue.dialogue_id, profile, size)[2]


def _rate(values: list[bool | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def summarise(records, modes) -> dict[str, dict[str, Any]]:
    """Per mode: Table 4 figures and the judge's success per turn (lists, turn 1 first)."""
    out: dict[str, dict[str, Any]] = {}
    for mode in modes:
        rows = [r for r in records if r.mode == mode]
        last = max((r.turn for r in rows), default=0)
        measured = [r for r in rows if r.avg_rel is not None]
        mean = lambda xs: (sum(xs) / len(xs)) if xs else None  # noqa: E731
        out[mode] = {
            "avg_rel": mean([r.avg_rel for r in measured]),
            "min_rel": mean([r.min_rel for r in measured]),
            "lpips": mean([r.extra["judge_lpips"] for r in measured]),
            "identity": mean([r.identity for r in measured if r.identity is not None]),
            "success_by_turn": [_rate([r.extra["success"] for r in rows if r.turn == t]) for t in range(1, last + 1)],
            "marginal_success_by_turn": [_rate([r.extra["marginal_success"] for r in rows if r.turn == t])
                                         for t in range(1, last + 1)],
            "turns_by_turn": [sum(1 for r in rows if r.turn == t and r.extra["success"] is not None)
                              for t in range(1, last + 1)],
            "success": _rate([r.extra["success"] for r in rows]),
            **values_found(rows),
            "seconds_per_edit": mean([r.seconds for r in rows]),
        }
    return out


def values_found(rows) -> dict[str, Any]:
    """`values_found`: share of (edit, requested value) pairs in which the judge finds the value (None when
    nothing was requested); `found_by_value`: {value: [edits that show it, edits that asked for it]}, in
    ontology order."""
    found: dict[str, list[int]] = {}
    for r in rows:
        seen = set(r.extra["judge_values"])
        for values in r.state.values():
            for value in values:
                counts = found.setdefault(value, [0, 0])
                counts[0] += value in seen
                counts[1] += 1
    pairs = [sum(c[i] for c in found.values()) for i in (0, 1)]
    return {"values_found": pairs[0] / pairs[1] if pairs[1] else None,
            "found_by_value": {v: found[v] for v in VALUE_INDEX if v in found}}


def to_markdown(result: dict[str, Any]) -> str:
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"Demo-world editing evaluation: {result['dialogues']} test dialogues, {result['steps']} optimiser steps "
             f"per edit, on {result['device']} ({result['seconds']:.0f} s).", "",
             "| Editing mode | LPIPS-style ↓ | MinRel ↑ | AvgRel ↑ | identity ↑ | judge success ↑ |",
             "|---|---|---|---|---|---|"]
    for mode, m in result["modes"].items():
        label = "Multi-turn" if mode == "multi" else "Single-turn"
        lines.append(f"| {label} | {fmt(m['lpips'])} | {fmt(m['min_rel'])} | {fmt(m['avg_rel'])} | {fmt(m['identity'])} "
                     f"| {fmt(m['success'])} |")
    turns = max(len(m["success_by_turn"]) for m in result["modes"].values())
    lines += ["", "Judge success per turn (every requested value present) / marginal success (values added that turn):", "",
              "| mode | " + " | ".join(f"turn {t}" for t in range(1, turns + 1)) + " |",
              "|---|" + "---|" * turns]
    for mode, m in result["modes"].items():
        cells = [f"{fmt(s)} / {fmt(ms)} (n={n})" for s, ms, n in
                 zip(m["success_by_turn"], m["marginal_success_by_turn"], m["turns_by_turn"])]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    lines += ["", "Requested values the judge finds in the edits, by value (found / asked for):", "",
              "| value | " + " | ".join(result["modes"]) + " |", "|---|" + "---|" * len(result["modes"])]
    asked = {v for m in result["modes"].values() for v in m["found_by_value"]}
    for value in (v for v in VALUE_INDEX if v in asked):
        cells = ["{} / {}".format(*m["found_by_value"].get(value, [0, 0])) for m in result["modes"].values()]
        lines.append(f"| {value} | " + " | ".join(cells) + " |")
    lines.append("| all values | " + " | ".join(fmt(m["values_found"]) for m in result["modes"].values()) + " |")
    lines += ["", "LPIPS-style: distance of the judge's normalised features to the original render (AlexNet LPIPS "
              "needs downloaded weights). MinRel/AvgRel: cosine of the demo CLIP (paper eq. 1-2)."]
    return "\n".join(lines) + "\n"


def evaluate_demo_world(split_file: Path | None = None, limit: int | None = None, steps: int | None = None,
                        out_dir: Path = Path("var/demo_world_eval"), modes: tuple[str, ...] = ("multi", "single"),
                        weights_dir: Path = DEMO_SET_DIR, show_progress: bool = True) -> dict[str, Any]:
    """Run the evaluation and write `demo_world.json`, `demo_world.md` and `evaluate_editing`'s Table 4
    files into `out_dir`; returns the JSON object."""
    from dialogue.records import read_dialogues
    from editing.demo_world.judge import load_judge
    from editing.demo_world.settings import demo_editor_settings, read_settings
    from editing.editor import Editor
    from editing.evaluation import evaluate_editing
    from editing.image_tensors import tensor_to_pil

    path = Path(split_file or DEFAULT_DIALOGUES)
    if not path.is_file():
        raise FileNotFoundError(f"dialogue file {path} not found; build the corpus with "
                                "`i2edit data build --out var/corpus` or pass --dialogues FILE")
    dialogues = read_dialogues(path)[:limit] if limit is not None else read_dialogues(path)
    settings = read_settings(weights_dir)
    editor = Editor.from_weights(str(weights_dir / "manifest.json"), settings=demo_editor_settings(weights_dir),
                                 align_faces=False)
    judge = load_judge(weights_dir / settings["judge"])
    hook = JudgeHook(judge, editor.generator.size)
    started = time.perf_counter()
    evaluation = evaluate_editing(
        editor, dialogues, lambda d: tensor_to_pil(face_of(d, editor.generator.size).unsqueeze(0)), modes=modes,
        steps=steps, out_dir=out_dir, per_turn_hook=hook, align=False, show_progress=show_progress)
    evaluation.write(out_dir)
    result = {
        "modes": summarise(evaluation.records, modes),
        "dialogues": evaluation.dialogues,
        "steps": evaluation.steps,
        "device": evaluation.device,
        "seconds": time.perf_counter() - started,
        "dialogue_file": str(path),
        "skipped_dialogues": evaluation.skipped_dialogues,
    }
    out_dir = Path(out_dir)
    (out_dir / "demo_world.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "demo_world.md").write_text(to_markdown(result))
    return result
