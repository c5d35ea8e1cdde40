"""The corpus simulator: the simulation phase of the paper's dialogue pipeline (§3.1, Fig. 4).

Each dialogue is about one face with a current attribute profile (`celeba.Profile`). The user asks for
values the face does not have yet; the system answers every turn with an acknowledgement and one act:
`next` (what else?), `request` (do you want to edit SLOT?) or `suggest` (how about VALUE?). The user
then accepts, declines, declines and asks for something else, or ignores the question; users also
change a value (black -> blond hair), remove one ("take the mustache off"), ask for two values at once,
greet, hesitate and close. Every turn's belief state is computed from what the user's move does
(`BeliefState.add` / `remove`, so exclusive groups hold) before its text is written.

Deterministic: dialogue `i` of a split uses its own `random.Random(f"{seed}:{split}:{i}")`.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from dialogue.ontology import SLOT_OF, SLOT_VALUES, SLOTS, VALUES, BeliefState, conflicts_of

from .celeba import Profile, read_celeba_attributes, sample_profile
from .phrasebank import (
    NOUN_REFERENTS, PRONOUNS, SYSTEM_VIEW, BankView, PhraseBank, assemble, noun_person, strip_end,
)
from dialogue.records import Dialogue, Turn, write_dialogues

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_DIALOGUES = 12_000
TURN_COUNTS = {2: 0.08, 3: 0.25, 4: 0.35, 5: 0.22, 6: 0.10}  # mean 4.0 turns (paper Table 2)
ACT_WEIGHTS = {"next": 0.34, "request": 0.33, "suggest": 0.33}
ADJ_GROUPS = ("expression", "hair color", "hairstyle")  # slots whose exclusive values have `adj` phrasings
TEXTURES = ("straight hair", "wavy hair")

# Gender-dependent request weights (everything else 1.0): women rarely grow beards, men rarely wear lipstick.
VALUE_WEIGHTS = {
    "female": {"mustache": 0.15, "goatee": 0.15, "sideburns": 0.15, "receding hairline": 0.3},
    "male": {"lipstick": 0.35, "heavy makeup": 0.35, "earrings": 0.5},
}
CONFLICTS: dict[str, frozenset[str]] = {v: conflicts_of(v) for v in VALUES}


@dataclass(frozen=True)
class _Outcome:
    """What a user turn did: its text, the state after it, and how the system should acknowledge it."""

    text: str
    state: BeliefState
    kind: str  # "greet" | "close" | "edit"


class _DialogueWriter:
    """Writes one dialogue; all randomness comes from `view.rng`."""

    def __init__(self, view: BankView, profile: Profile):
        self.v = view
        self.rng = view.rng
        self.profile = profile
        self.have = frozenset(profile.values)
        r = self.rng.random()
        self.pronoun = "I" if r < 0.2 else "they" if r < 0.3 else ("she" if profile.gender == "female" else "he")
        self.system_forms = SYSTEM_VIEW[self.pronoun].forms()
        self.weights = VALUE_WEIGHTS.get(profile.gender, {})
        self.state = BeliefState()
        self.ever_held: set[str] = set()  # the system never suggests again what the user had and dropped
        self.forms = PRONOUNS[self.pronoun].forms()
        self.turn_number = 0
        self.undo_target: BeliefState | None = None  # the state before the last turn, when that turn edited
        self.move_kind = "edit"  # "edit" | "unsupported" | "reset": how the system acknowledges this turn

    # --- wording helpers -------------------------------------------------------------------------
    def new_utterance(self) -> None:
        """Choose how this utterance refers to the face: its pronoun, sometimes a noun ("the woman")."""
        nouns = NOUN_REFERENTS[self.pronoun]
        if nouns and self.rng.random() < 0.2:
            self.forms = noun_person(self.rng.choice(nouns)).forms()
        else:
            self.forms = PRONOUNS[self.pronoun].forms()

    def fill(self, template: str, **slots: str) -> str:
        return template.format(**self.forms, **slots)

    def phrase(self, value: str, kind: str) -> str:
        return self.fill(self.v.pick("values", value, kind))

    def user(self, name: str, **slots: str) -> str:
        return self.fill(self.v.pick("user", name), **slots)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    # --- choosing values ---------------------------------------------------------------------------
    def requestable(self, exclude: Sequence[str] = ()) -> list[str]:
        """Values the user may ask for: not on the face, not already requested, not excluded."""
        taken = self.have | set(self.state.values) | set(exclude)
        return [v for v in VALUES if v not in taken]

    def choose(self, candidates: list[str], k: int = 1) -> list[str]:
        """Up to `k` distinct candidates, weighted by gender, never two from one exclusive group."""
        chosen: list[str] = []
        pool = list(candidates)
        while pool and len(chosen) < k:
            value = self.rng.choices(pool, weights=[self.weights.get(v, 1.0) for v in pool])[0]
            chosen.append(value)
            pool = [v for v in pool if v != value and v not in CONFLICTS[value]]
        return chosen

    def held_partner(self, value: str) -> str | None:
        """The value of `value`'s exclusive group that the state (first) or the face holds, if any."""
        partners = CONFLICTS[value]
        for source in (set(self.state.values), self.have):
            found = [v for v in VALUES if v in partners and v in source]
            if found:
                return found[0]
        return None

    # --- user sentences ----------------------------------------------------------------------------
    def ask_one(self, value: str) -> str:
        """One sentence asking for `value`, sometimes phrased as a change from what is held now."""
        partner = self.held_partner(value)
        r = self.rng.random()
        if partner and SLOT_OF[value] in ADJ_GROUPS and self.v.has("values", value, "adj") and r < 0.12:
            return self.change_by_adjective(partner, value)
        if partner and r < 0.2:
            return self.user("change_frames", old=self.phrase(partner, "the"), new=self.phrase(value, "np"),
                             do=self.phrase(value, "do"))
        if r < 0.6:
            return self.user("clause_frames", do=self.phrase(value, "do"))
        if self.turn_number > 0 and r < 0.65:  # "and big lips"
            return self.user("np_more", np=self.phrase(value, "np"))
        return self.np_request(self.phrase(value, "np"))

    def np_request(self, np: str) -> str:
        """A request framed around a noun phrase; "give her ..." only when the phrase allows it."""
        if not np.startswith("no ") and self.chance(0.2):
            return self.user("give_frames", np=np)
        return self.user("np_frames", np=np)

    def ask_two(self, first: str, second: str) -> list[str]:
        """Sentences asking for two values in one turn."""
        colour = next((v for v in (first, second) if SLOT_OF[v] == "hair color"), None)
        texture = next((v for v in (first, second) if v in TEXTURES), None)
        if colour and texture and self.chance(0.5):  # "wavy brown hair"
            return [self.np_request(f"{self.phrase(texture, 'adj')} {self.hair_np(colour)}")]
        r = self.rng.random()
        if r < 0.35:
            both = self.user("vp_and", a=self.phrase(first, "do"), b=self.phrase(second, "do"))
            return [self.user("clause_frames", do=both)]
        if r < 0.65:
            both = self.user("np_and", a=self.phrase(first, "np"), b=self.phrase(second, "np"))
            return [self.np_request(both)]
        return [self.ask_one(first), self.user("also"), self.ask_one(second)]

    def change_by_adjective(self, old: str, new: str) -> str:
        group = "change_adj_expression" if SLOT_OF[new] == "expression" else "change_adj_hair"
        return self.user(group, old=self.phrase(old, "adj"), new=self.phrase(new, "adj"), do=self.phrase(new, "do"),
                         new_hair=self.hair_np(new))

    def hair_np(self, value: str) -> str:
        """A noun phrase for a hair value that ends in "hair" ("jet-black hair"), from the split's phrasings."""
        nps = [n for n in self.v.items("values", value, "np") if n.endswith(" hair")]
        return self.rng.choice(nps) if nps else value

    def say_change(self, old: str, new: str) -> list[str]:
        """Sentences replacing the requested `old` by `new`."""
        exclusive = new in CONFLICTS[old]
        r = self.rng.random()
        prefix = [self.user("change_prefix")] if self.chance(0.4) else []
        if exclusive and SLOT_OF[new] in ADJ_GROUPS and self.v.has("values", new, "adj") and r < 0.45:
            if r < 0.3:
                return prefix + [self.change_by_adjective(old, new)]
            return [self.user("change_implicit_adj", new=self.phrase(new, "adj"))]
        if exclusive and r < 0.65:
            return [self.user("change_implicit", do=self.phrase(new, "do"), np=self.phrase(new, "np"))]
        return prefix + [self.user("change_frames", old=self.phrase(old, "the"), new=self.phrase(new, "np"),
                                   do=self.phrase(new, "do"))]

    def say_remove(self, old: str) -> list[str]:
        prefix = [self.user("change_prefix")] if self.chance(0.3) else []
        if self.chance(0.5):
            the = self.phrase(old, "the")
            return prefix + [self.user("remove_frames", old=the, bare=the.removeprefix("the "))]
        return prefix + [self.user("clause_frames", do=self.phrase(old, "remove"))]

    # --- user moves: each returns (sentences, new state) ----------------------------------------------
    def move_request(self, k: int, exclude: Sequence[str] = ()) -> tuple[list[str], BeliefState] | None:
        candidates = self.requestable(exclude)
        hair = [v for v in candidates if SLOT_OF[v] == "hair color"], [v for v in candidates if v in TEXTURES]
        if k == 2 and all(hair) and self.chance(0.1):  # make hair colour + texture pairs common enough
            values = [self.choose(hair[0])[0], self.choose(hair[1])[0]]
        else:
            values = self.choose(candidates, k)
        if not values:
            return None
        state = self.state
        for value in values:
            state = state.add(value)
        sentences = self.ask_two(*values) if len(values) == 2 else [self.ask_one(values[0])]
        return sentences, state

    def move_change(self) -> tuple[list[str], BeliefState] | None:
        if not self.state:
            return None
        old = self.rng.choice(self.state.values)
        partners = [v for v in self.requestable() if v in CONFLICTS[old]]
        others = [v for v in self.requestable() if SLOT_OF[v] == SLOT_OF[old] or self.chance(0.3)]
        others = [v for v in others if CONFLICTS[v] & set(self.state.values) <= {old}]
        pool = partners if partners and self.chance(0.75) else others
        new = self.choose(pool)
        if not new:
            return None
        return self.say_change(old, new[0]), self.state.remove(old).add(new[0])

    def move_remove(self) -> tuple[list[str], BeliefState] | None:
        if not self.state:
            return None
        old = self.rng.choice(self.state.values)
        return self.say_remove(old), self.state.remove(old)

    def move_remove_and_request(self) -> tuple[list[str], BeliefState] | None:
        removed = self.move_remove()
        if removed is None:
            return None
        sentences, state = removed
        old = next(v for v in self.state.values if v not in state)
        values = self.choose([v for v in self.requestable() if v != old and not CONFLICTS[v] & {old}])
        if not values:
            return None
        return sentences + [self.user("also"), self.ask_one(values[0])], state.add(values[0])

    def move_undo(self) -> tuple[list[str], BeliefState] | None:
        """"Undo that": back to the state before the last turn."""
        if self.undo_target is None:
            return None
        return [self.user("undo_last")], self.undo_target

    def move_start_over(self) -> tuple[list[str], BeliefState] | None:
        """"Let's start over": every requirement goes."""
        if len(self.state) < 2:
            return None
        self.move_kind = "reset"
        return [self.user("start_over")], BeliefState()

    def move_unsupported(self) -> tuple[list[str], BeliefState]:
        """A request outside the ontology ("add glasses"): the state stays as it is."""
        self.move_kind = "unsupported"
        return [self.user("clause_frames", do=self.user("unsupported"))], self.state

    def move_active(self, exclude: Sequence[str] = ()) -> tuple[list[str], BeliefState]:
        """A move that edits something (request one or two values, change, remove, undo, start over), or
        asks for something the ontology lacks."""
        options: list[tuple[float, Callable[[], tuple[list[str], BeliefState] | None]]] = [
            (0.50, lambda: self.move_request(1, exclude)),
            (0.42, lambda: self.move_request(2, exclude)),
            (0.03, self.move_unsupported),
        ]
        if self.state:
            options += [(0.10, self.move_change), (0.08, self.move_remove), (0.06, self.move_remove_and_request),
                        (0.04, self.move_undo), (0.015, self.move_start_over)]
        while options:
            index = self.rng.choices(range(len(options)), weights=[w for w, _ in options])[0]
            result = options.pop(index)[1]()
            if result is not None:
                return result
        return [self.user("closings")], self.state  # nothing left to ask for

    def move_after_suggest(self, value: str) -> tuple[list[str], BeliefState]:
        r = self.rng.random()
        if r < 0.5:  # accept
            state = self.state.add(value)
            s = self.rng.random()
            if s < 0.25:
                return [self.user("accept_lead"), self.ask_one(value)], state
            if s < 0.5:
                extra = self.choose([v for v in self.requestable([value]) if v not in CONFLICTS[value]])
                if extra:
                    return [self.user("accept"), self.user("also"), self.ask_one(extra[0])], state.add(extra[0])
            return [self.user("accept")], state
        if r < 0.6:
            return [self.user("decline")], self.state
        if r < 0.8:
            return self.decline_and_other(exclude=[value])
        return self.move_active(exclude=[value])

    def move_after_request(self, slot: str) -> tuple[list[str], BeliefState]:
        r = self.rng.random()
        in_slot = [v for v in self.requestable() if SLOT_OF[v] == slot]
        if r < 0.55 and in_slot:  # accept by naming a value of the slot
            value = self.choose(in_slot)[0]
            state = self.state.add(value)
            if self.v.has("values", value, "adj") and self.chance(0.2):  # "Yes, black."
                return [self.user("accept_lead"), self.phrase(value, "adj")], state
            if self.chance(0.25):
                extra = self.choose([v for v in self.requestable([value]) if v not in CONFLICTS[value]])
                if extra:
                    return [self.user("accept_lead"), *self.ask_two(value, extra[0])], state.add(extra[0])
            return [self.user("accept_lead"), self.ask_one(value)], state
        if r < 0.65:
            if self.chance(0.5):
                return [self.user("decline_slot", slot=self.v.pick("user", "slot_names", slot))], self.state
            return [self.user("decline")], self.state
        if r < 0.8:
            return self.decline_and_other(exclude=SLOT_VALUES[slot])
        return self.move_active(exclude=SLOT_VALUES[slot])

    def decline_and_other(self, exclude: Sequence[str]) -> tuple[list[str], BeliefState]:
        values = self.choose(self.requestable(exclude))
        if not values:
            return [self.user("decline")], self.state
        value = values[0]
        decline = strip_end(self.user("decline"))
        text = self.user("decline_other", decline=decline, sentence=self.ask_one(value),
                         do=self.phrase(value, "do"), np=self.phrase(value, "np"))
        return [text], self.state.add(value)

    # --- turns -------------------------------------------------------------------------------------
    def user_turn(self, number: int, last: bool, act: str | None, target: str | None) -> _Outcome:
        self.new_utterance()
        self.turn_number = number
        self.move_kind = "edit"
        if number == 0:
            if self.chance(0.05):
                return _Outcome(assemble([self.user("greeting_only")]), self.state, "greet")
            opener = [self.user("openers")] if self.chance(0.4) else []
            sentences, state = self.move_request(2) if self.chance(0.5) else self.move_request(1)
            return _Outcome(assemble(opener + sentences + self.afterthought(True)), state, "edit")
        reaction = [self.user("reactions")] if self.chance(0.55) else []
        if last and number >= 2 and self.chance(0.08):
            return _Outcome(assemble(reaction + [self.user("closings")]), self.state, "close")
        if act == "suggest":
            sentences, state = self.move_after_suggest(target)
        elif act == "request":
            sentences, state = self.move_after_request(target)
        else:
            sentences, state = self.move_active()
        return _Outcome(assemble(reaction + sentences + self.afterthought(state != self.state)), state, "edit")

    def afterthought(self, edited: bool) -> list[str]:
        """Sometimes a closing remark ("Thanks!") after a request; never after a plain decline."""
        return [self.user("afterthoughts")] if edited and self.chance(0.2) else []

    def system_turn(self, outcome: _Outcome, previous: BeliefState) -> tuple[str, str, str | None]:
        """(response text, act, act target) answering a user turn."""
        if outcome.kind == "greet":
            ack = self.v.pick("system", "ack_greeting")
        elif outcome.kind == "close":
            ack = self.v.pick("system", "ack_closing")
        elif self.move_kind in ("unsupported", "reset"):
            ack = self.v.pick("system", f"ack_{self.move_kind}")
        elif outcome.state != previous:
            ack = self.acknowledge_edit(outcome.state, previous) if self.chance(0.8) else ""
        else:
            ack = self.v.pick("system", "ack_unchanged")
        open_values = self.requestable(exclude=sorted(self.ever_held))
        open_slots = sorted({SLOT_OF[v] for v in open_values}, key=SLOTS.index)
        weights = dict(ACT_WEIGHTS)
        if outcome.kind == "close" or not open_values:
            weights = {"next": 1.0}
        act = self.rng.choices(list(weights), weights=list(weights.values()))[0]
        target = None
        if act == "request":
            weights_by_slot = {s: sum(self.weights.get(v, 1.0) for v in open_values if SLOT_OF[v] == s)
                               * (1.0 if self.state.slot_values(s) else 2.0) for s in open_slots}
            target = self.rng.choices(open_slots, weights=[weights_by_slot[s] for s in open_slots])[0]
            question = self.v.pick("system", "request").format(
                slot=self.v.pick("system", "slot_names", target), **self.system_forms)
        elif act == "suggest":
            target = self.choose(open_values)[0]
            question = self.v.pick("system", "suggest").format(
                val=self.v.pick("system", "value_names", target), **self.system_forms)
        else:
            question = self.v.pick("system", "next")
        return assemble([ack, question]), act, target

    def acknowledge_edit(self, state: BeliefState, previous: BeliefState) -> str:
        """"Done." or, sometimes, a reply that names what changed ("I've added bangs.")."""
        added, removed = state.diff(previous)
        if added and self.chance(0.3):
            value = self.rng.choice(added)
            return self.v.pick("system", "ack_added").format(
                val=self.v.pick("system", "value_names", value), **self.system_forms)
        if removed and not added and self.chance(0.5):
            name = self.v.pick("system", "value_names", self.rng.choice(removed))
            bare = name.removeprefix("a ").removeprefix("an ")
            return self.v.pick("system", "ack_removed").format(the=f"the {bare}", bare=bare, **self.system_forms)
        return self.v.pick("system", "ack_changed")

    def casual(self, text: str) -> str:
        """Sometimes type like people do in chats: all lower case, no final full stop."""
        if self.chance(0.1):
            text = text.lower()
        if self.chance(0.15) and text.endswith((".", "!")):
            text = text[:-1]
        return text

    def write(self, dialogue_id: str) -> Dialogue:
        count = self.rng.choices(list(TURN_COUNTS), weights=list(TURN_COUNTS.values()))[0]
        turns: list[Turn] = []
        act: str | None = None
        target: str | None = None
        for number in range(count):
            previous = self.state
            outcome = self.user_turn(number, number == count - 1, act, target)
            self.undo_target = previous if outcome.state != previous else None
            self.state = outcome.state
            self.ever_held.update(self.state.values)
            system, act, target = self.system_turn(outcome, previous)
            turns.append(Turn(user=self.casual(outcome.text), belief_state=self.state, system=system, system_act=act))
        extra = {"profile": list(self.profile.values), "gender": self.profile.gender}
        return Dialogue(dialogue_id=dialogue_id, image=self.profile.image, turns=turns, extra=extra)


