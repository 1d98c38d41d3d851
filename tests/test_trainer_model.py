"""Rendering of the token formats, labels, speech spans encoded by concatenation or slicing, overfitting,
prompt batches and generation, checkpoints."""
import numpy as np
import pytest
import torch

from manifests import formats
from manifests.errors import JstipError
from manifests.frames import span_frames
from manifests.schema import SPEECH, TEXT, Sample, Span
from tests.trainer_samples import SR, asr, segment_interleave, text, write_wav, word_interleave
from trainer.batching import Batching, data_from_samples
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.data import IGNORE, Collator, SampleDataset
from trainer.features import encoded_frames
from trainer.loop import LoopConfig, train
from trainer.model import SpeechLM, SpeechLMConfig
from trainer.tokenizer import TokenIds, build_tokenizer

WORDS = ["Alpha beta.", "Gamma, delta epsilon!", "One two?", "Red green blue."]
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
    samples, paths = [], []
    for i, words in enumerate(WORDS):
        dur = 0.8 + 0.1 * i
        paths.append((write_wav(root / f"u{i}.wav", signal(i, dur)), dur))
        samples.append(asr(f"u{i}:asr", paths[-1][0], dur, words))
    tok = build_tokenizer(WORDS * 3, vocab_size=150)
    return paths, samples, tok


def prompt(sample_id: str, path: str, duration: float) -> Sample:
    """What a recognizer is given: `<s> A <|asr|>` (manifests.formats.asr_prompt)."""
    return Sample(sample_id, "asr", sample_id, path, 0.0, duration, formats.asr_prompt(duration), 0, 0)


def test_each_format_renders_with_labels_on_text_and_end_token_only(corpus):
    paths, _, tok = corpus
    ids = TokenIds(tok)
    path, dur = paths[1]
    samples = [asr("a", path, dur, "Gamma, delta."),
               word_interleave("w", path, dur, [(SPEECH, "Gamma,", 0.0, 0.3), (TEXT, "delta", 0, 0),
                                                (SPEECH, "epsilon!", 0.5, 0.9)] + [(TEXT, "Done.", 0, 0)]),
               segment_interleave("s", path, dur, [(SPEECH, "Gamma,", 0.0, 0.3), (TEXT, "delta epsilon!", 0, 0)]),
               text("t", ["One two.", "Red green."])]
    ds = SampleDataset(samples)
    batch = Collator(tok)([ds[i] for i in range(4)])
    x, y = batch["input_ids"], batch["labels"]
    n = encoded_frames(ds[0].mel.shape[0], ds.spec)
    words = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    whole = span_frames(0.0, dur, ds.spec, n)
    a, b = span_frames(0.0, 0.3, ds.spec, n), span_frames(0.5, 0.9, ds.spec, n)
    expected = [
        [ids.bos] + [ids.audio] * (whole[1] - whole[0]) + [ids.asr] + words("Gamma, delta.") + [ids.eos],
        [ids.bos] + [ids.audio] * (a[1] - a[0]) + words("delta") + [ids.audio] * (b[1] - b[0]) + words("Done.") + [ids.eos],
        [ids.bos] + [ids.audio] * (a[1] - a[0]) + [ids.segment] + words("delta epsilon!") + [ids.eos],
        [ids.bos] + words("One two.") + [ids.eos] + words("Red green.") + [ids.eos],
    ]
    for row, want in enumerate(expected):
        assert x[row, : len(want)].tolist() == want
        assert (x[row, len(want):] == ids.pad).all()
        # targets: text tokens and </s>; never <s>, <N>, <|asr|>, speech or padding
        assert [t for t in y[row].tolist() if t != IGNORE] == [t for t in want if t not in
                                                               (ids.bos, ids.asr, ids.segment, ids.audio)]
    assert batch["span_audio"].tolist() == [0, 1, 1, 2]  # three samples with speech, text-only gives none
    assert batch["ctc_audio"].tolist() == [0]  # only the asr format gets a CTC target
    assert batch["ctc_targets"].tolist() == words("Gamma, delta.")


