"""The sharded exports (Lhotse Shar, WebDataset, Hugging Face folder), each read back with the
peer's own reader: every sample's audio (decoded samples against the source's stretch, bit for bit)
and its spans and word times compared; bad audio recorded, not fatal."""
import dataclasses
import glob
import io
import json
import math
import shutil

import numpy as np
import pytest
import soundfile as sf

from corpora.exporters import export
from corpora.exporters.items import audio_flac
from manifests.errors import JstipError
from manifests.io import read_records, write_records
from manifests.schema import Rejected, Sample, Utterance
from manifests.views import alignment_index, iter_samples, sample_words
from pipeline.cli import main
from tests.test_export import shards  # noqa: F401  (fixture: interleaved samples of espeak speech)
from tests.test_interleave_stage import spoken_module  # noqa: F401  (fixture)

SHARD = 7  # small shards: the fixture's 20 samples with audio make three
LEAD = 0.5  # seconds of other sound before each sample's stretch in the files of `offset_samples`


@pytest.fixture(scope="module")
def offset_samples(shards, tmp_path_factory):  # noqa: F811
    """The fixture's samples moved to the second part of longer files (offset LEAD): exports must
    slice the audio and keep word times relative to the sample's own start."""
    root, _ = shards
    out = tmp_path_factory.mktemp("offsets")
    moved, files = [], {}
    for sample in read_records(str(root / "samples"), Sample):
        if sample.audio_path:
            if sample.audio_path not in files:
                audio, rate = sf.read(sample.audio_path, dtype="int16")
                lead = (np.sin(np.arange(int(LEAD * rate)) * 0.1) * 8000).astype(np.int16)
                files[sample.audio_path] = str(out / "audio" / f"{len(files)}.wav")
                (out / "audio").mkdir(exist_ok=True)
                sf.write(files[sample.audio_path], np.concatenate([lead, audio]), rate, subtype="PCM_16")
            sample = dataclasses.replace(sample, audio_path=files[sample.audio_path], offset=sample.offset + LEAD)
        moved.append(sample)
    write_records(moved, Sample, out / "samples" / "part-00000.parquet")
    shutil.copytree(root / "samples" / "tts" / "alignments", out / "samples" / "tts" / "alignments")
    return out / "samples"


def with_audio(samples) -> dict[str, Sample]:
    return {s.sample_id: s for s in iter_samples(str(samples)) if s.audio_path}


def source_pcm(sample: Sample) -> np.ndarray:
    """The sample's stretch of its file as 16-bit integers, (frames, channels)."""
    info = sf.info(sample.audio_path)
    start = int(round(sample.offset * info.samplerate))
    frames = min(int(round(sample.duration * info.samplerate)), info.frames - start)
    return sf.read(sample.audio_path, start=start, frames=frames, dtype="int16", always_2d=True)[0]


def decoded_pcm(data: bytes) -> np.ndarray:
    return sf.read(io.BytesIO(data), dtype="int16", always_2d=True)[0]


def expected_words(root, paths, sample):
    """The sample's word times relative to its own start (the tts pairs' alignments live with the shards)."""
    index = alignment_index([paths["alignments"], str(root / "samples" / "tts" / "alignments")])
    return [(w.word, w.start, w.end) for w in sample_words(sample, index)]


def spans(sample: Sample) -> list[dict]:
    return [dataclasses.asdict(s) for s in sample.spans]


def test_shar_reads_back_with_lhotse_audio_alignments_and_spans(shards, offset_samples, tmp_path):  # noqa: F811
    from lhotse import CutSet

    root, paths = shards
    expected = with_audio(offset_samples)
    assert all(s.offset >= LEAD for s in expected.values())
    report = export(str(offset_samples), "shar", str(tmp_path / "shar"), paths["alignments"],
                    utterances=paths["utterances"], shard_size=SHARD)
    assert report["exported"] == len(expected) and report["skipped"]["text_no_audio"] >= 1
    n_shards = math.ceil(len(expected) / SHARD)
    assert len(glob.glob(str(tmp_path / "shar" / "cuts.*.jsonl.gz"))) == n_shards
    assert len(glob.glob(str(tmp_path / "shar" / "recording.*.tar"))) == n_shards
    cuts = list(CutSet.from_shar(in_dir=tmp_path / "shar"))
    assert [c.id for c in cuts] == list(expected)
    for cut in cuts:
        sample = expected[cut.id]
        audio = cut.load_audio()
        assert np.array_equal(np.round(audio.T * 32768).astype(np.int16), source_pcm(sample))
        assert cut.custom["spans"] == spans(sample) and cut.custom["kind"] == sample.kind
        sup = cut.supervisions[0]
        words = [(a.symbol, a.start, a.start + a.duration) for a in sup.alignment["word"]]
        assert [w[0] for w in words] == [w[0] for w in expected_words(root, paths, sample)]
        assert np.allclose([w[1:] for w in words], [w[1:] for w in expected_words(root, paths, sample)], atol=1e-5)
        assert all(0 <= w[1] <= w[2] <= cut.duration + 1e-6 for w in words)  # times within the cut's own audio
    u1 = next(c for c in cuts if c.id.startswith("u1:asr"))
    assert u1.supervisions[0].speaker == "spk1" and u1.supervisions[0].text.startswith("Blood pressure")


