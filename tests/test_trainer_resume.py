"""Exact resume: a run restarted from its step-k training state repeats the uninterrupted run's losses."""
import io
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from manifests.errors import JstipError
from manifests.schema import SPEECH, TEXT, Sample, Span
from trainer.batching import planned_from_samples
from trainer.checkpoint import latest_state
from trainer.loop import LoopConfig, train
from trainer.model import SpeechLM, SpeechLMConfig
from trainer.tokenizer import build_tokenizer

SR = 16000
WORDS = ["alpha beta", "gamma delta epsilon", "one two", "red green blue", "seven eight", "up down left"]
# dropout > 0 on purpose: the resumed run must restore the RNG that draws the dropout masks
TINY = dict(enc_dim=32, enc_layers=1, enc_heads=2, proj_hidden=64, lm_hidden=64, lm_layers=2, lm_heads=2,
            lm_intermediate=128, dropout=0.1, max_positions=512, ctc_weight=0.5)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Half the samples read audio from a file, half carry it as embedded FLAC bytes."""
    root = tmp_path_factory.mktemp("resume")
    rng = np.random.default_rng(0)
    samples = []
    for i, words in enumerate(WORDS):
        dur = 0.5 + 0.1 * i
        t = np.arange(int(dur * SR)) / SR
        wave = (0.2 * np.sin(2 * np.pi * (200 + 150 * i) * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
        path = root / f"u{i}.wav"
        sf.write(path, wave, SR)
        buf = io.BytesIO()
        sf.write(buf, wave, SR, format="FLAC")
        embedded = buf.getvalue() if i % 2 else None
        w = words.split()
        samples.append(Sample(f"u{i}:asr", "asr", f"u{i}", str(path), 0.0, dur,
                              (Span(SPEECH, words, 0.0, dur), Span(TEXT, words)), len(w), len(w), embedded))
        samples.append(Sample(f"u{i}:w", "interleave_word", f"u{i}", str(path), 0.0, dur,
                              (Span(SPEECH, w[0], 0.0, dur / 2), Span(TEXT, " ".join(w[1:]))), 1, len(w) - 1, embedded))
    samples.append(Sample("t0", "text", "t0", "", 0.0, 0.0, (Span(TEXT, "alpha gamma red"),), 0, 3))
    tok = build_tokenizer(WORDS * 3, vocab_size=120)
    return samples, tok


def run(corpus, out_dir, seed_model: int, **loop):
    samples, tok = corpus
    torch.manual_seed(seed_model)
    model = SpeechLM(SpeechLMConfig(**TINY), tok)
    cfg = LoopConfig(**{**dict(steps=8, batch_size=3, lr=3e-3, warmup_steps=2, log_every=2, device="cpu", pool=2),
                        **loop})
    data = planned_from_samples(samples, tok, model.spec, cfg.batch_size, cfg.batch_tokens, cfg.pool, cfg.seed,
                                streams=max(1, cfg.num_workers))
    return train(model, data, cfg, out_dir=out_dir, tok=tok, log_path=out_dir / "log.jsonl", progress=False), model


@pytest.mark.parametrize("loop", [dict(grad_accum=2), dict(batch_tokens=120, num_workers=2)],
                         ids=["accumulate", "token-batches-2-workers"])
def test_resumed_run_repeats_the_uninterrupted_losses_bit_exactly(corpus, tmp_path, loop):
    full, full_model = run(corpus, tmp_path / "a", seed_model=0, save_every=4, **loop)
    assert [p.name for p in (tmp_path / "a/state").iterdir()] and latest_state(tmp_path / "a").name == "step-00000008"
    state = tmp_path / "a/state/step-00000004"
    # a fresh process would build a differently initialised model: the state must overwrite everything
    resumed, resumed_model = run(corpus, tmp_path / "b", seed_model=123, resume=str(state), **loop)
    assert resumed.start_step == 4 and [h["step"] for h in resumed.history] == [5, 6, 7, 8]
    for a, b in zip(full.history[4:], resumed.history):
        assert a == b  # loss, total loss (with CTC), lr and grad norm, bit for bit
    for (name, p), (_, q) in zip(full_model.state_dict().items(), resumed_model.state_dict().items()):
        assert torch.equal(p, q), name
    assert all(np.isfinite(h["loss"]) for h in full.history)


def test_resume_refuses_changed_data_settings_and_auto_finds_the_newest(corpus, tmp_path, capsys):
    run(corpus, tmp_path, seed_model=0, steps=4, save_every=2, keep_states=1)
    assert [p.name for p in (tmp_path / "state").glob("step-*")] == ["step-00000004"]
    with pytest.raises(JstipError, match="batch_size"):
        run(corpus, tmp_path, seed_model=0, steps=6, batch_size=2, resume="auto")
    capsys.readouterr()
    again, _ = run(corpus, tmp_path, seed_model=0, steps=6, resume="auto", save_every=2)
    assert again.start_step == 4 and again.steps == 6
    warning = capsys.readouterr().err
    assert "changed schedule" in warning and "'steps': (4, 6)" in warning
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6]  # records of the earlier run kept, then continued
