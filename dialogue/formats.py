"""Model text formats (PPTOD style): dialogue context, task prompts, targets, and reading outputs back.

Context of turn n: `<sos_u> user 1 <eos_u> <sos_r> system 1 <eos_r> … <sos_u> user n <eos_u>`. The encoder
input of a task is `PROMPT [<sos_b> STATE <eos_b>] <sos_context> CONTEXT <eos_context>`; the decoder starts at
the task's `<sos_x>` and stops at its `<eos_x>`. A model's `TextFormat` says which of two ways it tracks:

- `history` (wave 1): the whole history goes in; the target is the whole new state
  (`<sos_b> [expression] smiling [makeup] lipstick <eos_b>`).
- `update` (wave 2, MinTL-style): the confirmed previous state and the last `context_turns` exchanges go in;
  the target is the update (`<sos_b> [add] smiling [remove] lipstick <eos_b>`, `dialogue.acts.Update`), which
  is applied to the previous state. A turn cannot change what its update does not name.

and which of two ways it answers:

- `literal` (wave 1): `translate dialogue to system response:` writes the reply from the context;
- `delexicalised` (wave 2): `translate dialogue to dialogue action:` writes the act (`<sos_a> edit suggest
  [bangs] <eos_a>`, from the same input as tracking), then `translate dialogue action to system response:`
  writes a reply with placeholders from the act and the kinds of change (`<sos_a> added ; edit ; suggest
  <eos_a>` -> `<sos_r> Here [subj] [is] with [added]. How about [value]? <eos_r>`), which `acts.fill` fills.

No torch here: this module only deals in strings.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

from dialogue.acts import Act, Change, Update, reply_frame_span
from dialogue.ontology import BeliefState, Dropped

# The 19 tokens PPTOD adds to the T5 vocabulary, in PPTOD's order (they take consecutive ids).
PPTOD_SPECIAL_TOKENS: tuple[str, ...] = (
    "<_PAD_>", "<go_r>", "<go_b>", "<go_a>", "<eos_u>", "<eos_r>", "<eos_b>", "<eos_a>", "<go_d>", "<eos_d>",
    "<sos_u>", "<sos_r>", "<sos_b>", "<sos_a>", "<sos_d>", "<sos_db>", "<eos_db>", "<sos_context>", "<eos_context>",
)

TRACK = "track"      # belief state or update
ACT = "act"          # dialogue act (delexicalised answers)
REPLY = "reply"      # delexicalised reply from the act
RESPOND = "respond"  # literal reply from the context (wave 1)
TASKS = (TRACK, ACT, REPLY, RESPOND)
PROMPTS: dict[str, str] = {
    TRACK: "translate dialogue to belief state:",
    ACT: "translate dialogue to dialogue action:",
    REPLY: "translate dialogue action to system response:",
    RESPOND: "translate dialogue to system response:",
}
# (decoder start token, decoder stop token) of each task
SPAN_TOKENS: dict[str, tuple[str, str]] = {
    TRACK: ("<sos_b>", "<eos_b>"), ACT: ("<sos_a>", "<eos_a>"), REPLY: ("<sos_r>", "<eos_r>"),
    RESPOND: ("<sos_r>", "<eos_r>"),
}
TRACKINGS = ("history", "update")
RESPONSES = ("literal", "delexicalised")

_SPECIAL_RE = re.compile("|".join(re.escape(t) for t in PPTOD_SPECIAL_TOKENS))
_SPACE_RE = re.compile(r"\s+")


@dataclass(frozen=True)
class TextFormat:
    """How a model reads and writes (saved with it in `i2edit_dialogue.json`; see the module docstring).

    `context_turns`: earlier (user, system) exchanges the `update` format keeps (0: all of them)."""

    tracking: str = "update"
    responses: str = "delexicalised"
    context_turns: int = 1

    def __post_init__(self) -> None:
        if self.tracking not in TRACKINGS:
            raise ValueError(f"unknown tracking format {self.tracking!r}; use one of {', '.join(TRACKINGS)}")
        if self.responses not in RESPONSES:
            raise ValueError(f"unknown response format {self.responses!r}; use one of {', '.join(RESPONSES)}")
        if self.context_turns < 0:
            raise ValueError(f"context_turns must be 0 (all) or more, got {self.context_turns}")

    @property
    def state_input(self) -> bool:
        """Whether the previous state is part of the encoder input (the `update` format)."""
        return self.tracking == "update"

    @property
    def first_tasks(self) -> tuple[str, ...]:
        """Tasks decoded from the dialogue context, together in one batch."""
        return (TRACK, ACT) if self.responses == "delexicalised" else (TRACK, RESPOND)

    def context(self, history: Sequence[tuple[str, str]], user_text: str) -> str:
        """The context string: the exchanges this format keeps, then `user_text`."""
        if self.state_input and self.context_turns:
            history = list(history)[-self.context_turns:]
        return build_context(history, user_text)


WAVE1_FORMAT = TextFormat("history", "literal", 0)


class TurnLike(Protocol):
    """What a corpus turn provides (`dialogue.records` turns satisfy it)."""

    user: str
    system: str
    belief_state: BeliefState
    update: Update | None
    act: Act | None
    system_delex: str | None


@dataclass(frozen=True)
class Prediction:
    """One turn's outputs: the tracked state, the raw span, what parsing dropped, the reply, and (delexicalised
    answers) the act, the delexicalised reply and what the update did.

    (Here, not in `dialogue.model`, so that a process that only receives predictions needs no torch.)"""

    state: BeliefState
    belief_span: str
    dropped: list[Dropped]
    response: str
    act: Act | None = None
    delex: str = ""
    change: Change | None = None


def clean_utterance(text: str) -> str:
    """One line of text with single spaces and no PPTOD marker tokens (a user cannot inject `<sos_b>`)."""
    return _SPACE_RE.sub(" ", _SPECIAL_RE.sub(" ", text)).strip()


def check_user_text(user_text: object) -> None:
    """Raise `ValueError` when `user_text` is not a string or has nothing left once cleaned (see below)."""
    if not isinstance(user_text, str) or not clean_utterance(user_text):
        raise ValueError("user text is empty: write what to change in the photo")


def build_context(history: Sequence[tuple[str, str]], user_text: str) -> str:
    """The context string for the current turn: earlier (user, system) pairs, then `user_text`."""
    parts = [f"<sos_u> {clean_utterance(u)} <eos_u> <sos_r> {clean_utterance(s)} <eos_r>" for u, s in history]
    parts.append(f"<sos_u> {clean_utterance(user_text)} <eos_u>")
    return " ".join(parts)


def state_text(state: BeliefState) -> str:
    """The previous state as the encoder reads it: `<sos_b> [slot] values … <eos_b>`."""
    return state.to_span()


def encoder_text(task: str, context: str, state: BeliefState | None = None) -> str:
    """`PROMPT [<sos_b> STATE <eos_b>] <sos_context> CONTEXT <eos_context>` for a context task."""
    head = f"{PROMPTS[task]} {state_text(state)}" if state is not None else PROMPTS[task]
    return f"{head} <sos_context> {context} <eos_context>"


def belief_target(state: BeliefState) -> str:
    """`<sos_b> [slot] v1, v2 … <eos_b>` (canonical order; an empty state is `<sos_b> <eos_b>`)."""
    return state.to_span()


def response_target(text: str) -> str:
    """`<sos_r> response <eos_r>`."""
    return f"<sos_r> {clean_utterance(text)} <eos_r>"


def span_body(generated: str, task: str) -> str:
    """The text between the task's start and stop tokens of a decoded output (lenient: either may be missing).

    Anything after the first stop token is ignored; other marker tokens are removed.
    """
    start, stop = SPAN_TOKENS[task]
    text = generated.split(stop, 1)[0]
    if start in text:
        text = text.split(start, 1)[1]
    return clean_utterance(text.replace("<pad>", " ").replace("</s>", " "))


def parse_belief(generated: str) -> tuple[BeliefState, list[Dropped]]:
    """Lenient reading of a generated belief span; never raises (unknown slots and values are dropped)."""
    return BeliefState.from_span(span_body(generated, TRACK))


def parse_update(generated: str) -> tuple[Update, list[Dropped]]:
    """Lenient reading of a generated update span; never raises."""
    return Update.from_span(span_body(generated, TRACK))


def parse_act(generated: str) -> tuple[Act, list[Dropped]]:
    """Lenient reading of a generated act span; never raises (an unreadable act is `edit next`)."""
    return Act.from_span(span_body(generated, ACT))


def parse_response(generated: str) -> str:
    """The response text of a generated `<sos_r> … <eos_r>` span."""
    return span_body(generated, RESPOND)


@dataclass(frozen=True)
class Example:
    """One training pair: the task, its context (for `reply`: the act frame `<sos_a> … <eos_a>`), the previous
    state when the format reads it, and the full target span (start and stop tokens)."""

    task: str
    context: str
    target: str
    state: BeliefState | None = None

    @property
    def source(self) -> str:
        """The encoder text (before any cut to the model's source limit)."""
        if self.task == REPLY:
            return f"{PROMPTS[REPLY]} {self.context}"
        return encoder_text(self.task, self.context, self.state)


def turn_examples(turns: Sequence[TurnLike], fmt: TextFormat) -> Iterable[Example]:
    """Every task's example for every turn of one dialogue, with gold history (and gold previous state) as
    input. Delexicalised answers need the turn's act and delexicalised reply; turns without them (a corpus
    not written by the simulator) give tracking examples only."""
    history: list[tuple[str, str]] = []
    previous = BeliefState()
    for turn in turns:
        context = fmt.context(history, turn.user)
        state = previous if fmt.state_input else None
        update = turn.update if turn.update is not None else Update.between(previous, turn.belief_state)
        if fmt.state_input:
            yield Example(TRACK, context, update.to_span(), state)
        else:
            yield Example(TRACK, context, belief_target(turn.belief_state))
        if fmt.responses == "literal":
            yield Example(RESPOND, context, response_target(turn.system))
        elif turn.act is not None and turn.system_delex is not None:
            yield Example(ACT, context, turn.act.to_span(), state)
            frame = reply_frame_span(update.apply(previous), turn.act)
            yield Example(REPLY, frame, response_target(turn.system_delex))
        history.append((turn.user, turn.system))
        previous = turn.belief_state
