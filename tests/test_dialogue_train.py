"""Training: the loss falls, an interrupted run resumes to the same weights, two processes on CPU (Accelerate,
gloo)."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch

from dialogue.model import DialogueModel
from dialogue.formats import ACT, REPLY, RESPOND, TRACK, TextFormat, WAVE1_FORMAT
from dialogue.train import (
    CHECKPOINT, LOG_FILE, STATE_FILE, FileSource, TokenNoise, TrainConfig, collate, corpus_examples, corpus_texts,
    epoch_batches, epoch_examples, read_split, set_dropout, tokenize_examples, train,
)
from dialogue.ontology import BeliefState
from tests.dialogue_fixtures import write_corpus


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"), {"train": 24, "val": 4, "test": 4})


def _config(corpus: Path, out: Path, **overrides) -> TrainConfig:
    settings = dict(data_dir=corpus, out_dir=out, preset="tiny", epochs=1, batch_size=8, save_every=2,
                    response_ratio=0.5)
    settings.update(overrides)
    return TrainConfig(**settings)


def test_tiny_model_loss_falls(corpus):
    dialogues = read_split(corpus, "train")
    model = DialogueModel.from_preset("tiny", corpus_texts(dialogues))
    batch = collate(model, tokenize_examples(model, corpus_examples(dialogues, TextFormat())[:16]))
    optimizer = torch.optim.AdamW(model.model.parameters(), lr=3e-3)
    model.model.train()
    losses = []
    for _ in range(30):
        loss = model.model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_collate_shifts_targets_and_masks_padding(corpus):
    dialogues = read_split(corpus, "train")
    model = DialogueModel.from_preset("tiny", corpus_texts(dialogues))
    pairs = tokenize_examples(model, corpus_examples(dialogues, WAVE1_FORMAT)[:2])
    batch = collate(model, pairs)
    for row, (_, target) in enumerate(pairs):
        n = len(target) - 1
        assert batch["decoder_input_ids"][row, :n].tolist() == target[:-1].tolist()
        assert batch["labels"][row, :n].tolist() == target[1:].tolist()
        assert (batch["labels"][row, n:] == -100).all()


def test_batches_are_a_permutation_fixed_by_seed_and_epoch():
    lengths = [5, 1, 9, 3, 7, 2, 8, 4, 6, 0]
    batches = epoch_batches(lengths, 3, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(10))
    assert batches == epoch_batches(lengths, 3, seed=1, epoch=0)
    assert batches != epoch_batches(lengths, 3, seed=1, epoch=1)
    some = epoch_batches(lengths, 3, seed=1, epoch=0, indices=[8, 2, 5, 0])
    assert sorted(i for b in some for i in b) == [0, 2, 5, 8]


def test_response_ratio_keeps_all_tracking_and_redraws_acts_and_responses_each_epoch():
    tasks = [TRACK, RESPOND] * 40
    quarter = [epoch_examples(tasks, 0.25, seed=0, epoch=e) for e in range(3)]
    for chosen in quarter:
        assert [i for i in chosen if tasks[i] == TRACK] == list(range(0, 80, 2))
        assert sum(tasks[i] == RESPOND for i in chosen) == 10
    assert quarter[0] != quarter[1] and quarter[0] == epoch_examples(tasks, 0.25, seed=0, epoch=0)
    assert epoch_examples(tasks, 1.0, seed=0, epoch=0) == list(range(80))
    assert epoch_examples(tasks, 0.0, seed=0, epoch=0) == list(range(0, 80, 2))
    three = [TRACK, ACT, REPLY] * 20
    chosen = epoch_examples(three, 0.5, seed=0, epoch=0)
    assert sum(three[i] == TRACK for i in chosen) == 20 and sum(three[i] != TRACK for i in chosen) == 20


def test_token_noise_replaces_only_context_word_pieces(corpus):
    import random

    dialogues = read_split(corpus, "train")
    model = DialogueModel.from_preset("tiny", corpus_texts(dialogues))
    sources = [list(src) for src, _ in tokenize_examples(model, corpus_examples(dialogues, TextFormat()))]
    noise = TokenNoise(model, 0.3)
    noisy = [noise(src, random.Random(i)) for i, src in enumerate(sources)]
    assert noisy == [noise(src, random.Random(i)) for i, src in enumerate(sources)]  # fixed by the rng
    assert TokenNoise(model, 0.0)(sources[0], random.Random(0)) == sources[0]
    context_start = model.tokenizer.convert_tokens_to_ids("<sos_context>")
    ordinary = set(noise.ordinary)
    changed = candidates = 0
    for src, out in zip(sources, noisy):
        assert len(out) == len(src)
        start = src.index(context_start) + 1
        assert out[:start] == src[:start]  # the task prompt is never touched
        for a, b in zip(src[start:], out[start:]):
            if a in ordinary:
                candidates += 1
                changed += a != b
                assert b in ordinary
            else:
                assert a == b  # <sos_u>, <eos_r>, ... markers are kept
    assert 0.2 < changed / candidates < 0.35  # about the share (a draw may hit the same piece)
    with pytest.raises(ValueError, match="--token-noise"):
        TokenNoise(model, 1.0)


def test_set_dropout_sets_every_layer_and_the_saved_config(corpus, tmp_path):
    model = DialogueModel.from_preset("tiny", corpus_texts(read_split(corpus, "train")))
    set_dropout(model.model, 0.15)
    rates = {m.p for m in model.model.modules() if isinstance(m, torch.nn.Dropout)}
    attention = {m.dropout for m in model.model.modules() if isinstance(getattr(m, "dropout", None), float)}
    assert rates == {0.15} and attention == {0.15}
    model.save_pretrained(tmp_path / "m")
    assert DialogueModel.from_pretrained(tmp_path / "m", device="cpu").model.config.dropout_rate == 0.15
    with pytest.raises(ValueError, match="--dropout"):
        set_dropout(model.model, -0.1)


def test_interrupted_run_resumes_to_the_same_weights(corpus, tmp_path):
    # dropout and token noise draw random numbers every step: resuming must restore both generators
    regularised = dict(dropout=0.1, token_noise=0.2)
    straight = train(_config(corpus, tmp_path / "straight", **regularised))
    assert straight.epochs_done == 1
    assert (tmp_path / "straight" / LOG_FILE).is_file()
    best = DialogueModel.from_pretrained(tmp_path / "straight", device="cpu")  # the kept best model loads

    first = train(_config(corpus, tmp_path / "split", max_steps=3, **regularised))
    assert first.steps == 3 and first.epochs_done == 0
    with pytest.raises(FileExistsError, match="--resume"):
        train(_config(corpus, tmp_path / "split"))
    resumed = train(_config(corpus, tmp_path / "split", resume=True))  # settings come from the checkpoint
    assert resumed.steps == straight.steps

    a = torch.load(tmp_path / "straight" / CHECKPOINT / STATE_FILE, weights_only=False)
    b = torch.load(tmp_path / "split" / CHECKPOINT / STATE_FILE, weights_only=False)
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"])
    w1 = DialogueModel.from_pretrained(tmp_path / "straight" / CHECKPOINT, device="cpu").model.state_dict()
    w2 = DialogueModel.from_pretrained(tmp_path / "split" / CHECKPOINT, device="cpu").model.state_dict()
    for name in w1:
        assert torch.allclose(w1[name], w2[name], atol=1e-6), name
    assert best.settings.max_source_length == 128


def test_bad_training_options_are_explained(corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="--resume"):
        train(_config(corpus, tmp_path / "a", resume=True))
    with pytest.raises(ValueError, match="exactly one"):
        train(_config(corpus, tmp_path / "b", preset=None))
    with pytest.raises(ValueError, match="unknown preset"):
        train(_config(corpus, tmp_path / "c", preset="huge"))
    with pytest.raises(FileNotFoundError, match="train.jsonl"):
        train(_config(tmp_path / "empty", tmp_path / "d"))
    with pytest.raises(ValueError, match="--response-ratio"):
        train(_config(corpus, tmp_path / "e", response_ratio=1.5))
    with pytest.raises(ValueError, match="--deepen grows the --init model"):
        train(_config(corpus, tmp_path / "f", deepen=2))
    with pytest.raises(ValueError, match="--deepen must be 1 or more"):
        train(_config(corpus, tmp_path / "g", preset=None, init=tmp_path, deepen=0))


def test_accelerate_launch_mixed_precision_is_refused_for_the_bf16_option(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # what `accelerate launch --mixed_precision bf16` sets
    with pytest.raises(ValueError, match="pass --bf16"):
        train(_config(corpus, tmp_path / "mp"))
    assert not (tmp_path / "mp").exists()  # refused before anything was written


def test_deepen_starts_from_a_deeper_copy_of_the_init_model(corpus, tmp_path):
    start = DialogueModel.from_preset("tiny", corpus_texts(read_split(corpus, "train")))
    start.save_pretrained(tmp_path / "start")
    train(_config(corpus, tmp_path / "deep", preset=None, init=tmp_path / "start", deepen=3, max_steps=0))
    deep = DialogueModel.from_pretrained(tmp_path / "deep" / CHECKPOINT, device="cpu")
    assert (deep.model.config.num_layers, deep.model.config.num_decoder_layers) == (3, 3)
    history = [("add lipstick", "Done. What else?")]
    state = BeliefState.of("lipstick")
    assert deep.step(history, "make it smiling", state) == start.step(history, "make it smiling", state)


_DDP_RANK = """
import os, sys, torch
from pathlib import Path
from dialogue import train as training
from dialogue.train_config import TrainConfig
torch.set_num_threads(1)
corpus, out = Path(sys.argv[1]), Path(sys.argv[2])
sizes = []  # examples per optimizer step in this process
real_collate = training.collate
training.collate = lambda model, pairs: sizes.append(len(pairs)) or real_collate(model, pairs)
summary = training.train(TrainConfig(data_dir=corpus, out_dir=out, preset="tiny", epochs=1, batch_size=8,
                                     save_every=2))
