"""The simulator's phrasings (JSON under `data_tools/phrasings/`), their held-out share, and text assembly.

Files:
- `values.json`: per ontology value, user wording: `do` (imperative verb phrases, "give {obj} bangs"),
  `np` (noun phrases, "a fringe"), `the` (definite noun phrases for removals and changes, "the fringe"),
  `remove` (verb phrases that drop the value, "take the bangs away"), and for the expression, hair
  colour and straight/wavy values `adj` (adjectives for "make the hair {new} instead of {old}").
- `user.json`: user frames that wrap those phrases ("can you {do}?", "what would {subj} look like with
  {np}?"), two-value joiners, change and removal frames, accepts, declines, openers, reactions, closings.
- `system.json`: system acknowledgements and the `next` / `request` / `suggest` questions.

Placeholders: `{obj}` her/him/them/me, `{poss}` her/his/their/my, `{subj}` she/he/they/I, `{self}`
her/him/them/myself ("see {self} with..."), `{is}` is/are/am, `{has}` has/have, `{s}` the verb ending
("{subj} need{s}": she needs, they need); frames add `{do}`, `{np}`, `{old}`,
`{new}`, `{bare}`, `{slot}`, `{val}`, `{sentence}`, `{decline}`, `{a}`, `{b}`.

Held out: in `values.json` and `user.json`, a quarter (rounded up) of every list of at least
`MIN_HOLDOUT_LIST` phrasings is never used for the train split, only for val and test. Which ones is
fixed by a hash of the text, so it does not depend on the seed; a value phrasing, or a phrasing whose
words decide the state (an accept, a decline, a removal...), is only held out while its content words
("flushed", "pass") stay in train phrasings of the same value or list (see `heldout_keeping_words`).
System responses are not held out.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

from dialogue.ontology import VALUES

PHRASINGS_DIR = Path(__file__).with_name("phrasings")
HOLDOUT_SHARE = 0.25
MIN_HOLDOUT_LIST = 4
TRAIN = "train"
# User frame lists whose own words never decide the belief state (the value phrase inside them does, or they
# carry no request the ontology has: thanks, questions, what it lacks); their held-out share is chosen by hash
# alone. In every other user list (accepts,
# declines, removals, changes, ...) the words matter, so held-out phrasings keep their words in train.
FREE_FRAMES = frozenset({"clause_frames", "np_frames", "give_frames", "np_more", "vp_and", "np_and", "also",
                         "change_prefix", "openers", "greeting_only", "reactions", "afterthoughts", "bare_frames",
                         "bare_two", "negate_frames", "unsupported", "unsupported_values", "chat_questions",
                         "thanks_only"})


@dataclass(frozen=True)
class Person:
    """How a text refers to the face being edited (pronouns and the matching form of 'to be')."""

    subj: str
    obj: str
    poss: str
    refl: str  # the object form after "see": her / him / them / myself
    is_: str
    has: str
    s: str  # the verb ending after `subj`: "s" for she/he ("she needs"), "" for they/I

    def forms(self) -> dict[str, str]:
        return {"subj": self.subj, "obj": self.obj, "poss": self.poss, "self": self.refl, "is": self.is_,
                "has": self.has, "s": self.s}


PRONOUNS: dict[str, Person] = {
    "she": Person("she", "her", "her", "her", "is", "has", "s"),
    "he": Person("he", "him", "his", "him", "is", "has", "s"),
    "they": Person("they", "them", "their", "them", "are", "have", ""),
    "I": Person("I", "me", "my", "myself", "am", "have", ""),
}
SYSTEM_VIEW: dict[str, Person] = {  # how the system refers to the face of a user who says she/he/they/I
    "she": PRONOUNS["she"], "he": PRONOUNS["he"], "they": PRONOUNS["they"],
    "I": Person("you", "you", "your", "you", "are", "have", ""),
}
NOUN_REFERENTS: dict[str, tuple[str, ...]] = {  # third-person alternatives to the pronoun
    "she": ("the woman", "this lady", "the girl", "my friend"),
    "he": ("the man", "this guy", "the guy", "my friend"),
    "they": ("this person", "the person", "my friend"),
    "I": (),
}


def noun_person(noun: str) -> Person:
    return Person(noun, noun, f"{noun}'s", noun, "is", "has", "s")


def _holdout_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_heldout(items: list[str]) -> tuple[list[str], list[str]]:
    """(train items, held-out items) of one frame list; lists shorter than MIN_HOLDOUT_LIST hold nothing out."""
    if len(items) < MIN_HOLDOUT_LIST:
        return list(items), []
    held = set(sorted(items, key=_holdout_key)[: math.ceil(HOLDOUT_SHARE * len(items))])
    return [s for s in items if s not in held], [s for s in items if s in held]


def content_words(text: str, common: frozenset[str]) -> set[str]:
    """Words of a phrasing that carry its meaning: placeholders and `common` (frame) words left out."""
    return {w for w in re.findall(r"[a-z]+", re.sub(r"\{[^}]*\}", " ", text.lower())) if len(w) > 2} - common


def heldout_keeping_words(lists: dict[str, list[str]], common: frozenset[str]) -> dict[str, list[str]]:
    """Held-out phrasings of related lists (one value's `do`, `np`, ...; or one frame list), by list name.

    Like `split_heldout` (a quarter of each list of at least MIN_HOLDOUT_LIST, in hash order), except that
    a phrasing is only held out while each of its content words stays in some train phrasing of these
    lists: the test split then brings new wording, not words the model could never have learned (the
    dialogue model may train from scratch). A list can therefore hold out less than a quarter.
    """
    remaining: Counter[str] = Counter(w for items in lists.values() for s in items for w in content_words(s, common))
    quota = {k: math.ceil(HOLDOUT_SHARE * len(v)) if len(v) >= MIN_HOLDOUT_LIST else 0 for k, v in lists.items()}
    held: dict[str, list[str]] = {k: [] for k in lists}
    candidates = sorted(((s, k) for k, items in lists.items() for s in items), key=lambda sk: _holdout_key(sk[0]))
    for text, kind in candidates:
        words = content_words(text, common)
        if len(held[kind]) < quota[kind] and all(remaining[w] >= 2 for w in words):
            held[kind].append(text)
            remaining.subtract(words)
    return {k: [s for s in lists[k] if s in held[k]] for k in lists if held[k]}


def _lists(tree: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], list[str]]]:
    if isinstance(tree, list):
        yield path, tree
    elif isinstance(tree, dict):
        for key, sub in tree.items():
            yield from _lists(sub, (*path, key))


class PhraseBank:
    """All phrasings, loaded once; `view(split)` gives the ones a split may use."""

    def __init__(self, values: dict, user: dict, system: dict):
        missing = set(VALUES) - set(values)
        if missing:
            raise ValueError(f"values.json lacks phrasings for {sorted(missing)}")
        self.data = {"values": values, "user": user, "system": system}

    @classmethod
    def load(cls, directory: Path = PHRASINGS_DIR) -> "PhraseBank":
        parts = {}
        for name in ("values", "user", "system"):
            path = directory / f"{name}.json"
            try:
                parts[name] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ValueError(f"cannot load phrasings from {path}: {exc}") from exc
        return cls(**parts)

    @cached_property
    def heldout(self) -> dict[tuple[str, ...], list[str]]:
        """Held-out phrasings by list path, e.g. `("values", "bangs", "np")` -> ["curtain bangs", ...]."""
        out = {}
        user = self.data["user"]
        free = frozenset(w for name in FREE_FRAMES for s in user.get(name, ()) for w in re.findall(r"[a-z]+", s.lower()))
        for path, items in _lists(user):
            if path[0] in FREE_FRAMES:
                held = split_heldout(items)[1]
            else:
                held = heldout_keeping_words({path[-1]: items}, free).get(path[-1], [])
            if held:
                out[("user", *path)] = held
        common = frozenset(w for _, items in _lists(user) for s in items for w in re.findall(r"[a-z]+", s.lower()))
        for value, lists in self.data["values"].items():
            for kind, held in heldout_keeping_words(lists, common).items():
                out[("values", value, kind)] = held
        return out

    @cached_property
    def _train_lists(self) -> dict[tuple[str, ...], list[str]]:
        held = self.heldout
        return {path: [s for s in items if s not in held.get(path, ())] for path, items in self._all_lists.items()}

    @cached_property
    def _all_lists(self) -> dict[tuple[str, ...], list[str]]:
        return {path: list(items) for part in ("values", "user", "system")
                for path, items in _lists(self.data[part], (part,))}

    def lists(self, split: str) -> dict[tuple[str, ...], list[str]]:
        """Every phrasing list a split may draw from: train excludes the held-out phrasings."""
        return self._train_lists if split == TRAIN else self._all_lists

    def view(self, split: str, rng: random.Random) -> "BankView":
        return BankView(self.lists(split), rng)


class BankView:
    """Random choice among the phrasings one split may use."""

    def __init__(self, lists: dict[tuple[str, ...], list[str]], rng: random.Random):
        self._lists = lists
        self.rng = rng

    def has(self, *path: str) -> bool:
        return bool(self._lists.get(path))

    def items(self, *path: str) -> list[str]:
        return list(self._lists.get(path, ()))

    def pick(self, *path: str) -> str:
        try:
            return self.rng.choice(self._lists[path])
        except KeyError:
            raise KeyError(f"no phrasings at {'/'.join(path)}") from None


# --- text assembly -----------------------------------------------------------------------------

def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def assemble(pieces: list[str]) -> str:
    """Join sentence pieces into one utterance.

    A piece that follows one ending in ',' or ':' or in a word (a connector such as "oh, and")
    continues the sentence (its first letter stays lower case); otherwise it starts a new sentence
    and is capitalised. The end gets a full stop when it has no final punctuation.
    """
    out = ""
    for piece in pieces:
        piece = " ".join(piece.split())
        if not piece:
            continue
        if not out:
            out = capitalize(piece)
        elif out[-1] in ",:" or out[-1].isalnum():
            out += " " + piece
        else:
            out += " " + capitalize(piece)
    if out and out[-1] not in ".?!":
        out += "."
    return out


def strip_end(text: str) -> str:
    """A phrase without its final punctuation ("no thanks." -> "no thanks")."""
    return text.rstrip(" .!?,")
