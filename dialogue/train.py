"""Multi-task training of the dialogue model (paper §5.1): belief tracking, dialogue act and response examples
shuffled together, validation joint accuracy each epoch, best model kept, resumable, one or several processes.

Output directory layout:
- `OUT/` holds the best model so far (loadable with `DialogueModel.from_pretrained(OUT)`),
- `OUT/checkpoint/` the latest weights plus `state.pt` (optimizer, scheduler, position, best score) and
  `rng-<rank>.pt`, written every `save_every` steps, at each epoch end and on Ctrl-C; `--resume` continues
  from it at the exact batch it stopped at,
- `OUT/train_log.jsonl` one line per epoch.

Training dialogues come from a `DialogueSource`: a corpus directory (`FileSource`: the same dialogues every
epoch) or, through `i2edit train-dialogue --simulate N`, N new simulated dialogues each epoch
(`data_tools.fresh.SimulatedSource`).

Several processes: start with `accelerate launch --num_processes N -m dialogue.train ...` or
`torchrun --nproc_per_node N -m dialogue.train ...`; Hugging Face Accelerate reads either launcher's
environment, sets up the process group and wraps the model for gradient averaging. Each process takes every
N-th batch of `batch_size` examples, so one optimizer step uses N x `batch_size` examples (the global batch) and
an epoch has 1/N as many steps.
"""
from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch
from accelerate import Accelerator

from dialogue.deepen import deepen
from dialogue.formats import (
    ACT, PROMPTS, REPLY, RESPOND, TRACK, Example, TextFormat, clean_utterance, turn_examples,
)
from dialogue.metrics import joint_accuracy
from dialogue.model import DialogueModel
from dialogue.train_config import TrainConfig, add_train_arguments, config_from_args

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"
STATE_FILE = "state.pt"
LOG_FILE = "train_log.jsonl"
SUBSAMPLED_TASKS = (ACT, REPLY, RESPOND)  # `response_ratio` of these are trained on per epoch


def read_split(data_dir: Path, split: str):
    """Validated dialogues of `DATA_DIR/<split>.jsonl` (raises naming the file when it is missing)."""
    from dialogue.records import read_dialogues

    path = Path(data_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --data must be a corpus directory with train.jsonl and "
                                f"val.jsonl (build one with `i2edit data build --out DIR`)")
    return read_dialogues(path)


class DialogueSource(Protocol):
    """Where training and validation dialogues come from."""

    def train(self, epoch: int) -> Sequence:
        """The training dialogues of `epoch` (0-based)."""

    def val(self) -> Sequence:
        """The validation dialogues."""


@dataclass
class FileSource:
    """`DATA_DIR/train.jsonl` (its first `train_dialogues`, every epoch) and `val.jsonl` (its first
    `val_dialogues`)."""

    data_dir: Path
    train_dialogues: int | None = None
    val_dialogues: int | None = None

    def __post_init__(self) -> None:
        self._train = read_split(self.data_dir, "train")[: self.train_dialogues]

    def train(self, epoch: int) -> Sequence:
        return self._train

    def val(self) -> Sequence:
        return read_split(self.data_dir, "val")[: self.val_dialogues]


def corpus_texts(dialogues, fmt: TextFormat | None = None) -> list[str]:
    """The distinct strings a corpus feeds the model, marker tokens removed: prompts, utterances, targets and
    act frames (what the from-scratch tokenizer is trained on)."""
    out = dict.fromkeys(PROMPTS.values())
    for dialogue in dialogues:
        for turn in dialogue.turns:
            out.update(dict.fromkeys(clean_utterance(text) for text in (turn.user, turn.system)))
        for example in turn_examples(dialogue.turns, fmt or TextFormat()):
            if example.task != TRACK or example.state is not None:
                out[clean_utterance(example.target)] = None
            if example.task == REPLY:
                out[clean_utterance(example.context)] = None
            if example.state is not None:
                out[clean_utterance(example.state.to_span())] = None
    return list(out)


def corpus_examples(dialogues, fmt: TextFormat) -> list[Example]:
    """Every task's examples for every turn, in corpus order."""
    return [ex for dialogue in dialogues for ex in turn_examples(dialogue.turns, fmt)]


