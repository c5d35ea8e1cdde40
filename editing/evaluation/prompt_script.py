"""Multi-turn prompt files for `i2edit run-script`: YAML (`.yaml`, `.yml`), JSON (`.json`) or JSON Lines
(`.jsonl`, one entry a line). YAML and JSON hold a list of entries, or a mapping whose `dialogues` key holds
it. An entry:

    - id: smile-then-hair          # optional; letters, digits, '.', '_' and '-' (default entry-<N>)
      photo: photos/me.jpg          # a photo, relative to the script's folder (or absolute) ...
      sample: alex                  # ... or a sample face of the weight set (exactly one of the two)
      turns:                        # what the user says, turn by turn
        - make her smile
        - user: now black hair      # the same, as a mapping
        - state: "expression: smiling; hair color: black hair"   # a fixed state: no tracker for this turn
    - sample: blair
      states: [lipstick, {makeup: [lipstick], beard: [goatee]}]  # editing-only: one fixed state per turn

A turn's `state` is the whole (cumulative) belief state: "slot: value, value; slot: value" text, a
`{slot: [values]}` mapping or a list of values. Items are counted from 1 in error messages.

`read_script` checks every entry and returns the good ones with an `EntryError` (file, entry, line where
known, id, field, reason) for each bad one; only a file that cannot be read at all raises `ScriptFileError`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from dialogue.ontology import BeliefState, OntologyError, parse_requirements

SCRIPT_FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".jsonl": "jsonl"}
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
ENTRY_KEYS = ("id", "photo", "sample", "turns", "states")
TURN_KEYS = ("user", "state")


class ScriptFileError(ValueError):
    """The script as a whole cannot be read (missing, unknown format, not YAML/JSON, wrong top level)."""


@dataclass(frozen=True)
class EntryError:
    """Why one entry of a script was not run. `entry` counts from 1; `line` is 1-based (None for JSON)."""

    file: str
    entry: int
    field: str | None
    reason: str
    line: int | None = None
    dialogue_id: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}: entry {self.entry}"
        if self.line is not None:
            where += f" (line {self.line})"
        if self.dialogue_id is not None:
            where += f", id {self.dialogue_id!r}"
        return f"{where}: {f'field {self.field}: ' if self.field else ''}{self.reason}"


@dataclass(frozen=True)
class ScriptTurn:
    """What the user says (None: nothing) and the fixed state for the turn (None: track it from `user`)."""

    user: str | None
    state: BeliefState | None


@dataclass
class ScriptEntry:
    """One dialogue of a script; `photo` is resolved against the script's folder."""

    file: str
    number: int
    line: int | None
    dialogue_id: str
    photo: Path | None
    sample: str | None
    turns: list[ScriptTurn]

    @property
    def needs_tracker(self) -> bool:
        return any(turn.state is None for turn in self.turns)

    def error(self, field_name: str | None, reason: str) -> EntryError:
        return EntryError(self.file, self.number, field_name, reason, self.line, self.dialogue_id)

    def describe(self) -> dict[str, Any]:
        """The entry as JSON (for the fingerprint and the result file)."""
        return {"id": self.dialogue_id, "photo": str(self.photo) if self.photo else None, "sample": self.sample,
                "turns": [{"user": t.user, "state": t.state.to_dict() if t.state is not None else None}
                          for t in self.turns]}


class _Bad(Exception):
    def __init__(self, field_name: str | None, reason: str):
        super().__init__(reason)
        self.field = field_name
        self.reason = reason


