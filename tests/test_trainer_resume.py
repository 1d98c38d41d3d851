"""Exact resume: a run restarted from its step-k training state repeats the uninterrupted run's losses,
inside either stage of the schedule and across the boundary between them."""
import json

import numpy as np
import pytest
import torch

from manifests.errors import JstipError
from manifests.schema import SPEECH, TEXT
from tests.trainer_samples import asr, flac, text, tone, word_interleave, write_wav
from trainer.batching import Batching, data_from_samples
from trainer.checkpoint import latest_state
from trainer.loop import LoopConfig, train
from trainer.model import SpeechLM, SpeechLMConfig
from trainer.tokenizer import build_tokenizer

WORDS = ["Alpha beta.", "Gamma delta epsilon!", "One two?", "Red green blue.", "Seven eight.", "Up down left."]
# dropout > 0 on purpose: the resumed run must restore the RNG that draws the dropout masks
TINY = dict(enc_dim=32, enc_layers=1, enc_heads=2, proj_hidden=64, lm_hidden=64, lm_layers=2, lm_heads=2,
            lm_intermediate=128, dropout=0.1, max_positions=512, ctc_weight=0.5)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Half the samples read audio from a file, half carry it as embedded FLAC bytes."""
    root = tmp_path_factory.mktemp("resume")
    samples = []
    for i, words in enumerate(WORDS):
        dur = 0.5 + 0.1 * i
        wave = tone(dur, 200 + 150 * i, 0.01, i)
        path = write_wav(root / f"u{i}.wav", wave)
        embedded = flac(wave) if i % 2 else None
        w = words.split()
        samples.append(asr(f"u{i}:asr", path, dur, words, embedded))
        samples.append(word_interleave(f"u{i}:w", path, dur, [(SPEECH, w[0], 0.0, dur / 2), (TEXT, " ".join(w[1:]), 0, 0)],
                                       embedded))
    samples.append(text("t0", ["Alpha gamma red."]))
    tok = build_tokenizer(WORDS * 3, vocab_size=150)
    return samples, tok


def run(corpus, out_dir, seed_model: int, batching: Batching = Batching(batching="padded", batch_size=3, pool=2),
        group_size: int = 1024, **loop):
    samples, tok = corpus
    torch.manual_seed(seed_model)
    model = SpeechLM(SpeechLMConfig(**TINY), tok)
    cfg = LoopConfig(**{**dict(steps=8, lr=3e-3, warmup_steps=2, log_every=2, device="cpu", stage1_share=0.0), **loop})
    data = data_from_samples(samples, tok, model.spec, batching, streams=max(1, cfg.num_workers), group_size=group_size)
    return train(model, data, cfg, out_dir=out_dir, tok=tok, log_path=out_dir / "log.jsonl", progress=False), model


CASES = {
    "accumulate": dict(grad_accum=2),
    "token-batches-2-workers": dict(batching=Batching(batching="padded", batch_size=0, batch_tokens=120, pool=2),
                                    num_workers=2, group_size=4),
    "packed-in-stage1": dict(batching=Batching(batching="packed", batch_size=1, context=48, pool=2), stage1_share=1.0,
                             group_size=4),
}


@pytest.mark.parametrize("case", list(CASES))
def test_resumed_run_repeats_the_uninterrupted_losses_bit_exactly(corpus, tmp_path, case):
    kw = CASES[case]
    full, full_model = run(corpus, tmp_path / "a", seed_model=0, save_every=3, keep_states=9, **kw)
    n = full.steps
    assert latest_state(tmp_path / "a").name == f"step-{n:08d}"
    state = tmp_path / "a/state/step-00000003"
    if case == "packed-in-stage1":
        assert full.plans[0].name == "stage1" and full.plans[0].steps > 3  # the state is inside stage 1
        assert [h["stage"] for h in full.history].count("stage1") == full.plans[0].steps
    # a fresh process would build a differently initialised model: the state must overwrite everything
    resumed, resumed_model = run(corpus, tmp_path / "b", seed_model=123, resume=str(state), **kw)
    assert resumed.start_step == 3 and [h["step"] for h in resumed.history] == list(range(4, n + 1))
    for a, b in zip(full.history[3:], resumed.history):
        assert a == b  # stage, loss, total loss (with CTC), lr and grad norm, bit for bit
    for (name, p), (_, q) in zip(full_model.state_dict().items(), resumed_model.state_dict().items()):
        assert torch.equal(p, q), name
    assert resumed.losses == full.losses  # the whole run's losses, not only the resumed steps
    assert all(np.isfinite(h["loss"]) for h in full.history)


def test_resume_across_the_stage_boundary(corpus, tmp_path):
    kw = dict(stage1_share=0.3, batching=Batching(batching="padded", batch_size=2, pool=2))
    probe, _ = run(corpus, tmp_path / "p", seed_model=0, steps=4, **kw)
    boundary = probe.plans[0].steps
    assert [p.name for p in probe.plans] == ["stage1", "stage2"] and boundary >= 1
    full, full_model = run(corpus, tmp_path / "a", seed_model=0, steps=4, save_every=boundary, keep_states=9, **kw)
    assert [h["stage"] for h in full.history] == ["stage1"] * boundary + ["stage2"] * 4
    assert [h["lr"] for h in full.history][boundary] > [h["lr"] for h in full.history][boundary - 1]  # new schedule
    state = tmp_path / f"a/state/step-{boundary:08d}"
    assert json.loads((state / "trainer_state.json").read_text())["stage"] == "stage1"
    resumed, resumed_model = run(corpus, tmp_path / "b", seed_model=7, steps=4, resume=str(state), **kw)
    assert resumed.history == full.history[boundary:]
    for (name, p), (_, q) in zip(full_model.state_dict().items(), resumed_model.state_dict().items()):
        assert torch.equal(p, q), name


def test_stage1_trains_the_adapter_only(corpus, tmp_path):
    samples, tok = corpus
    torch.manual_seed(0)
    model = SpeechLM(SpeechLMConfig(**TINY), tok)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = data_from_samples(samples, tok, model.spec, Batching(batching="padded", batch_size=2))
    result = train(model, data, LoopConfig(steps=1, stage1_share=1.0, stage1_lr=1e-2, lr=0.0, warmup_steps=0,
                                           device="cpu"), progress=False)
    assert result.plans[0].name == "stage1" and result.kinds["asr"] > 0
    assert {k for b in [result.kinds] for k in b} <= {"asr", "text", "interleave_word"}
    stage1 = [h for h in result.history if h["stage"] == "stage1"]
    assert stage1 and result.history[-1]["stage"] == "stage2" and result.history[-1]["lr"] == 0.0
    after = model.state_dict()
    changed = {k.split(".")[0] for k, v in before.items() if not torch.equal(v, after[k])}
    assert changed == {"projector", "ctc_head"}  # stage 2 ran at lr 0: only stage 1 moved anything


def test_resume_refuses_changed_data_settings_and_auto_finds_the_newest(corpus, tmp_path, capsys):
    run(corpus, tmp_path, seed_model=0, steps=4, save_every=2, keep_states=1)
    assert [p.name for p in (tmp_path / "state").glob("step-*")] == ["step-00000004"]
    with pytest.raises(JstipError, match="batch_size"):
        run(corpus, tmp_path, seed_model=0, steps=6, batching=Batching(batching="padded", batch_size=2, pool=2),
            resume="auto")
    capsys.readouterr()
    again, _ = run(corpus, tmp_path, seed_model=0, steps=6, resume="auto", save_every=2)
    assert again.start_step == 4 and again.steps == 6 and len(again.losses) == 6
    warning = capsys.readouterr().err
    assert "changed schedule" in warning and "'steps': (4, 6)" in warning
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6]  # records of the earlier run kept, then continued
    assert [r["step"] for r in again.records] == [2, 4, 6]
