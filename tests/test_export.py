"""Exporters, checked by loading their output with the real libraries (lhotse, datasets; json for NeMo)."""
import json
import os

import pytest

from tests.conftest import require_audio_decoding

from manifests.io import write_records
from manifests.schema import Utterance
from manifests.io import read_records
from corpora.export import export
from manifests.views import find_sample, iter_samples
from pipeline.stage_interleave import InterleaveConfig, run
from tests.interleave_corpus import make_corpus
from tests.test_interleave_stage import spoken_module  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def shards(tmp_path_factory, spoken_module):  # noqa: F811
    root = tmp_path_factory.mktemp("export")
    paths = make_corpus(root, spoken_module)
    utts = [Utterance(**{**u.__dict__, "speaker": f"spk{i % 2}"}) for i, u in enumerate(read_records(paths["utterances"], Utterance))]
    write_records(utts, Utterance, paths["utterances"])
    run(InterleaveConfig(**paths, out=str(root / "samples"), metrics=str(root / "m.json"),
                         recipe="asr:2,interleave_mixed:2,tts_pair:1,text:1", tts_voices="en-us", max_repeats=2))
    return root, paths


def test_lhotse_cutset_loads_with_word_alignments_speakers_and_short_recording_ids(shards, tmp_path, monkeypatch):
    from lhotse import CutSet

    root, paths = shards
    report = export(str(root / "samples"), "lhotse", str(root / "cuts.jsonl.gz"), paths["alignments"],
                    utterances=paths["utterances"])
    cuts = CutSet.from_file(root / "cuts.jsonl.gz").to_eager()
    assert len(cuts) == report["exported"] and report["skipped"]["text_no_audio"] >= 1
    cut = cuts["u0:asr"]
    sup = cut.supervisions[0]
    words = sup.alignment["word"]
    assert " ".join(w.symbol for w in words) == "the patient was given metformin twice a day"
    sample = find_sample(str(root / "samples"), "u0:asr")
    assert sup.text == " ".join(s.text for s in sample.spans if s.modality == "text")  # the asr target as written
    assert (sup.speaker, sup.language, cut.recording.id) == ("spk0", "en", "u0")
    assert all(0 <= w.start and w.end <= cut.recording.duration + 1e-6 for w in words)
    assert cut.custom["kind"] == "asr" and any(s["modality"] == "speech" for s in cut.custom["spans"])
    monkeypatch.chdir(tmp_path)  # audio paths are absolute: the manifest loads from anywhere
    audio = cut.load_audio()
    assert audio.shape[1] == pytest.approx(cut.duration * 16000, abs=2)
    tts = [c for c in cuts if c.custom["kind"] == "tts_pair"]
    assert tts and all(c.supervisions[0].alignment["word"] for c in tts)
    assert tts[0].load_audio().shape[1] > 16000 * 0.5
    only_asr = export(str(root / "samples"), "lhotse", str(root / "asr.jsonl"), paths["alignments"], kinds="asr")
    assert {json.loads(x)["custom"]["kind"] for x in (root / "asr.jsonl").read_text().splitlines()} == {"asr"}
    assert only_asr["exported"] < report["exported"]


def test_nemo_manifest_has_one_asr_pair_per_utterance(shards):
    root, paths = shards
    report = export(str(root / "samples"), "nemo", str(root / "nemo.jsonl"), paths["alignments"],
                    utterances=paths["utterances"])
    lines = [json.loads(line) for line in (root / "nemo.jsonl").read_text().splitlines()]
    assert len(lines) == report["exported"]
    assert {x["kind"] for x in lines} == {"asr", "tts_pair"}
    asr = [x for x in lines if x["kind"] == "asr"]
    assert len({x["sample_id"].split(":")[0] for x in asr}) == len(asr)  # no utterance twice
    for line in lines:
        assert {"audio_filepath", "duration", "text", "offset", "lang"} <= set(line)
        assert line["duration"] > 0 and line["text"] and os.path.isabs(line["audio_filepath"])
    one = next(x for x in lines if x["sample_id"].startswith("u1:asr"))
    assert one["text"].lower().startswith("blood pressure rose to one hundred and forty") and one["speaker"] == "spk1"


def test_jsonl_exports_stream_and_match_the_whole_manifests_even_when_their_maps_spill(shards, tmp_path, monkeypatch):
    """Lhotse and NeMo JSONL: alignments and speakers come from id lookups a row group at a time and
    the per-file/per-source maps may spill to disk; every line's words and speaker are what the
    whole manifests give, and the bytes are the same whether the maps spilled or not."""
    from manifests import spilled_map
    from manifests.views import alignment_index, sample_words

    root, paths = shards
    for fmt in ("lhotse", "nemo"):
        report = export(str(root / "samples"), fmt, str(tmp_path / f"{fmt}.jsonl"), paths["alignments"],
                        utterances=paths["utterances"])
        with monkeypatch.context() as m:
            m.setattr(spilled_map, "SPILL_KEYS", 1)  # recording ids and NeMo pairs on disk from the second key
            spilled = export(str(root / "samples"), fmt, str(tmp_path / f"{fmt}-spilled.jsonl"), paths["alignments"],
                             utterances=paths["utterances"])
        assert spilled == {**report, "out": str(tmp_path / f"{fmt}-spilled.jsonl")}
        assert (tmp_path / f"{fmt}.jsonl").read_bytes() == (tmp_path / f"{fmt}-spilled.jsonl").read_bytes()
    index = alignment_index([paths["alignments"], str(root / "samples" / "tts" / "alignments")])  # whole, as before
    speakers = {u.utt_id: u.speaker for u in read_records(paths["utterances"], Utterance)}
    samples = {s.sample_id: s for s in iter_samples(str(root / "samples"))}
    cuts = [json.loads(x) for x in (tmp_path / "lhotse.jsonl").read_text().splitlines()]
    assert len(cuts) > 10
    for cut in cuts:
        sample = samples[cut["id"]]
        words = [a[0] for a in cut["supervisions"][0]["alignment"]["word"]]
        assert words == [w.word for w in sample_words(sample, index)]
        assert cut["supervisions"][0].get("speaker", "") == speakers.get(sample.source_id, "")
    nemo = [json.loads(x) for x in (tmp_path / "nemo.jsonl").read_text().splitlines()]
    assert len({(x["kind"], samples[x["sample_id"]].source_id) for x in nemo}) == len(nemo)  # no pair twice
    assert all(x.get("speaker", "") == speakers.get(samples[x["sample_id"]].source_id, "") for x in nemo)


def test_embedded_audio_shards_decode_with_datasets(shards, tmp_path):
    require_audio_decoding()
    import datasets
    import numpy as np

    root, paths = shards
    run(InterleaveConfig(**paths, out=str(tmp_path / "samples"), metrics=str(tmp_path / "m.json"), recipe="asr:1",
                         embed_audio=True))
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "samples" / "part-*.parquet"), split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert isinstance(ds.features["audio"], datasets.Audio)
    row = ds[0]
    samples = row["audio"].get_all_samples()
    array = np.asarray(samples.data)
    assert samples.sample_rate == 16000 and array.shape[-1] == pytest.approx(row["duration"] * 16000, abs=2)
    assert float(np.abs(array).max()) > 0.01  # real speech, not silence
