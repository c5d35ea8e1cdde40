"""What the chat says about an edit's outcome: the critic's verdicts as a follow-up message, and how much harder
"Try harder" may push.

The editor records a verdict per requested value (`metrics["verdicts"]`: present, absent, or None where its
weight set has no threshold for the value; `editing.pipeline.critic`). When a value did not come out, the page adds a
short follow-up message naming it, with a Try harder button while the effort can still grow.
"""
from __future__ import annotations

from typing import Any, Mapping

MAX_EFFORT = 2  # "Try harder" at most twice per turn: 3x the steps and 2 more refinement rounds at the end

# How the follow-up names a value ("The smile did not come out clearly").
VALUE_NOUNS: dict[str, str] = {
    "smiling": "the smile", "angry": "the angry look", "sad": "the sad look", "no smiling": "the straight face",
    "brown hair": "the brown hair", "blond hair": "the blond hair", "black hair": "the black hair",
    "gray hair": "the gray hair", "straight hair": "the straight hair", "wavy hair": "the wavy hair",
    "receding hairline": "the receding hairline", "sideburns": "the sideburns", "bangs": "the bangs",
    "mustache": "the mustache", "goatee": "the goatee", "no makeup": "the bare, make-up-free look",
    "heavy makeup": "the heavy makeup", "lipstick": "the lipstick", "earrings": "the earrings",
    "bushy eyebrows": "the bushy eyebrows", "big lips": "the bigger lips", "rosy cheeks": "the rosy cheeks",
    "pale skin": "the pale skin",
}


def shortfalls(metrics: Mapping[str, Any] | None) -> list[str]:
    """The requested values the critic judged absent in an edit's `metrics` (empty without verdicts)."""
    verdicts = (metrics or {}).get("verdicts") or {}
    return [value for value, present in verdicts.items() if present is False]


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" and {items[-1]}"


def can_try_harder(status: str, metrics: Mapping[str, Any] | None, effort: int) -> bool:
    """Whether a finished edit may be pushed again: done, something fell short, effort left."""
    return status == "done" and bool(shortfalls(metrics)) and effort < MAX_EFFORT


def follow_up(status: str, metrics: Mapping[str, Any] | None, effort: int) -> str | None:
    """The follow-up message for a finished edit, or None when everything requested came out (or nothing was
    judged)."""
    missing = shortfalls(metrics)
    if status != "done" or not missing:
        return None
    names = [VALUE_NOUNS.get(v, v) for v in missing]
    sentence = f"{_join(names).capitalize()} did not come out clearly"
    if can_try_harder(status, metrics, effort):
        push = "it" if len(names) == 1 else "them"
        return f"{sentence}; press Try harder to push {push}."
    return f"{sentence}, even after trying harder; try saying it another way, or ask for less at once."
