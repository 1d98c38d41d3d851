"""Collator layout and labels, frame-exact placeholder filling, overfitting, decoding, checkpoints."""
import numpy as np
import pytest
import soundfile as sf
import torch

from manifests.schema import SPEECH, TEXT, Sample, Span, Utterance
from trainer.data import IGNORE, Collator, SampleDataset
from trainer.decode import transcribe
from trainer.features import encoded_frames, span_frames
from trainer.batching import planned_from_samples
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.loop import LoopConfig, lr_factor, train
from trainer.model import SpeechLM, SpeechLMConfig
from trainer.tokenizer import TokenIds, build_tokenizer

SR = 16000
WORDS = ["alpha beta", "gamma delta epsilon", "one two", "red green blue"]
TINY = dict(enc_dim=32, enc_layers=1, enc_heads=2, proj_hidden=64, lm_hidden=64, lm_layers=2, lm_heads=2,
            lm_intermediate=128, dropout=0.0, max_positions=512)


def signal(i: int, seconds: float) -> np.ndarray:
    """Four clearly different sounds: sine chords and a noise burst."""
    t = np.arange(int(seconds * SR)) / SR
    if i == 3:
        return (0.1 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    freqs = [(220, 330), (880, 1320), (3000, 4500)][i]
    return (0.2 * sum(np.sin(2 * np.pi * f * t) for f in freqs)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    utts, samples = [], []
    for i, words in enumerate(WORDS):
        dur = 0.8 + 0.1 * i
        path = root / f"u{i}.wav"
        sf.write(path, signal(i, dur), SR)
        utts.append(Utterance(f"u{i}", str(path), 0.0, dur, SR, "s", words, words, "synth", "train"))
        samples.append(Sample(f"u{i}:asr", "asr", f"u{i}", str(path), 0.0, dur,
                              (Span(SPEECH, words, 0.0, dur), Span(TEXT, words)), len(words.split()), len(words.split())))
    tok = build_tokenizer(WORDS * 3, vocab_size=120)
    return utts, samples, tok


def test_collator_labels_only_text_and_eos(corpus):
    utts, samples, tok = corpus
    ids = TokenIds(tok)
    u = utts[1]
    inter = Sample("x", "interleave_word", "u1", u.audio_path, 0.0, u.duration,
                   (Span(SPEECH, "gamma", 0.0, 0.3), Span(TEXT, "delta"), Span(SPEECH, "epsilon", 0.5, 0.9)), 2, 1)
    text = Sample("t", "text", "t", "", 0.0, 0.0, (Span(TEXT, "one two"),), 0, 2)
    ds = SampleDataset([inter, text])
    batch = Collator(tok)([ds[0], ds[1]])
    x, y, m = batch["input_ids"], batch["labels"], batch["attention_mask"]
    n = encoded_frames(batch["mel"].shape[1], ds.spec)
    spans = [span_frames(0.0, 0.3, ds.spec, n), span_frames(0.5, 0.9, ds.spec, n)]
    assert (x[0] == ids.audio).sum() == sum(b - a for a, b in spans)
    no_loss = {ids.audio, ids.speech_open, ids.speech_close, ids.bos, ids.pad}
    for row in range(2):
        for tok_id, label, keep in zip(x[row].tolist(), y[row].tolist(), m[row].tolist()):
            if tok_id in no_loss or not keep:
                assert label == IGNORE
            else:
                assert label == tok_id
    delta = tok("delta", add_special_tokens=False)["input_ids"]
    labelled = [t for t in y[0].tolist() if t != IGNORE]
    assert labelled == delta + [ids.eos]
    assert [t for t in y[1].tolist() if t != IGNORE] == tok("one two", add_special_tokens=False)["input_ids"] + [ids.eos]
    assert x[1, 0] == ids.bos and m[1].sum() < m.shape[1] and (x[1][m[1] == 0] == ids.pad).all()
    assert batch["span_audio"].tolist() == [0, 0]


def test_model_fills_placeholders_with_exactly_the_sliced_frames(corpus):
    utts, _, tok = corpus
    torch.manual_seed(0)
    model = SpeechLM(SpeechLMConfig(**TINY), tok).eval()
    samples = [Sample(f"s{i}", "interleave_segment", u.utt_id, u.audio_path, 0.0, u.duration,
                      (Span(SPEECH, "", 0.05, 0.33), Span(TEXT, "one"), Span(SPEECH, "", 0.41, u.duration)), 0, 1)
               for i, u in enumerate(utts[:3])]
    ds = SampleDataset(samples)
    batch = Collator(tok)([ds[i] for i in range(3)])
    with torch.no_grad():
        frames, n_frames = model.encode(batch["mel"], batch["mel_lens"])
        embeds = model.embed(batch)
    for row in range(3):
        expected = torch.cat([frames[row, slice(*span_frames(s.start, s.end, ds.spec, n_frames[row]))]
                              for s in samples[row].spans if s.modality == SPEECH])
        got = embeds[row][batch["input_ids"][row] == model.ids.audio]
        assert torch.equal(got, expected)


def test_lr_schedule_warms_up_then_decays():
    assert lr_factor(0, 10, 100) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100) == pytest.approx(1.0)
    assert lr_factor(100, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(55, 10, 100) == pytest.approx(0.5)


@pytest.fixture(scope="module")
def trained(corpus):
    _, samples, tok = corpus
    torch.manual_seed(0)
    model = SpeechLM(SpeechLMConfig(**TINY), tok)
    data = planned_from_samples(samples, tok, model.spec, batch_size=4)
    result = train(model, data, LoopConfig(steps=120, batch_size=4, lr=3e-3, warmup_steps=10, log_every=20,
                                           device="cpu"), progress=False)
    return model, result


def test_loss_falls_when_overfitting(trained):
    _, result = trained
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 120
    assert np.mean(losses[-10:]) < 0.2 * np.mean(losses[:10])
    assert np.mean(losses[-10:]) < 0.1


def test_greedy_decoding_reproduces_training_transcripts_batched_and_single(trained, corpus):
    model, _ = trained
    utts, _, tok = corpus
    batched = transcribe(model, tok, utts, batch_size=4, max_new_tokens=12, progress=False)
    assert [h.hypothesis for h in batched.hypotheses] == WORDS
    single = transcribe(model, tok, utts, batch_size=1, max_new_tokens=12, progress=False)
    assert [h.hypothesis for h in single.hypotheses] == WORDS


def test_unreadable_audio_is_skipped_and_counted(trained, corpus, tmp_path):
    model, _ = trained
    utts, _, tok = corpus
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    bad = Utterance("bad", str(broken), 0.0, 1.0, SR, "s", "x", "x", "synth", "test")
    out = transcribe(model, tok, [utts[0], bad], batch_size=2, max_new_tokens=8, progress=False)
    assert [h.utt_id for h in out.hypotheses] == ["u0"]
    assert out.skipped == {"audio unreadable": 1} and out.skipped_ids == ["bad"]


@pytest.mark.parametrize("lm_type", ["llama", "qwen2"])
def test_checkpoint_round_trip_gives_identical_logits(corpus, tmp_path, lm_type):
    _, samples, tok = corpus
    torch.manual_seed(1)
    model = SpeechLM(SpeechLMConfig(**{**TINY, "lm_type": lm_type}), tok).eval()
    ds = SampleDataset(samples)
    batch = Collator(tok)([ds[i] for i in range(4)])
    save_checkpoint(model, tok, tmp_path / "ckpt")
    loaded, tok2 = load_checkpoint(tmp_path / "ckpt")
    assert tok2.get_vocab() == tok.get_vocab()
    with torch.no_grad():
        a, b = model(batch).logits, loaded(batch).logits
    assert torch.equal(a, b)


def test_pretrained_lm_path_is_loaded(corpus, tmp_path):
    _, _, tok = corpus
    torch.manual_seed(2)
    scratch = SpeechLM(SpeechLMConfig(**TINY), tok)
    scratch.lm.save_pretrained(tmp_path / "lm")
    model = SpeechLM(SpeechLMConfig(**{**TINY, "lm": str(tmp_path / "lm")}), tok)
    for (k, v), (k2, v2) in zip(scratch.lm.state_dict().items(), model.lm.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_beam_search_and_a_free_prompt(trained, corpus):
    from manifests.errors import JstipError
    from trainer.decode import prompt_sample

    model, _ = trained
    utts, _, tok = corpus
    beams = transcribe(model, tok, utts, batch_size=4, max_new_tokens=12, progress=False, num_beams=3)
    assert [h.hypothesis for h in beams.hypotheses] == WORDS
    spans = prompt_sample(utts[0], "question: {speech} answer:").spans
    assert [s.modality for s in spans] == [TEXT, SPEECH, TEXT] and spans[0].text == "question:"
    free = transcribe(model, tok, utts, batch_size=4, max_new_tokens=4, progress=False, prompt="alpha {speech} beta")
    assert len(free.hypotheses) == 4 and all(isinstance(h.hypothesis, str) for h in free.hypotheses)
    with pytest.raises(JstipError, match="speech"):
        prompt_sample(utts[0], "no audio here")