def test_a_sample_without_the_end_token_is_refused_and_malformed_ones_skipped(corpus):
    paths, _, tok = corpus
    old = Sample("old:asr", "asr", "old", paths[0][0], 0.0, paths[0][1],
                 (Span(SPEECH, "x", 0.0, 0.5), Span(TEXT, "x")), 1, 1)
    with pytest.raises(JstipError, match="old:asr.*rerun jstip interleave"):
        Collator(tok)([SampleDataset([old])[0]])
    # as a prompt (decoding) the same spans are fine: prompts stop before the answer
    assert Collator(tok, add_eos=False)([SampleDataset([old])[0]]) is not None
    odd = Sample("odd", "text", "odd", "", 0.0, 0.0, (formats.token(formats.BOS), Span("token", "<zz>"),
                                                      formats.token(formats.EOS)), 0, 0)
    collator = Collator(tok)
    assert collator([SampleDataset([odd])[0]]) is None and collator.skipped["odd"].startswith("bad_spans:")


@pytest.mark.parametrize("encoding", ["concat", "slice"])
def test_placeholders_get_exactly_the_span_frames(corpus, encoding):
    paths, _, tok = corpus
    torch.manual_seed(0)
    model = SpeechLM(SpeechLMConfig(**TINY), tok).eval()
    samples = [word_interleave(f"s{i}", p, d, [(SPEECH, "", 0.05, 0.33), (TEXT, "one", 0, 0), (SPEECH, "", 0.41, d),
                                               (TEXT, "x", 0, 0)]) for i, (p, d) in enumerate(paths[:3])]
    ds = SampleDataset(samples)
    items = [ds[i] for i in range(3)]
    batch = Collator(tok, span_encoding=encoding)(items)
    k = ds.spec.mel_per_frame
    with torch.no_grad():
        embeds = model.embed(batch)
        frames, _ = model.encode(batch["mel"], batch["mel_lens"])
    for row, item in enumerate(items):
        n = encoded_frames(item.mel.shape[0], ds.spec)
        ranges = [span_frames(s.start, s.end, ds.spec, n) for s in samples[row].spans if s.modality == SPEECH]
        got = embeds[row][batch["input_ids"][row] == model.ids.audio]
        mel = batch["mel"][row, : batch["mel_lens"][row]]
        if encoding == "slice":  # the whole utterance is the encoder input; spans are sliced from its frames
            assert torch.equal(mel, item.mel)
            expected = torch.cat([frames[row, a:b] for a, b in ranges])
        else:  # the spans' log-mel rows, concatenated, are the encoder input; its frames fill the spans in order
            pad = item.mel.min().expand(max(0, k * ranges[-1][1] - item.mel.shape[0]), item.mel.shape[1])
            whole = torch.cat([item.mel, pad])  # the last span runs to the end: padded with the floor (silence)
            assert torch.equal(mel, torch.cat([whole[a * k:b * k] for a, b in ranges]))
            expected = frames[row, : sum(b - a for a, b in ranges)]
        assert got.shape[0] == sum(b - a for a, b in ranges)
        assert torch.equal(got, expected)


def test_concat_pads_a_last_span_cut_short_by_the_end_of_the_audio(corpus):
    paths, _, tok = corpus
    path, dur = paths[0]  # 0.8 s: 81 mel rows, 20 output frames = 80 rows; a span to the end is exact
    ds = SampleDataset([word_interleave("e", path, dur, [(TEXT, "a", 0, 0), (SPEECH, "", 0.7, dur + 0.5),
                                                         (TEXT, "b", 0, 0)])])
    batch = Collator(tok, span_encoding="concat")([ds[0]])
    n = int((batch["input_ids"] == TokenIds(tok).audio).sum())
    assert batch["mel_lens"].tolist() == [n * ds.spec.mel_per_frame]
    torch.manual_seed(0)
    assert torch.isfinite(SpeechLM(SpeechLMConfig(**TINY), tok)(batch).loss)


@pytest.fixture(scope="module")
def trained(corpus):
    _, samples, tok = corpus
    torch.manual_seed(0)
    model = SpeechLM(SpeechLMConfig(**TINY), tok)
    data = data_from_samples(samples, tok, model.spec, Batching(batching="padded", batch_size=4, length_jitter=0.0))
    result = train(model, data, LoopConfig(steps=120, lr=3e-3, warmup_steps=10, log_every=20, device="cpu",
                                           stage1_share=0.0), progress=False)
    return model, result


