"""Bad input to `jstip align`: every utterance comes back as one record, ok only when its words are
really placed, failed with a categorised reason otherwise; transient failures are retried on rerun."""
import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from aligners import get_aligner
from aligners.base import Aligner, AlignmentFailed, failure_category
from manifests.audio import write_audio
from manifests.io import check_metrics, file_metadata, read_records, write_records
from manifests.schema import Alignment, Utterance
from pipeline.stage_align import ALIGN_METRICS, AlignConfig, plan_shards, run as align, utterance_rows
from corpora.textnorm import normalize

SENTENCE = "The patient was given atorvastatin for hypertension yesterday."


def _utt(utt_id, path, text, offset=0.0, duration=1.0, norm_text=None):
    norm = normalize(text) if norm_text is None else norm_text
    return Utterance(utt_id, str(path), offset, duration, 16000, "s", text, norm, "c", "train")


def _cfg(tmp_path, **kw):
    return AlignConfig(utterances=str(tmp_path / "u.parquet"), out=str(tmp_path / "a"), min_shards=2,
                       metrics=str(tmp_path / "m" / "align.json"), report=str(tmp_path / "r" / "align.json"), **kw)


def test_hostile_utterances_are_each_accounted_for_and_never_wrongly_ok(tmp_path, spoken):
    audio, _ = spoken(SENTENCE)
    seconds = len(audio) / 16000
    write_audio(audio, tmp_path / "speech.wav", 16000)
    write_audio(np.zeros(16000, np.float32), tmp_path / "silence.wav", 16000)
    mixed, _ = spoken("hello 你好 world مرحبا again")
    write_audio(mixed, tmp_path / "mixed.wav", 16000)
    (tmp_path / "broken.flac").write_bytes(b"fLaC" + b"\0" * 50)  # a truncated FLAC
    utts = [
        _utt("good", tmp_path / "speech.wav", SENTENCE, duration=seconds),
        _utt("nan-offset", tmp_path / "speech.wav", SENTENCE, offset=math.nan, duration=seconds),
        _utt("nan-duration", tmp_path / "speech.wav", SENTENCE, duration=math.nan),
        _utt("negative-duration", tmp_path / "speech.wav", SENTENCE, duration=-1.0),
        _utt("inf-duration", tmp_path / "speech.wav", SENTENCE, duration=math.inf),
        _utt("null-duration", tmp_path / "speech.wav", SENTENCE, duration=None),
        _utt("clip-0.05s", tmp_path / "speech.wav", "the", duration=0.05),
        _utt("silence", tmp_path / "silence.wav", "hello world", duration=1.0),
        # the words as prepare keeps them (lower-cased, every word kept, whatever its script)
        _utt("other-scripts", tmp_path / "mixed.wav", "Hello 你好 world مرحبا again", duration=len(mixed) / 16000,
             norm_text="hello 你好 world مرحبا again"),
        _utt("missing-file", tmp_path / "nowhere.wav", "hello", duration=1.0),
        _utt("truncated-flac", tmp_path / "broken.flac", "hello", duration=1.0),
        _utt("empty-text", tmp_path / "speech.wav", "", duration=seconds),
        _utt("offset-past-end", tmp_path / "speech.wav", "hello", offset=99.0, duration=1.0),
        _utt("too-many-words", tmp_path / "speech.wav", " ".join(["elephant"] * 40), duration=seconds),
    ]
    write_records(utts, Utterance, tmp_path / "u.parquet")
    metrics = align(_cfg(tmp_path))
    records = {a.utt_id: a for a in read_records(tmp_path / "a", Alignment)}
    assert list(records) == [u.utt_id for u in utts]  # one record each, in manifest order
    expected = {
        "good": "ok", "nan-offset": "bad_utterance", "nan-duration": "bad_utterance",
        "negative-duration": "bad_utterance", "inf-duration": "bad_utterance", "null-duration": "bad_utterance",
        "clip-0.05s": "too_short",
        "silence": "no_alignment", "other-scripts": "no_pronunciation", "missing-file": "audio_unreadable",
        "truncated-flac": "audio_unreadable", "empty-text": "empty_transcript", "offset-past-end": "audio_unreadable",
    }
    for utt_id, category in expected.items():
        record = records[utt_id]
        got = "ok" if record.status == "ok" else failure_category(record.reason)
        assert got == category, (utt_id, record.reason)
    assert records["too-many-words"].status == "failed"
    assert "你好" in records["other-scripts"].reason and "CJK" in records["other-scripts"].reason
    assert [w.word for w in records["good"].words] == normalize(SENTENCE).split()
    # metrics: numbers under identifier keys; categories, not paths or transcripts
    saved = json.loads((tmp_path / "m" / "align.json").read_text())
    check_metrics(saved)
    assert saved["utterances"] == len(utts) and saved["aligned_share"] == round(1 / len(utts), 4) and saved["failed"] == len(utts) - 1
    assert sum(saved["failed_by_reason"].values()) == saved["failed"]
    assert saved["failed_by_reason"]["bad_utterance"] == 5
    assert set(saved) <= set(ALIGN_METRICS)  # a handful; the rest is in the report
    figures = json.loads((tmp_path / "r" / "align.json").read_text())["figures"]
    assert figures["aligned"] == 1 and figures["failed_transient"] == 3
    assert metrics["aligned_share"] == round(1 / len(utts), 4)
    report = json.loads((tmp_path / "r" / "align.json").read_text())
    assert report["examples"]["audio_unreadable"][0]["utt_id"] == "missing-file"
    assert "nowhere.wav" in report["examples"]["audio_unreadable"][0]["reason"]
    assert set(report["categories"]) == set(saved["failed_by_reason"])


