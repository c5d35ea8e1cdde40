"""State updates, dialogue acts and grounded replies: what a turn asked for, what it changed, what to say.

- `Update`: what the user asked this turn, MinTL-style (Lin et al. 2020): values to add and values to remove,
  written `<sos_b> [add] smiling, black hair [remove] lipstick <eos_b>`. `Update.apply(state)` gives a
  `Change`: the new state and, honestly, what happened: values added, values removed, removals of values the
  state did not hold (`missing`) and additions of values it already held (`already`).
- `Act`: the system's dialogue act (PPTOD's third task, `translate dialogue to dialogue action:`): what kind of
  turn the user's was (`intent`) and what the system does next (`policy`: `next`, `request [slot]`,
  `suggest [value]`, `end`), written e.g. `edit suggest [bangs]` or `unsupported [hair color] next`.
- Replies are written delexicalised, with placeholders such as `[added]` and `[value]`; `fill` puts in the names
  of the values the `Change` and the `Act` hold, so a reply can only name what really changed (or what it
  suggests). `reply_frame` is the responder's input: the kinds of change, the intent and the policy.
- `mentioned_values` finds the values a reply names; `false_claims` the ones it should not name.

No torch here (the simulator, the records and the metrics use this module).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from dialogue.ontology import (
    SLOT_OF, SLOT_VALUES, SLOTS, VALUE_INDEX, VALUES, BeliefState, Dropped, conflicts_of, normalize_slot,
    normalize_value,
)

INTENTS: tuple[str, ...] = ("edit", "decline", "greet", "thanks", "close", "chat", "unsupported")
POLICIES: tuple[str, ...] = ("next", "request", "suggest", "end")
CHANGE_KINDS: tuple[str, ...] = ("added", "removed", "missing", "already")
PERSON_PLACEHOLDERS: tuple[str, ...] = ("subj", "obj", "poss", "is", "has")
VALUE_PLACEHOLDERS: tuple[str, ...] = (*CHANGE_KINDS, "value", "slot", "options")
PLACEHOLDERS: tuple[str, ...] = (*VALUE_PLACEHOLDERS, *PERSON_PLACEHOLDERS)
_PLACEHOLDER_RE = re.compile(r"\[([a-z]+)\]")

# How the system names a value ("a smile"); the first name of each is the plainest. Definite forms ("the
# smile") drop the article: `definite`.
VALUE_NAMES: dict[str, tuple[str, ...]] = {
    "smiling": ("a smile", "a big smile", "a happy smile"),
    "angry": ("an angry look", "an angry face"),
    "sad": ("a sad look", "a sad face"),
    "no smiling": ("a neutral expression", "a serious expression"),
    "brown hair": ("brown hair", "brunette hair"),
    "blond hair": ("blond hair", "blonde hair"),
    "black hair": ("black hair", "jet-black hair"),
    "gray hair": ("gray hair", "grey hair", "silver hair"),
    "straight hair": ("straight hair", "sleek straight hair"),
    "wavy hair": ("wavy hair", "curly hair"),
    "receding hairline": ("a receding hairline",),
    "sideburns": ("sideburns",),
    "bangs": ("bangs", "a fringe"),
    "mustache": ("a mustache", "a moustache"),
    "goatee": ("a goatee",),
    "no makeup": ("a makeup-free look", "a bare face"),
    "heavy makeup": ("heavy makeup", "full makeup"),
    "lipstick": ("lipstick", "red lipstick"),
    "earrings": ("earrings", "a pair of earrings"),
    "bushy eyebrows": ("bushy eyebrows", "thick eyebrows"),
    "big lips": ("big lips", "full lips"),
    "rosy cheeks": ("rosy cheeks", "pink cheeks"),
    "pale skin": ("pale skin", "a pale complexion"),
}
SLOT_NAMES: dict[str, tuple[str, ...]] = {
    "expression": ("expression", "facial expression"),
    "hair color": ("hair colour", "hair color"),
    "hairstyle": ("hairstyle", "hair style"),
    "beard": ("facial hair", "beard"),
    "makeup": ("makeup",),
}
# The face as the system speaks of it, by the person the user speaks of ("make her smile" -> she).
PERSONS: dict[str, dict[str, str]] = {
    "she": {"subj": "she", "obj": "her", "poss": "her", "is": "is", "has": "has"},
    "he": {"subj": "he", "obj": "him", "poss": "his", "is": "is", "has": "has"},
    "they": {"subj": "they", "obj": "them", "poss": "their", "is": "are", "has": "have"},
    "you": {"subj": "you", "obj": "you", "poss": "your", "is": "are", "has": "have"},
}
_THIRD_PERSON: dict[str, str] = {
    **dict.fromkeys(("she", "her", "hers", "herself", "woman", "lady", "girl", "girlfriend", "wife", "mum", "mom",
                     "sister", "daughter", "mother", "grandma", "aunt"), "she"),
    **dict.fromkeys(("he", "him", "his", "himself", "man", "guy", "boy", "boyfriend", "husband", "dad", "brother",
                     "son", "father", "grandpa", "uncle"), "he"),
    **dict.fromkeys(("they", "them", "their", "themselves", "person", "friend"), "they"),
}
_FIRST_PERSON = frozenset(("me", "my", "myself"))


class ActError(ValueError):
    """An act or update text that does not follow the grammar, or names unknown slots or values."""


# --- updates ---------------------------------------------------------------------------------------------

def _canonical(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values), key=VALUE_INDEX.__getitem__))


@dataclass(frozen=True)
class Change:
    """What applying an `Update` to a state did. All value tuples are in canonical order."""

    previous: BeliefState
    state: BeliefState
    added: tuple[str, ...]
    removed: tuple[str, ...]
    missing: tuple[str, ...]   # asked to be removed, but the state did not hold them
    already: tuple[str, ...]   # asked to be added, but the state held them already

    def kinds(self) -> tuple[str, ...]:
        """The kinds of change present, in `CHANGE_KINDS` order (empty: nothing happened)."""
        return tuple(kind for kind in CHANGE_KINDS if getattr(self, kind))

    def slots(self) -> set[str]:
        """Slots whose values changed."""
        return {SLOT_OF[v] for v in (*self.added, *self.removed)}


@dataclass(frozen=True)
class Update:
    """Values a turn asks to add and to remove (canonical order; the two never share a value)."""

    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [v for v in (*self.add, *self.remove) if v not in SLOT_OF]
        if unknown:
            raise ActError(f"unknown values {unknown} in an update")
        for group_value in self.add:
            clash = conflicts_of(group_value) & set(self.add)
            if clash:
                raise ActError(f"an update cannot add {group_value!r} and {sorted(clash)[0]!r}: they exclude each other")
        both = set(self.add) & set(self.remove)
        if both:
            raise ActError(f"an update cannot both add and remove {sorted(both)}")
        object.__setattr__(self, "add", _canonical(self.add))
        object.__setattr__(self, "remove", _canonical(self.remove))

    @classmethod
    def between(cls, previous: BeliefState, state: BeliefState) -> "Update":
        """The shortest update taking `previous` to `state`: a value displaced by an added partner of its
        exclusive group is not listed as removed (adding blond hair removes black hair by itself)."""
        added, removed = state.diff(previous)
        implied = set().union(*(conflicts_of(v) for v in added)) if added else set()
        return cls(added, tuple(v for v in removed if v not in implied))

    @classmethod
    def from_dict(cls, data: object) -> "Update":
        """Strict reading of the JSON form `{"add": [...], "remove": [...]}` (`ActError` naming the problem)."""
        if not isinstance(data, dict) or set(data) - {"add", "remove"}:
            raise ActError("'update' must be an object with the keys 'add' and/or 'remove'")
        lists = {}
        for key in ("add", "remove"):
            raw = data.get(key, [])
            if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
                raise ActError(f"'update.{key}' must be an array of value names")
            unknown = [v for v in raw if v not in SLOT_OF]
            if unknown:
                raise ActError(f"unknown value {unknown[0]!r} in 'update.{key}'")
            lists[key] = tuple(raw)
        return cls(lists["add"], lists["remove"])

    def to_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in (("add", self.add), ("remove", self.remove)) if v}

    def to_span(self) -> str:
        """`<sos_b> [add] v1, v2 [remove] v3 <eos_b>`; nothing asked is `<sos_b> <eos_b>`."""
        parts = [f"[{k}] {', '.join(v)}" for k, v in (("add", self.add), ("remove", self.remove)) if v]
        return " ".join(("<sos_b>", *parts, "<eos_b>"))

    @classmethod
    def from_span(cls, text: str) -> tuple["Update", list[Dropped]]:
        """Lenient reading of a generated update span; never raises. Unknown words are dropped; of two values
        of one exclusive group to add, the last wins; a value both added and removed is added."""
        dropped: list[Dropped] = []
        body = text.replace("<sos_b>", " ").replace("<eos_b>", " ")
        parts = re.split(r"\[([^\[\]]*)\]", body)
        if parts[0].strip():
            dropped.append(Dropped(parts[0].strip(), "text before the first [add] or [remove]"))
        add: list[str] = []
        remove: list[str] = []
        for raw_kind, raw_values in zip(parts[1::2], parts[2::2]):
            kind = raw_kind.strip().lower()
            if kind not in ("add", "remove"):
                dropped.append(Dropped(f"[{raw_kind}]", "not [add] or [remove]"))
                continue
            for raw in raw_values.split(","):
                if not raw.strip():
                    continue
                value = normalize_value(raw)
                if value is None:
                    dropped.append(Dropped(raw.strip(), f"unknown value after [{kind}]"))
                elif kind == "add":
                    displaced = [v for v in add if v in conflicts_of(value)]
                    dropped.extend(Dropped(v, f"displaced by {value!r} (exclusive)") for v in displaced)
                    add = [v for v in add if v not in displaced and v != value] + [value]
                elif value not in remove:
                    remove.append(value)
        return cls(tuple(add), tuple(v for v in remove if v not in add)), dropped

    def apply(self, previous: BeliefState) -> Change:
        """Remove, then add (exclusive partners of an added value go), and say what happened."""
        state = previous
        for value in self.remove:
            state = state.remove(value, missing_ok=True)
        for value in self.add:
            state = state.add(value)
        added, removed = state.diff(previous)
        return Change(previous, state, added, removed,
                      missing=tuple(v for v in self.remove if v not in previous),
                      already=tuple(v for v in self.add if v in previous))

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)


# --- acts ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Act:
    """The system's act: `intent` (what the user's turn was), `policy` and its argument (`slot` to request,
    `value` to suggest), and for an `unsupported` request the slot it was about, when it had one (`topic`:
    "ginger hair" is a hair colour the ontology lacks)."""

    intent: str = "edit"
    policy: str = "next"
    slot: str | None = None
    value: str | None = None
    topic: str | None = None

    def __post_init__(self) -> None:
        if self.intent not in INTENTS:
            raise ActError(f"unknown intent {self.intent!r}; intents: {', '.join(INTENTS)}")
        if self.policy not in POLICIES:
            raise ActError(f"unknown policy {self.policy!r}; policies: {', '.join(POLICIES)}")
        if (self.policy == "request") != (self.slot is not None) or (self.slot and self.slot not in SLOTS):
            raise ActError("'request' takes one slot, and only 'request' takes a slot")
        if (self.policy == "suggest") != (self.value is not None) or (self.value and self.value not in SLOT_OF):
            raise ActError("'suggest' takes one value, and only 'suggest' takes a value")
        if self.topic is not None and (self.intent != "unsupported" or self.topic not in SLOTS):
            raise ActError("only an 'unsupported' intent takes a slot of its own")

    def to_text(self) -> str:
        """E.g. `edit suggest [bangs]`, `decline request [makeup]`, `unsupported [hair color] next`."""
        parts = [self.intent]
        if self.topic:
            parts.append(f"[{self.topic}]")
        parts.append(self.policy)
        if self.slot or self.value:
            parts.append(f"[{self.slot or self.value}]")
        return " ".join(parts)

    def to_span(self) -> str:
        return f"<sos_a> {self.to_text()} <eos_a>"

    @classmethod
    def parse(cls, text: str) -> "Act":
        """Strict reading of `to_text`'s form (`ActError` naming the problem)."""
        match = re.fullmatch(r"\s*(\w+)\s*(?:\[([^\]]*)\])?\s*(\w+)\s*(?:\[([^\]]*)\])?\s*", text or "")
        if not match:
            raise ActError(f"act {text!r} is not 'INTENT [topic] POLICY [argument]', e.g. 'edit suggest [bangs]'")
        intent, topic, policy, argument = match.groups()
        topic_slot = normalize_slot(topic) if topic is not None else None
        if topic is not None and topic_slot is None:
            raise ActError(f"unknown slot {topic!r} in act {text!r}")
        slot = value = None
        if argument is not None:
            if policy == "request":
                slot = normalize_slot(argument)
                if slot is None:
                    raise ActError(f"unknown slot {argument!r} in act {text!r}")
            else:
                value = normalize_value(argument)
                if value is None:
                    raise ActError(f"unknown value {argument!r} in act {text!r}")
        return cls(intent, policy, slot, value, topic_slot)

    @classmethod
    def from_span(cls, text: str) -> tuple["Act", list[Dropped]]:
        """Lenient reading of a generated `<sos_a> … <eos_a>` span: an act it cannot read becomes `edit next`."""
        body = text.split("<eos_a>", 1)[0].replace("<sos_a>", " ")
        try:
            return cls.parse(body), []
        except ActError as exc:
            return cls(), [Dropped(body.strip(), f"unreadable act ({exc})")]


