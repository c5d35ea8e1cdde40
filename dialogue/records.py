"""I2Edit-format dialogue files (JSON Lines, one dialogue a line): records, reader, validator, writer.

A line holds `{"dialogue_id": str, "image": str | null, "turns": [turn, ...], ...}`; a turn holds
`{"user": str, "belief_state": {slot: [value, ...]}, "system": str, "system_act": "next" | "request" |
"suggest" | null}`. `system_act` is optional; other keys are kept (dialogue level) or ignored (turn
level). Belief states must use the canonical slot and value names of `dialogue.ontology` and obey its
exclusive groups.

Three optional turn keys, written by the simulator, train the delexicalised answers (`dialogue.acts`):
- `update`: `{"add": [...], "remove": [...]}`, what the user asked, when that is more than the state change
  shows (a removal of a value the state did not hold); applied to the previous turn's state it must give
  this turn's state;
- `dialogue_act`: the system's act, e.g. `"edit suggest [bangs]"` (`acts.Act.to_text`);
- `system_delex`: the reply with placeholders (`"Here [subj] [is] with [added]. How about [value]?"`),
  of which `system` is one filling.

The validator reads raw bytes, so it never fails on what a file holds (invalid UTF-8, NUL bytes, a
50 MB line, truncated JSON, wrong types, deep nesting) and reports every problem, not the first.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

from dialogue.acts import PLACEHOLDERS, Act, ActError, Update, placeholders
from dialogue.ontology import EXCLUSIVE_GROUPS, SLOT_OF, SLOTS, VALUE_INDEX, BeliefState

SYSTEM_ACTS: tuple[str, ...] = ("next", "request", "suggest")
MAX_LINE_BYTES = 1 << 20  # one dialogue is a few kB; longer lines are reported, not parsed
MAX_LISTED_PROBLEMS = 50  # in a DataError message; the exception keeps them all


class DataError(ValueError):
    """A dialogue file that does not follow the I2Edit format; `problems` lists every problem."""

    def __init__(self, problems: list["Problem"]):
        self.problems = problems
        shown = "\n".join(str(p) for p in problems[:MAX_LISTED_PROBLEMS])
        more = len(problems) - MAX_LISTED_PROBLEMS
        tail = f"\n... and {more} more problems" if more > 0 else ""
        super().__init__(
            f"{len(problems)} problem(s) in I2Edit dialogue data (fix them, or run "
            f"`i2edit data validate FILE` to list them all):\n{shown}{tail}"
        )


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file. `line` is 1-based (0: the file as a whole); `turn` is 1-based."""

    path: str
    line: int
    reason: str
    dialogue_id: str | None = None
    turn: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:" if self.line else f"{self.path}:"
        if self.dialogue_id is not None or self.turn is not None:
            where += f" dialogue {self.dialogue_id if self.dialogue_id is not None else '?'}"
            if self.turn is not None:
                where += f" turn {self.turn}"
            where += ":"
        return f"{where} {self.reason}"


@dataclass(frozen=True)
class Turn:
    """One user utterance, the cumulative belief state after it, and the system's answer to it."""

    user: str
    belief_state: BeliefState
    system: str
    system_act: str | None = None
    update: Update | None = None       # what the user asked, when more than the state change shows
    act: Act | None = None             # the system's dialogue act
    system_delex: str | None = None    # the system reply with placeholders

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"user": self.user, "belief_state": self.belief_state.to_dict()}
        if self.update is not None:
            out["update"] = self.update.to_dict()
        if self.system_act is not None:
            out["system_act"] = self.system_act
        if self.act is not None:
            out["dialogue_act"] = self.act.to_text()
        out["system"] = self.system
        if self.system_delex is not None:
            out["system_delex"] = self.system_delex
        return out


@dataclass(frozen=True)
class Dialogue:
    """A dialogue about one face image; `extra` holds the line's other keys as they were."""

    dialogue_id: str
    image: str | None
    turns: list[Turn]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "dialogue_id": self.dialogue_id,
            "image": self.image,
            "turns": [t.to_json() for t in self.turns],
            **self.extra,
        }


# --- checking one parsed record ----------------------------------------------------------------

def _short(value: Any, limit: int = 60) -> str:
    """`repr` of a value cut to `limit` characters, so a huge or binary value cannot flood a message."""
    text = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: Any) -> str:
    return "null" if value is None else {dict: "object", list: "array", str: "string", bool: "boolean",
                                         int: "number", float: "number"}.get(type(value), type(value).__name__)


