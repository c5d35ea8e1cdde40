"""Model text formats (PPTOD style): dialogue context, task prompts, targets, and reading outputs back.

Context of turn n: `<sos_u> user 1 <eos_u> <sos_r> system 1 <eos_r> … <sos_u> user n <eos_u>`. The encoder
input of a task is `PROMPT <sos_context> CONTEXT <eos_context>`; the decoder starts at the task's `<sos_x>`
and stops at its `<eos_x>`. No torch here: this module only deals in strings.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

from dialogue.ontology import BeliefState, Dropped

# The 19 tokens PPTOD adds to the T5 vocabulary, in PPTOD's order (they take consecutive ids).
PPTOD_SPECIAL_TOKENS: tuple[str, ...] = (
    "<_PAD_>", "<go_r>", "<go_b>", "<go_a>", "<eos_u>", "<eos_r>", "<eos_b>", "<eos_a>", "<go_d>", "<eos_d>",
    "<sos_u>", "<sos_r>", "<sos_b>", "<sos_a>", "<sos_d>", "<sos_db>", "<eos_db>", "<sos_context>", "<eos_context>",
)

TRACK = "track"
RESPOND = "respond"
TASKS = (TRACK, RESPOND)
PROMPTS: dict[str, str] = {
    TRACK: "translate dialogue to belief state:",
    RESPOND: "translate dialogue to system response:",
}
# (decoder start token, decoder stop token) of each task
SPAN_TOKENS: dict[str, tuple[str, str]] = {TRACK: ("<sos_b>", "<eos_b>"), RESPOND: ("<sos_r>", "<eos_r>")}

_SPECIAL_RE = re.compile("|".join(re.escape(t) for t in PPTOD_SPECIAL_TOKENS))
_SPACE_RE = re.compile(r"\s+")


class TurnLike(Protocol):
    """What a corpus turn provides (`dialogue.records` turns satisfy it)."""

    user: str
    system: str
    belief_state: BeliefState


@dataclass(frozen=True)
class Prediction:
    """One turn's outputs: the tracked state, the raw belief span, what parsing dropped, the response.

    (Here, not in `dialogue.model`, so that a process that only receives predictions needs no torch.)"""

    state: BeliefState
    belief_span: str
    dropped: list[Dropped]
    response: str


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


def encoder_text(task: str, context: str) -> str:
    """`PROMPT <sos_context> CONTEXT <eos_context>` for `task` (`track` or `respond`)."""
    return f"{PROMPTS[task]} <sos_context> {context} <eos_context>"


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


def parse_response(generated: str) -> str:
    """The response text of a generated `<sos_r> … <eos_r>` span."""
    return span_body(generated, RESPOND)


@dataclass(frozen=True)
class Example:
    """One training pair: the task, its dialogue context and the full target span (start and stop tokens)."""

    task: str
    context: str
    target: str

    @property
    def source(self) -> str:
        """The encoder text (prompt + wrapped context)."""
        return encoder_text(self.task, self.context)


def turn_examples(turns: Sequence[TurnLike]) -> Iterable[Example]:
    """Both tasks' examples for every turn of one dialogue, with gold history as context."""
    history: list[tuple[str, str]] = []
    for turn in turns:
        context = build_context(history, turn.user)
        yield Example(TRACK, context, belief_target(turn.belief_state))
        yield Example(RESPOND, context, response_target(turn.system))
        history.append((turn.user, turn.system))
