"""`i2edit run-script`: run the dialogues of a prompt file (`editing.evaluation.prompt_script`) through the
tracker and the editor turn by turn, and write each turn's image, state, reply and metrics, a contact sheet per
dialogue and the HTML report.

`run_script` runs the entries that `read_script` accepted; an entry whose photo cannot be used (missing, not
an image, no face) or whose sample face does not exist fails alone and the others still run. Each finished
dialogue is written to `OUT/dialogues/<id>/dialogue.json` last, with a fingerprint of the entry, its photo
and the run's settings, so a second run skips finished dialogues (resume after an interrupt) and redoes those
whose entry or settings changed. `write_run_outputs` then writes the summary over every finished dialogue,
`errors.json` and `report.html`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

from PIL import UnidentifiedImageError

from dialogue.ontology import BeliefState
from editing.evaluation.prompt_script import EntryError, ScriptEntry

log = logging.getLogger(__name__)

SAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
RESULT_FILE = "dialogue.json"
RESULT_FORMAT = "i2edit-script-dialogue"


class EntryFailed(Exception):
    """Raised inside a run for one entry; carries its `EntryError`."""

    def __init__(self, error: EntryError):
        super().__init__(str(error))
        self.error = error


class Tracker(Protocol):
    """The part of `dialogue.DialogueModel` a run uses."""

    def step(self, history: Sequence[tuple[str, str]], user_text: str) -> tuple[BeliefState, str]: ...


@dataclass
class ScriptRun:
    """What a run did: the records of every finished dialogue (in script order), which dialogues were run now
    and which were skipped as finished, the entries that failed, and the written files."""

    records: list[Any]
    originals: dict[str, str]
    ran: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    failed: list[EntryError] = field(default_factory=list)
    input: str = "tracked"
    files: dict[str, Path] = field(default_factory=dict)


def find_sample(sample_dir: Path | None, name: str) -> Path | None:
    """The sample face `name` (file stem) in `sample_dir`, or None."""
    if sample_dir is None:
        return None
    for suffix in SAMPLE_SUFFIXES:
        path = Path(sample_dir) / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def _photo(entry: ScriptEntry, sample_dir: Path | None) -> Path:
    if entry.photo is not None:
        if not entry.photo.is_file():
            raise EntryFailed(entry.error("photo", f"file {entry.photo} not found (a relative path is read from "
                                                   "the script's folder)"))
        return entry.photo
    found = find_sample(sample_dir, entry.sample)
    if found is None:
        known = sorted(p.stem for p in Path(sample_dir).iterdir() if p.suffix.lower() in SAMPLE_SUFFIXES) \
            if sample_dir is not None and Path(sample_dir).is_dir() else []
        where = f"in {sample_dir}" if sample_dir is not None else "(this weight set has no samples/ folder)"
        raise EntryFailed(entry.error("sample", f"no sample face named {entry.sample!r} {where}"
                                                + (f"; known: {', '.join(known)}" if known else "")))
    return found


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fingerprint(entry: ScriptEntry, photo: Path, settings: Mapping[str, Any]) -> str:
    blob = json.dumps({"entry": entry.describe(), "photo_sha256": _sha256(photo), "settings": dict(settings)},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _finished(result_file: Path, fingerprint: str) -> dict[str, Any] | None:
    """The stored result of a finished dialogue when it was made from the same entry, photo and settings."""
    if not result_file.is_file():
        return None
    try:
        stored = json.loads(result_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("%s is unreadable (%s): running the dialogue again", result_file, exc)
        return None
    if stored.get("fingerprint") != fingerprint:
        log.info("%s was made from another entry, photo or settings: running the dialogue again", result_file)
        return None
    return stored


def run_script(entries: Sequence[ScriptEntry], editor, out_dir: str | Path, modes: Sequence[str] = ("multi", "single"),
               steps: int | None = None, tracker_factory: Callable[[], Tracker] | None = None,
               sample_dir: str | Path | None = None, settings: Mapping[str, Any] | None = None,
               show_progress: bool = True) -> ScriptRun:
    """Run each entry: resolve its photo, invert it, track (or take) each turn's state, edit every turn in each
    mode, and write `OUT/dialogues/<id>/` (original.png, `<mode>/t<N>.png`, sheet.png, dialogue.json).

    Args:
        entries: from `read_script`.
        editor: an `editing.Editor`.
        out_dir: the run's folder.
        modes: "multi" and/or "single".
        steps: optimiser steps per edit (default: the editor's).
        tracker_factory: builds the dialogue model on first need (entries with only fixed states need none).
        sample_dir: where sample faces are looked up by name.
        settings: what else decides the result (weights, tracker, objective...), part of each fingerprint.
        show_progress: a tqdm bar over the edits.

    Entries that fail (photo missing or without a face, unknown sample) are listed in `ScriptRun.failed`;
    the others still run. Nothing is written for a dialogue until it finishes except its images.
    """
    from tqdm import tqdm

    from editing.evaluation.contact_sheet import render_contact_sheet
    from editing.evaluation.evaluate import TurnRecord, save_image, turn_record
    from editing.evaluation.report import dialogue_views
    from editing.pipeline.align import NoFaceError

    out = Path(out_dir)
    sample_dir = Path(sample_dir) if sample_dir is not None else None
    settings = {"modes": list(modes), "steps": steps if steps is not None else editor.settings.steps,
                **dict(settings or {})}
    run = ScriptRun(records=[], originals={})
    tracker: Tracker | None = None
    sources: set[str] = set()
    bar = tqdm(total=sum(len(e.turns) for e in entries) * len(modes), desc="run-script", unit="edit",
               disable=not show_progress)
    for entry in entries:
        folder = out / "dialogues" / entry.dialogue_id
        relative = folder.relative_to(out).as_posix()
        bar.set_postfix_str(entry.dialogue_id)
        try:
            photo = _photo(entry, sample_dir)
            fingerprint = _fingerprint(entry, photo, settings)
            stored = _finished(folder / RESULT_FILE, fingerprint)
            if stored is not None:
                run.records += [TurnRecord(**r) for r in stored["records"]]
                run.originals[entry.dialogue_id] = stored["original"]
                sources.update(t["state_from"] for t in stored["turns"])
                run.resumed.append(entry.dialogue_id)
                bar.update(len(entry.turns) * len(modes))
                continue
            try:
                inversion = editor.invert(photo)
            except NoFaceError as exc:
                raise EntryFailed(entry.error("photo" if entry.photo else "sample", str(exc))) from exc
            except (UnidentifiedImageError, OSError) as exc:
                raise EntryFailed(entry.error("photo" if entry.photo else "sample",
                                              f"cannot read {photo} as an image ({exc})")) from exc
        except EntryFailed as failed:
            log.debug("entry failed: %s", failed.error)
            run.failed.append(failed.error)
            bar.update(len(entry.turns) * len(modes))
            continue

        turns: list[dict[str, Any]] = []
        history: list[tuple[str, str]] = []
        for number, turn in enumerate(entry.turns, start=1):
            reply = None
            if turn.state is not None:
                state, state_from = turn.state, "script"
            else:
                if tracker is None:
                    if tracker_factory is None:
                        raise ValueError("this script has turns without a fixed state, so it needs a dialogue model "
                                         "(tracker_factory)")
                    tracker = tracker_factory()
                state, reply = tracker.step(history, turn.user)
                state_from = "tracker"
            if turn.user is not None:
                history.append((turn.user, reply or ""))
            turns.append({"turn": number, "user": turn.user, "state": state.to_dict(), "reply": reply,
                          "state_from": state_from})
            sources.add(state_from)

        original = save_image(inversion.aligned, out, f"{relative}/original.png")
        records = []
        for mode in modes:
            previous = None
            for turn in turns:
                result = editor.edit(inversion, BeliefState.from_dict(turn["state"]), mode=mode, previous=previous,
                                     steps=steps)
                previous = result
                image = save_image(result.image, out, f"{relative}/{mode}/t{turn['turn']}.png")
                records.append(turn_record(entry.dialogue_id, turn["turn"], mode, result, image,
                                           user=turn["user"], reply=turn["reply"]))
                bar.update(1)
        view = dialogue_views(records, {entry.dialogue_id: original})[0]
        render_contact_sheet(view, out).save(folder / "sheet.png")
        _write_json_atomic(folder / RESULT_FILE, {
            "format": RESULT_FORMAT, "version": 1, "fingerprint": fingerprint, "entry": entry.describe(),
            "file": entry.file, "number": entry.number, "photo_used": str(photo), "settings": settings,
            "original": original, "sheet": f"{relative}/sheet.png", "turns": turns,
            "records": [asdict(r) for r in records]})
        run.records += records
        run.originals[entry.dialogue_id] = original
        run.ran.append(entry.dialogue_id)
    bar.close()
    run.input = "tracked+given" if sources == {"tracker", "script"} else "given" if sources == {"script"} \
        else "tracked"
    return run


def write_run_outputs(run: ScriptRun, out_dir: str | Path, modes: Sequence[str], steps: int, device: str,
                      skipped_metrics: Mapping[str, str], title: str) -> dict[str, Path]:
    """Write the run's summary (`table4.md`, `table4.json`, `turns.jsonl` over every finished dialogue),
    `errors.json` (the failed entries, an empty list when none) and `report.html`; returns their paths."""
    from editing.evaluation.evaluate import EditingEvaluation, summarise_modes
    from editing.evaluation.report import write_report

    out = Path(out_dir)
    summaries, per_turn = summarise_modes(run.records, modes)
    evaluation = EditingEvaluation(
        summaries=summaries, per_turn=per_turn, records=run.records, dialogues=len(run.originals),
        skipped_dialogues={f"entry {e.entry}": str(e) for e in run.failed},
        skipped_metrics={"fid": "run-script does not compute FID (use eval-editing on a dialogue set)",
                         **dict(skipped_metrics)},
        steps=steps, device=device, originals=run.originals, input=run.input)
    paths = evaluation.write(out)
    paths["errors"] = out / "errors.json"
    _write_json_atomic(paths["errors"], [asdict(e) | {"message": str(e)} for e in run.failed])
    paths["report"] = write_report(out, run.records, title, evaluation.to_markdown(), run.originals, modes=modes)
    run.files = paths
    return paths
