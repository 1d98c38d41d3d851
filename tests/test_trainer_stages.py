"""`train` and `evaluate` stages end to end on a tiny generated corpus."""
import json
from pathlib import Path

import numpy as np
import polars as pl
import soundfile as sf

from manifests.io import write_records, write_shards
from manifests.schema import SPEECH, TEXT, Hypothesis, Sample, Span, Text, Utterance
from pipeline.stage_evaluate import EvaluateConfig, read_entities
from pipeline.stage_evaluate import run as evaluate
from pipeline.stage_train import PLOT_COLUMNS, TrainConfig
from pipeline.stage_train import run as train

SR = 16000
SENTENCES = ["take aspirin daily", "fly to new york", "take ibuprofen now", "walk to the park"]
TINY = dict(enc_dim=32, enc_layers=1, enc_heads=2, proj_hidden=64, lm_hidden=64, lm_layers=2, lm_heads=2,
            lm_intermediate=128, dropout=0.0, vocab_size=120)


def make_corpus(root: Path) -> dict[str, str]:
    rng = np.random.default_rng(0)
    utts, samples = [], []
    for i, text in enumerate(SENTENCES * 2):
        dur = 0.6 + 0.1 * (i % 4)
        path = root / "audio" / f"u{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(dur * SR)) / SR
        sf.write(path, (0.2 * np.sin(2 * np.pi * (200 + 300 * (i % 4)) * t)
                        + 0.01 * rng.standard_normal(t.size)).astype(np.float32), SR)
        split = "test" if i >= 6 else "train"
        utts.append(Utterance(f"u{i}", str(path), 0.0, dur, SR, "s", text, text, "synth", split))
        if split == "train":
            words = text.split()
            samples.append(Sample(f"u{i}:asr", "asr", f"u{i}", str(path), 0.0, dur,
                                  (Span(SPEECH, text, 0.0, dur), Span(TEXT, text)), len(words), len(words)))
            samples.append(Sample(f"u{i}:seg", "interleave_segment", f"u{i}", str(path), 0.0, dur,
                                  (Span(SPEECH, words[0], 0.0, dur / 3), Span(TEXT, " ".join(words[1:]))), 1,
                                  len(words) - 1))
    samples.append(Sample("t0:text", "text", "t0", "", 0.0, 0.0, (Span(TEXT, "aspirin helps"),), 0, 2))
    samples.append(Sample("gone:asr", "asr", "gone", str(root / "missing.wav"), 0.0, 1.0,
                          (Span(SPEECH, "lost", 0.0, 1.0), Span(TEXT, "lost")), 1, 1))
    paths = {"utterances": str(root / "utterances.parquet"), "texts": str(root / "texts.parquet"),
             "samples": str(root / "samples"), "entities": str(root / "entities.txt")}
    write_records(utts, Utterance, paths["utterances"])
    write_records([Text("t0", "Aspirin helps.", "aspirin helps", "synth")], Text, paths["texts"])
    write_shards(samples, Sample, paths["samples"], shard_size=5)
    Path(paths["entities"]).write_text("aspirin\nibuprofen\nnew york\n\n")
    return paths


def test_train_then_evaluate_end_to_end(tmp_path):
    paths = make_corpus(tmp_path)
    ckpt = tmp_path / "checkpoints"
    metrics = train(TrainConfig(samples=paths["samples"], utterances=paths["utterances"], texts=paths["texts"],
                                checkpoints=str(ckpt), plot=str(tmp_path / "plots/train_loss.csv"),
                                metrics=str(tmp_path / "metrics/train.json"), steps=30, batch_size=4, lr=3e-3,
                                warmup_steps=5, loss_window=5, progress=False, **TINY))
    for name in ("model.safetensors", "speechlm_config.json", "lm_config.json", "tokenizer.json", "train_log.jsonl"):
        assert (ckpt / name).exists(), name
    curve = pl.read_csv(tmp_path / "plots/train_loss.csv")
    assert curve.columns == list(PLOT_COLUMNS) and curve["step"].to_list() == [10, 20, 30]
    assert curve["padding_share"].is_between(0, 1).all() and curve["tokens_per_s"].min() > 0
    assert curve["mfu"].null_count() == 3  # MFU is a GPU figure
    written = json.loads((tmp_path / "metrics/train.json").read_text())
    assert written == json.loads(json.dumps(metrics))
    assert metrics["steps"] == 30 and metrics["loss_last"] < metrics["loss_first"]
    assert metrics["skipped_by_reason"] == {"audio unreadable": 1}
    assert set(metrics["samples_seen_by_kind"]) == {"asr", "interleave_segment", "text"}
    assert metrics["n_parameters"] > 0 and 0 <= metrics["padding_share"] < 1

    out = evaluate(EvaluateConfig(checkpoints=str(ckpt), utterances=paths["utterances"], entities=paths["entities"],
                                  hypotheses=str(tmp_path / "eval/hypotheses.parquet"),
                                  metrics=str(tmp_path / "metrics/eval.json"),
                                  report=str(tmp_path / "reports/evaluate.json"), max_new_tokens=8, batch_size=2,
                                  progress=False))
    hyps = pl.read_parquet(tmp_path / "eval/hypotheses.parquet")
    assert hyps.columns == ["utt_id", "reference", "hypothesis"] and sorted(hyps["utt_id"]) == ["u6", "u7"]
    assert out["utterances"] == 2 and out["reference_words"] == 7 and out["wer"] is not None
    assert out["entity_instances"] == 1  # "ibuprofen" in u6 ("take ibuprofen now"); u7 has no entity
    assert json.loads((tmp_path / "metrics/eval.json").read_text())["wer"] == out["wer"]

    none = evaluate(EvaluateConfig(checkpoints=str(ckpt), utterances=paths["utterances"],
                                   entities=str(tmp_path / "nope.txt"), hypotheses=str(tmp_path / "h2.parquet"),
                                   metrics=str(tmp_path / "e2.json"), report=str(tmp_path / "r2.json"), max_new_tokens=4,
                                   progress=False))
    assert none["eer"] is None and "not found" in json.loads((tmp_path / "r2.json").read_text())["entity_note"]


