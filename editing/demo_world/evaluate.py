"""`i2edit demo-world eval`: the paper's multi-turn vs single-turn editing experiment on the demo world.

Every test-split dialogue is about a face rendered from its `"profile"` (the identity comes from the
dialogue's image name). `editing.evaluation.evaluate.evaluate_editing` edits every turn in both modes with the demo
set (Table 4: AvgRel / MinRel with the demo CLIP, identity similarity); a per-turn hook adds what the
independent attribute judge sees and how far each edit is from the right answer:

- success at turn t: the judge finds every value of the turn's belief state in the edited image;
- marginal success at turn t: it finds every value added at turn t (turns that add nothing are left out),
  the turn-level view of multi-turn editing (EdiVal / MT-EditFlow's "marginal success rate");
- `lpips`: an LPIPS-style distance between the edited image and the original render computed with the
  judge's features (unit-normalised channels, squared difference, spatial mean, summed over the four
  stages), because the real LPIPS needs AlexNet weights that cannot be downloaded here;
- the true target of a turn: the same identity rendered with the turn's belief state applied to its profile
  (`data_tools.faces.apply_state`). `target_lpips` / `target_l1` are the edit's distances to it (LPIPS-style
  as above; mean absolute pixel difference with pixels in [0, 1]), beside `original_target_*` (the original
  render's) and `reconstruction_target_lpips` (the e4e inversion's, where the edit starts);
- `fid_targets`: the Fréchet distance (judge features, `fidelity`) between a mode's edits and their targets.

It also measures the generator itself (`fidelity.generator_fidelity`: random samples, reconstructions and
inversions against renders) and writes pictures: `sheets/<dialogue>.png` (original, each turn's edit per mode
and the true target under it, `sheets.DialogueSheet`) and `random_samples.png` (64 random G(z)).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from dialogue.ontology import VALUE_INDEX, BeliefState
from editing.demo_world.judge import AttributeJudge, present_values
from editing.demo_world.sheets import DialogueSheet, turn_header
from editing.weights.weight_set import DEMO_SET_DIR

log = logging.getLogger(__name__)

DEFAULT_DIALOGUES = Path("var/corpus/test.jsonl")
TARGET_FIELDS = ("target_lpips", "original_target_lpips", "reconstruction_target_lpips", "target_l1",
                 "original_target_l1")


@dataclass
class JudgeHook:
    """The per-turn hook: the judge's verdict on each edited image, its distances to the turn's true target,
    and what the dialogue's contact sheet shows. `reconstruct(image [3, H, W]) -> [3, H, W]`: the editor's
    e4e inversion of a face, drawn by the generator."""

    judge: AttributeJudge
    size: int
    reconstruct: Callable[[torch.Tensor], torch.Tensor] | None = None
    sheets: dict[str, DialogueSheet] = field(default_factory=dict)
    # the critic's verdicts {value: present?} on an image [1, 3, H, W] for a state (None: no calibrated critic)
    critic: Callable[[torch.Tensor, BeliefState], dict[str, bool | None]] | None = None

    def __post_init__(self) -> None:
        self._faces: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # the current dialogue's only
        self._targets: dict[tuple[str, int], torch.Tensor] = {}
        self.features: dict[str, list[torch.Tensor]] = {}  # mode -> judge embeddings of edits
        self.target_features: dict[str, list[torch.Tensor]] = {}

    def face(self, dialogue) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(identity, profile look, original render [3, size, size]) of the dialogue's face."""
        if dialogue.dialogue_id not in self._faces:
            self._faces = {dialogue.dialogue_id: profile_face(dialogue, self.size)}
            self._targets = {}
        return self._faces[dialogue.dialogue_id]

    def original(self, dialogue) -> torch.Tensor:
        return self.face(dialogue)[2]

    def target(self, dialogue, index: int) -> torch.Tensor:
        """The true target [3, size, size] of turn `index`: the profile with the belief state applied."""
        from data_tools.faces import apply_state, render_faces

        key = (dialogue.dialogue_id, index)
        if key not in self._targets:
            identity, look, _ = self.face(dialogue)
            goal = apply_state(look.view(1, -1), [dialogue.turns[index].belief_state.values])
            self._targets[key] = render_faces(identity.view(1, -1), goal, self.size)[0]
        return self._targets[key]

    def sheet(self, dialogue) -> DialogueSheet:
        if dialogue.dialogue_id not in self.sheets:
            sheet = DialogueSheet(dialogue.dialogue_id, self.original(dialogue))
            previous = BeliefState()
            for index, turn in enumerate(dialogue.turns):
                sheet.headers.append(turn_header(*turn.belief_state.diff(previous)))
                sheet.targets.append(self.target(dialogue, index))
                previous = turn.belief_state
            self.sheets[dialogue.dialogue_id] = sheet
        return self.sheets[dialogue.dialogue_id]

    @torch.no_grad()
    def __call__(self, dialogue, index: int, mode: str, result) -> dict[str, Any]:
        image = result.tensor.float()
        present = self.judge.present(image)[0]
        state: BeliefState = dialogue.turns[index].belief_state
        previous = dialogue.turns[index - 1].belief_state if index else BeliefState()
        added, _ = state.diff(previous)
        shows = lambda values: all(bool(present[VALUE_INDEX[v]]) for v in values)  # noqa: E731
        original, target = self.original(dialogue).unsqueeze(0), self.target(dialogue, index).unsqueeze(0)
        sheet = self.sheet(dialogue)
        if mode not in sheet.inversions:
            sheet.inversions[mode] = self.reconstruct(original[0]) if self.reconstruct else original[0]
            sheet.edits[mode], sheet.success[mode] = [], []
        success = shows(state.values) if state else None
        sheet.edits[mode].append(image[0].clamp(-1, 1))
        sheet.success[mode].append(success)
        lpips = lambda a, b: float(self.judge.feature_distance(a, b)[0])  # noqa: E731
        l1 = lambda a, b: float((a.clamp(-1, 1) - b).abs().mean() / 2)  # noqa: E731
        extra = {
            "judge_values": list(present_values(present.view(1, -1))[0]),
            "success": success,
            "marginal_success": shows(added) if added else None,
            "judge_lpips": lpips(image, original),
            "target_lpips": lpips(image, target),
            "original_target_lpips": lpips(original, target),
            "reconstruction_target_lpips": lpips(sheet.inversions[mode].unsqueeze(0), target),
            "target_l1": l1(image, target),
            "original_target_l1": l1(original, target),
        }
        verdicts = result.metrics.get("verdicts")
        if verdicts is not None:  # the critic on the edit (after refining) and on the true target
            extra["verdicts"] = verdicts
            extra["critic_rounds"] = len(result.metrics["critique"]["rounds"]) - 1
            extra["target_verdicts"] = self.critic(target, state) if self.critic else None
        if state:
            self.features.setdefault(mode, []).append(self.judge.embed(image.clamp(-1, 1)))
            self.target_features.setdefault(mode, []).append(self.judge.embed(target))
        return extra