def reply_frame(change: Change, act: Act) -> str:
    """The responder's input: kinds of change, intent, policy, e.g. `added missing ; edit ; suggest`
    (`unsupported options` when the unsupported request was about a slot whose values the reply can list)."""
    kinds = " ".join(change.kinds()) or "none"
    intent = f"{act.intent} options" if act.topic else act.intent
    return f"{kinds} ; {intent} ; {act.policy}"


def reply_frame_span(change: Change, act: Act) -> str:
    return f"<sos_a> {reply_frame(change, act)} <eos_a>"


# --- filling delexicalised replies ----------------------------------------------------------------------

def definite(name: str) -> str:
    """`a smile` -> `the smile`, `black hair` -> `the black hair`."""
    for article in ("a ", "an "):
        if name.startswith(article):
            return "the " + name[len(article):]
    return "the " + name


def join_names(names: Sequence[str], last: str = "and") -> str:
    """`a`, `a and b`, `a, b and c`."""
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} {last} {names[-1]}"


def placeholders(delex: str) -> list[str]:
    """The placeholders of a delexicalised reply, in order."""
    return _PLACEHOLDER_RE.findall(delex)


def person_of(texts: Sequence[str]) -> str:
    """How the system should speak of the face, from the user's `texts` (oldest first): the newest third-person
    word ("her" -> she, "this guy" -> he, "my friend" -> they) wins; else "me"/"my"/"myself" -> you (not "I":
    "I want her to smile" is about her); else they."""
    first_person = False
    for text in reversed(list(texts)):
        for word in reversed(re.findall(r"[a-z']+", text.lower())):
            if word in _THIRD_PERSON:
                return _THIRD_PERSON[word]
            first_person = first_person or word in _FIRST_PERSON
    return "you" if first_person else "they"