def tokenize_examples(model: DialogueModel, examples: Sequence[Example]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(encoder ids, target ids) of every example, as compact integer arrays (a corpus of hundreds of thousands
    of examples stays small); the tokenizer runs over all contexts and targets in two batched calls."""
    tok = model.tokenizer
    contexts = tok([ex.context for ex in examples], add_special_tokens=False)["input_ids"]
    targets = tok([ex.target for ex in examples], add_special_tokens=False)["input_ids"]
    out = []
    limit = model.settings.max_target_length
    dtype = np.uint16 if len(tok) < 2 ** 16 else np.int32
    for ex, body, target in zip(examples, contexts, targets):
        if ex.task == REPLY:
            source = (model.encode(REPLY, "") + body)[: model.settings.max_source_length]
        else:
            source = model.source_ids(ex.task, body, ex.state)
        if len(target) > limit + 1:
            target = target[:limit] + target[-1:]
        out.append((np.asarray(source, dtype=dtype), np.asarray(target, dtype=dtype)))
    return out


def epoch_examples(tasks: Sequence[str], response_ratio: float, seed: int, epoch: int) -> list[int]:
    """Indices of the examples trained on in `epoch`: every tracking example and `round(response_ratio * R)` of
    the R act and response examples, drawn afresh each epoch (fixed by seed and epoch), so that over several
    epochs the policy and the responder still see all of them while most compute goes to tracking."""
    others = [i for i, task in enumerate(tasks) if task in SUBSAMPLED_TASKS]
    keep = set(random.Random(f"responses:{seed}:{epoch}").sample(others, round(response_ratio * len(others))))
    return [i for i, task in enumerate(tasks) if task not in SUBSAMPLED_TASKS or i in keep]


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                  indices: Sequence[int] | None = None) -> list[list[int]]:
    """Length-bucketed batches of example indices (`indices`, default all) in a shuffled order fixed by
    (seed, epoch).

    Indices are shuffled, cut into pools of 50 batches, each pool sorted by length and cut into batches (so
    a batch holds similar lengths and little padding), then the batches are shuffled.
    """
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths))) if indices is None else list(indices)
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lengths.__getitem__)
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


class TokenNoise:
    """Replaces each ordinary word piece of an encoder row's context (after `<sos_context>`; prompts and PPTOD
    markers are kept) with a uniformly drawn ordinary piece, with probability `share`, so that the tracker
    cannot lean on one cue word of a phrasing. (Meant for wording held out of training; on the wave-1 corpus
    it did not raise validation accuracy: docs/dialogue.md.)"""

    def __init__(self, model: DialogueModel, share: float) -> None:
        if not 0.0 <= share < 1.0:
            raise ValueError(f"--token-noise must be in [0, 1), got {share}")
        tokenizer = model.tokenizer
        special = set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())
        self.share = share
        self.ordinary = [i for i in range(len(tokenizer)) if i not in special]
        self._is_ordinary = set(self.ordinary)
        self._context_start = tokenizer.convert_tokens_to_ids("<sos_context>")

    def __call__(self, source: Sequence[int], rng) -> Sequence[int]:
        """`source` with noise drawn from `rng` (a `random.Random` or the `random` module)."""
        if not self.share:
            return source
        source = [int(i) for i in source]
        start = source.index(self._context_start) + 1 if self._context_start in source else len(source)
        return source[:start] + [rng.choice(self.ordinary) if i in self._is_ordinary and rng.random() < self.share
                                 else i for i in source[start:]]


def set_dropout(net: torch.nn.Module, rate: float) -> None:
    """Set every dropout of `net` to `rate`: the `nn.Dropout` layers, the attention weights' dropout (a float
    attribute of each T5 attention block) and the config, so that the saved model is built the same way."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"--dropout must be in [0, 1), got {rate}")
    net.config.dropout_rate = rate
    for module in net.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = rate
        elif isinstance(getattr(module, "dropout", None), float):
            module.dropout = rate