def _load(path: Path) -> list[tuple[Any, int | None, str | None]]:
    """(raw entry, line, parse problem) per entry of the file, in order."""
    kind = SCRIPT_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ScriptFileError(f"{path}: unknown script format {path.suffix!r}; use .yaml, .yml, .json or .jsonl")
    if not path.is_file():
        raise ScriptFileError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScriptFileError(f"{path}: not UTF-8 text ({exc})") from exc
    if kind == "jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((json.loads(line), number, None))
            except json.JSONDecodeError as exc:
                rows.append((None, number, f"not JSON: {exc.msg} at column {exc.colno}"))
        return rows
    lines: list[int | None] = []
    if kind == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScriptFileError(f"{path}: not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from exc
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
            lines = _yaml_entry_lines(yaml.compose(text))
        except yaml.YAMLError as exc:
            raise ScriptFileError(f"{path}: not YAML: {exc}") from exc
    if isinstance(data, dict) and "dialogues" in data:
        data = data["dialogues"]
    if not isinstance(data, list):
        raise ScriptFileError(f"{path}: the script must be a list of entries (or hold one under 'dialogues'), "
                              f"not {type(data).__name__}")
    lines = lines if len(lines) == len(data) else [None] * len(data)
    return [(raw, line, None) for raw, line in zip(data, lines)]


def _yaml_entry_lines(node) -> list[int | None]:
    """1-based first line of each entry of a composed YAML document."""
    import yaml

    if isinstance(node, yaml.MappingNode):
        node = next((value for key, value in node.value if getattr(key, "value", None) == "dialogues"), None)
    if not isinstance(node, yaml.SequenceNode):
        return []
    return [item.start_mark.line + 1 for item in node.value]


def _state(raw: Any, field_name: str) -> BeliefState:
    try:
        if raw is None:
            return BeliefState()
        if isinstance(raw, str):
            return parse_requirements(raw)
        if isinstance(raw, Mapping):
            return BeliefState.from_dict(raw)
        if isinstance(raw, list) and all(isinstance(v, str) for v in raw):
            return BeliefState.of(*raw)
    except OntologyError as exc:
        raise _Bad(field_name, str(exc)) from exc
    raise _Bad(field_name, "a state is 'slot: value; slot: value' text, a {slot: [values]} mapping or a list of "
                           f"values, not {type(raw).__name__}")


def _turn(raw: Any, field_name: str) -> ScriptTurn:
    if isinstance(raw, str):
        raw = {"user": raw}
    if not isinstance(raw, Mapping):
        raise _Bad(field_name, f"a turn is the user's text or a mapping with 'user' and/or 'state', "
                               f"not {type(raw).__name__}")
    unknown = [k for k in raw if k not in TURN_KEYS]
    if unknown:
        raise _Bad(f"{field_name}.{unknown[0]}", f"unknown key; a turn has {' and/or '.join(TURN_KEYS)}")
    user = raw.get("user")
    if user is not None and (not isinstance(user, str) or not user.strip()):
        raise _Bad(f"{field_name}.user", "the user's text must be a non-empty string")
    state = _state(raw["state"], f"{field_name}.state") if "state" in raw else None
    if user is None and state is None:
        raise _Bad(field_name, "a turn needs the user's text ('user') or a fixed state ('state')")
    return ScriptTurn(user.strip() if user else None, state)


def _entry(raw: Any, file: str, number: int, line: int | None, base: Path) -> ScriptEntry:
    if not isinstance(raw, Mapping):
        raise _Bad(None, f"an entry is a mapping with 'photo' or 'sample' and 'turns', not {type(raw).__name__}")
    unknown = [k for k in raw if k not in ENTRY_KEYS]
    if unknown:
        raise _Bad(str(unknown[0]), f"unknown key; an entry has {', '.join(ENTRY_KEYS)}")
    dialogue_id = raw.get("id", f"entry-{number}")
    if not isinstance(dialogue_id, str) or not ID_PATTERN.fullmatch(dialogue_id):
        raise _Bad("id", f"{dialogue_id!r} is not a usable id: letters, digits, '.', '_' and '-', at most 100")
    photo, sample = raw.get("photo"), raw.get("sample")
    if (photo is None) == (sample is None):
        raise _Bad("photo", "give exactly one of 'photo' (a file) and 'sample' (a sample face's name)")
    for name, value in (("photo", photo), ("sample", sample)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise _Bad(name, "must be a non-empty string")
    if ("turns" in raw) == ("states" in raw):
        raise _Bad("turns", "give 'turns' (what the user says) or 'states' (fixed states), one of the two")
    key = "turns" if "turns" in raw else "states"
    items = raw[key]
    if not isinstance(items, list) or not items:
        raise _Bad(key, "must be a non-empty list")
    if key == "turns":
        turns = [_turn(item, f"turns[{i}]") for i, item in enumerate(items, start=1)]
    else:
        turns = [ScriptTurn(None, _state(item, f"states[{i}]")) for i, item in enumerate(items, start=1)]
    photo_path = None
    if photo is not None:
        photo_path = Path(photo).expanduser()
        photo_path = photo_path if photo_path.is_absolute() else base / photo_path
    return ScriptEntry(file, number, line, dialogue_id, photo_path, sample, turns)


def read_script(path: str | Path) -> tuple[list[ScriptEntry], list[EntryError]]:
    """The script's good entries and an error for each bad one (see the module docstring).

    Raises `ScriptFileError` when the file cannot be read at all. A repeated id fails the later entry.
    """
    path = Path(path)
    entries: list[ScriptEntry] = []
    errors: list[EntryError] = []
    seen: set[str] = set()
    for number, (raw, line, problem) in enumerate(_load(path), start=1):
        raw_id = raw.get("id") if isinstance(raw, Mapping) and isinstance(raw.get("id"), str) else None
        if problem is not None:
            errors.append(EntryError(str(path), number, None, problem, line))
            continue
        try:
            entry = _entry(raw, str(path), number, line, path.parent)
        except _Bad as bad:
            errors.append(EntryError(str(path), number, bad.field, bad.reason, line, raw_id))
            continue
        if entry.dialogue_id in seen:
            errors.append(entry.error("id", "the same id as an earlier entry; ids name the output folders"))
            continue
        seen.add(entry.dialogue_id)
        entries.append(entry)
    return entries, errors
