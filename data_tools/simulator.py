"""The corpus simulator: the simulation phase of the paper's dialogue pipeline (§3.1, Fig. 4).

Each dialogue is about one face with a current attribute profile (`celeba.Profile`). The user asks for
values the face does not have yet; the system answers every turn with an acknowledgement of what really
changed and one act: `next` (what else?), `request` (do you want to edit SLOT?) or `suggest` (how about
VALUE?), or says goodbye. The user then accepts, declines, declines and asks for something else, accepts and
asks for more, or ignores the question; users also change a value (black -> blond hair), remove one ("take
the mustache off", "get rid of it", "less cheerful"), correct themselves ("I meant wavy, not straight"), ask
for two values at once, type a bare value ("Curly."), greet, thank, chat, ask for what the ontology lacks
("ginger hair", "add glasses"), remove what was never added, and close ("that's all, thanks").

Every user turn is an `acts.Update` (what it asks to add and remove); its state is the update applied to the
previous one (`BeliefState.add` / `remove`, so exclusive groups hold) before its text is written. The system's
turn is an `acts.Act` (the user's intent and the system's policy) and a delexicalised reply assembled from
`phrasings/system.json`, filled from the turn's actual change (`acts.fill`): the record keeps the act, the
delexicalised reply and the filled one (`dialogue.records`).

Deterministic: dialogue `i` of a split uses its own `random.Random(f"{seed}:{split}:{i}")`.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from dialogue.acts import Act, Change, Update, fill, person_of
from dialogue.ontology import SLOT_OF, SLOT_VALUES, SLOTS, VALUES, BeliefState, conflicts_of

from .celeba import Profile, read_celeba_attributes, sample_profile
from .phrasebank import NOUN_REFERENTS, PRONOUNS, BankView, PhraseBank, assemble, noun_person, strip_end
from dialogue.records import Dialogue, Turn, write_dialogues

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_DIALOGUES = 12_000
TURN_COUNTS = {2: 0.08, 3: 0.25, 4: 0.35, 5: 0.22, 6: 0.10}  # mean 4.0 turns (paper Table 2)
ACT_WEIGHTS = {"next": 0.34, "request": 0.33, "suggest": 0.33}
ADJ_GROUPS = ("expression", "hair color", "hairstyle")  # slots whose exclusive values have `adj` phrasings
TEXTURES = ("straight hair", "wavy hair")
CLOSING_SHARE = 0.25   # last turns (from the second on) that close the dialogue
SMALL_TALK_SHARE = 0.07  # other turns that only thank, praise or chat
BARE_SHARE = 0.12       # requests typed as a bare value ("Curly.")
TYPO_SHARE = 0.08       # user turns with one typo ("blnde")

# Gender-dependent request weights (everything else 1.0): women rarely grow beards, men rarely wear lipstick.
VALUE_WEIGHTS = {
    "female": {"mustache": 0.15, "goatee": 0.15, "sideburns": 0.15, "receding hairline": 0.3},
    "male": {"lipstick": 0.35, "heavy makeup": 0.35, "earrings": 0.5},
}
CONFLICTS: dict[str, frozenset[str]] = {v: conflicts_of(v) for v in VALUES}


@dataclass
class _Move:
    """What a user turn does: its sentences, its update, and the intent the system acknowledges."""

    sentences: list[str]
    update: Update
    intent: str = "edit"
    topic: str | None = None  # the slot of an unsupported request, when it had one


class _DialogueWriter:
    """Writes one dialogue; all randomness comes from `view.rng`."""

    def __init__(self, view: BankView, profile: Profile):
        self.v = view
        self.rng = view.rng
        self.profile = profile
        self.have = frozenset(profile.values)
        r = self.rng.random()
        self.pronoun = "I" if r < 0.2 else "they" if r < 0.3 else ("she" if profile.gender == "female" else "he")
        self.weights = VALUE_WEIGHTS.get(profile.gender, {})
        self.state = BeliefState()
        self.ever_held: set[str] = set()  # the system never suggests again what the user had and dropped
        self.forms = PRONOUNS[self.pronoun].forms()
        self.turn_number = 0
        self.undo_target: BeliefState | None = None  # the state before the last turn, when that turn edited
        self.last_added: tuple[str, ...] = ()  # what the last turn added
        self.user_texts: list[str] = []

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

    def bare(self, value: str) -> str:
        """A bare phrase for `value` ("curly", "red lips")."""
        return self.phrase(value, "bare") if self.v.has("values", value, "bare") else self.phrase(value, "np")

    # --- user moves: each returns a _Move (or None when it does not fit the dialogue) -----------------
    def to(self, sentences: list[str], state: BeliefState, intent: str = "edit") -> _Move:
        """A move whose update is the one taking the current state to `state`."""
        return _Move(sentences, Update.between(self.state, state), intent)

    def move_request(self, k: int, exclude: Sequence[str] = ()) -> _Move | None:
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
        if self.chance(BARE_SHARE):  # "Curly." / "blond and bangs"
            if len(values) == 2:
                return self.to([self.user("bare_two", a=self.bare(values[0]), b=self.bare(values[1]))], state)
            return self.to([self.user("bare_frames", bare=self.bare(values[0]))], state)
        sentences = self.ask_two(*values) if len(values) == 2 else [self.ask_one(values[0])]
        return self.to(sentences, state)

    def move_change(self) -> _Move | None:
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
        return self.to(self.say_change(old, new[0]), self.state.remove(old).add(new[0]))

    def move_remove(self) -> _Move | None:
        if not self.state:
            return None
        old = self.rng.choice(self.state.values)
        return self.to(self.say_remove(old), self.state.remove(old))

    def move_remove_and_request(self) -> _Move | None:
        removed = self.move_remove()
        if removed is None:
            return None
        old = removed.update.remove[0]
        values = self.choose([v for v in self.requestable() if v != old and not CONFLICTS[v] & {old}])
        if not values:
            return None
        state = self.state.remove(old).add(values[0])
        return self.to(removed.sentences + [self.user("also"), self.ask_one(values[0])], state)

    def move_undo(self) -> _Move | None:
        """"Undo that": back to the state before the last turn."""
        if self.undo_target is None:
            return None
        return self.to([self.user("undo_last")], self.undo_target)

    def move_remove_it(self) -> _Move | None:
        """"Get rid of it": the one value the last turn added goes."""
        if len(self.last_added) != 1 or self.last_added[0] not in self.state:
            return None
        return self.to([self.user("remove_it")], self.state.remove(self.last_added[0]))

    def move_correction(self) -> _Move | None:
        """"I meant wavy, not straight": the one value the last turn added is replaced by another of its slot."""
        if len(self.last_added) != 1 or self.last_added[0] not in self.state:
            return None
        old = self.last_added[0]
        pool = [v for v in self.requestable() if SLOT_OF[v] == SLOT_OF[old]
                and CONFLICTS[v] & set(self.state.values) <= {old}]
        new = self.choose(pool)
        if not new:
            return None
        text = self.user("correction_frames", new=self.bare(new[0]), old=self.bare(old))
        return self.to([text], self.state.remove(old).add(new[0]))

    def move_negate(self) -> _Move | None:
        """"Less cheerful", "no more lipstick": a held value goes; a smile the face has becomes `no smiling`."""
        held = [v for v in self.state.values if self.v.has("values", v, "negate")]
        if held:
            value = self.rng.choice(held)
            state = self.state.remove(value)
        elif "smiling" in self.have and not self.state.slot_values("expression"):
            value, state = "smiling", self.state.add("no smiling")
        else:
            return None
        return self.to([self.user("negate_frames", neg=self.phrase(value, "negate"))], state)

    def move_remove_missing(self) -> _Move:
        """A removal of a value the state does not hold (often one the face has): the state stays, and the
        system says there was nothing of its own to take away."""
        pool = [v for v in VALUES if v not in self.state]
        face = [v for v in pool if v in self.have]
        value = self.rng.choice(face if face and self.chance(0.6) else pool)
        if self.v.has("values", value, "negate") and self.chance(0.3):
            sentences = [self.user("negate_frames", neg=self.phrase(value, "negate"))]
        else:
            sentences = self.say_remove(value)
        return _Move(sentences, Update(remove=(value,)))

    def move_already(self) -> _Move | None:
        """A request for a value the state already holds."""
        if not self.state:
            return None
        value = self.rng.choice(self.state.values)
        return _Move([self.ask_one(value)], Update(add=(value,)))

    def move_start_over(self) -> _Move | None:
        """"Let's start over": every requirement goes."""
        if len(self.state) < 2:
            return None
        return self.to([self.user("start_over")], BeliefState())

    def move_unsupported(self) -> _Move:
        """A request outside the ontology ("add glasses", "ginger hair"); sometimes together with one it can do."""
        if self.chance(0.5):
            topic = self.rng.choice(SLOTS)
            np = self.v.pick("user", "unsupported_values", topic)
            sentences = [self.user("bare_frames", bare=np) if self.chance(0.3) else self.np_request(np)]
        else:
            topic = None
            sentences = [self.user("clause_frames", do=self.user("unsupported"))]
        move = _Move(sentences, Update(), "unsupported", topic)
        if self.chance(0.25):
            extra = self.move_request(1)
            if extra is not None:
                move.sentences = (move.sentences + [self.user("also")] + extra.sentences if self.chance(0.5)
                                  else extra.sentences + [self.user("also")] + move.sentences)
                move.update = extra.update
        return move

    def move_active(self, exclude: Sequence[str] = ()) -> _Move:
        """A move that edits something (request one or two values, change, remove, undo, correct, start over),
        asks for something the ontology lacks, or removes what was never added."""
        options: list[tuple[float, Callable[[], _Move | None]]] = [
            (0.45, lambda: self.move_request(1, exclude)),
            (0.37, lambda: self.move_request(2, exclude)),
            (0.09, self.move_unsupported),
            (0.025, self.move_remove_missing),
        ]
        if self.state:
            options += [(0.10, self.move_change), (0.07, self.move_remove), (0.05, self.move_remove_and_request),
                        (0.03, self.move_undo), (0.04, self.move_remove_it), (0.03, self.move_correction),
                        (0.05, self.move_negate), (0.012, self.move_start_over), (0.012, self.move_already)]
        elif "smiling" in self.have:
            options.append((0.02, self.move_negate))
        while options:
            index = self.rng.choices(range(len(options)), weights=[w for w, _ in options])[0]
            result = options.pop(index)[1]()
            if result is not None:
                return result
        return _Move([self.user("closings")], Update(), "close")  # nothing left to ask for

    def move_after_suggest(self, value: str) -> _Move:
        r = self.rng.random()
        if r < 0.5:  # accept
            state = self.state.add(value)
            s = self.rng.random()
            if s < 0.2:
                return self.to([self.user("accept_lead"), self.ask_one(value)], state)
            if s < 0.5:
                extra = self.choose([v for v in self.requestable([value]) if v not in CONFLICTS[value]])
                if extra:
                    if self.chance(0.5):
                        text = self.user("accept_and", do=self.phrase(extra[0], "do"), np=self.phrase(extra[0], "np"))
                        return self.to([text], state.add(extra[0]))
                    return self.to([self.user("accept"), self.user("also"), self.ask_one(extra[0])], state.add(extra[0]))
            return self.to([self.user("accept")], state)
        if r < 0.6:
            return _Move([self.user("decline")], Update(), "decline")
        if r < 0.8:
            return self.decline_and_other(exclude=[value])
        return self.move_active(exclude=[value])

    def move_after_request(self, slot: str) -> _Move:
        r = self.rng.random()
        in_slot = [v for v in self.requestable() if SLOT_OF[v] == slot]
        if r < 0.55 and in_slot:  # accept by naming a value of the slot
            value = self.choose(in_slot)[0]
            state = self.state.add(value)
            if self.chance(0.2):  # "Yes, black."
                return self.to([self.user("accept_lead"), self.bare(value)], state)
            if self.chance(0.25):
                extra = self.choose([v for v in self.requestable([value]) if v not in CONFLICTS[value]])
                if extra:
                    return self.to([self.user("accept_lead"), *self.ask_two(value, extra[0])], state.add(extra[0]))
            return self.to([self.user("accept_lead"), self.ask_one(value)], state)
        if r < 0.65:
            if self.chance(0.5):
                return _Move([self.user("decline_slot", slot=self.v.pick("user", "slot_names", slot))], Update(),
                             "decline")
            return _Move([self.user("decline")], Update(), "decline")
        if r < 0.8:
            return self.decline_and_other(exclude=SLOT_VALUES[slot])
        return self.move_active(exclude=SLOT_VALUES[slot])

    def decline_and_other(self, exclude: Sequence[str]) -> _Move:
        values = self.choose(self.requestable(exclude))
        if not values:
            return _Move([self.user("decline")], Update(), "decline")
        value = values[0]
        decline = strip_end(self.user("decline"))
        text = self.user("decline_other", decline=decline, sentence=self.ask_one(value),
                         do=self.phrase(value, "do"), np=self.phrase(value, "np"))
        return self.to([text], self.state.add(value))

    def move_small_talk(self) -> _Move:
        """Thanks, praise or a question: nothing changes."""
        if self.chance(0.6):
            return _Move([self.user("thanks_only")], Update(), "thanks")
        return _Move([self.user("chat_questions")], Update(), "chat")

    # --- turns -------------------------------------------------------------------------------------
    def user_turn(self, number: int, last: bool, act: Act | None) -> tuple[str, _Move]:
        """The user's text and move for turn `number`, answering the system's last `act`."""
        self.new_utterance()
        self.turn_number = number
        if number == 0:
            if self.chance(0.05):
                return assemble([self.user("greeting_only")]), _Move([], Update(), "greet")
            opener = [self.user("openers")] if self.chance(0.4) else []
            move = self.move_request(2) if self.chance(0.5) else self.move_request(1)
            return assemble(opener + move.sentences + self.afterthought(True)), move
        reaction = [self.user("reactions")] if self.chance(0.55) else []
        if last and self.chance(CLOSING_SHARE):
            return assemble(reaction + [self.user("closings")]), _Move([], Update(), "close")
        if self.chance(SMALL_TALK_SHARE):
            move = self.move_small_talk()
            return assemble(move.sentences), move
        if act is not None and act.policy == "suggest":
            move = self.move_after_suggest(act.value)
        elif act is not None and act.policy == "request":
            move = self.move_after_request(act.slot)
        else:
            move = self.move_active()
        return assemble(reaction + move.sentences + self.afterthought(bool(move.update))), move

    def afterthought(self, edited: bool) -> list[str]:
        """Sometimes a closing remark ("Thanks!") after a request; never after a plain decline."""
        return [self.user("afterthoughts")] if edited and self.chance(0.2) else []

    def choose_act(self, move: _Move, change: Change) -> Act:
        """The system's act: the user's intent, and next / request SLOT / suggest VALUE (end after a closing)."""
        if move.intent == "close":
            return Act("close", "end")
        open_values = self.requestable(exclude=sorted(self.ever_held))
        open_slots = sorted({SLOT_OF[v] for v in open_values}, key=SLOTS.index)
        weights = dict(ACT_WEIGHTS) if open_values else {"next": 1.0}
        policy = self.rng.choices(list(weights), weights=list(weights.values()))[0]
        slot = value = None
        if policy == "request":
            weights_by_slot = {s: sum(self.weights.get(v, 1.0) for v in open_values if SLOT_OF[v] == s)
                               * (1.0 if self.state.slot_values(s) else 2.0) for s in open_slots}
            slot = self.rng.choices(open_slots, weights=[weights_by_slot[s] for s in open_slots])[0]
        elif policy == "suggest":
            value = self.choose(open_values)[0]
        return Act(move.intent, policy, slot, value, move.topic)

    def reply(self, change: Change, act: Act) -> str:
        """The delexicalised reply: what changed (naming it or not), what the user's turn was, the policy."""
        pick = lambda name: self.v.pick("system", name)  # noqa: E731
        pieces = []
        if change.added or change.removed:
            kind = "changed" if change.added and change.removed else "added" if change.added else "removed"
            r = self.rng.random()  # name what changed, or just say it is done, or go on to the question
            if r < 0.4:
                pieces.append(pick(f"ack_{kind}"))
            elif r < 0.75:
                pieces.append(pick("ack_done"))
        if change.missing:
            pieces.append(pick("ack_missing"))
        if change.already:
            pieces.append(pick("ack_already"))
        if act.intent == "unsupported":
            pieces.append(pick("ack_unsupported_slot" if act.topic else "ack_unsupported"))
        elif not change.kinds():
            pieces.append(pick({"edit": "ack_decline"}.get(act.intent, f"ack_{act.intent}")))
        if act.policy != "end":  # a closing's acknowledgement already says goodbye
            pieces.append(pick(act.policy))
        return assemble(pieces)

    def casual(self, text: str) -> str:
        """Sometimes type like people do in chats: all lower case, no final full stop, a typo."""
        if self.chance(0.1):
            text = text.lower()
        if self.chance(0.15) and text.endswith((".", "!")):
            text = text[:-1]
        if self.chance(TYPO_SHARE):
            text = self.typo(text)
        return text

    def typo(self, text: str) -> str:
        """One slip of the fingers in a word of four letters or more: two letters swapped, one dropped or one
        doubled."""
        words = text.split(" ")
        long = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
        if not long:
            return text
        i = self.rng.choice(long)
        word, j = words[i], self.rng.randrange(1, len(words[i]) - 1)
        kind = self.rng.random()
        if kind < 0.4:
            word = word[:j] + word[j + 1] + word[j] + word[j + 2:]
        elif kind < 0.7:
            word = word[:j] + word[j + 1:]
        else:
            word = word[:j] + word[j] + word[j:]
        words[i] = word
        return " ".join(words)

    def write(self, dialogue_id: str) -> Dialogue:
        count = self.rng.choices(list(TURN_COUNTS), weights=list(TURN_COUNTS.values()))[0]
        turns: list[Turn] = []
        act: Act | None = None
        for number in range(count):
            previous = self.state
            text, move = self.user_turn(number, number == count - 1, act)
            text = self.casual(text)
            change = move.update.apply(previous)
            self.undo_target = previous if change.state != previous else None
            self.last_added = change.added
            self.state = change.state
            self.ever_held.update(self.state.values)
            self.user_texts.append(text)
            act = self.choose_act(move, change)
            delex = self.reply(change, act)
            system = fill(delex, change, act, person_of(self.user_texts), self.rng)
            shown = move.update if move.update != Update.between(previous, change.state) else None
            turns.append(Turn(user=text, belief_state=self.state, system=system,
                              system_act=act.policy if act.policy != "end" else None, update=shown, act=act,
                              system_delex=delex))
            if move.intent == "close":
                break
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


def corpus_dialogues(split: str, start: int, count: int, seed: int = 0, total: int = DEFAULT_DIALOGUES,
                     bank: PhraseBank | None = None) -> list[Dialogue]:
    """Dialogues `start` .. `start + count - 1` of `split` exactly as `build_corpus(dialogues=total, seed=seed)`
    writes them (sampled faces); the train split goes on past its size, so that a trainer can draw new
    dialogues as long as it likes."""
    bank = bank or PhraseBank.load()
    offset = {"train": 0, "val": split_sizes(total)["train"], "test": sum(split_sizes(total)[s] for s in ("train", "val"))}
    out = []
    for index in range(start, start + count):
        number = offset[split] + index
        profile = sample_profile(random.Random(f"{seed}:face:{number}"), image=f"sim/{number:06d}.png")
        out.append(simulate_dialogue(bank, split, seed, index, profile))
    return out


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
