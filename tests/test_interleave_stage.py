"""The interleave stage end to end on a tiny espeak corpus: recipes, shards, audio, workers."""
import io
import json
import shutil

import polars as pl
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from tests.interleave_corpus import make_corpus
from manifests.errors import JstipError
from manifests.io import read_records, write_records
from manifests.schema import SPEECH, Alignment, Sample, Text
from pipeline.stage_interleave import InterleaveConfig, run


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, spoken_module):
    return make_corpus(tmp_path_factory.mktemp("corpus"), spoken_module)


@pytest.fixture(scope="module")
def spoken_module():
    import librosa

    from aligners.espeak import espeak

    def make(sentence, voice="en-us", rate=160):
        engine = espeak()
        audio, words = engine.synthesize(sentence, voice=voice, rate=rate)
        return librosa.resample(audio, orig_sr=engine.sample_rate, target_sr=16000), words

    return make


def _run(corpus, tmp_path, **kw):
    cfg = InterleaveConfig(**corpus, out=str(tmp_path / "samples"), metrics=str(tmp_path / "m.json"), **kw)
    return run(cfg), pl.read_parquet(tmp_path / "samples" / "*.parquet")


@pytest.mark.parametrize("recipe,expected", [
    ("asr_only", {"asr": 4}),
    ("joint", {"asr": 4, "text": 2}),
    ("jstip_word", {"asr": 4, "interleave_word": 4, "text": 2}),
    ("jstip_segment", {"asr": 4, "interleave_segment": 4, "text": 2}),
    ("jstip_mixed", {"asr": 4, "interleave_mixed": 4, "text": 2}),
    ("demo", {"asr": 4, "interleave_word": 2, "interleave_segment": 2, "text": 2}),
])
def test_recipes_produce_their_kinds_in_ratio(corpus, tmp_path, recipe, expected):
    metrics, df = _run(corpus, tmp_path, recipe=recipe)
    counts = dict(df.group_by("kind").len().iter_rows())
    assert counts == expected == metrics["samples_by_kind"]
    assert metrics["skipped"]["alignment failed"] == 1 and metrics["skipped"]["split test"] == 1
    assert metrics["speech_words"] + metrics["text_words"] == metrics["words"] > 0
    assert metrics["speech_hours"] > 0


def test_mix_by_tokens_balances_estimated_tokens(corpus, tmp_path):
    metrics, df = _run(corpus, tmp_path, recipe="asr:1,text:1", mix_by="tokens", max_repeats=3)
    # a text is ~12 tokens, an utterance ~150: all 3 x 10 texts balance only a couple of utterances
    assert metrics["limited_by"] == "text" and metrics["samples_by_kind"] == {"asr": 2, "text": 30}
    assert df["sample_id"].n_unique() == len(df)
    assert metrics["token_share_by_kind"]["text"] == pytest.approx(0.5, abs=0.1)


def test_tts_pairs_embedded_audio_and_true_word_times(corpus, tmp_path):
    metrics, df = _run(corpus, tmp_path, recipe="asr:2,tts_pair:1", embed_audio=True, tts_voices="en-us")
    assert metrics["samples_by_kind"] == {"asr": 4, "tts_pair": 2}
    samples = read_records(tmp_path / "samples", Sample)
    for s in samples:
        audio, rate = sf.read(io.BytesIO(s.audio))
        assert rate == 16000 and abs(len(audio) / rate - s.duration) < 0.01
        assert s.spans[0].modality == SPEECH and s.spans[-1].text.split() == s.spans[0].text.split()
    tts = [s for s in samples if s.kind == "tts_pair"]
    alignments = {a.utt_id: a for a in read_records(tmp_path / "samples" / "tts" / "alignments", Alignment)}
    for s in tts:
        words = alignments[s.sample_id].words
        assert " ".join(w.word for w in words) == s.spans[1].text
        assert 0 <= words[0].start < words[-1].end <= s.duration + 1e-6
        assert sf.info(s.audio_path).duration == pytest.approx(s.duration, abs=0.01)


def test_shards_are_zstd_with_byte_bounded_row_groups_and_a_size_target(corpus, tmp_path):
    _run(corpus, tmp_path, recipe="jstip_mixed", embed_audio=True, target_shard_mb=0.15, row_group_mb=0.05)
    files = sorted((tmp_path / "samples").glob("part-*.parquet"))
    assert len(files) >= 3
    for f in files:
        meta = pq.ParquetFile(f).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
        for g in range(meta.num_rows and meta.num_row_groups):
            rows = pq.ParquetFile(f).read_row_group(g)
            assert rows.num_rows == 1 or sum(len(a or b"") for a in rows["audio"].to_pylist()) <= 0.05 * 2**20


def test_shards_load_with_huggingface_datasets(corpus, tmp_path):
    import datasets

    _run(corpus, tmp_path, recipe="jstip_mixed")
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "samples" / "part-*.parquet"), split="train",
                               cache_dir=str(tmp_path / "hf"))
    assert len(ds) == 10 and set(ds.column_names) >= {"sample_id", "kind", "spans", "audio"}
    assert ds[0]["spans"][0]["modality"] == "speech"


