"""Editing evaluation over I2Edit dialogues: the paper's Table 4 (FID, LPIPS, MinRel, AvgRel per mode)
and MinRel/AvgRel per turn index (where attribute forgetting shows).

Every turn of every dialogue is edited from its gold belief state (the paper's "UER" input): in
`multi` mode from the photo's inversion towards the whole state, in `single` mode from the previous
turn's result towards what changed. Each dialogue's photo is inverted once and shared by the modes.

Conventions (also written into the report):
- a turn's AvgRel/MinRel are eq. 1-2 over that turn's requested values; the table averages them over
  turns. Turns with an empty state have nothing to measure and are counted apart (`empty_turns`).
- LPIPS: edited image vs the aligned original (AlexNet, 256 px), averaged over turns.
- FID: the set of edited images of a mode vs the set of aligned originals (one per dialogue),
  pytorch-fid Inception features. Small sets give a biased, noisy FID; the report says how many
  images each side had.
- LPIPS and FID are `null` with a reason when their weights files are absent.

`evaluate_editing` is a library function: `image_provider(dialogue) -> PIL image` supplies the photos
(`images_from_dir` reads `dialogue.image` under a folder), and `per_turn_hook(dialogue, turn_index,
mode, result)` may return a dict that is stored in the turn's record under `extra` (e.g. an attribute
judge's verdict). `turn_index` is 0-based (an index into `dialogue.turns`); reports number turns from 1.
`editing.evaluation.report.write_report` turns an evaluation's records into an HTML report with plots and
contact sheets.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from PIL import Image

from editing.pipeline.align import NoFaceError, load_photo
from editing.pipeline.editor import MODES, Editor, EditResult
from editing.pipeline.image_tensors import pil_to_tensor

log = logging.getLogger(__name__)

ImageProvider = Callable[[Any], Image.Image]
TurnHook = Callable[[Any, int, str, EditResult], "dict | None"]
# Where a run's belief states came from (Table 4's "Input" column) -> how the report's first line says it.
INPUTS = {"UER": "gold belief states (UER)", "tracked": "belief states tracked by the dialogue model",
          "given": "belief states given in the script", "tracked+given": "belief states tracked or given"}


def images_from_dir(directory: str | Path) -> ImageProvider:
    """An image provider reading each dialogue's `image` path relative to `directory`."""
    root = Path(directory)

    def provide(dialogue) -> Image.Image:
        if not dialogue.image:
            raise FileNotFoundError(f"dialogue {dialogue.dialogue_id} names no image")
        return load_photo(root / dialogue.image)

    return provide


@dataclass
class TurnRecord:
    """One edited turn. `turn` counts from 1; metrics as in `EditResult.metrics`; `image_file` is relative to
    the output folder; `user` is the turn's user text and `reply` the system's answer (None when unknown)."""

    dialogue_id: str
    turn: int
    mode: str
    state: dict[str, list[str]]
    text: str | None
    avg_rel: float | None
    min_rel: float | None
    per_attribute: dict[str, float]
    identity: float | None
    lpips: float | None
    steps: int
    seconds: float
    image_file: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    user: str | None = None
    reply: str | None = None


@dataclass
class ModeSummary:
    """One row of Table 4."""

    mode: str
    turns: int
    empty_turns: int
    fid: float | None
    lpips: float | None
    min_rel: float | None
    avg_rel: float | None
    identity: float | None
    fid_images: tuple[int, int] = (0, 0)  # (edited, originals)


