"""`train` (and `evaluate` on its checkpoint) end to end on a tiny generated corpus in the token formats:
metrics and report, plots as the run goes, epochs, Ctrl-C, resume, a text-only LM reused as `train.lm`."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import torch
import pytest

from manifests.io import write_records, write_shards
from manifests.schema import SPEECH, TEXT, Sample, Utterance
from pipeline.stage_evaluate import EvaluateConfig
from pipeline.stage_evaluate import run as evaluate
from pipeline.stage_train import PLOTS, TrainConfig
from pipeline.stage_train import run as train
from tests.trainer_samples import SR, asr, segment_interleave, text, tone, write_wav

SENTENCES = ["Take aspirin daily.", "Fly to New York!", "Take ibuprofen now.", "Walk to the park."]
TINY = dict(enc_dim=32, enc_layers=1, enc_heads=2, proj_hidden=64, lm_hidden=64, lm_layers=2, lm_heads=2,
            lm_intermediate=128, dropout=0.0, vocab_size=150, context=128, batch_size=2, progress=False)
REPO = Path(__file__).resolve().parents[1]


def make_corpus(root: Path) -> dict[str, str]:
    utts, samples = [], []
    for i, sentence in enumerate(SENTENCES * 2):
        dur = 0.6 + 0.1 * (i % 4)
        path = write_wav(root / "audio" / f"u{i}.wav", tone(dur, 200 + 300 * (i % 4), 0.01, i))
        split = "test" if i >= 6 else "train"
        utts.append(Utterance(f"u{i}", path, 0.0, dur, SR, "s", sentence, sentence.lower(), "synth", split))
        if split == "train":
            words = sentence.split()
            samples.append(asr(f"u{i}:asr", path, dur, sentence))
            samples.append(segment_interleave(f"u{i}:seg", path, dur, [(SPEECH, words[0], 0.0, dur / 3),
                                                                       (TEXT, " ".join(words[1:]), 0, 0)]))
    samples.append(text("t0:text", ["Aspirin helps.", "Rest helps too."]))
    samples.append(asr("gone:asr", str(root / "missing.wav"), 1.0, "Lost."))
    paths = {"utterances": str(root / "utterances.parquet"), "samples": str(root / "samples"),
             "entities": str(root / "entities.txt")}
    write_records(utts, Utterance, paths["utterances"])
    write_shards(samples, Sample, paths["samples"], shard_size=5)
    Path(paths["entities"]).write_text("aspirin\nibuprofen\nnew york\n\n")
    return paths


def outputs(root: Path, name: str = "") -> dict[str, str]:
    return dict(checkpoints=str(root / f"ck{name}"), plots=str(root / f"plots{name}"),
                metrics=str(root / f"metrics{name}/train.json"), report=str(root / f"reports{name}/train.json"))


def test_train_then_evaluate_end_to_end(tmp_path):
    paths = make_corpus(tmp_path)
    out = outputs(tmp_path)
    seen = []
    import trainer.run as stage

    write = stage.write_plots
    stage.write_plots = lambda records, d: (seen.append(len(records)), write(records, d))  # plots as the run goes
    try:
        metrics = train(TrainConfig(samples=paths["samples"], steps=30, lr=3e-3, warmup_steps=5, loss_window=5,
                                    **out, **TINY))
    finally:
        stage.write_plots = write
    ckpt = Path(out["checkpoints"])
    for name in ("model.safetensors", "speechlm_config.json", "lm_config.json", "tokenizer.json", "train_log.jsonl"):
        assert (ckpt / name).exists(), name
    assert seen[:3] == [1, 2, 3]  # rewritten at every log record, not only at the end
    n1 = metrics["stage1_steps"]
    assert n1 >= 1 and metrics["steps"] == 30 + n1
    for file, columns in PLOTS.values():
        curve = pl.read_csv(Path(out["plots"]) / file)
        assert curve.columns == ["step", *columns] and curve["step"].to_list()[-1] == 30 + n1
    assert pl.read_csv(Path(out["plots"]) / "train_padding.csv")["padding_share"].is_between(0, 0.5).all()
    written = json.loads(Path(out["metrics"]).read_text())
    assert written == json.loads(json.dumps(metrics)) and all(isinstance(v, (int, float)) or v is None
                                                              for v in written.values())
    assert metrics["loss_last"] < metrics["loss_first"] and metrics["skipped"] == 1 and metrics["mfu"] is None
    report = json.loads(Path(out["report"]).read_text())
    assert report["skipped_by_reason"] == {"audio_unreadable": 1}
    assert report["skipped_examples"]["audio_unreadable"][0].startswith("gone:asr:")
    assert set(report["samples_seen_by_kind"]) == {"asr", "interleave_segment", "text"}
    assert [s["name"] for s in report["stages"]] == ["stage1", "stage2"]
    assert report["stages"][0]["parts"] == ["projector"] and report["omp_wait_policy"] == "PASSIVE"

    result = evaluate(EvaluateConfig(checkpoints=str(ckpt), utterances=paths["utterances"], entities=paths["entities"],
                                     hypotheses=str(tmp_path / "eval/hypotheses.parquet"),
                                     metrics=str(tmp_path / "metrics/eval.json"),
                                     report=str(tmp_path / "reports/evaluate.json"), max_new_tokens=8, batch_size=2,
                                     progress=False))
    hyps = pl.read_parquet(tmp_path / "eval/hypotheses.parquet")
    assert hyps.columns == ["utt_id", "reference", "hypothesis"] and sorted(hyps["utt_id"]) == ["u6", "u7"]
    assert result["utterances"] == 2 and result["wer"] is not None
    assert result["entity_instances"] == 1  # "ibuprofen" in u6; u7 has no entity
    assert json.loads((tmp_path / "metrics/eval.json").read_text())["wer"] == result["wer"]

    none = evaluate(EvaluateConfig(checkpoints=str(ckpt), utterances=paths["utterances"],
                                   entities=str(tmp_path / "nope.txt"), hypotheses=str(tmp_path / "h2.parquet"),
                                   metrics=str(tmp_path / "e2.json"), report=str(tmp_path / "r2.json"), max_new_tokens=4,
                                   progress=False))
    assert none["eer"] is None and "not found" in json.loads((tmp_path / "r2.json").read_text())["entity_note"]


def test_epochs_size_the_run_and_a_far_off_step_count_warns(tmp_path, capsys):
    paths = make_corpus(tmp_path)
    small = {**TINY, "batch_size": 1, "context": 64}
    one = train(TrainConfig(samples=paths["samples"], epochs=1.0, stage1_share=0.0, **outputs(tmp_path, "1"), **small))
    two = train(TrainConfig(samples=paths["samples"], epochs=2.0, stage1_share=0.0, **outputs(tmp_path, "2"), **small))
    assert 4 <= one["steps"] < two["steps"] <= 2 * one["steps"] + 1
    assert one["epochs"] == pytest.approx(1.0, abs=0.25)
    assert "epochs of the data" not in capsys.readouterr().err
    train(TrainConfig(samples=paths["samples"], steps=200, stage1_share=0.0, **outputs(tmp_path, "3"), **TINY))
    assert "likely overfit; set epochs" in capsys.readouterr().err


def test_ctrl_c_saves_a_state_and_exits_130_without_a_traceback(tmp_path):
    paths = make_corpus(tmp_path)
    out = outputs(tmp_path)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in {**out, **TINY, "steps": 100000, "log_every": 1,
                                                         "samples": paths["samples"], "stage1_share": 0.0}.items()]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "train", *flags], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = Path(out["checkpoints"]) / "train_log.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "continue with --resume auto" in err
    states = sorted((Path(out["checkpoints"]) / "state").glob("step-*"))
    assert states and json.loads((states[-1] / "trainer_state.json").read_text())["stage_step"] >= 3
    assert pl.read_csv(Path(out["plots"]) / "train_loss.csv").height >= 3  # the plots so far stay


def test_train_stage_resumes_with_metrics_over_the_whole_run(tmp_path):
    paths = make_corpus(tmp_path)
    common = dict(samples=paths["samples"], log_every=2, save_every=2, stage1_share=0.0, loss_window=2,
                  **outputs(tmp_path), **TINY)
    first = train(TrainConfig(steps=4, **common))
    assert (tmp_path / "ck/state/step-00000004/optimizer.safetensors").exists()
    again = train(TrainConfig(steps=6, resume="auto", **common))
    assert json.loads((tmp_path / "reports/train.json").read_text())["resumed_from_step"] == 4
    assert again["steps"] == 6 and again["loss_first"] == first["loss_first"]  # covers the whole run
    assert pl.read_csv(tmp_path / "plots/train_loss.csv")["step"].to_list() == [2, 4, 6]


def test_a_text_only_run_exports_an_lm_that_a_later_run_loads_as_train_lm(tmp_path):
    from trainer.checkpoint import load_checkpoint
    from trainer.tokenizer import TokenIds, load_tokenizer

    paths = make_corpus(tmp_path)
    texts = [text(f"t{i}", [s, SENTENCES[(i + 1) % 4]]) for i, s in enumerate(SENTENCES * 3)]
    write_shards(texts, Sample, tmp_path / "texts", shard_size=4)
    stage0 = train(TrainConfig(samples=str(tmp_path / "texts"), steps=6, export_lm=True, **outputs(tmp_path, "0"),
                               **TINY))
    assert stage0["stage1_steps"] == 0 and stage0["steps"] == 6  # no ASR samples: no stage 1
    lm_dir = tmp_path / "ck0/lm"
    assert (lm_dir / "config.json").exists() and (lm_dir / "tokenizer.json").exists()
    tok0 = load_tokenizer(lm_dir)
    later = train(TrainConfig(samples=paths["samples"], steps=2, lm=str(lm_dir), **outputs(tmp_path, "1"),
                              **{k: v for k, v in TINY.items() if k != "vocab_size"}))
    assert later["steps"] >= 2
    model, tok = load_checkpoint(tmp_path / "ck1")
    assert tok.get_vocab() == tok0.get_vocab() and TokenIds(tok).asr == TokenIds(tok0).asr
    stage0_model, _ = load_checkpoint(tmp_path / "ck0")
    assert model.cfg.lm == str(lm_dir) and model.lm.config.hidden_size == stage0_model.lm.config.hidden_size


def test_init_from_starts_a_run_from_another_runs_encoder_and_adapter(tmp_path):
    from safetensors.torch import load_file

    paths = make_corpus(tmp_path)
    common = dict(samples=paths["samples"], stage1_share=0.0, **TINY)
    train(TrainConfig(steps=2, seed=1, **outputs(tmp_path, "0"), **common))
    train(TrainConfig(steps=1, seed=2, lr=1e-12, warmup_steps=0, init_from=str(tmp_path / "ck0"),
                      **outputs(tmp_path, "1"), **common))
    donor, run = load_file(str(tmp_path / "ck0/model.safetensors")), load_file(str(tmp_path / "ck1/model.safetensors"))
    enc = [k for k in donor if k.startswith("encoder.")]
    assert enc and all(torch.allclose(donor[k], run[k], atol=1e-6) for k in enc)  # started from ck0's (lr ~ 0)
    lm = [k for k in donor if k.startswith("lm.")]
    assert lm and not any(torch.allclose(donor[k], run[k]) for k in lm if donor[k].ndim == 2)  # the LM: its own seed
    report = json.loads((tmp_path / "reports1/train.json").read_text())
    assert report["init_from"] == str(tmp_path / "ck0") and report["init_tensors"] > 0
