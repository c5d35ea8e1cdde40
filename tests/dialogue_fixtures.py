"""Tiny I2Edit-format corpora for the dialogue tests, made by a few templates of their own (not the
project's simulator, so the tests do not depend on its wording)."""
from __future__ import annotations

import json
import random
from pathlib import Path

from dialogue.ontology import VALUES, BeliefState

_ADD = ("add {v}", "please give her {v}", "i want {v}", "make it {v}")
_REMOVE = ("remove the {v}", "no {v} anymore")
_SYSTEM = ("Done. What else?", "Here it is. Anything more?", "Okay. Do you want to change the makeup?")


def make_dialogue(rng: random.Random, dialogue_id: str, turns: int = 3) -> dict:
    state = BeliefState()
    out = []
    for _ in range(turns):
        if state and rng.random() < 0.3:
            value = rng.choice(state.values)
            state = state.remove(value)
            user = rng.choice(_REMOVE).format(v=value)
        else:
            value = rng.choice(VALUES)
            state = state.add(value)
            user = rng.choice(_ADD).format(v=value)
        out.append({"user": user, "belief_state": state.to_dict(), "system_act": "next",
                    "system": rng.choice(_SYSTEM)})
    return {"dialogue_id": dialogue_id, "image": None, "turns": out}


def write_corpus(directory: Path, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Write train/val/test.jsonl under `directory` (default 40/6/6 dialogues); returns `directory`."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, count in (sizes or {"train": 40, "val": 6, "test": 6}).items():
        lines = [json.dumps(make_dialogue(rng, f"{split}-{i:04d}", turns=rng.randint(1, 4))) for i in range(count)]
        (directory / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return directory