def test_transient_failures_are_retried_on_rerun_and_deterministic_ones_kept(tmp_path, spoken, monkeypatch):
    audio, _ = spoken(SENTENCE)
    (tmp_path / "corpus").mkdir()
    write_audio(audio, tmp_path / "corpus" / "x.wav", 16000)
    seconds = len(audio) / 16000
    # relative audio paths, as a corpus importer may write them
    utts = [_utt("u1", "x.wav", SENTENCE, duration=seconds), _utt("u2", "x.wav", "", duration=seconds),
            _utt("u3", "x.wav", SENTENCE, duration=seconds), _utt("u4", "x.wav", SENTENCE, duration=seconds)]
    write_records(utts, Utterance, tmp_path / "u.parquet")
    cfg = _cfg(tmp_path)
    cfg.utterances, cfg.out = str(tmp_path / "u.parquet"), str(tmp_path / "a")
    monkeypatch.chdir(tmp_path)  # the wrong directory: every read fails
    first = align(cfg)
    assert first["failed_by_reason"] == {"audio_unreadable": 3, "empty_transcript": 1}
    assert first["failed_transient"] == 3 and first["shards"] == 2
    assert all(file_metadata(p, "transient_failures") != "0" for p in sorted((tmp_path / "a").glob("part-*")))
    monkeypatch.chdir(tmp_path / "corpus")  # the right one: the transient failures are aligned again
    second = align(cfg)
    assert second["shards_retried"] == 2 and second["shards_skipped"] == 0
    assert (second["aligned"], second["failed_by_reason"]) == (3, {"empty_transcript": 1})
    records = read_records(tmp_path / "a", Alignment)
    assert [r.status for r in records] == ["ok", "failed", "ok", "ok"]
    assert failure_category(records[1].reason) == "empty_transcript"  # deterministic: kept, not redone
    third = align(cfg)  # nothing transient left: every shard skipped
    assert third["shards_skipped"] == 2 and third["shards_retried"] == 0 and third["aligned"] == 3


class _Crashing(Aligner):
    """An aligner whose backend raises something unexpected on one word."""

    name = "crashing"

    def align(self, audio, words):
        if "boom" in words:
            raise RuntimeError("backend crashed")
        if "nope" in words:
            raise AlignmentFailed("cannot place it", "no_alignment")
        return get_aligner("pocketsphinx").align(audio, words)


def test_an_unexpected_backend_error_fails_one_utterance_as_transient(tmp_path, sine):
    write_audio(sine(0.5), tmp_path / "x.wav", 16000)
    out = _Crashing().align_utterances([_utt("a", tmp_path / "x.wav", "boom", duration=0.5),
                                        _utt("b", tmp_path / "x.wav", "nope", duration=0.5)])
    assert out[0].status == "failed" and out[0].reason == "aligner_error: RuntimeError: backend crashed"
    assert out[1].reason == "no_alignment: cannot place it"


def test_shards_follow_audio_duration_not_workers_and_scale():
    rng = np.random.default_rng(0)
    corpus = rng.uniform(2, 18, 13_680_000)  # ~38k hours of 2-18 s utterances
    bounds = plan_shards(corpus, 4 * 3600, 16)
    assert 9000 < len(bounds) < 10000  # not ~214k files of 64 utterances
    assert bounds[0][0] == 0 and bounds[-1][1] == len(corpus) and all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    small = rng.uniform(2, 5, 300)  # a few hundred utterances: still 16 tasks
    assert len(plan_shards(small, 4 * 3600, 16)) == 16
    # appending utterances keeps the earlier shards of a large corpus
    assert plan_shards(corpus[:200_000], 4 * 3600, 16)[:-1] == bounds[: len(plan_shards(corpus[:200_000], 4 * 3600, 16)) - 1]
    assert plan_shards(np.ones(10), 3600, 1, max_rows=4) == [(0, 4), (4, 8), (8, 10)]
    assert plan_shards(np.array([np.nan, -1.0, 0.0]), 3600, 16) == [(0, 3)]


def test_a_task_reads_only_its_rows_across_row_groups(tmp_path):
    utts = [_utt(f"u{i}", "x.wav", "hi") for i in range(10)]
    from manifests.schema import to_table

    pq.write_table(to_table(utts, Utterance), tmp_path / "u.parquet", row_group_size=3)
    assert [u.utt_id for u in utterance_rows(str(tmp_path / "u.parquet"), 2, 8)] == [f"u{i}" for i in range(2, 8)]
    assert utterance_rows(str(tmp_path / "u.parquet"), 9, 10)[0].utt_id == "u9"


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan])
def test_bad_shard_settings_are_refused(tmp_path, bad):
    from manifests.errors import JstipError

    with pytest.raises(JstipError, match="shard-hours"):
        align(AlignConfig(utterances=str(tmp_path / "u.parquet"), shard_hours=bad))