total = torch.tensor([float(sum(sizes)), float(len(sizes))])
torch.distributed.all_reduce(total)
torch.distributed.destroy_process_group()
weights = torch.cat([p.detach().flatten() for p in summary.model.model.parameters()])
torch.save(weights, out / f"weights-{os.environ['RANK']}.pt")
torch.save({"steps": summary.steps, "sizes": sizes, "examples": total[0].item()}, out / f"batches-{os.environ['RANK']}.pt")
"""


@pytest.mark.slow
def test_ddp_path_with_two_gloo_processes(corpus, tmp_path):
    """Two CPU processes as torchrun (or `accelerate launch --multi_gpu`) starts them (RANK/WORLD_SIZE/MASTER_*
    set): Accelerate joins them with the gloo backend and averages their gradients."""
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    procs = []
    for rank in (0, 1):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                   WORLD_SIZE="2", LOCAL_RANK=str(rank), CUDA_VISIBLE_DEVICES="")
        procs.append(subprocess.Popen([sys.executable, "-c", _DDP_RANK, str(corpus), str(out)], env=env,
                                      cwd=Path(__file__).resolve().parents[1], stderr=subprocess.PIPE, text=True))
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    state = torch.load(out / CHECKPOINT / STATE_FILE, weights_only=False)
    assert state["epoch"] == 1 and state["step"] > 2  # a whole epoch, validation included
    assert (out / LOG_FILE).is_file() and (out / "model.safetensors").is_file()  # best model kept
    assert {p.name for p in (out / CHECKPOINT).glob("rng-*.pt")} == {"rng-0.pt", "rng-1.pt"}
    w0, w1 = (torch.load(out / f"weights-{r}.pt") for r in (0, 1))
    assert torch.equal(w0, w1)  # each rank trained on different batches: gradient averaging kept them in sync
    fresh = DialogueModel.from_preset("tiny", corpus_texts(read_split(corpus, "train")))
    assert not torch.equal(w0, torch.cat([p.detach().flatten() for p in fresh.model.parameters()]))
    # --batch-size is per process: each optimizer step of the two processes together used 2 x 8 examples
    # (the last, shorter batch of a length bucket aside), and an epoch took half as many steps as one process
    b0, b1 = (torch.load(out / f"batches-{r}.pt") for r in (0, 1))
    assert b0["steps"] == b1["steps"] == len(b0["sizes"]) == len(b1["sizes"]) == state["step"]
    assert max(b0["sizes"] + b1["sizes"]) == 8
    global_batches = [a + b for a, b in zip(b0["sizes"], b1["sizes"])]
    assert sum(size == 16 for size in global_batches) >= len(global_batches) - 2
    examples = len(corpus_examples(read_split(corpus, "train"), TextFormat()))
    assert state["step"] == len(epoch_batches([1] * examples, 8, 0, 0)) // 2


def test_the_wave1_format_still_trains_and_an_init_model_keeps_its_format(corpus, tmp_path):
    train(_config(corpus, tmp_path / "w1", tracking="history", responses="literal", max_steps=2))
    wave1 = DialogueModel.from_pretrained(tmp_path / "w1" / CHECKPOINT, device="cpu")
    assert (wave1.text_format.tracking, wave1.text_format.responses) == ("history", "literal")
    train(_config(corpus, tmp_path / "again", preset=None, init=tmp_path / "w1" / CHECKPOINT, max_steps=0))
    again = DialogueModel.from_pretrained(tmp_path / "again" / CHECKPOINT, device="cpu")
    assert again.text_format == wave1.text_format
    state, reply = wave1.step([("add bangs", "Done.")], "and a smile", BeliefState.of("bangs"))
    assert isinstance(state, BeliefState) and isinstance(reply, str)


def test_bf16_training_runs_and_a_resume_keeps_it(corpus, tmp_path):
    out = tmp_path / "bf16"
    train(_config(corpus, out, bf16=True, max_steps=2))
    assert torch.load(out / CHECKPOINT / STATE_FILE, weights_only=False)["bf16"] is True
    resumed = train(_config(corpus, out, resume=True, max_steps=3))  # bf16 comes from the checkpoint
    assert resumed.steps == 3
    weights = DialogueModel.from_pretrained(out / CHECKPOINT, device="cpu").model.state_dict()
    assert all(w.dtype == torch.float32 for w in weights.values())  # autocast: the weights stay float32