def test_loss_falls_when_overfitting(trained):
    _, result = trained
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 120
    assert np.mean(losses[-10:]) < 0.2 * np.mean(losses[:10])
    assert np.mean(losses[-10:]) < 0.1


def _prompt_batch(corpus, rows):
    paths, _, tok = corpus
    ds = SampleDataset([prompt(f"p{i}", *paths[i]) for i in rows])
    return Collator(tok, padding_side="left", add_eos=False)([ds[i] for i in range(len(rows))])


@pytest.mark.parametrize("beams", [1, 3])
def test_generation_from_asr_prompts_reproduces_the_transcripts_batched_and_single(trained, corpus, beams):
    model, _ = trained
    tok = corpus[2]
    batched = model.generate(_prompt_batch(corpus, range(4)), max_new_tokens=12, num_beams=beams)
    assert [tok.decode(r, skip_special_tokens=True) for r in batched.tolist()] == WORDS
    single = [model.generate(_prompt_batch(corpus, [i]), max_new_tokens=12, num_beams=beams)[0] for i in range(4)]
    assert [tok.decode(r, skip_special_tokens=True) for r in single] == WORDS


def test_last_position_of_a_left_padded_prompt_batch_scores_the_next_token(trained, corpus):
    model, _ = trained
    tok = corpus[2]
    batch = _prompt_batch(corpus, range(4))
    with torch.no_grad():
        logits = model(batch).logits
    assert logits.shape[:2] == batch["input_ids"].shape
    first = [tok(w, add_special_tokens=False)["input_ids"][0] for w in WORDS]
    assert logits[:, -1].argmax(-1).tolist() == first


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
        a, b = model(batch), loaded(batch)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.loss, b.loss)


def test_pretrained_lm_path_is_loaded(corpus, tmp_path):
    _, _, tok = corpus
    torch.manual_seed(2)
    scratch = SpeechLM(SpeechLMConfig(**TINY), tok)
    scratch.lm.save_pretrained(tmp_path / "lm")
    model = SpeechLM(SpeechLMConfig(**{**TINY, "lm": str(tmp_path / "lm")}), tok)
    for (k, v), (k2, v2) in zip(scratch.lm.state_dict().items(), model.lm.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_a_half_precision_lm_checkpoint_trains_from_fp32_master_weights(corpus, tmp_path):
    """Released LMs are saved in bf16/fp16; AdamW must still update fp32 weights (transformers 5 keeps
    the file's dtype unless asked)."""
    _, _, tok = corpus
    scratch = SpeechLM(SpeechLMConfig(**TINY), tok)
    scratch.lm.to(torch.bfloat16).save_pretrained(tmp_path / "lm")
    model = SpeechLM(SpeechLMConfig(**{**TINY, "lm": str(tmp_path / "lm")}), tok)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert torch.equal(model.lm.get_input_embeddings().weight, scratch.lm.get_input_embeddings().weight.float())


def test_80_ms_frames_fill_the_placeholders_with_concatenated_spans(corpus):
    paths, _, tok = corpus
    torch.manual_seed(0)
    model = SpeechLM(SpeechLMConfig(**{**TINY, "stack": 4}), tok).eval()  # the paper's 12.5 Hz
    assert model.spec.frame_duration == pytest.approx(0.08)
    samples = [word_interleave(f"s{i}", p, d, [(SPEECH, "", 0.0, 0.33), (TEXT, "one", 0, 0), (SPEECH, "", 0.41, d),
                                               (TEXT, "x", 0, 0)]) for i, (p, d) in enumerate(paths)]
    ds = SampleDataset(samples, model.spec)
    items = [ds[i] for i in range(len(samples))]
    batch = Collator(tok, model.spec, span_encoding="concat")(items, rows=[0, 0, 1, 1])
    for row, item in enumerate(items):
        n = encoded_frames(item.mel.shape[0], model.spec)
        want = sum(b - a for a, b in (span_frames(s.start, s.end, model.spec, n) for s in samples[row].spans
                                      if s.modality == SPEECH))
        assert batch["mel_lens"][row] == 8 * want
    assert torch.isfinite(model(batch).loss)