def simulate_dialogue(bank: PhraseBank, split: str, seed: int, index: int, profile: Profile | None = None) -> Dialogue:
    """Dialogue number `index` (0-based) of `split`; the profile is sampled when not given."""
    rng = random.Random(f"{seed}:{split}:{index}")
    if profile is None:
        profile = sample_profile(rng, image=None)
    view = bank.view(split, rng)
    return _DialogueWriter(view, profile).write(f"{split}-{index + 1:06d}")


def split_sizes(total: int) -> dict[str, int]:
    """Dialogues per split, 10 : 1 : 1 like the paper (12,000 -> 10,000 / 1,000 / 1,000)."""
    if total < 3:
        raise ValueError(f"--dialogues must be at least 3 (one per split), got {total}")
    held = max(1, round(total / 12))
    return {"train": total - 2 * held, "val": held, "test": held}


def build_corpus(out: str | Path, dialogues: int = DEFAULT_DIALOGUES, seed: int = 0,
                 celeba_attrs: str | Path | None = None, progress: bool = False) -> dict[str, Path]:
    """Simulate a corpus and write `train.jsonl`, `val.jsonl`, `test.jsonl` under `out`.

    With `celeba_attrs`, faces are `dialogues` images of that CelebA-HQ attribute file, drawn without
    replacement in a seed-determined order, and `image` is the file name; otherwise profiles are
    sampled and `image` is `sim/NNNNNN.png`. Every record is checked with the validator's rules
    before its file is written.
    Returns the written paths by split.
    """
    sizes = split_sizes(dialogues)
    bank = PhraseBank.load()
    if celeba_attrs is not None:
        faces = read_celeba_attributes(celeba_attrs)
        if len(faces) < dialogues:
            raise ValueError(f"{celeba_attrs} lists {len(faces)} images but {dialogues} dialogues were asked for; "
                             f"pass --dialogues {len(faces)} or fewer")
        random.Random(f"{seed}:faces").shuffle(faces)
    out = Path(out)
    written: dict[str, Path] = {}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=dialogues, desc="simulating dialogues", unit="dialogue")
    start = 0
    for split in SPLITS:
        corpus = []
        for index in range(sizes[split]):
            number = start + index
            profile = faces[number] if celeba_attrs is not None else None
            if profile is None:
                rng = random.Random(f"{seed}:face:{number}")
                profile = sample_profile(rng, image=f"sim/{number:06d}.png")
            corpus.append(simulate_dialogue(bank, split, seed, index, profile))
            if bar is not None:
                bar.update()
        start += sizes[split]
        path = out / f"{split}.jsonl"
        write_dialogues(path, corpus)  # checks every record with the validator's rules first
        written[split] = path
        log.info("wrote %d dialogues to %s", len(corpus), path)
    if bar is not None:
        bar.close()
    return written