@dataclass
class EditingEvaluation:
    """Table 4 per mode, MinRel/AvgRel per turn, every turn's record, and what was skipped and why.

    `originals`: dialogue id -> the aligned photo's file, relative to the output folder (when images were saved).
    `input`: a key of `INPUTS`, where the belief states came from.
    """

    summaries: dict[str, ModeSummary]
    per_turn: dict[str, list[dict[str, Any]]]
    records: list[TurnRecord]
    dialogues: int
    skipped_dialogues: dict[str, str]
    skipped_metrics: dict[str, str]
    steps: int
    device: str
    originals: dict[str, str] = field(default_factory=dict)
    input: str = "UER"

    def to_json(self) -> dict[str, Any]:
        return {
            "table": {mode: asdict(s) for mode, s in self.summaries.items()},
            "per_turn": self.per_turn,
            "dialogues": self.dialogues,
            "skipped_dialogues": self.skipped_dialogues,
            "skipped_metrics": self.skipped_metrics,
            "steps": self.steps,
            "device": self.device,
            "input": INPUTS[self.input],
            "originals": self.originals,
        }

    def to_markdown(self) -> str:
        def fmt(value: float | None, digits: int = 3) -> str:
            return "n/a" if value is None else f"{value:.{digits}f}"

        lines = [
            f"Editing evaluation: {self.dialogues} dialogues, {INPUTS[self.input]}, {self.steps} steps per "
            f"edit, on {self.device}.",
            "",
            "| Editing mode | Input | FID ↓ | LPIPS ↓ | MinRel ↑ | AvgRel ↑ | identity ↑ | turns |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for mode, s in self.summaries.items():
            label = "Multi-turn" if mode == "multi" else "Single-turn"
            lines.append(f"| {label} | {self.input} | {fmt(s.fid)} | {fmt(s.lpips)} | {fmt(s.min_rel)} "
                         f"| {fmt(s.avg_rel)} "
                         f"| {fmt(s.identity)} | {s.turns} |")
        lines += ["", "MinRel / AvgRel per turn:", ""]
        turns = sorted({row["turn"] for rows in self.per_turn.values() for row in rows})
        lines.append("| mode | " + " | ".join(f"turn {t}" for t in turns) + " |")
        lines.append("|---|" + "---|" * len(turns))
        for mode, rows in self.per_turn.items():
            by_turn = {row["turn"]: row for row in rows}
            cells = [f"{fmt(by_turn[t]['min_rel'])} / {fmt(by_turn[t]['avg_rel'])}" if t in by_turn else "–"
                     for t in turns]
            lines.append(f"| {mode} | " + " | ".join(cells) + " |")
        notes = [f"- {name} skipped: {reason}" for name, reason in self.skipped_metrics.items()]
        notes += [f"- dialogue {d} skipped: {reason}" for d, reason in self.skipped_dialogues.items()]
        for mode, s in self.summaries.items():
            if s.fid is not None:
                notes.append(f"- FID ({mode}) from {s.fid_images[0]} edited vs {s.fid_images[1]} original images")
            if s.empty_turns:
                notes.append(f"- {mode}: {s.empty_turns} turns with an empty state were not measured")
        if notes:
            lines += ["", "Notes:", "", *notes]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write `table4.md`, `table4.json` and `turns.jsonl` into `out_dir`; returns their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"markdown": out / "table4.md", "json": out / "table4.json", "turns": out / "turns.jsonl"}
        paths["markdown"].write_text(self.to_markdown())
        paths["json"].write_text(json.dumps(self.to_json(), indent=2) + "\n")
        with paths["turns"].open("w") as f:
            for record in self.records:
                f.write(json.dumps(asdict(record)) + "\n")
        return paths


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(kept)) if kept else None