def _display_id(raw: Any) -> str | None:
    """The dialogue id as messages show it, or None when the record has no usable one."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    if raw.isprintable() and len(raw) <= 80:
        return raw
    return _short(raw, 80)


def _check_state(data: Any) -> tuple[list[str], BeliefState | None]:
    """Reasons the JSON belief state is wrong (empty when it is fine) and the state when it is."""
    if not isinstance(data, dict):
        return [f"'belief_state' must be an object of slot -> list of values, got {_type_name(data)}"], None
    reasons: list[str] = []
    values: set[str] = set()
    for slot, slot_values in data.items():
        if slot not in SLOTS:
            reasons.append(f"unknown slot {_short(slot)} (slots are: {', '.join(SLOTS)})")
            continue
        if not isinstance(slot_values, list):
            reasons.append(f"slot {slot!r} must hold an array of values, got {_type_name(slot_values)}")
            continue
        for value in slot_values:
            if not isinstance(value, str):
                reasons.append(f"slot {slot!r} holds a {_type_name(value)} ({_short(value)}), not a value name")
            elif value not in SLOT_OF:
                reasons.append(f"unknown value {_short(value)} in slot {slot!r}")
            elif SLOT_OF[value] != slot:
                reasons.append(f"value {value!r} is in slot {slot!r} but belongs to slot {SLOT_OF[value]!r}")
            elif value in values:
                reasons.append(f"value {value!r} is listed twice")
            else:
                values.add(value)
    for group in EXCLUSIVE_GROUPS:
        held = sorted(values & group, key=VALUE_INDEX.__getitem__)
        if len(held) > 1:
            reasons.append(f"values {', '.join(held)} exclude each other (keep one)")
    if reasons:
        return reasons, None
    return [], BeliefState(frozenset(values))


def _check_text(turn: dict, key: str, required_nonempty: bool) -> tuple[list[str], str | None]:
    if key not in turn:
        return [f"missing key {key!r}"], None
    text = turn[key]
    if not isinstance(text, str):
        return [f"{key!r} must be a string, got {_type_name(text)}"], None
    if required_nonempty and not text.strip():
        return [f"empty {key!r} text"], None
    if "\x00" in text:
        return [f"{key!r} text contains a NUL character"], None
    return [], text


def _check_annotations(turn: dict, previous: BeliefState | None, state: BeliefState | None
                       ) -> tuple[list[str], Update | None, Act | None, str | None]:
    """Reasons the optional `update`, `dialogue_act` and `system_delex` keys are wrong, and their values."""
    reasons: list[str] = []
    update = act = delex = None
    if turn.get("update") is not None:
        try:
            update = Update.from_dict(turn["update"])
        except ActError as exc:
            reasons.append(str(exc))
        else:
            if previous is not None and state is not None and update.apply(previous).state != state:
                reasons.append(f"'update' {update.to_dict()} applied to the previous turn's state does not give "
                               "this turn's 'belief_state'")
    if turn.get("dialogue_act") is not None:
        if not isinstance(turn["dialogue_act"], str):
            reasons.append(f"'dialogue_act' must be a string, got {_type_name(turn['dialogue_act'])}")
        else:
            try:
                act = Act.parse(turn["dialogue_act"])
            except ActError as exc:
                reasons.append(str(exc))
    if turn.get("system_delex") is not None:
        more, delex = _check_text(turn, "system_delex", required_nonempty=False)
        reasons += more
        unknown = [p for p in placeholders(delex or "") if p not in PLACEHOLDERS]
        if unknown:
            reasons.append(f"unknown placeholder [{unknown[0]}] in 'system_delex' (known: "
                           f"{', '.join(PLACEHOLDERS)})")
    return reasons, update, act, delex


def check_record(record: Any) -> tuple[list[tuple[int | None, str]], Dialogue | None]:
    """Check one parsed JSON line.

    Returns `(problems, dialogue)`: problems as `(turn_number_or_None, reason)` pairs, and the
    `Dialogue` when there are none.
    """
    if not isinstance(record, dict):
        return [(None, f"a line must hold a JSON object (one dialogue), got {_type_name(record)}")], None
    problems: list[tuple[int | None, str]] = []
    dialogue_id = record.get("dialogue_id")
    if "dialogue_id" not in record:
        problems.append((None, "missing key 'dialogue_id'"))
    elif not isinstance(dialogue_id, str) or not dialogue_id.strip():
        problems.append((None, f"'dialogue_id' must be a non-empty string, got {_short(dialogue_id)}"))
    image = record.get("image")
    if image is not None and not isinstance(image, str):
        problems.append((None, f"'image' must be a string or null, got {_type_name(image)}"))
    turns_data = record.get("turns")
    turns: list[Turn] = []
    if "turns" not in record:
        problems.append((None, "missing key 'turns'"))
    elif not isinstance(turns_data, list):
        problems.append((None, f"'turns' must be an array of turns, got {_type_name(turns_data)}"))
    elif not turns_data:
        problems.append((None, "'turns' is empty: a dialogue needs at least one turn"))
    else:
        previous: BeliefState | None = BeliefState()
        for number, turn in enumerate(turns_data, start=1):
            if not isinstance(turn, dict):
                problems.append((number, f"a turn must be an object, got {_type_name(turn)}"))
                previous = None
                continue
            reasons, user = _check_text(turn, "user", required_nonempty=True)
            more, system = _check_text(turn, "system", required_nonempty=False)
            reasons += more
            if "belief_state" not in turn:
                reasons.append("missing key 'belief_state'")
                state = None
            else:
                more, state = _check_state(turn["belief_state"])
                reasons += more
            act = turn.get("system_act")
            if act is not None and act not in SYSTEM_ACTS:
                reasons.append(f"unknown system_act {_short(act)} (acts are: {', '.join(SYSTEM_ACTS)}, or null)")
            more, update, dialogue_act, delex = _check_annotations(turn, previous, state)
            reasons += more
            previous = state
            problems.extend((number, r) for r in reasons)
            if not reasons:
                turns.append(Turn(user=user, belief_state=state, system=system, system_act=act, update=update,
                                  act=dialogue_act, system_delex=delex))
    if problems:
        return problems, None
    extra = {k: v for k, v in record.items() if k not in ("dialogue_id", "image", "turns")}
    return [], Dialogue(dialogue_id=dialogue_id, image=image, turns=turns, extra=extra)


# --- reading files -----------------------------------------------------------------------------

def _lines(handle: BinaryIO) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, bytes or None when longer than MAX_LINE_BYTES, length) in constant memory."""
    number = 0
    while raw := handle.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) <= MAX_LINE_BYTES or raw.endswith(b"\n"):
            yield number, raw, len(raw)
            continue
        size = len(raw)
        while (chunk := handle.readline(MAX_LINE_BYTES)) and not chunk.endswith(b"\n"):
            size += len(chunk)
        yield number, None, size + len(chunk)