def test_read_entities_normalizes_and_notes_empty(tmp_path):
    f = tmp_path / "e.txt"
    f.write_text("  New   York \n\naspirin\n")
    assert read_entities(str(f)) == (["new york", "aspirin"], None)
    f.write_text("\n")
    assert read_entities(str(f))[0] == [] and "empty" in read_entities(str(f))[1]


def test_train_with_a_pretrained_lm_path_uses_its_tokenizer(tmp_path):
    import torch

    from trainer.checkpoint import load_checkpoint
    from trainer.model import SpeechLM, SpeechLMConfig
    from trainer.tokenizer import build_tokenizer

    paths = make_corpus(tmp_path)
    torch.manual_seed(0)
    tok = build_tokenizer(SENTENCES * 3, vocab_size=100)
    lm = SpeechLM(SpeechLMConfig(**{k: v for k, v in TINY.items() if k != "vocab_size"}), tok).lm
    lm.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    metrics = train(TrainConfig(samples=paths["samples"], utterances=paths["utterances"], texts=paths["texts"],
                                checkpoints=str(tmp_path / "ck"), plot=str(tmp_path / "p.csv"),
                                metrics=str(tmp_path / "m.json"), steps=2, batch_size=2, progress=False,
                                lm=str(tmp_path / "lm"), **{k: v for k, v in TINY.items() if k != "vocab_size"}))
    assert metrics["vocab_size"] == len(tok) and metrics["steps"] == 2
    model, tok2 = load_checkpoint(tmp_path / "ck")
    assert tok2.get_vocab() == tok.get_vocab() and model.cfg.lm == str(tmp_path / "lm")


def test_ctc_loss_is_logged_when_asr_samples_are_present(tmp_path):
    paths = make_corpus(tmp_path)
    train(TrainConfig(samples=paths["samples"], utterances=paths["utterances"], texts=paths["texts"],
                      checkpoints=str(tmp_path / "ck"), plot=str(tmp_path / "p.csv"), metrics=str(tmp_path / "m.json"),
                      steps=4, batch_size=8, log_every=1, ctc_weight=1.0, progress=False, **TINY))
    lines = [json.loads(line) for line in (tmp_path / "ck/train_log.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and any("ctc_loss" in line for line in lines)
    assert all(line["total_loss"] >= line["loss"] for line in lines)


def test_train_stage_resumes_from_its_newest_state(tmp_path):
    paths = make_corpus(tmp_path)
    common = dict(samples=paths["samples"], utterances=paths["utterances"], texts=paths["texts"],
                  checkpoints=str(tmp_path / "ck"), plot=str(tmp_path / "p.csv"), metrics=str(tmp_path / "m.json"),
                  batch_size=4, log_every=2, save_every=2, progress=False, **TINY)
    first = train(TrainConfig(steps=4, **common))
    assert first["resumed_from_step"] == 0 and (tmp_path / "ck/state/step-00000004/optimizer.safetensors").exists()
    again = train(TrainConfig(steps=6, resume="auto", **common))
    assert again["resumed_from_step"] == 4 and again["steps"] == 6
    assert pl.read_csv(tmp_path / "p.csv")["step"].to_list() == [2, 4, 6]
