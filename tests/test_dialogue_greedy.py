"""dialogue.greedy against Hugging Face's `generate` (the reference): the same tokens for the same rows; seeded
top-p rows that depend on their seed only."""
from __future__ import annotations

import json

import pytest
import torch
import transformers

from dialogue import greedy
from dialogue.model import DialogueModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOCAB = 97


def _t5(seed: int, **config) -> "transformers.T5ForConditionalGeneration":
    """A random tiny T5; `config` overrides (gated GELU as in T5 v1.1, untied head, more layers, ...)."""
    base = dict(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                relative_attention_num_buckets=8, relative_attention_max_distance=20, dropout_rate=0.0,
                decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                initializer_factor=10.0)  # large weights: varied greedy outputs, not one token repeated
    base.update(config)
    torch.manual_seed(seed)
    model = transformers.T5ForConditionalGeneration(transformers.T5Config(**base)).eval()
    return model


def _rows(seed: int, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded random ids [B, T], mask [B, T] (lengths 1..T) and start tokens [B]."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 30, (count,), generator=generator)
    ids = torch.randint(6, VOCAB, (count, int(lengths.max())), generator=generator)
    mask = (torch.arange(ids.shape[1])[None] < lengths[:, None]).long()
    starts = torch.randint(6, VOCAB, (count,), generator=generator)
    return ids * mask, mask, starts


def _reference(model, ids, mask, starts, stops, max_new_tokens):
    with torch.no_grad():
        return model.generate(input_ids=ids, attention_mask=mask, decoder_input_ids=starts[:, None],
                              decoder_start_token_id=starts, eos_token_id=stops, pad_token_id=0,
                              max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)


def _stops(model, ids, mask, starts) -> list[int]:
    """Stop tokens under which every row stops, at many different steps: chosen from a stop-free greedy run,
    each time the token that ends most of the rows still running (a random model never picks its eos)."""
    free = greedy.greedy_generate(model, ids, mask, starts, [], 0, 30)[:, 1:].tolist()
    running, stops = list(range(len(free))), []
    while running:
        counts: dict[int, int] = {}
        for row in running:
            for token in set(free[row][1:]):  # not the first new token, so no row stops at once
                counts[token] = counts.get(token, 0) + 1
        best = max(counts, key=counts.get)
        stops.append(best)
        running = [row for row in running if best not in free[row][1:]]
    return stops


@pytest.mark.parametrize("config", [
    {},
    {"feed_forward_proj": "gated-gelu"},
    {"tie_word_embeddings": False},
    {"num_layers": 1, "num_decoder_layers": 1, "num_heads": 2},
    {"num_layers": 3, "num_decoder_layers": 3, "d_kv": 16},
], ids=["relu-tied", "gated-gelu", "untied-head", "one-layer", "three-layers"])
def test_same_tokens_as_generate(config):
    for seed in range(3):
        model = _t5(seed, **config)
        ids, mask, starts = _rows(seed, 24)
        stops = _stops(model, ids, mask, starts)
        for max_new_tokens in (1, 7, 25):
            expected = _reference(model, ids, mask, starts, stops, max_new_tokens)
            got = greedy.greedy_generate(model, ids, mask, starts, stops, 0, max_new_tokens)
            assert torch.equal(got, expected), (config, seed, max_new_tokens)


def test_rows_stop_at_different_steps_and_all_stopped_ends_early():
    model = _t5(7)
    ids, mask, starts = _rows(7, 40)
    stops = _stops(model, ids, mask, starts)
    got = greedy.greedy_generate(model, ids, mask, starts, stops, 0, 30)
    stopped = [next((i for i, t in enumerate(row[1:].tolist()) if t in stops), None) for row in got]
    finished = [s for s in stopped if s is not None]
    assert len(set(finished)) > 3, "the fixture should have rows stopping at several different steps"
    for row, stop in zip(got.tolist(), stopped):
        if stop is not None:
            assert all(t == 0 for t in row[stop + 2:])  # padding after the stop token, as generate writes it
    assert got.shape[1] < 31 and torch.equal(got, _reference(model, ids, mask, starts, stops, 30))


def test_encoder_output_matches_on_real_tokens():
    model = _t5(3)
    ids, mask, _ = _rows(3, 16)
    with torch.no_grad():
        expected = model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    got = greedy.encode(model, ids, mask)
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], rtol=1e-4, atol=1e-5)  # float32 summation order
    assert torch.count_nonzero(got[~real]) == 0


def test_top_p_keeps_the_smallest_likely_set():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    draws = torch.linspace(0, 0.999, 200)
    picked = {int(greedy.top_p_pick(logits, u[None], 0.75)) for u in draws}
    assert picked == {0, 1}  # 0.5 + 0.3 reach 0.75: the tail never comes
    assert {int(greedy.top_p_pick(logits, u[None], 1e-6)) for u in draws} == {0}  # tiny p: the argmax
    assert {int(greedy.top_p_pick(logits, u[None], 1.0)) for u in draws} == {0, 1, 2, 3}
    counts = torch.bincount(torch.cat([greedy.top_p_pick(logits, u[None], 0.75) for u in draws]), minlength=4)
    assert abs(counts[0] / counts[:2].sum() - 0.5 / 0.8) < 0.05  # in proportion to the kept probabilities


def test_a_sampled_row_depends_on_its_seed_only():
    model = _t5(11, initializer_factor=1.0)  # a flat distribution: samples differ from the argmax
    ids, mask, starts = _rows(11, 8)
    seeds = [3, None, 4, None, 3, 9, None, 5]
    both = greedy.greedy_generate(model, ids, mask, starts, [], 0, 12, seeds, top_p=1.0)
    greedy_rows = greedy.greedy_generate(model, ids, mask, starts, [], 0, 12)
    for row, seed in enumerate(seeds):
        alone = greedy.greedy_generate(model, ids[row:row + 1], mask[row:row + 1], starts[row:row + 1], [], 0, 12,
                                       [seed], top_p=1.0)
        width = alone.shape[1]
        assert torch.equal(both[row, :width], alone[0]), row  # batch company changes nothing
        if seed is None:
            assert torch.equal(both[row], greedy_rows[row])
    other = greedy.greedy_generate(model, ids, mask, starts, [], 0, 12, [s and s + 100 for s in seeds], top_p=1.0)
    assert not torch.equal(other, both)  # other seeds, other samples
    assert not torch.equal(both, greedy_rows)


def test_shipped_model_predicts_the_same_with_both_impls():
    """The trained model on hand-written dialogues (gold history and state), every task greedy: identical
    spans and responses."""
    from dataclasses import replace
    from pathlib import Path

    from dialogue.ontology import BeliefState

    path = Path(__file__).parent / "data" / "dialogue" / "handwritten.jsonl"
    turns = []
    for line in path.read_text(encoding="utf-8").splitlines()[:12]:
        history, state = [], BeliefState()
        for turn in json.loads(line)["turns"]:
            turns.append((list(history), turn["user"], state))
            history.append((turn["user"], turn["system"]))
            state = BeliefState.from_dict(turn["belief_state"])
    fast = DialogueModel.from_pretrained(device="cpu")
    fast.settings = replace(fast.settings, top_p=0.0)
    reference = DialogueModel(fast.model, fast.tokenizer, fast.settings, impl="reference")
    assert len(turns) > 30
    assert fast.predict(turns) == reference.predict(turns)
