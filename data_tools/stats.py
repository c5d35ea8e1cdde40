"""Corpus statistics: the paper's Table 2 figures and Fig. 3 counts.

Definitions (also in the README):
- utterances: user turns plus system turns (two per turn).
- words: whitespace-separated tokens of an utterance.
- attributes edited (per dialogue): values in the dialogue's final belief state, i.e. what the final
  image is edited towards.
- attributes mentioned (per dialogue): distinct values that appear in any turn's belief state (so also
  those later removed or replaced) or that a system utterance names (e.g. a declined suggestion),
  found with the ontology's synonym table.
- value_counts (Fig. 3 left): how often each value enters the belief state, over all turns.
- combination_counts (Fig. 3 right): how many dialogues end with each combination of values, keyed by
  the values in canonical order joined with " + " ("(none)" for an empty final state).
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

from dialogue.ontology import VALUES, BeliefState, normalize_value

from dialogue.records import Dialogue

PAPER_TABLE_2 = {
    "dialogues": 12_000, "utterances": 96_269, "avg_turns": 4.0, "avg_utterances": 8.0, "avg_words_user": 11.5,
    "avg_words_system": 9.1, "avg_attributes_mentioned": 5.5, "avg_attributes_edited": 4.0,
}
MAX_NGRAM = 3


def values_named(text: str) -> set[str]:
    """Ontology values a text names ("How about a fringe?" -> {"bangs"}), longest match first."""
    words = re.findall(r"[\w']+", text.lower().replace("-", " "))
    found: set[str] = set()
    i = 0
    while i < len(words):
        for n in range(min(MAX_NGRAM, len(words) - i), 0, -1):
            value = normalize_value(" ".join(words[i:i + n]))
            if value is not None:
                found.add(value)
                i += n
                break
        else:
            i += 1
    return found


def combination_key(state: BeliefState) -> str:
    return " + ".join(state.values) if state else "(none)"


def corpus_stats(dialogues: Iterable[Dialogue]) -> dict:
    """Table 2 averages plus Fig. 3 counts; see the module docstring for the definitions."""
    n_dialogues = n_turns = n_system = user_words = system_words = mentioned = edited = 0
    value_counts: Counter[str] = Counter()
    combinations: Counter[str] = Counter()
    for dialogue in dialogues:
        n_dialogues += 1
        named: set[str] = set()
        previous = BeliefState()
        for turn in dialogue.turns:
            n_turns += 1
            user_words += len(turn.user.split())
            if turn.system.strip():
                n_system += 1
                system_words += len(turn.system.split())
                named |= values_named(turn.system)
            added, _ = turn.belief_state.diff(previous)
            value_counts.update(added)
            named |= set(turn.belief_state.values)
            previous = turn.belief_state
        final = dialogue.turns[-1].belief_state
        mentioned += len(named)
        edited += len(final)
        combinations[combination_key(final)] += 1

    def avg(total: int, count: int) -> float:
        return round(total / count, 3) if count else 0.0

    return {
        "dialogues": n_dialogues,
        "utterances": n_turns + n_system,
        "avg_turns": avg(n_turns, n_dialogues),
        "avg_utterances": avg(n_turns + n_system, n_dialogues),
        "avg_words_user": avg(user_words, n_turns),
        "avg_words_system": avg(system_words, n_system),
        "avg_attributes_mentioned": avg(mentioned, n_dialogues),
        "avg_attributes_edited": avg(edited, n_dialogues),
        "value_counts": {v: value_counts[v] for v in VALUES},
        "combination_counts": dict(sorted(combinations.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def format_table(stats: dict) -> str:
    """The Table 2 figures next to the paper's, plus a Fig. 3 summary, as plain text."""
    rows = [
        ("Total # dialogues", "dialogues", "{:,}"), ("Total # utterances", "utterances", "{:,}"),
        ("Avg # turns per dialogue", "avg_turns", "{:.2f}"),
        ("Avg # utterances per dialogue", "avg_utterances", "{:.2f}"),
        ("Avg # words per user turn", "avg_words_user", "{:.2f}"),
        ("Avg # words per system turn", "avg_words_system", "{:.2f}"),
        ("Avg # attributes mentioned per dialogue", "avg_attributes_mentioned", "{:.2f}"),
        ("Avg # attributes edited per dialogue", "avg_attributes_edited", "{:.2f}"),
    ]
    lines = [f"{'':42}{'corpus':>10}{'paper':>10}"]
    for label, key, fmt in rows:
        lines.append(f"{label:42}{fmt.format(stats[key]):>10}{fmt.format(PAPER_TABLE_2[key]):>10}")
    counts = stats["value_counts"]
    lines.append("")
    lines.append("Requests per value (Fig. 3 left):")
    lines.extend(f"  {v:20}{counts[v]:>8,}" for v in VALUES)
    combos = stats["combination_counts"]
    rare = sum(1 for c in combos.values() if c < 4)
    share = 100.0 * rare / len(combos) if combos else 0.0
    lines.append("")
    lines.append(f"Final-state combinations (Fig. 3 right): {len(combos):,} distinct, "
                 f"{share:.1f}% of them occur fewer than 4 times")
    return "\n".join(lines)