def evaluate_editing(
    editor: Editor,
    dialogues: Iterable[Any],
    image_provider: ImageProvider,
    modes: Iterable[str] = MODES,
    limit: int | None = None,
    steps: int | None = None,
    out_dir: str | Path | None = None,
    per_turn_hook: TurnHook | None = None,
    fid_inception=None,
    fid_skipped: str | None = "no FID Inception network given",
    align: bool | None = None,
    show_progress: bool = True,
) -> EditingEvaluation:
    """Edit every turn of every dialogue in each mode and summarise (see the module docstring).

    Args:
        editor: a loaded `Editor`.
        dialogues: `dialogue.records.Dialogue` records (anything with `dialogue_id`, `image` and `turns`
            whose items have a `belief_state` BeliefState).
        image_provider: dialogue -> PIL photo.
        modes: subset of ("multi", "single").
        limit: edit at most this many dialogues.
        steps: optimiser steps per edit (default: the editor's).
        out_dir: when given, edited images are saved under `out_dir/images/<mode>/` and the aligned photos
            under `out_dir/images/original/`.
        per_turn_hook: called after every edit; a returned dict goes into the record's `extra`.
        fid_inception: an `editing.pipeline.metrics.FidInception`, or None to skip FID (`fid_skipped` says why).
        align: passed to `Editor.invert` (None: the editor's default).
        show_progress: tqdm bar over edits.

    Photos without a detectable face, or missing photo files, skip their dialogue (listed in the report).
    """
    from tqdm import tqdm

    from editing.pipeline.metrics import frechet_distance

    modes = tuple(modes)
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"modes must be among {', '.join(MODES)}; got {', '.join(modes) or 'none'}")
    dialogues = list(dialogues)[:limit] if limit is not None else list(dialogues)
    total_edits = sum(len(d.turns) for d in dialogues) * len(modes)
    images_dir = Path(out_dir) / "images" if out_dir is not None else None

    records: list[TurnRecord] = []
    originals: dict[str, str] = {}
    skipped_dialogues: dict[str, str] = {}
    edited_features: dict[str, list[np.ndarray]] = {m: [] for m in modes}
    original_features: list[np.ndarray] = []
    bar = tqdm(total=total_edits, desc="editing turns", unit="edit", disable=not show_progress)
    for dialogue in dialogues:
        try:
            inversion = editor.invert(image_provider(dialogue), align=align)
        except (NoFaceError, FileNotFoundError) as exc:
            log.warning("skipping dialogue %s: %s", dialogue.dialogue_id, exc)
            skipped_dialogues[dialogue.dialogue_id] = str(exc)
            bar.update(len(dialogue.turns) * len(modes))
            continue
        if fid_inception is not None:
            original_features.append(fid_inception.features(pil_to_tensor(inversion.aligned)))
        if images_dir is not None:
            originals[dialogue.dialogue_id] = save_image(inversion.aligned, out_dir,
                                                         f"images/original/{dialogue.dialogue_id}.png")
        for mode in modes:
            previous: EditResult | None = None
            for index, turn in enumerate(dialogue.turns):
                result = editor.edit(inversion, turn.belief_state, mode=mode, previous=previous, steps=steps)
                previous = result
                image_file = None
                if images_dir is not None:
                    image_file = save_image(result.image, out_dir,
                                            f"images/{mode}/{dialogue.dialogue_id}-t{index + 1}.png")
                record = turn_record(dialogue.dialogue_id, index + 1, mode, result, image_file, user=turn.user)
                if per_turn_hook is not None:
                    record.extra.update(per_turn_hook(dialogue, index, mode, result) or {})
                records.append(record)
                if fid_inception is not None and turn.belief_state:
                    edited_features[mode].append(fid_inception.features(result.tensor))
                bar.update(1)
    bar.close()

    skipped_metrics = dict(editor.skipped)
    if fid_inception is None and fid_skipped:
        skipped_metrics["fid"] = fid_skipped
    summaries, per_turn = summarise_modes(records, modes)
    for mode in modes:
        sizes = (len(edited_features[mode]), len(original_features))
        summaries[mode].fid_images = sizes
        if fid_inception is None:
            continue
        if min(sizes) >= 2:
            summaries[mode].fid = frechet_distance(np.concatenate(edited_features[mode]),
                                                   np.concatenate(original_features))
        else:
            skipped_metrics[f"fid ({mode})"] = (f"FID needs at least 2 edited and 2 original images, "
                                                f"got {sizes[0]} and {sizes[1]}")
    return EditingEvaluation(
        summaries=summaries, per_turn=per_turn, records=records, dialogues=len(dialogues) - len(skipped_dialogues),
        skipped_dialogues=skipped_dialogues, skipped_metrics=skipped_metrics,
        steps=steps if steps is not None else editor.settings.steps, device=str(editor.device), originals=originals)


def save_image(image: Image.Image, out_dir: str | Path, relative: str) -> str:
    """Save `image` as `out_dir/relative` (folders made as needed); returns `relative`."""
    path = Path(out_dir) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return relative


def turn_record(dialogue_id: str, turn: int, mode: str, result: EditResult, image_file: str | None = None,
                user: str | None = None, reply: str | None = None) -> TurnRecord:
    """The record of one edit (`turn` from 1); a calibrated critic's per-value verdicts go into `extra`."""
    m = result.metrics
    extra = {"verdicts": dict(m["verdicts"])} if m.get("verdicts") else {}
    return TurnRecord(
        dialogue_id=dialogue_id, turn=turn, mode=mode, state=result.state.to_dict(), text=result.text,
        avg_rel=m["avg_rel"], min_rel=m["min_rel"], per_attribute=m["per_attribute"], identity=m["identity"],
        lpips=m["lpips"], steps=result.steps, seconds=result.seconds, image_file=image_file, extra=extra, user=user,
        reply=reply)


def summarise_modes(records: list[TurnRecord], modes: Iterable[str]
                    ) -> tuple[dict[str, ModeSummary], dict[str, list[dict[str, Any]]]]:
    """Table 4 rows (without FID) and MinRel/AvgRel per turn index, per mode, from turn records."""
    summaries: dict[str, ModeSummary] = {}
    per_turn: dict[str, list[dict[str, Any]]] = {}
    for mode in modes:
        measured = [r for r in records if r.mode == mode and r.avg_rel is not None]
        summaries[mode] = ModeSummary(
            mode=mode, turns=len(measured),
            empty_turns=sum(1 for r in records if r.mode == mode and r.avg_rel is None),
            fid=None, lpips=_mean(r.lpips for r in measured), min_rel=_mean(r.min_rel for r in measured),
            avg_rel=_mean(r.avg_rel for r in measured), identity=_mean(r.identity for r in measured))
        per_turn[mode] = [
            {"turn": t, "n": len(rows), "min_rel": _mean(r.min_rel for r in rows),
             "avg_rel": _mean(r.avg_rel for r in rows)}
            for t in sorted({r.turn for r in measured})
            for rows in [[r for r in measured if r.turn == t]]
        ]
    return summaries, per_turn