def _scan(path: str | os.PathLike) -> Iterator[Problem | Dialogue]:
    """Every problem and every good dialogue of a file, in file order. Never raises on file content."""
    name = str(path)
    seen_ids: dict[str, int] = {}
    records = 0
    try:
        handle = open(path, "rb")
    except OSError as exc:
        yield Problem(name, 0, f"cannot read the file: {exc.strerror or exc}")
        return
    with handle:
        for number, raw, size in _lines(handle):
            if raw is None or size > MAX_LINE_BYTES:
                records += 1
                yield Problem(name, number, f"line is {size:,} bytes, longer than the {MAX_LINE_BYTES:,}-byte "
                                            "limit for one dialogue (is this a JSON Lines file?)")
                continue
            if not raw.strip():
                continue
            records += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield Problem(name, number, f"not UTF-8 text (bad byte at column {exc.start + 1})")
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                yield Problem(name, number, f"malformed JSON: {exc.msg} at column {exc.colno}")
                continue
            except (ValueError, RecursionError) as exc:  # huge numbers, absurd nesting
                yield Problem(name, number, f"malformed JSON: {type(exc).__name__}: {_short(str(exc))}")
                continue
            problems, dialogue = check_record(record)
            shown_id = _display_id(record.get("dialogue_id")) if isinstance(record, dict) else None
            for turn, reason in problems:
                yield Problem(name, number, reason, shown_id, turn)
            if dialogue is None:
                continue
            if dialogue.dialogue_id in seen_ids:
                yield Problem(name, number, f"duplicate dialogue_id (first used on line {seen_ids[dialogue.dialogue_id]})",
                              shown_id)
                continue
            seen_ids[dialogue.dialogue_id] = number
            yield dialogue
    if records == 0:
        yield Problem(name, 0, "the file holds no dialogues (it is empty or blank)")


def iter_problems(path: str | os.PathLike) -> Iterator[Problem]:
    """Every problem in an I2Edit-format file, in file order (nothing when the file is good)."""
    for item in _scan(path):
        if isinstance(item, Problem):
            yield item


def read_dialogues(path: str | os.PathLike) -> list[Dialogue]:
    """All dialogues of a file; raises `DataError` listing every problem before returning anything."""
    dialogues: list[Dialogue] = []
    problems: list[Problem] = []
    for item in _scan(path):
        (problems if isinstance(item, Problem) else dialogues).append(item)
    if problems:
        raise DataError(problems)
    return dialogues


def write_dialogues(path: str | os.PathLike, dialogues: Iterable[Dialogue]) -> int:
    """Write dialogues as JSON Lines (atomically: a bad record leaves any existing file untouched).

    Every record is checked first; raises `DataError` if one would not pass the validator. Returns the
    number of dialogues written.
    """
    path = Path(path)
    lines: list[str] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for number, dialogue in enumerate(dialogues, start=1):
        record = dialogue.to_json()
        found, _ = check_record(record)
        problems.extend(Problem(str(path), number, reason, _display_id(dialogue.dialogue_id), turn)
                        for turn, reason in found)
        if dialogue.dialogue_id in seen:
            problems.append(Problem(str(path), number, "duplicate dialogue_id", _display_id(dialogue.dialogue_id)))
        seen.add(dialogue.dialogue_id)
        lines.append(json.dumps(record, ensure_ascii=False))
    if not lines:
        problems.append(Problem(str(path), 0, "no dialogues to write"))
    if problems:
        raise DataError(problems)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(lines)