def profile_face(dialogue, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(identity [N_IDENTITY], look [23], render [3, size, size]) of the face a dialogue is about (its profile on
    its image name's identity)."""
    from editing.demo_world.world import render_profile

    profile = dialogue.extra.get("profile")
    if not profile:
        raise ValueError(f"dialogue {dialogue.dialogue_id} has no 'profile' (the face's values); demo-world "
                         "evaluation needs dialogues written by `i2edit data build`")
    return render_profile(dialogue.image or dialogue.dialogue_id, profile, size)


def face_of(dialogue, size: int) -> torch.Tensor:
    """The render [3, size, size] of the face a dialogue is about."""
    return profile_face(dialogue, size)[2]


def _fid(edits: list[torch.Tensor], targets: list[torch.Tensor]) -> float | None:
    """Fréchet distance between two lists of judge embeddings [1, D] (None with fewer than 2 each)."""
    from editing.pipeline.metrics import frechet_distance

    if min(len(edits), len(targets)) < 2:
        return None
    return frechet_distance(torch.cat(edits).double().numpy(), torch.cat(targets).double().numpy())


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
            **critic_agreement(rows),
            **target_distances(measured, last),
            "seconds_per_edit": mean([r.seconds for r in rows]),
        }
    return out


def target_distances(measured, last: int) -> dict[str, Any]:
    """Means over the turns with a non-empty belief state of `TARGET_FIELDS`; `target_ratio` (LPIPS-style) and
    `target_ratio_l1`: the edits' mean distance to the targets over the originals' (below 1: the edits are
    closer to the right answer than the face they started from); `target_lpips_by_turn` and
    `original_target_lpips_by_turn` (turn 1 first)."""
    mean = lambda xs: (sum(xs) / len(xs)) if xs else None  # noqa: E731
    out: dict[str, Any] = {name: mean([r.extra[name] for r in measured]) for name in TARGET_FIELDS}
    ratio = lambda a, b: a / b if a is not None and b else None  # noqa: E731
    out["target_ratio"] = ratio(out["target_lpips"], out["original_target_lpips"])
    out["target_ratio_l1"] = ratio(out["target_l1"], out["original_target_l1"])
    for name in ("target_lpips", "original_target_lpips"):
        out[f"{name}_by_turn"] = [mean([r.extra[name] for r in measured if r.turn == t]) for t in range(1, last + 1)]
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


def critic_agreement(rows) -> dict[str, Any]:
    """How far the critic (CLIP against its thresholds) can be trusted, from the turns it judged:
    `critic_agrees_with_judge`: share of (edit, requested value) pairs where its verdict equals the judge's;
    `critic_on_targets`: share of (true target, requested value) pairs it judges present (every one is, by
    construction); `critic_by_value`: {value: [pairs agreeing with the judge, pairs judged, target pairs judged
    present, target pairs judged]}; `refined_edits`: share of judged edits that ran a refinement round. All None
    without a calibrated critic."""
    by_value: dict[str, list[int]] = {}
    refined = judged_edits = 0
    for r in rows:
        verdicts = r.extra.get("verdicts")
        if not verdicts:
            continue
        judged_edits += 1
        refined += bool(r.extra.get("critic_rounds"))
        seen = set(r.extra["judge_values"])
        on_target = r.extra.get("target_verdicts") or {}
        for value, verdict in verdicts.items():
            if verdict is None:
                continue
            counts = by_value.setdefault(value, [0, 0, 0, 0])
            counts[0] += verdict == (value in seen)
            counts[1] += 1
            if on_target.get(value) is not None:
                counts[2] += bool(on_target[value])
                counts[3] += 1
    total = [sum(c[i] for c in by_value.values()) for i in range(4)]
    share = lambda a, b: a / b if b else None  # noqa: E731
    return {"critic_agrees_with_judge": share(total[0], total[1]), "critic_on_targets": share(total[2], total[3]),
            "critic_by_value": {v: by_value[v] for v in VALUE_INDEX if v in by_value},
            "refined_edits": share(refined, judged_edits)}


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
    lines += ["", "Distance to the true target (the profile with the belief state applied), mean over edited turns:", "",
              "| mode | edit (LPIPS-style) | original | e4e inversion | ratio edit / original | edit (pixel L1) "
              "| original (pixel L1) | Fréchet distance edits vs targets |", "|---|---|---|---|---|---|---|---|"]
    for mode, m in result["modes"].items():
        lines.append(f"| {mode} | {fmt(m['target_lpips'])} | {fmt(m['original_target_lpips'])} "
                     f"| {fmt(m['reconstruction_target_lpips'])} | {fmt(m['target_ratio'])} | {fmt(m['target_l1'])} "
                     f"| {fmt(m['original_target_l1'])} | {fmt(m.get('fid_targets'))} |")
    fidelity = result.get("fidelity")
    if fidelity:
        lines += ["", f"The generator against {fidelity['n']} renders of random codes (Fréchet distance, judge "
                  f"features): random G(z) {fmt(fidelity['random'])}, G at the renders' own codes "
                  f"{fmt(fidelity['own_codes'])}, e4e inversions {fmt(fidelity['e4e'])}; two halves of the renders "
                  f"{fmt(fidelity['renders_split'])}."]
    lines += ["", "LPIPS-style: distance of the judge's normalised features to the original render (AlexNet LPIPS "
              "needs downloaded weights). MinRel/AvgRel: cosine of the demo CLIP (paper eq. 1-2)."]
    return "\n".join(lines) + "\n"


def evaluate_demo_world(split_file: Path | None = None, limit: int | None = None, steps: int | None = None,
                        out_dir: Path = Path("var/demo_world_eval"), modes: tuple[str, ...] = ("multi", "single"),
                        weights_dir: Path = DEMO_SET_DIR, fid_samples: int = 2000,
                        show_progress: bool = True, refine_rounds: int | None = None) -> dict[str, Any]:
    """Run the evaluation and write `demo_world.json`, `demo_world.md`, `evaluate_editing`'s Table 4 files,
    `sheets/*.png`, `random_samples.png`, `images/target/*.png` and `report.html` (`editing.evaluation.report`) into
    `out_dir`; returns the JSON object. `fid_samples`: images per set for `fidelity.generator_fidelity`
    (0 skips it). `refine_rounds`: the critic's refinement rounds per edit (None: the editor's own; 0: edits are
    judged but not refined; no effect without calibrated thresholds)."""
    from dialogue.records import read_dialogues
    from editing.demo_world.fidelity import generator_fidelity, random_sheet
    from editing.demo_world.judge import load_judge
    from editing.demo_world.settings import WORLD_LATENT, demo_editor_settings, read_settings
    from editing.evaluation.evaluate import evaluate_editing, save_image
    from editing.evaluation.report import write_report
    from editing.pipeline.editor import Editor
    from editing.pipeline.image_tensors import tensor_to_pil

    path = Path(split_file or DEFAULT_DIALOGUES)
    if not path.is_file():
        raise FileNotFoundError(f"dialogue file {path} not found; build the corpus with "
                                "`i2edit data build --out var/corpus` or pass --dialogues FILE")
    dialogues = read_dialogues(path)[:limit] if limit is not None else read_dialogues(path)
    settings = read_settings(weights_dir)
    editor = Editor.from_weights(str(weights_dir / "manifest.json"), settings=demo_editor_settings(weights_dir),
                                 align_faces=False)
    judge = load_judge(weights_dir / settings["judge"])
    size = editor.generator.size
    if refine_rounds is not None:
        editor.refine_settings = dataclasses.replace(editor.refine_settings, rounds=refine_rounds)

    def critic(image: torch.Tensor, state: BeliefState) -> dict[str, bool | None]:
        return editor.critic.verdicts(editor.scores(image, state))

    @torch.no_grad()
    def reconstruct(image: torch.Tensor) -> torch.Tensor:
        return editor.generator.synthesis(editor.e4e.encode(image.unsqueeze(0).to(editor.device)))[0].cpu().clamp(-1, 1)

    hook = JudgeHook(judge, size, reconstruct, critic=critic if editor.critic.calibrated else None)
    started = time.perf_counter()
    evaluation = evaluate_editing(
        editor, dialogues, lambda d: tensor_to_pil(face_of(d, size).unsqueeze(0)), modes=modes,
        steps=steps, out_dir=out_dir, per_turn_hook=hook, align=False, show_progress=show_progress)
    targets = {(name, turn): save_image(tensor_to_pil(target.unsqueeze(0)), out_dir,
                                        f"images/target/{name}-t{turn}.png")
               for name, sheet in hook.sheets.items() for turn, target in enumerate(sheet.targets, start=1)}
    for record in evaluation.records:  # report.html shows each turn's true target beside its edits
        record.extra["target_image"] = targets.get((record.dialogue_id, record.turn))
    evaluation.write(out_dir)
    out_dir = Path(out_dir)
    summary = summarise(evaluation.records, modes)
    for mode in modes:
        summary[mode]["fid_targets"] = _fid(hook.features.get(mode, []), hook.target_features.get(mode, []))
    sheet_paths = [str(sheet.save(out_dir / "sheets" / f"{name}.png").relative_to(out_dir))
                   for name, sheet in hook.sheets.items()]
    random_sheet(editor.generator, out_dir / "random_samples.png")
    fidelity = None
    if fid_samples:
        fidelity = generator_fidelity(editor.generator, judge, editor.e4e, n=fid_samples,
                                      own_codes=settings.get("latent") == WORLD_LATENT)
    result = {
        "modes": summary,
        "dialogues": evaluation.dialogues,
        "steps": evaluation.steps,
        "device": evaluation.device,
        "seconds": time.perf_counter() - started,
        "dialogue_file": str(path),
        "skipped_dialogues": evaluation.skipped_dialogues,
        "fidelity": fidelity,
        "sheets": sheet_paths,
        "random_sheet": "random_samples.png",
    }
    result["report"] = write_report(out_dir, evaluation.records, f"Demo-world editing evaluation of {path.name}",
                                    to_markdown(result), evaluation.originals, modes=modes).name
    (out_dir / "demo_world.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "demo_world.md").write_text(to_markdown(result))
    return result
