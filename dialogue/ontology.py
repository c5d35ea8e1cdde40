"""The I2Edit ontology (paper Table 1) and the immutable `BeliefState`.

Five slots, 23 values. A slot holds a set of values. Values are unique across slots, so a state is
a set of values and each value's slot is implied. Mutually exclusive groups: adding one value of a
group removes the others. Canonical order of slots and of values is the table order.

No torch here: everything in the project imports this module.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

SLOT_VALUES: dict[str, tuple[str, ...]] = {
    "expression": ("smiling", "angry", "sad", "no smiling"),
    "hair color": ("brown hair", "blond hair", "black hair", "gray hair"),
    "hairstyle": ("straight hair", "wavy hair", "receding hairline", "sideburns", "bangs"),
    "beard": ("mustache", "goatee"),
    "makeup": (
        "no makeup", "heavy makeup", "lipstick", "earrings",
        "bushy eyebrows", "big lips", "rosy cheeks", "pale skin",
    ),
}
SLOTS: tuple[str, ...] = tuple(SLOT_VALUES)
VALUES: tuple[str, ...] = tuple(v for values in SLOT_VALUES.values() for v in values)
SLOT_OF: dict[str, str] = {v: slot for slot, values in SLOT_VALUES.items() for v in values}
VALUE_INDEX: dict[str, int] = {v: i for i, v in enumerate(VALUES)}

EXCLUSIVE_GROUPS: tuple[frozenset[str], ...] = (
    frozenset(SLOT_VALUES["expression"]),
    frozenset(SLOT_VALUES["hair color"]),
    frozenset({"straight hair", "wavy hair"}),
    frozenset({"no makeup", "heavy makeup"}),
    frozenset({"no makeup", "lipstick"}),
)

SPAN_START, SPAN_END = "<sos_b>", "<eos_b>"


class OntologyError(ValueError):
    """A slot, value or state that the ontology does not allow."""


def conflicts_of(value: str) -> frozenset[str]:
    """Values that cannot be held together with `value` (its exclusive-group partners)."""
    out: set[str] = set()
    for group in EXCLUSIVE_GROUPS:
        if value in group:
            out |= group
    out.discard(value)
    return frozenset(out)


# --- synonym normalisation -------------------------------------------------------------------

def _key(text: str) -> str:
    """Lower-case, unify hyphens/underscores/spacing and 'make-up', drop 'wearing'/'a'/'the'."""
    text = text.lower().strip().replace("make-up", "makeup").replace("make up", "makeup")
    text = re.sub(r"[-_/]+", " ", text)
    text = re.sub(r"[^\w\s']", " ", text)
    text = re.sub(r"\b(wearing|wears|wear|with|a|an|the|some)\b", " ", text)
    return re.sub(r"\s+", " ", text).strip()


_VALUE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "smiling": ("smile", "smiles", "smiley", "smiling face"),
    "angry": ("anger", "angry face", "mad"),
    "sad": ("sadness", "sad face", "unhappy"),
    "no smiling": ("no smile", "not smiling", "not smile", "without smile", "neutral expression"),
    "brown hair": ("brown", "brunette", "brunette hair"),
    "blond hair": ("blond", "blonde", "blonde hair"),
    "black hair": ("black",),
    "gray hair": ("gray", "grey", "grey hair", "gray hairs", "grey hairs", "silver hair"),
    "straight hair": ("straight",),
    "wavy hair": ("wavy", "waves"),
    "receding hairline": ("receding hair line", "receding hair", "receding hairlines", "receding"),
    "sideburns": ("side burns", "sideburn", "side burn"),
    "bangs": ("bang", "fringe"),
    "mustache": ("moustache", "mustaches", "moustaches"),
    "goatee": ("goatees", "goatee beard"),
    "no makeup": ("without makeup", "no makeups", "makeup free", "bare face"),
    "heavy makeup": ("heavy makeups", "lots of makeup", "full makeup"),
    "lipstick": ("lipsticks", "lip stick", "lip sticks"),
    "earrings": ("earring", "ear rings", "ear ring"),
    "bushy eyebrows": ("bushy eyebrow", "bushy brows", "bushy brow", "thick eyebrows"),
    "big lips": ("big lip", "full lips", "large lips", "plump lips"),
    "rosy cheeks": ("rosy cheek", "rosy", "pink cheeks", "blush"),
    "pale skin": ("pale", "pale skins", "pale face"),
}
_SLOT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "expression": ("expressions", "facial expression", "emotion"),
    "hair color": ("hair colour", "haircolor", "haircolour", "hair colors", "hair colours"),
    "hairstyle": ("hair style", "hairstyles", "hair styles"),
    "beard": ("beards", "facial hair"),
    "makeup": ("makeups", "cosmetics"),
}
_VALUE_BY_KEY: dict[str, str] = {}
for _canon, _syns in _VALUE_SYNONYMS.items():
    for _s in (_canon, *_syns):
        _VALUE_BY_KEY[_key(_s)] = _canon
_SLOT_BY_KEY: dict[str, str] = {}
for _canon, _syns in _SLOT_SYNONYMS.items():
    for _s in (_canon, *_syns):
        _SLOT_BY_KEY[_key(_s)] = _canon
assert set(_VALUE_BY_KEY.values()) == set(VALUES) and set(_SLOT_BY_KEY.values()) == set(SLOTS)


def normalize_value(text: str) -> str | None:
    """The canonical value for `text` ("Moustache", "wearing lipsticks", "grey hair"), or None."""
    return _VALUE_BY_KEY.get(_key(text))


def normalize_slot(text: str) -> str | None:
    """The canonical slot for `text` ("Hair colour", "make-up"), or None."""
    return _SLOT_BY_KEY.get(_key(text))


def canonical_value(text: str) -> str:
    """Like `normalize_value` but raises `OntologyError` naming the text when it is unknown."""
    value = normalize_value(text)
    if value is None:
        raise OntologyError(f"unknown value {text!r}; known values: {', '.join(VALUES)}")
    return value


# --- belief state ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Dropped:
    """Something a lenient parse left out of the state, and why."""

    text: str
    reason: str


@dataclass(frozen=True)
class BeliefState:
    """The user's global edit requirements: an immutable set of canonical values.

    Construct with `BeliefState.of(...)`, `from_dict` or `from_span`; update with `add`, `change` and
    `remove`, each returning a new state. Equality is set equality (order carries no meaning).
    """

    _values: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        unknown = [v for v in self._values if v not in SLOT_OF]
        if unknown:
            raise OntologyError(f"unknown values {sorted(unknown)}")
        for group in EXCLUSIVE_GROUPS:
            held = self._values & group
            if len(held) > 1:
                raise OntologyError(f"values {sorted(held, key=VALUE_INDEX.get)} exclude each other")

    # construction
    @classmethod
    def of(cls, *values: str) -> "BeliefState":
        """A state holding `values` (synonyms allowed); exclusive values raise `OntologyError`."""
        return cls(frozenset(canonical_value(v) for v in values))

    @classmethod
    def from_dict(cls, data: Mapping[str, Iterable[str]]) -> "BeliefState":
        """Strict reading of the JSON form `{slot: [values]}`; raises `OntologyError` on any problem."""
        if not isinstance(data, Mapping):
            raise OntologyError(f"belief state must be an object of slot -> list of values, got {type(data).__name__}")
        values: set[str] = set()
        for raw_slot, raw_values in data.items():
            slot = normalize_slot(raw_slot) if isinstance(raw_slot, str) else None
            if slot is None:
                raise OntologyError(f"unknown slot {raw_slot!r}; known slots: {', '.join(SLOTS)}")
            if isinstance(raw_values, str) or not isinstance(raw_values, (list, tuple)):
                raise OntologyError(f"slot {slot!r} must hold a list of values, got {raw_values!r}")
            for raw in raw_values:
                value = normalize_value(raw) if isinstance(raw, str) else None
                if value is None:
                    raise OntologyError(f"unknown value {raw!r} in slot {slot!r}")
                if SLOT_OF[value] != slot:
                    raise OntologyError(f"value {value!r} belongs to slot {SLOT_OF[value]!r}, not {slot!r}")
                values.add(value)
        return cls(frozenset(values))

    @classmethod
    def from_span(cls, text: str) -> tuple["BeliefState", list[Dropped]]:
        """Lenient parse of a belief span (`<sos_b> [slot] v1, v2 [slot2] v3 <eos_b>`).

        Never raises. Returns the state and what was dropped: unknown slots, unknown values, text
        outside any slot, and values that an exclusive partner later in the span displaced. A known
        value written under the wrong slot is kept (its slot is unambiguous).
        """
        dropped: list[Dropped] = []
        if not isinstance(text, str):
            return cls(), [Dropped(repr(text), "not a string")]
        body = text.replace(SPAN_START, " ").replace(SPAN_END, " ")
        parts = re.split(r"\[([^\[\]]*)\]", body)
        if parts[0].strip():
            dropped.append(Dropped(parts[0].strip(), "text before the first [slot]"))
        state = cls()
        for raw_slot, raw_values in zip(parts[1::2], parts[2::2]):
            slot = normalize_slot(raw_slot)
            if slot is None:
                dropped.append(Dropped(f"[{raw_slot}]", "unknown slot"))
                continue
            for raw in raw_values.split(","):
                if not raw.strip():
                    continue
                value = normalize_value(raw)
                if value is None:
                    dropped.append(Dropped(raw.strip(), f"unknown value in slot {slot!r}"))
                    continue
                displaced = state._values & conflicts_of(value)
                dropped.extend(Dropped(d, f"displaced by {value!r} (exclusive)") for d in sorted(displaced))
                state = state.add(value)
        return state, dropped

    # updates
    def add(self, value: str) -> "BeliefState":
        """Add `value`, removing any value of its exclusive groups."""
        value = canonical_value(value)
        return BeliefState((self._values - conflicts_of(value)) | {value})

    def remove(self, value: str, missing_ok: bool = False) -> "BeliefState":
        """Remove `value`; a value not held raises `OntologyError` unless `missing_ok`."""
        value = canonical_value(value)
        if value not in self._values and not missing_ok:
            raise OntologyError(f"cannot remove {value!r}: the state does not hold it")
        return BeliefState(self._values - {value})

    def change(self, old: str, new: str) -> "BeliefState":
        """Replace the held value `old` by `new` (e.g. black hair -> blond hair)."""
        return self.remove(old).add(new)

    # views
    @property
    def values(self) -> tuple[str, ...]:
        """Held values in canonical order."""
        return tuple(sorted(self._values, key=VALUE_INDEX.__getitem__))

    def slot_values(self, slot: str) -> tuple[str, ...]:
        return tuple(v for v in self.values if SLOT_OF[v] == slot)

    def to_dict(self) -> dict[str, list[str]]:
        """JSON form: canonical slot order, empty slots omitted."""
        return {s: list(vs) for s in SLOTS if (vs := self.slot_values(s))}

    def to_span(self) -> str:
        """Belief span text, e.g. `<sos_b> [expression] smiling [makeup] lipstick, pale skin <eos_b>`."""
        inner = " ".join(f"[{s}] {', '.join(vs)}" for s, vs in self.to_dict().items())
        return f"{SPAN_START} {inner} {SPAN_END}" if inner else f"{SPAN_START} {SPAN_END}"

    def to_text(self) -> str:
        """Human form used in prompts and logs: `expression: smiling; makeup: lipstick, pale skin`."""
        return "; ".join(f"{s}: {', '.join(vs)}" for s, vs in self.to_dict().items())

    def diff(self, previous: "BeliefState") -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(added, removed) values going from `previous` to this state, canonical order."""
        added = BeliefState(self._values - previous._values).values
        removed = BeliefState(previous._values - self._values).values
        return added, removed

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and normalize_value(value) in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self._values)

    def __bool__(self) -> bool:
        return bool(self._values)

    def __repr__(self) -> str:
        return f"BeliefState({self.to_text() or 'empty'})"


def parse_requirements(text: str) -> BeliefState:
    """Strict reading of `"expression: smiling; hair color: black hair"` (the CLI's --requirements)."""
    data: dict[str, list[str]] = {}
    for part in filter(str.strip, text.split(";")):
        if ":" not in part:
            raise OntologyError(f"requirement {part.strip()!r} is not 'slot: value[, value]'")
        slot, values = part.split(":", 1)
        data.setdefault(slot.strip(), []).extend(v.strip() for v in values.split(",") if v.strip())
    return BeliefState.from_dict(data)
