"""Lhotse and Hugging Face inputs to prepare, written by the real libraries in the test."""
import os

import pytest
import soundfile as sf

from manifests.io import read_records
from manifests.schema import Rejected, Utterance
from corpora import detect_format, iter_corpus
from corpora.checks import build_utterances
from pipeline.stage_prepare import PrepareConfig, run


def _cfg(tmp_path, corpus):
    out = tmp_path / "out"
    return PrepareConfig(corpus=str(corpus), test_fraction=0.0, utterances=str(out / "u.parquet"),
                         texts=str(out / "t.parquet"), rejected=str(out / "r.parquet"), metrics=str(out / "m.json"),
                         report=str(out / "rep.json"), audio_dir=str(out / "audio"))


def test_lhotse_cutset_and_supervision_manifests(tmp_path, sine):
    lhotse = pytest.importorskip("lhotse")
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    sf.write(tmp_path / "rec.wav", sine(3.0), 16000)
    recording = Recording.from_file(tmp_path / "rec.wav", recording_id="rec")
    sups = [SupervisionSegment("s1", "rec", 0.5, 1.0, text="First 2 words", speaker="ann", language="English"),
            SupervisionSegment("s2", "rec", 2.0, 0.8, text="second", speaker="bob")]
    RecordingSet.from_recordings([recording]).to_file(tmp_path / "c_recordings_train.jsonl.gz")
    SupervisionSet.from_segments(sups).to_file(tmp_path / "c_supervisions_train.jsonl.gz")
    cuts = CutSet.from_manifests(RecordingSet.from_recordings([recording]), SupervisionSet.from_segments(sups))
    cuts.trim_to_supervisions().to_file(tmp_path / "cuts.jsonl.gz")
    assert lhotse.__version__

    for manifest in ("cuts.jsonl.gz", "c_supervisions_train.jsonl.gz"):
        assert detect_format(tmp_path / manifest) == "lhotse"
        utts = [u for u in build_utterances(iter_corpus(tmp_path / manifest), "c", 0.0)]
        assert [(u.utt_id, u.speaker, u.norm_text, u.offset, u.duration) for u in utts] == [
            ("s1", "ann", "first two words", 0.5, 1.0), ("s2", "bob", "second", 2.0, 0.8)]
        assert all(u.audio_path == str(tmp_path / "rec.wav") for u in utts)
    with pytest.raises(Exception, match="recording manifest"):
        list(iter_corpus(tmp_path / "c_recordings_train.jsonl.gz"))


def test_hugging_face_parquet_with_embedded_audio(tmp_path, sine):
    datasets = pytest.importorskip("datasets")
    import io

    def flac(seconds):
        buf = io.BytesIO()
        sf.write(buf, sine(seconds), 16000, format="FLAC")
        return buf.getvalue()

    rows = {"audio": [{"bytes": flac(1.0), "path": "a.flac"}, {"bytes": flac(0.5), "path": "b.flac"},
                      {"bytes": b"not audio", "path": "c.wav"}],
            "sentence": ["the first one", "the 2nd one", "broken"], "client_id": ["x", "y", "z"]}
    ds = datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio(decode=False))
    (tmp_path / "hf" / "data").mkdir(parents=True)
    ds.to_parquet(str(tmp_path / "hf" / "data" / "train-00000-of-00001.parquet"))
    assert detect_format(tmp_path / "hf") == "hf"
    cfg = _cfg(tmp_path, tmp_path / "hf")
    metrics = run(cfg)
    assert metrics["utterances"] == 2 and metrics["rejected"] == 1
    utts = sorted(read_records(cfg.utterances, Utterance), key=lambda u: u.speaker)
    assert [(u.norm_text, u.speaker, u.duration) for u in utts] == [("the first one", "x", 1.0), ("the second one", "y", 0.5)]
    assert all(os.path.isabs(u.audio_path) and u.audio_path.startswith(str(tmp_path / "out" / "audio")) for u in utts)
    [bad] = read_records(cfg.rejected, Rejected)
    assert bad.record_id.startswith("c-") and bad.reason.startswith("unreadable_audio")
    before = {u.utt_id for u in utts}
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "audio").iterdir()}
    assert len(mtimes) == 4  # three audio files (one undecodable, rejected) and the README
    run(cfg)  # again: same ids, files not rewritten
    assert {u.utt_id for u in read_records(cfg.utterances, Utterance)} == before
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "audio").iterdir()} == mtimes


def test_nemo_manifest_with_durations_rounded_to_centiseconds_is_clamped_not_rejected(tmp_path, sine):
    """NeMo's scripts write `round(duration, 2)`: half the rows end up to 5 ms past their file's end."""
    import json

    rows, lengths = [], [2.509, 1.2367, 0.99, 3.0031, 1.7]
    for i, seconds in enumerate(lengths):
        sf.write(tmp_path / f"u{i}.wav", sine(seconds), 16000)
        rows.append({"audio_filepath": f"u{i}.wav", "duration": round(seconds, 2), "text": f"utterance number {i}"})
    rows.append({"audio_filepath": "u0.wav", "offset": 1.0, "duration": 1.55, "text": "a segment ending 41 ms late"})
    rows.append({"audio_filepath": "u1.wav", "duration": 1.5, "text": "a real overrun"})
    rows.append({"audio_filepath": "u2.wav", "offset": 0.99, "duration": 0.01, "text": "starts at the end"})
    (tmp_path / "train_manifest.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = _cfg(tmp_path, tmp_path / "train_manifest.json")
    metrics = run(cfg)
    utts = {u.text: u for u in read_records(cfg.utterances, Utterance)}
    assert metrics["utterances"] == 6 and metrics["clamped_to_file_end"] == 3  # 2.51, 1.24 and the segment clamped
    for i, seconds in enumerate(lengths):
        real = sf.info(tmp_path / f"u{i}.wav").duration
        assert utts[f"utterance number {i}"].duration == pytest.approx(min(round(seconds, 2), real), abs=1e-9)
    assert utts["a segment ending 41 ms late"].duration == pytest.approx(1.509)
    rejected = {r.reason.split(":")[0]: r.reason for r in read_records(cfg.rejected, Rejected)}
    assert set(rejected) == {"bad_stretch"} and metrics["rejected"] == 2
    report = json.loads((tmp_path / "out" / "rep.json").read_text())
    assert report["notes"]["clamped_to_file_end"]["count"] == 3
    assert "past" in report["notes"]["clamped_to_file_end"]["examples"][0]["note"]
    strict = run(PrepareConfig(**{**cfg.__dict__, "end_tolerance": 0.0}))
    assert strict["utterances"] == 3 and strict["clamped_to_file_end"] == 0  # no tolerance: the rounded rows go
