"""DialogueModel: loading HF T5 / PPTOD-style directories, save/load round trips, step() and bad input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dialogue.formats import PPTOD_SPECIAL_TOKENS
from dialogue.model import DialogueModel
from dialogue.ontology import BeliefState

TEXTS = [
    "make her smile please", "now black hair", "take the mustache off", "Done. What else do you want?",
    "sure, add lipstick and pale skin", "[expression] smiling [hair color] black hair [beard] mustache",
    "translate dialogue to belief state:", "translate dialogue to system response:",
] * 20


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tiny")
    DialogueModel.from_preset("tiny", TEXTS).save_pretrained(directory)
    return directory


@pytest.fixture()
def tiny(tiny_dir) -> DialogueModel:
    return DialogueModel.from_pretrained(tiny_dir, device="cpu")


def test_step_runs_both_prompts_in_one_batched_decode(tiny, monkeypatch):
    from dialogue import greedy

    calls = []
    real = greedy.decode

    def spy(model, hidden, mask, starts, *args):
        calls.append(starts.tolist())
        return real(model, hidden, mask, starts, *args)

    monkeypatch.setattr(greedy, "decode", spy)
    state, response = tiny.step([("make her smile", "Done.")], "now black hair")
    assert isinstance(state, BeliefState) and isinstance(response, str)
    vocab = tiny.tokenizer.get_vocab()
    assert calls == [[vocab["<sos_b>"], vocab["<sos_r>"]]]


def test_reference_impl_is_one_greedy_generate(tiny, monkeypatch):
    calls = []
    real = tiny.model.generate

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(tiny.model, "generate", spy)
    fast = tiny.step([("make her smile", "Done.")], "now black hair")
    assert calls == []
    tiny.impl = "reference"
    assert tiny.step([("make her smile", "Done.")], "now black hair") == fast
    assert len(calls) == 1
    starts = calls[0]["decoder_input_ids"][:, 0].tolist()
    vocab = tiny.tokenizer.get_vocab()
    assert starts == [vocab["<sos_b>"], vocab["<sos_r>"]]
    assert calls[0]["do_sample"] is False and calls[0]["num_beams"] == 1


def test_unknown_impl_is_named(tiny_dir):
    model = DialogueModel.from_pretrained(tiny_dir, device="cpu")
    with pytest.raises(ValueError, match="unknown decoder impl 'onnx'.*fast, reference"):
        DialogueModel(model.model, model.tokenizer, impl="onnx")


def test_predict_rows_match_encode(tiny, monkeypatch):
    """predict tokenises each context once for both tasks; its rows are what `encode` gives per task."""
    turns = [([("make her smile", "Done.")], "now black hair"), ([], "take the mustache off " * 80)]
    from dialogue.formats import build_context

    seen = []
    real = tiny.generate

    def spy(tasks, sources):
        seen.append((tasks, sources))
        return real(tasks, sources)

    monkeypatch.setattr(tiny, "generate", spy)
    tiny.predict(turns)
    expected = [tiny.encode(task, build_context(h, u)) for h, u in turns for task in ("track", "respond")]
    assert seen[0][0] == ["track", "respond"] * 2 and seen[0][1] == expected


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_user_text_is_a_value_error(tiny, text):
    with pytest.raises(ValueError, match="empty"):
        tiny.step([], text)


def test_long_emoji_and_non_latin_text_are_handled(tiny):
    long_text = ("make her smile and give her black hair " * 300)[:10_000]
    ids = tiny.encode("track", f"<sos_u> {long_text} <eos_u>")
    vocab = tiny.tokenizer.get_vocab()
    assert len(ids) == tiny.settings.max_source_length  # cut, not an error
    short = tiny.encode("track", "<sos_u> hi <eos_u>")
    prompt = short[: short.index(vocab["<sos_context>"]) + 1]
    assert ids[: len(prompt)] == prompt and ids[-1] == vocab["<eos_context>"]  # prompt and end kept
    for text in (long_text, "make her smile 😀🎉", "Сделай её блондинкой", "让她微笑", "<sos_b> [beard] goatee"):
        state, response = tiny.step([("hi", "Hello 👋")], text)
        assert isinstance(state, BeliefState) and isinstance(response, str)


def test_byte_fallback_keeps_unseen_characters(tiny):
    ids = tiny.tokenizer("Привет 😀", add_special_tokens=False)["input_ids"]
    assert tiny.tokenizer.unk_token_id not in ids
    assert tiny.tokenizer.decode(ids) == "Привет 😀"


def test_save_pretrained_round_trips_identically(tiny, tmp_path):
    tiny.save_pretrained(tmp_path / "copy")
    again = DialogueModel.from_pretrained(tmp_path / "copy", device="cpu")
    assert again.settings == tiny.settings
    assert again.tokenizer.get_vocab() == tiny.tokenizer.get_vocab()
    for (name, a), (_, b) in zip(tiny.model.state_dict().items(), again.model.state_dict().items()):
        assert torch.equal(a, b), name
    history, text = [("add bangs", "Done.")], "and a goatee"
    assert again.encode("track", text) == tiny.encode("track", text)
    assert again.predict([(history, text)]) == tiny.predict([(history, text)])


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors", "tokenizer.json"])
def test_missing_files_are_named_with_the_directory(tiny_dir, tmp_path, missing):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dir, broken)
    (broken / missing).unlink()
    with pytest.raises(FileNotFoundError) as info:
        DialogueModel.from_pretrained(broken)
    assert missing in str(info.value) and str(broken) in str(info.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DialogueModel.from_pretrained(tmp_path / "nowhere")


def _write_hf_t5_dir(directory: Path) -> None:
    """A tiny stock-T5-style directory: config + weights + spiece.model only (no PPTOD tokens)."""
    import io

    import sentencepiece as spm
    from transformers import T5Config, T5ForConditionalGeneration

    model_file = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXTS), model_writer=model_file, vocab_size=120, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False, minloglevel=2)
    directory.mkdir(parents=True)
    (directory / "spiece.model").write_bytes(model_file.getvalue())
    (directory / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer"}))
    config = T5Config(vocab_size=256, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_decoder_layers=1,
                      num_heads=2, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    T5ForConditionalGeneration(config).save_pretrained(directory)


def test_hf_t5_directory_gets_the_pptod_tokens_and_round_trips(tmp_path):
    _write_hf_t5_dir(tmp_path / "t5")
    model = DialogueModel.from_pretrained(tmp_path / "t5", device="cpu")
    vocab = model.tokenizer.get_vocab()
    ids = [vocab[t] for t in PPTOD_SPECIAL_TOKENS]
    assert ids == list(range(ids[0], ids[0] + 19))  # added in PPTOD's order, consecutive
    assert model.model.get_input_embeddings().weight.shape[0] == len(model.tokenizer)
    assert model.tokenizer.convert_ids_to_tokens(model.encode_target("<sos_b> <eos_b>")) == ["<sos_b>", "<eos_b>"]

    model.save_pretrained(tmp_path / "pptod")
    again = DialogueModel.from_pretrained(tmp_path / "pptod", device="cpu")
    assert len(again.tokenizer) == len(model.tokenizer)  # nothing added twice
    assert again.tokenizer.get_vocab() == vocab
    for a, b in zip(model.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    text = "<sos_u> make her smile <eos_u>"
    assert again.encode("respond", text) == model.encode("respond", text)
    state, response = again.step([], "make her smile")
    assert isinstance(state, BeliefState) and isinstance(response, str)