def fill(delex: str, change: Change, act: Act, person: str = "they", rng: random.Random | None = None) -> str | None:
    """The reply with its placeholders filled from `change`, `act` and `person`; None when it holds a
    placeholder those cannot fill (e.g. `[removed]` when nothing was removed, `[value]` without a suggestion),
    an unknown one, or a stray bracket. Sentence starts are capitalised."""
    rng = rng or random.Random(0)
    forms = PERSONS.get(person, PERSONS["they"])

    def names(values: Sequence[str], article: bool = True) -> str | None:
        if not values:
            return None
        chosen = [rng.choice(VALUE_NAMES[v]) for v in values]
        return join_names(chosen if article else [definite(n) for n in chosen])

    options = act.topic and join_names([VALUE_NAMES[v][0] for v in SLOT_VALUES[act.topic]], "or")
    fills: dict[str, str | None] = {
        "added": names(change.added), "removed": names(change.removed, article=False),
        "missing": names(change.missing), "already": names(change.already),
        "value": act.value and rng.choice(VALUE_NAMES[act.value]),
        "slot": act.slot and rng.choice(SLOT_NAMES[act.slot]),
        "options": options, **forms,
    }
    missing_fill = False

    def put(match: re.Match) -> str:
        nonlocal missing_fill
        value = fills.get(match.group(1))
        if value is None:
            missing_fill = True
            return ""
        return value

    text = _PLACEHOLDER_RE.sub(put, delex)
    if missing_fill or "[" in text or "]" in text:  # a placeholder it cannot fill, or a broken one ("[ hair;")
        return None
    return re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text.strip())


