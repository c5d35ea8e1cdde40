"""DialogueModel: loading HF T5 / PPTOD-style directories, save/load round trips, step() and bad input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dataclasses import replace

from dialogue.acts import Act
from dialogue.formats import PPTOD_SPECIAL_TOKENS
from dialogue.model import SETTINGS_FILE, DialogueModel, DialogueSettings
from dialogue.ontology import BeliefState, OntologyError

TEXTS = [
    "make her smile please", "now black hair", "take the mustache off", "Done. What else do you want?",
    "sure, add lipstick and pale skin", "[expression] smiling [hair color] black hair [beard] mustache",
    "translate dialogue to belief state:", "translate dialogue to system response:",
    "translate dialogue to dialogue action:", "translate dialogue action to system response:",
    "[add] smiling [remove] lipstick", "edit suggest [bangs]", "Here [subj] [is] with [added]. How about [value]?",
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


def test_step_decodes_tracking_and_act_together_then_the_replies(tiny, monkeypatch):
    from dialogue import greedy

    calls = []
    real = greedy.decode

    def spy(model, hidden, mask, starts, *args):
        calls.append(starts.tolist())
        return real(model, hidden, mask, starts, *args)

    monkeypatch.setattr(greedy, "decode", spy)
    state, response = tiny.step([("make her smile", "Done.")], "now black hair", BeliefState.of("smiling"))
    assert isinstance(state, BeliefState) and isinstance(response, str) and response
    vocab = tiny.tokenizer.get_vocab()
    assert calls == [[vocab["<sos_b>"], vocab["<sos_a>"]], [vocab["<sos_r>"]] * tiny.settings.reply_samples]


def test_reference_impl_gives_the_fast_greedy_tokens(tiny, monkeypatch):
    calls = []
    real = tiny.model.generate

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(tiny.model, "generate", spy)
    tiny.settings = replace(tiny.settings, top_p=0.0)  # every task greedy: both decoders must agree exactly
    turn = ([("make her smile", "Done.")], "now black hair", BeliefState.of("smiling"))
    fast = tiny.predict([turn])
    assert calls == []
    tiny.impl = "reference"
    assert tiny.predict([turn]) == fast
    assert len(calls) == 2  # tracking + act rows, then the reply rows
    vocab = tiny.tokenizer.get_vocab()
    assert calls[0]["decoder_input_ids"][:, 0].tolist() == [vocab["<sos_b>"], vocab["<sos_a>"]]
    assert all(call["do_sample"] is False and call["num_beams"] == 1 for call in calls)


def test_sampled_rows_are_seeded_and_greedy_rows_are_not_sampled(tiny):
    turn = [([], "add bangs", None)]
    assert tiny.predict(turn, seeds=[5]) == tiny.predict(turn, seeds=[5])
    source = tiny.encode("act", "<sos_u> add bangs <eos_u>", BeliefState())
    sampled = {tiny.generate(["act"], [source], [seed])[0] for seed in range(6)}
    assert len(sampled) > 1  # an untrained model's distribution is wide: different seeds, different spans
    assert len({tiny.generate(["act"], [source], [None])[0] for _ in range(3)}) == 1


def test_unknown_impl_is_named(tiny_dir):
    model = DialogueModel.from_pretrained(tiny_dir, device="cpu")
    with pytest.raises(ValueError, match="unknown decoder impl 'onnx'.*fast, reference"):
        DialogueModel(model.model, model.tokenizer, impl="onnx")


def test_predict_rows_match_encode(tiny, monkeypatch):
    """predict tokenises each context once for both context tasks; its rows are what `encode` gives per task."""
    from dialogue.formats import build_context

    state = BeliefState.of("smiling", "lipstick")
    turns = [([("make her smile", "Done.")], "now black hair", state), ([], "take the mustache off " * 80, None)]
    seen = []
    real = tiny.generate

    def spy(tasks, sources, seeds=None):
        seen.append((tasks, sources))
        return real(tasks, sources, seeds)

    monkeypatch.setattr(tiny, "generate", spy)
    tiny.predict(turns)
    expected = [tiny.encode(task, build_context(h, u), s or BeliefState()) for h, u, s in turns
                for task in ("track", "act")]
    assert seen[0][0] == ["track", "act"] * 2 and seen[0][1] == expected
    vocab = tiny.tokenizer.get_vocab()
    assert vocab["<sos_b>"] in seen[0][1][0] and seen[0][1][0].index(vocab["<sos_b>"]) < \
        seen[0][1][0].index(vocab["<sos_context>"])  # the previous state comes before the context


def test_a_state_that_breaks_the_ontology_is_refused(tiny):
    with pytest.raises(OntologyError, match="breaks the ontology.*unknown value 'wings'"):
        tiny.step([], "add bangs", {"hairstyle": ["wings"]})
    with pytest.raises(OntologyError, match="breaks the ontology.*exclude each other"):
        tiny.step([], "add bangs", {"expression": ["smiling", "sad"]})
    with pytest.raises(ValueError, match="breaks the ontology"):
        tiny.step([], "add bangs", {"hair": ["black hair"]})
    state, _ = tiny.step([], "add bangs", {"hair color": ["black hair"]})  # the JSON form is accepted
    assert isinstance(state, BeliefState)


def test_the_update_is_applied_to_the_given_state(tiny, monkeypatch):
    monkeypatch.setattr(tiny, "generate", lambda tasks, sources, seeds=None: [
        {"track": "<sos_b> [add] sad [remove] lipstick, goatee <eos_b>", "act": "<sos_a> edit next <eos_a>",
         "reply": "<sos_r> I've swapped [removed] for [added]. [missing]? What else? <eos_r>"}[t] for t in tasks])
    prediction = tiny.predict([([], "sad, no lipstick or goatee", BeliefState.of("smiling", "lipstick", "bangs"))])[0]
    assert prediction.state == BeliefState.of("sad", "bangs")
    assert prediction.change.missing == ("goatee",)
    assert "a sad" in prediction.response and "goatee" in prediction.response and "bangs" not in prediction.response


def test_replies_that_cannot_be_filled_fall_back_to_a_plain_true_one(tiny, monkeypatch):
    monkeypatch.setattr(tiny, "generate", lambda tasks, sources, seeds=None: [
        {"track": "<sos_b> <eos_b>", "act": "<sos_a> edit suggest [bangs] <eos_a>",
         "reply": "<sos_r> I've added [added], and a mustache too. <eos_r>"}[t] for t in tasks])
    prediction = tiny.predict([([], "hello", BeliefState.of("smiling"))])[0]
    assert prediction.act == Act("edit", "suggest", value="bangs")
    assert prediction.delex == "Okay. How about [value]?"  # nothing was added, and a mustache is no claim to make
    assert prediction.response.startswith("Okay. How about ")


def test_a_suggestion_of_what_the_state_holds_becomes_next(tiny, monkeypatch):
    monkeypatch.setattr(tiny, "generate", lambda tasks, sources, seeds=None: [
        {"track": "<sos_b> [add] bangs <eos_b>", "act": "<sos_a> edit suggest [bangs] <eos_a>",
         "reply": "<sos_r> Done. <eos_r>"}[t] for t in tasks])
    assert tiny.predict([([], "bangs", None)])[0].act == Act("edit", "next")


def test_without_a_state_the_history_is_tracked_first(tiny, monkeypatch):
    calls = []
    real = tiny.predict

    def spy(turns, track_only=False, seeds=None):
        calls.append((len(turns[0][0]), track_only))
        return real(turns, track_only, seeds)

    monkeypatch.setattr(tiny, "predict", spy)
    tiny.step([("add bangs", "Done."), ("and a smile", "Okay.")], "now black hair")
    assert calls == [(2, False), (0, True), (1, True)]


def test_wave1_settings_files_load_as_the_history_format(tmp_path):
    (tmp_path / SETTINGS_FILE).write_text(json.dumps({"max_source_length": 256, "max_target_length": 40}))
    settings = DialogueSettings.load(tmp_path)
    assert (settings.tracking, settings.responses, settings.max_source_length) == ("history", "literal", 256)
    assert DialogueSettings.load(tmp_path / "none").tracking == "update"  # a stock T5 directory


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
    assert again.predict([(history, text, BeliefState.of("bangs"))]) == tiny.predict([(history, text, BeliefState.of("bangs"))])


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