def collate(model: DialogueModel, pairs: Sequence[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    """Model inputs for a batch: decoder input = target[:-1], labels = target[1:] (padding -> -100)."""
    input_ids, attention_mask = model.pad([src for src, _ in pairs])
    decoder_input_ids, decoder_mask = model.pad([tgt[:-1] for _, tgt in pairs])
    labels, _ = model.pad([tgt[1:] for _, tgt in pairs])
    labels[decoder_mask == 0] = -100
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "decoder_input_ids": decoder_input_ids, "labels": labels}


def validation_joint_accuracy(model: DialogueModel, dialogues, accelerator: Accelerator, batch_size: int) -> float:
    """Joint accuracy of the tracker on `dialogues` (gold history and gold previous state), the turns split
    among processes and their predictions gathered."""
    turns, golds = [], []
    for dialogue in dialogues:
        history: list[tuple[str, str]] = []
        previous = None
        for turn in dialogue.turns:
            turns.append((list(history), turn.user, previous))
            golds.append(turn.belief_state)
            history.append((turn.user, turn.system))
            previous = turn.belief_state
    preds = []
    with accelerator.split_between_processes(turns) as mine:
        for i in range(0, len(mine), batch_size):
            preds.extend(p.state for p in model.predict(mine[i:i + batch_size], track_only=True))
    return joint_accuracy(golds, accelerator.gather_for_metrics(preds, use_gather_object=True))


def text_format_of(config: TrainConfig, start: TextFormat | None) -> TextFormat:
    """The format to train: the options given, else the --init model's (`start`), else the default."""
    base = start or TextFormat()
    chosen = {k: v for k, v in (("tracking", config.tracking), ("responses", config.responses),
                                ("context_turns", config.context_turns)) if v is not None}
    return replace(base, **chosen)


def _prepare_checkpoint(config: TrainConfig, accelerator: Accelerator, source: DialogueSource) -> Path:
    """Make sure `OUT/checkpoint` holds a model to start from (a new one unless resuming)."""
    ckpt = config.out_dir / CHECKPOINT
    if config.resume:
        if not (ckpt / STATE_FILE).is_file():
            raise FileNotFoundError(f"--resume: no checkpoint in {ckpt} ({STATE_FILE} missing); start without "
                                    f"--resume")
        return ckpt
    if (ckpt / STATE_FILE).is_file():
        raise FileExistsError(f"{ckpt} holds an earlier run: pass --resume to continue it, or choose another --out")
    if (config.init is None) == (config.preset is None):
        raise ValueError("give exactly one of --init HF_DIR (fine-tune) or --preset NAME (from scratch)")
    if config.deepen < 1:
        raise ValueError(f"--deepen must be 1 or more, got {config.deepen}")
    if config.deepen != 1 and config.init is None:
        raise ValueError("--deepen grows the --init model; a --preset model has its preset's depth")
    if accelerator.is_main_process:
        if config.preset is not None:
            fmt = text_format_of(config, None)
            model = DialogueModel.from_preset(config.preset, corpus_texts(source.train(0), fmt), seed=config.seed,
                                              text_format=fmt)
        else:
            model = DialogueModel.from_pretrained(config.init, device="cpu")
            if config.deepen != 1:
                model = DialogueModel(deepen(model.model, config.deepen), model.tokenizer, model.settings)
            fmt = text_format_of(config, model.text_format)
            model.settings = replace(model.settings, **asdict(fmt))
        model.save_pretrained(ckpt)
    accelerator.wait_for_everyone()
    return ckpt


def _save_checkpoint(model: DialogueModel, ckpt: Path, state: dict, accelerator: Accelerator) -> None:
    """Weights + training state (rank 0) and every rank's RNG state; written to a temp dir then swapped."""
    rng = {"python": random.getstate(), "torch": torch.get_rng_state(),
           "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
    if accelerator.is_main_process:
        tmp = ckpt.with_name(CHECKPOINT + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        torch.save(state, tmp / STATE_FILE)
        for old in ckpt.glob("rng-*.pt"):
            shutil.copy(old, tmp / old.name)
        shutil.rmtree(ckpt, ignore_errors=True)
        tmp.rename(ckpt)
    accelerator.wait_for_everyone()
    torch.save(rng, ckpt / f"rng-{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()


@dataclass
class TrainSummary:
    """How a `train` call ended; `model` is this process's trained model (its last weights)."""

    best_val_joint_accuracy: float
    epochs_done: int
    steps: int
    model: DialogueModel


class _EpochData:
    """The tokenised examples of one epoch's training dialogues (kept while the source gives the same ones)."""

    def __init__(self, model: DialogueModel, source: DialogueSource) -> None:
        self.model, self.source = model, source
        self._dialogues = None

    def load(self, epoch: int) -> None:
        dialogues = self.source.train(epoch)
        if dialogues is self._dialogues:
            return
        started = time.time()
        corpus = corpus_examples(dialogues, self.model.text_format)
        self.tasks = [ex.task for ex in corpus]
        self.examples = tokenize_examples(self.model, corpus)
        self.lengths = [len(src) + len(tgt) for src, tgt in self.examples]
        self.dialogues = len(dialogues)
        self._dialogues = dialogues
        log.info("epoch %d: %d examples from %d dialogues, tokenised in %.0f s", epoch + 1, len(corpus),
                 len(dialogues), time.time() - started)


def train(config: TrainConfig, source: DialogueSource | None = None) -> TrainSummary:
    """Run (or resume) training; returns where it stopped, the best validation joint accuracy and the model.

    `source` gives the dialogues (default: `FileSource` of `config.data_dir`). Raises
    `FileNotFoundError`/`ValueError` with the fix for bad data, directories or options.

    Under `accelerate launch` or `torchrun` this is one of several processes (`Accelerator` reads the launcher's
    environment and joins the process group, which is left open for the caller); started plainly it is the only
    one. `--bf16` is a `torch.autocast` around the training forward pass, not Accelerate's `mixed_precision`:
    that setting is fixed for the life of a Python process, and it would also run validation in bfloat16.
    """
    from accelerate.utils import set_seed
    from tqdm import tqdm
    from transformers import get_linear_schedule_with_warmup

    from dialogue.presets import get_preset

    launched_precision = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if launched_precision != "no":
        raise ValueError(f"`accelerate launch --mixed_precision {launched_precision}` is not used by this training: "
                         f"launch without it and pass --bf16 for bfloat16 autocast")
    # cpu=True without a GPU: Accelerate only treats several CPU processes as one run when told they are on CPU
    accelerator = Accelerator(mixed_precision="no", cpu=not torch.cuda.is_available())
    if config.threads:  # after Accelerator: on several CPU processes it sets a thread count of its own
        torch.set_num_threads(config.threads)
    device, world = accelerator.device, accelerator.num_processes
    if config.preset is not None:
        get_preset(config.preset)  # fail on a bad name before reading data
    if not 0.0 <= config.response_ratio <= 1.0:
        raise ValueError(f"--response-ratio must be between 0 and 1, got {config.response_ratio}")
    config.out_dir = Path(config.out_dir)
    if source is None:
        source = FileSource(config.data_dir, config.train_dialogues, config.val_dialogues)

    val_dialogues = source.val()
    ckpt = _prepare_checkpoint(config, accelerator, source)
    model = DialogueModel.from_pretrained(ckpt, device=device)
    state = torch.load(ckpt / STATE_FILE, weights_only=False) if config.resume else None

    if state is not None:  # the schedule and regularisation were fixed by the first run's settings
        config.lr, config.response_ratio = state["lr"], state.get("response_ratio", 1.0)
        config.dropout, config.token_noise = state.get("dropout"), state.get("token_noise", 0.0)
        config.bf16 = state.get("bf16", False)
    if config.dropout is not None:
        set_dropout(model.model, config.dropout)
    noise = TokenNoise(model, config.token_noise)
    if config.lr is None:
        config.lr = get_preset(config.preset).lr if config.preset else 5e-5

    data = _EpochData(model, source)

    def batches_of(epoch: int) -> list[list[int]]:
        data.load(epoch)
        chosen = epoch_examples(data.tasks, config.response_ratio, config.seed, epoch)
        return epoch_batches(data.lengths, config.batch_size, config.seed, epoch, chosen)

    steps_per_epoch = len(batches_of(0)) // world
    if steps_per_epoch == 0:
        raise ValueError(f"{len(data.examples)} training examples make no batch of {config.batch_size} per process")
    total_steps = steps_per_epoch * config.epochs

    net = model.model
    net.train()
    # the scheduler stays unprepared: Accelerate's wrapper would step it once per process per optimizer step,
    # while `total_steps` already counts global steps
    wrapped, optimizer = accelerator.prepare(net, torch.optim.AdamW(net.parameters(), lr=config.lr,
                                                                    weight_decay=0.01))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    epoch, position, step, best = 0, 0, 0, -1.0
    set_seed(config.seed, device_specific=True)  # seed + process index: each process draws its own noise
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        epoch, position, step, best = state["epoch"], state["position"], state["step"], state["best"]
        rng_file = ckpt / f"rng-{accelerator.process_index}.pt"
        if rng_file.is_file():
            rng = torch.load(rng_file, weights_only=False)
            random.setstate(rng["python"])
            torch.set_rng_state(rng["torch"])
            if torch.cuda.is_available() and rng["cuda"] is not None:
                torch.cuda.set_rng_state_all(rng["cuda"])
        log.info("resuming at epoch %d, batch %d (step %d, best val joint accuracy %.4f)",
                 epoch + 1, position, step, best)

    def snapshot() -> dict:
        return {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch,
                "position": position, "step": step, "best": best, "lr": config.lr,
                "response_ratio": config.response_ratio, "dropout": config.dropout,
                "token_noise": config.token_noise, "bf16": config.bf16}

    log.info("%d training examples (%d dialogues, response ratio %g), %d steps of %d x %d examples per epoch, "
             "%d epochs, lr %g, dropout %s, token noise %g, bf16 %s, format %s", len(data.examples), data.dialogues,
             config.response_ratio, steps_per_epoch, world, config.batch_size, config.epochs, config.lr,
             model.model.config.dropout_rate, config.token_noise, config.bf16, model.text_format)
    try:
        while epoch < config.epochs and (config.max_steps is None or step < config.max_steps):
            # every N-th batch to this process, split here rather than by an Accelerate DataLoader: that one reads
            # a batch ahead, so a checkpoint would hold RNG states past the next batch's token noise and a resumed
            # run would not repeat the uninterrupted one
            batches = batches_of(epoch)[: steps_per_epoch * world][accelerator.process_index::world]
            epoch_steps = len(batches)
            started, seen, loss_sum, resumed_at = time.time(), 0, 0.0, position
            bar = tqdm(total=epoch_steps, initial=position, desc=f"epoch {epoch + 1}/{config.epochs}",
                       disable=not accelerator.is_main_process, dynamic_ncols=True, mininterval=10)
            net.train()
            while position < epoch_steps and (config.max_steps is None or step < config.max_steps):
                examples = data.examples
                batch = collate(model, [(noise(examples[i][0], random), examples[i][1]) for i in batches[position]])
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
                    loss = wrapped(**batch).loss
                optimizer.zero_grad(set_to_none=True)
                accelerator.backward(loss)
                accelerator.clip_grad_norm_(net.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                position, step = position + 1, step + 1
                seen += len(batches[position - 1])
                loss_sum += loss.item()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
                if step % config.save_every == 0:
                    _save_checkpoint(model, ckpt, snapshot(), accelerator)
            bar.close()
            if position < epoch_steps:  # stopped by max_steps inside the epoch
                break
            net.eval()
            score = validation_joint_accuracy(model, val_dialogues, accelerator, config.eval_batch_size)
            seconds = time.time() - started
            # the mean over the batches this process ran in the epoch (after a resume, those since the resume)
            record = {"epoch": epoch + 1, "step": step, "train_loss": loss_sum / max(position - resumed_at, 1),
                      "val_joint_accuracy": score, "seconds": round(seconds, 1),
                      "examples_per_s": round(seen * world / max(seconds, 1e-9), 1)}
            log.info("epoch %d: %s", epoch + 1, record)
            if score > best:
                best = score
                if accelerator.is_main_process:
                    model.save_pretrained(config.out_dir)
            if accelerator.is_main_process:
                with open(config.out_dir / LOG_FILE, "a") as f:
                    f.write(json.dumps(record) + "\n")
            epoch, position = epoch + 1, 0
            _save_checkpoint(model, ckpt, snapshot(), accelerator)
    except KeyboardInterrupt:
        log.warning("interrupted: saving a checkpoint to %s (continue with --resume)", ckpt)
        _save_checkpoint(model, ckpt, snapshot(), accelerator)
        raise
    if config.max_steps is not None and position:
        _save_checkpoint(model, ckpt, snapshot(), accelerator)
    return TrainSummary(best, epoch, step, model)


def main(argv: list[str] | None = None) -> int:
    """Entry point for `accelerate launch -m dialogue.train` and `torchrun -m dialogue.train` (the options of
    `i2edit train-dialogue` but --simulate: the training dialogues come from --data)."""
    import argparse

    from accelerate import PartialState

    parser = argparse.ArgumentParser(prog="python -m dialogue.train", description=__doc__.splitlines()[0])
    add_train_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        train(config_from_args(parser.parse_args(argv)))
    finally:
        PartialState().destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