def test_webdataset_reads_back_with_webdataset_audio_bytes_and_spans(shards, offset_samples, tmp_path):  # noqa: F811
    import webdataset as wds

    root, paths = shards
    expected = with_audio(offset_samples)
    assert all(s.offset >= LEAD for s in expected.values())
    report = export(str(offset_samples), "webdataset", str(tmp_path / "wds"), paths["alignments"],
                    utterances=paths["utterances"], shard_size=SHARD)
    tars = sorted(glob.glob(str(tmp_path / "wds" / "shard-*.tar")))
    assert report["exported"] == len(expected) and len(tars) == math.ceil(len(expected) / SHARD)
    read = list(wds.WebDataset(tars, shardshuffle=False, empty_check=False))
    assert [json.loads(r["json"])["sample_id"] for r in read] == list(expected)
    for r in read:
        meta = json.loads(r["json"])
        sample = expected[meta["sample_id"]]
        assert r["flac"] == audio_flac(sample)[0]
        assert np.array_equal(decoded_pcm(r["flac"]), source_pcm(sample))
        assert meta["spans"] == spans(sample) and meta["sampling_rate"] == 16000
        assert [(w["word"], w["start"], w["end"]) for w in meta["words"]] == expected_words(root, paths, sample)
    assert {r["__key__"].split(":")[0] for r in read} >= {"u0", "u1"}


