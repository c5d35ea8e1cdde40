"""Fresh simulated dialogues for every training epoch (`i2edit train-dialogue --simulate N`).

Epoch e trains on train-split dialogues e*N .. (e+1)*N - 1 of the simulator (train-split wording only), so no
dialogue is seen twice; validation uses the first dialogues of the validation split of `i2edit data build`
with the same seed (the default corpus's `val.jsonl` for seed 0), or a corpus directory's `val.jsonl`.
Everything is determined by the seed, so a resumed run sees the same dialogues.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from dialogue.records import Dialogue
from dialogue.train import read_split

from .phrasebank import PhraseBank
from .simulator import corpus_dialogues

log = logging.getLogger(__name__)


@dataclass
class SimulatedSource:
    """`train(epoch)`: `per_epoch` new simulated dialogues; `val()`: the simulated (or `val_dir`) validation
    dialogues, the first `val_dialogues` of them (None: 300)."""

    per_epoch: int
    seed: int = 0
    val_dialogues: int | None = None
    val_dir: Path | None = None
    _cache: tuple[int, list[Dialogue]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.per_epoch < 1:
            raise ValueError(f"--simulate must be at least 1 dialogue per epoch, got {self.per_epoch}")
        self._bank = PhraseBank.load()

    def train(self, epoch: int) -> Sequence[Dialogue]:
        if self._cache is None or self._cache[0] != epoch:
            started = time.time()
            dialogues = corpus_dialogues("train", epoch * self.per_epoch, self.per_epoch, self.seed, bank=self._bank)
            log.info("simulated %d training dialogues for epoch %d in %.0f s", len(dialogues), epoch + 1,
                     time.time() - started)
            self._cache = (epoch, dialogues)
        return self._cache[1]

    def val(self) -> Sequence[Dialogue]:
        count = self.val_dialogues or 300
        if self.val_dir is not None:
            return read_split(self.val_dir, "val")[:count]
        return corpus_dialogues("val", 0, count, self.seed, bank=self._bank)