# --- what a reply names ----------------------------------------------------------------------------------

def _value_lexicon() -> dict[str, str]:
    """Lower-case word sequence -> value, for every system name and ontology synonym of every value."""
    out: dict[str, str] = {}
    for value, value_names in VALUE_NAMES.items():
        for name in value_names:
            out[" ".join(re.findall(r"[a-z']+", name.lower()))] = value
    return out


_LEXICON = _value_lexicon()
_MAX_WORDS = 4


def mentioned_values(text: str) -> set[str]:
    """Values a reply names, by its system names ("a fringe") or an ontology synonym ("moustache"),
    longest match first, left to right."""
    words = re.findall(r"[a-z']+", text.lower().replace("-", " "))
    found: set[str] = set()
    i = 0
    while i < len(words):
        for n in range(min(_MAX_WORDS, len(words) - i), 0, -1):
            phrase = " ".join(words[i:i + n])
            value = _LEXICON.get(phrase) or normalize_value(phrase)
            if value is not None:
                found.add(value)
                i += n
                break
        else:
            i += 1
    return found


def allowed_values(change: Change, act: Act | None) -> set[str]:
    """Values a reply may name: those the turn added, removed, could not remove or already had, the value the
    act suggests, and the values of an unsupported request's slot (the reply lists what it can do instead)."""
    allowed = set(change.added) | set(change.removed) | set(change.missing) | set(change.already)
    if act is not None:
        if act.value:
            allowed.add(act.value)
        if act.topic:
            allowed |= set(SLOT_VALUES[act.topic])
    return allowed


def false_claims(reply: str, change: Change, act: Act | None) -> set[str]:
    """Values `reply` names that are not in `allowed_values` (a reply that claims a change that did not
    happen, or names a value out of nowhere)."""
    return mentioned_values(reply) - allowed_values(change, act)


assert set(VALUE_NAMES) == set(VALUES) and set(SLOT_NAMES) == set(SLOTS)