def test_hf_folder_loads_with_datasets_splits_audio_and_spans(shards, offset_samples, tmp_path):  # noqa: F811
    import datasets

    root, paths = shards
    expected = with_audio(offset_samples)
    utts = [dataclasses.replace(u, split="dev-clean" if u.utt_id == "u1" else u.split)
            for u in read_records(paths["utterances"], Utterance)]
    write_records(utts, Utterance, tmp_path / "utterances.parquet")
    report = export(str(offset_samples), "hf", str(tmp_path / "hf"), paths["alignments"],
                    utterances=str(tmp_path / "utterances.parquet"), shard_size=SHARD)
    in_dev = [i for i, s in expected.items() if s.source_id == "u1"]
    assert in_dev and report["splits"] == {"train": len(expected) - len(in_dev), "dev_clean": len(in_dev)}
    loaded = datasets.load_dataset(str(tmp_path / "hf"), cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {"train", "dev_clean"} and loaded["dev_clean"].num_rows == len(in_dev)
    assert isinstance(loaded["train"].features["audio"], datasets.Audio)
    rows = [r for split in ("train", "dev_clean") for r in loaded[split].cast_column("audio", datasets.Audio(decode=False))]
    assert sorted(r["sample_id"] for r in rows) == sorted(expected)
    for r in rows:
        sample = expected[r["sample_id"]]
        assert np.array_equal(decoded_pcm(r["audio"]["bytes"]), source_pcm(sample))
        assert r["spans"] == spans(sample) and r["kind"] == sample.kind
        assert [(w["word"], w["start"], w["end"]) for w in r["words"]] == expected_words(root, paths, sample)
    card = datasets.load_dataset_builder(str(tmp_path / "hf"), cache_dir=str(tmp_path / "cache")).info
    assert card.splits["train"].num_examples == len(expected) - len(in_dev)  # the README's dataset_info


@pytest.mark.parametrize("fmt", ["shar", "webdataset", "hf"])
def test_bad_audio_is_recorded_with_its_reason_and_the_rest_exported(shards, tmp_path, fmt):  # noqa: F811
    root, paths = shards
    samples = [s for s in read_records(str(root / "samples"), Sample) if s.audio_path]
    (tmp_path / "noise.wav").write_bytes(b"RIFF not really a wave file")
    bad = {samples[0].sample_id: str(tmp_path / "missing.wav"), samples[1].sample_id: str(tmp_path / "noise.wav")}
    broken = [dataclasses.replace(s, audio_path=bad.get(s.sample_id, s.audio_path)) for s in samples]
    broken[2] = dataclasses.replace(broken[2], duration=broken[2].duration + 1.0)  # runs 1 s past its file
    broken[3] = dataclasses.replace(broken[3], duration=broken[3].duration + 0.02)  # rounding: clamped, kept
    write_records(broken, Sample, tmp_path / "samples" / "part-00000.parquet")
    report = export(str(tmp_path / "samples"), fmt, str(tmp_path / "out"), paths["alignments"], shard_size=SHARD)
    assert report["exported"] == len(samples) - 3 and report["skipped"] == {"audio_unreadable": 3}
    rejected = {r.record_id: r.reason for r in read_records(tmp_path / "out.rejected.parquet", Rejected)}
    assert set(rejected) == {s.sample_id for s in broken[:3]}
    assert "missing.wav" in rejected[broken[0].sample_id] and "noise.wav" in rejected[broken[1].sample_id]
    assert "past the end" in rejected[broken[2].sample_id]
    assert len(report["examples"]["audio_unreadable"]) == 3


def test_rerun_replaces_its_own_shards_and_refuses_a_foreign_folder(shards, tmp_path, capsys):  # noqa: F811
    root, paths = shards
    out = tmp_path / "wds"
    args = ["export", str(root / "samples"), "--format", "webdataset", "--out", str(out), "--alignments",
            paths["alignments"], "--utterances", paths["utterances"], "--no-progress"]
    assert main([*args, "--shard-size", "3"]) == 0
    capsys.readouterr()
    many = len(list(out.glob("shard-*.tar")))
    assert main(args) == 0 and len(list(out.glob("shard-*.tar"))) == 1 < many  # no stale shard left
    assert json.loads(capsys.readouterr().out)["n_files"] == 1
    (out / "notes.txt").write_text("mine")
    with pytest.raises(JstipError, match="notes.txt"):
        export(str(root / "samples"), "webdataset", str(out), paths["alignments"])
    assert (out / "notes.txt").exists()


def test_embedded_audio_is_exported_without_the_corpus(shards, tmp_path):  # noqa: F811
    import datasets
    import webdataset as wds
    from lhotse import CutSet

    from pipeline.stage_interleave import InterleaveConfig, run

    root, paths = shards
    run(InterleaveConfig(**paths, out=str(tmp_path / "embedded"), metrics=str(tmp_path / "m.json"), recipe="asr:1",
                         embed_audio=True))
    gone = [dataclasses.replace(s, audio_path=str(tmp_path / "moved" / "away.wav"))
            for s in read_records(str(tmp_path / "embedded"), Sample)]  # the corpus is not reachable
    write_records(gone, Sample, tmp_path / "samples" / "part-00000.parquet")
    expected = {s.sample_id: s.audio for s in gone}
    assert all(expected.values())
    for fmt in ("shar", "webdataset", "hf"):
        report = export(str(tmp_path / "samples"), fmt, str(tmp_path / fmt), paths["alignments"])
        assert report["exported"] == len(expected) and not report["skipped"]
    for cut in CutSet.from_shar(in_dir=tmp_path / "shar"):
        pcm = np.round(cut.load_audio().T * 32768).astype(np.int16)
        assert np.array_equal(pcm, decoded_pcm(expected[cut.id]))
    for r in wds.WebDataset(sorted(glob.glob(str(tmp_path / "webdataset" / "*.tar"))), shardshuffle=False):
        assert r["flac"] == expected[json.loads(r["json"])["sample_id"]]
    rows = datasets.load_dataset(str(tmp_path / "hf"), split="train", cache_dir=str(tmp_path / "cache"))
    for r in rows.cast_column("audio", datasets.Audio(decode=False)):
        assert r["audio"]["bytes"] == expected[r["sample_id"]]


def test_an_export_with_no_sample_is_refused_and_keeps_the_earlier_one(shards, tmp_path):  # noqa: F811
    """No sample with audio to export (here: text samples only) is a clear error for every sharded
    format, never a folder `datasets.load_dataset` cannot open; an earlier export at --out stays."""
    import datasets

    root, paths = shards
    before = export(str(root / "samples"), "hf", str(tmp_path / "hf"), paths["alignments"], kinds="asr")
    for fmt in ("hf", "shar", "webdataset"):
        with pytest.raises(JstipError, match=r"no sample to export .*text_no_audio: \d+.*--kind"):
            export(str(root / "samples"), fmt, str(tmp_path / ("hf" if fmt == "hf" else fmt)), paths["alignments"],
                   kinds="text")
        assert not (tmp_path / fmt).exists() or fmt == "hf"
    ds = datasets.load_dataset(str(tmp_path / "hf"), split="train")  # the earlier export, untouched
    assert len(ds) == before["exported"] > 0 and set(ds["kind"]) == {"asr"}
