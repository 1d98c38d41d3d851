"""A hostile corpus through the whole flow: prepare, align, interleave, train, evaluate.

Good espeak-ng utterances are mixed with bad inputs of many kinds in one CSV list. Every stage
must complete, every input must be accounted for (a record, or a rejection with its reason),
nothing wrong may be marked ok, and the counts by reason must appear in the stage metrics.
The stages' own tests cover each defect in depth; this one checks that they hold together.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from manifests.audio import write_audio
from manifests.io import read_records
from manifests.schema import Alignment, Rejected, Utterance

GOOD = ["The nurse checked the chart before noon.", "Take two tablets of aspirin after dinner.",
        "The scan showed no fracture in the wrist.", "Please repeat the dose of insulin tomorrow.",
        "He walked to the station in the rain.", "She was prescribed metformin for diabetes.",
        "The doctor ordered a blood test on Monday.", "We met at the library on Friday morning."]
VOICES = ["en-us", "en-us+f3", "en-us+m3", "en-gb-x-rp+m2"]


@pytest.fixture
def hostile(tmp_path, spoken):
    """A CSV list of good and bad rows (and the files it names); returns (list path, rows, bad kinds)."""
    audio_dir = tmp_path / "audio"
    rows = []
    for i, sentence in enumerate(GOOD):
        wave, _ = spoken(sentence, voice=VOICES[i % len(VOICES)])
        write_audio(wave, audio_dir / f"good{i}.wav", 16000)
        rows.append({"utt_id": f"good{i}", "audio": f"audio/good{i}.wav", "text": sentence, "duration": ""})
    write_audio(np.zeros(16000, np.float32), audio_dir / "silence.wav", 16000)
    wave, _ = spoken("The", voice="en-us")
    write_audio(wave[:800], audio_dir / "clip.wav", 16000)  # 0.05 s
    (audio_dir / "truncated.flac").write_bytes(b"fLaC" + b"\0" * 64)
    bad = {
        "nan_duration": {"audio": "audio/good0.wav", "text": GOOD[0], "duration": "nan"},
        "text_duration": {"audio": "audio/good1.wav", "text": GOOD[1], "duration": "abc"},
        "missing_file": {"audio": "audio/nowhere.wav", "text": "hello there", "duration": ""},
        "truncated_flac": {"audio": "audio/truncated.flac", "text": "hello there", "duration": ""},
        "empty_text": {"audio": "audio/good2.wav", "text": "   ", "duration": ""},
        "other_script": {"audio": "audio/good3.wav", "text": "hello 你好 world مرحبا again", "duration": ""},
        "duplicate_id": {"audio": "audio/good4.wav", "text": GOOD[4], "duration": "", "utt_id": "good4"},
        "silence": {"audio": "audio/silence.wav", "text": "hello world", "duration": ""},
        "clip_0.05s": {"audio": "audio/clip.wav", "text": "the", "duration": ""},
    }
    for name, row in bad.items():
        rows.append({"utt_id": row.get("utt_id", name), **{k: v for k, v in row.items() if k != "utt_id"}})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["utt_id", "audio", "text", "duration"])
    writer.writeheader()
    writer.writerows(rows)
    data = buffer.getvalue().encode() + "latin1,audio/good5.wav,caf\xe9 na\xefve,\n".encode("latin-1")
    (tmp_path / "list.csv").write_bytes(data)  # the last row is latin-1 in a UTF-8 list
    (tmp_path / "domain.txt").write_text("The patient takes warfarin daily.\nAtrial fibrillation needs care.\n")
    return tmp_path / "list.csv", len(rows) + 1


def test_a_hostile_corpus_runs_through_every_stage_and_every_input_is_accounted_for(hostile, tmp_path):
    from pipeline.stage_align import AlignConfig, run as align
    from pipeline.stage_evaluate import EvaluateConfig, run as evaluate
    from pipeline.stage_interleave import InterleaveConfig, run as interleave
    from pipeline.stage_prepare import PrepareConfig, run as prepare
    from pipeline.stage_train import TrainConfig, run as train

    corpus, n_rows = hostile
    prepared = prepare(PrepareConfig(corpus=str(corpus), domain_text=str(tmp_path / "domain.txt"), test_fraction=0.25))
    rejected = read_records("data/prepare_rejected.parquet", Rejected)
    utterances = read_records("data/utterances.parquet", Utterance)
    assert len(utterances) + len(rejected) == n_rows  # every row: an utterance or a rejection with why
    by_reason = prepared["rejected_by_reason"]
    assert sum(by_reason.values()) == prepared["rejected"] and "other" not in by_reason
    assert {r.record_id for r in rejected} >= {"nan_duration", "text_duration", "missing_file", "truncated_flac",
                                                "empty_text", "other_script", "latin1"}
    assert all(r.reason.split(":")[0].isidentifier() for r in rejected)

    aligned = align(AlignConfig(aligner="pocketsphinx", reference=""))
    records = {a.utt_id: a for a in read_records("data/alignments", Alignment)}
    assert set(records) == {u.utt_id for u in utterances}  # one record per utterance
    assert records["silence"].status == "failed" and records["clip_0.05s"].status == "failed"
    for a in records.values():
        if a.status == "ok":
            assert a.words and all(w.end > w.start for w in a.words)
        else:
            assert a.reason.split(":")[0].isidentifier(), a.reason
    assert aligned["failed"] == sum(aligned["failed_by_reason"].values()) >= 2

    mixed = interleave(InterleaveConfig(recipe="asr_text_il"))
    samples = pl.read_parquet("data/samples/*.parquet")
    assert mixed["samples"] == samples.height > 0
    failed = [u for u, a in records.items() if a.status == "failed"]
    assert not samples["source_id"].is_in(failed).any()  # no sample of audio that does not hold its words

    trained = train(TrainConfig(steps=6, stage1_share=0.0, enc_dim=32, enc_layers=1, enc_heads=2, proj_hidden=64,
                                lm_hidden=64, lm_layers=1, lm_heads=2, lm_intermediate=128, vocab_size=160,
                                context=256, batch_size=2, progress=False))
    assert trained["steps"] == 6 and trained["loss_last"] is not None
    evaluated = evaluate(EvaluateConfig(entities="", max_new_tokens=6, bootstrap=20, progress=False))
    assert evaluated["utterances"] == sum(u.split == "test" for u in utterances)
    assert evaluated["decoded"] + evaluated["skipped"] == evaluated["utterances"]
    for stage in ("prepare", "align", "interleave", "train", "eval"):
        assert json.loads(Path(f"metrics/{stage}.json").read_text())  # every stage wrote its numbers