def test_same_seed_same_bytes_and_rerun_reuses_finished_shards(corpus, tmp_path):
    a, _ = _run(corpus, tmp_path / "a", recipe="jstip_mixed", shard_size=3)
    again, _ = _run(corpus, tmp_path / "a", recipe="jstip_mixed", shard_size=3)
    assert again["shards_reused"] == again["shards"] == a["shards"] == 4
    _run(corpus, tmp_path / "b", recipe="jstip_mixed", shard_size=3, seed=1)
    assert (tmp_path / "a/samples/part-00000.parquet").read_bytes() != (tmp_path / "b/samples/part-00000.parquet").read_bytes()


@pytest.mark.slow
def test_one_and_two_workers_write_identical_bytes(corpus, tmp_path):
    kw = dict(recipe="asr:2,interleave_mixed:2,tts_pair:1", shard_size=2, embed_audio=True)
    written = {}
    for workers in (1, 2):  # the same output directory (tts audio paths name it), emptied in between
        shutil.rmtree(tmp_path / "samples", ignore_errors=True)
        metrics, _ = _run(corpus, tmp_path, workers=workers, **kw)
        assert metrics["shards_reused"] == 0
        written[workers] = [(f.name, f.read_bytes()) for f in sorted((tmp_path / "samples").rglob("*.*"))]
    assert len([n for n, _ in written[1] if n.startswith("part-")]) == 10  # 5 sample + 5 tts alignment shards
    assert written[1] == written[2]


def test_bad_settings_are_clear_errors(corpus, tmp_path):
    with pytest.raises(JstipError, match="unknown recipe 'nope'"):
        _run(corpus, tmp_path, recipe="nope")
    with pytest.raises(JstipError, match="--layout 'zigzag' is unknown"):
        _run(corpus, tmp_path, layout="zigzag")
    with pytest.raises(JstipError, match="spirit-speech-words"):
        _run(corpus, tmp_path, spirit_speech_words="5-2")
    with pytest.raises(JstipError, match="selects no samples"):
        _run(corpus, tmp_path, split="nothing")


def test_layout_and_segmenters_reach_the_samples(corpus, tmp_path):
    _, df = _run(corpus, tmp_path, recipe="interleave_segment:1", layout="chunk_transcript", segmenter="punctuation")
    for spans in df["spans"].to_list():
        speech = [s for s in spans if s["modality"] == "speech"]
        following = [spans[i + 1]["text"] for i, s in enumerate(spans) if s["modality"] == "speech"]
        assert all(t.startswith(s["text"]) for s, t in zip(speech, following))
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["samples_by_kind"] == {"interleave_segment": 4}


def _same_but_time(a: dict, b: dict) -> None:
    drop = ("wall_seconds", "shards_reused")
    assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}


def test_a_rerun_reusing_every_shard_reports_the_same_metrics_failures_included(corpus, tmp_path):
    # an unknown espeak voice makes every tts_pair fail inside its shard: counted, with examples
    kw = dict(recipe="asr:2,tts_pair:1", tts_voices="nope-voice", shard_size=3)
    first, _ = _run(corpus, tmp_path, **kw)
    assert first["failed"] and first["failed_examples"] and first["shards_reused"] == 0
    again, _ = _run(corpus, tmp_path, **kw)
    assert again["shards_reused"] == again["shards"] == first["shards"]
    _same_but_time(first, again)


def test_a_new_interleave_version_rebuilds_the_shards(corpus, tmp_path, monkeypatch):
    import pipeline.stage_interleave as stage

    _run(corpus, tmp_path, recipe="asr_only")
    monkeypatch.setattr(stage, "INTERLEAVE_VERSION", stage.INTERLEAVE_VERSION + 1)
    again, _ = _run(corpus, tmp_path, recipe="asr_only")
    assert again["shards_reused"] == 0


def test_no_texts_drops_the_text_kind_and_says_so(corpus, tmp_path, capsys):
    metrics, df = _run({**corpus, "texts": ""}, tmp_path, recipe="demo")
    assert metrics["samples_by_kind"] == {"asr": 4, "interleave_word": 2, "interleave_segment": 2}
    assert metrics["dropped_kinds"] == {"text": "no domain texts (--texts '')"}
    assert metrics["mixture"] == {"asr": 0.5, "interleave_word": 0.25, "interleave_segment": 0.25}
    assert "text left out of the mixture: no domain texts" in capsys.readouterr().err
    with pytest.raises(JstipError, match="selects no samples.*asr: no aligned utterances in split 'nothing'"):
        _run({**corpus, "texts": ""}, tmp_path, recipe="demo", split="nothing")


def test_transcripts_as_text_ids_stay_apart_from_domain_text_ids(tmp_path, spoken_module):
    paths = make_corpus(tmp_path / "c", spoken_module)
    texts = read_records(paths["texts"], Text)
    write_records([Text("u0", "A domain text named like an utterance.", "a domain text named like an utterance", "d")]
                  + texts, Text, paths["texts"])
    metrics, df = _run(paths, tmp_path, recipe="text:1", transcripts_as_text=True)
    ids = df["sample_id"].to_list()
    assert len(ids) == len(set(ids)) == metrics["samples"] == 4 + 11
    assert {"u0:text", "u0:transcript_text"} <= set(ids)
    write_records(texts + texts[:1], Text, paths["texts"])
    with pytest.raises(JstipError, match="id 't0:text'.*appears twice"):
        _run(paths, tmp_path, recipe="text:1")
