"""The interleave stage end to end on a tiny espeak corpus: recipes, token formats, TTS kinds,
shards, reruns, workers, how alignments are joined, and what it reports."""
import io
import json
import shutil

import polars as pl
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from manifests.errors import JstipError
from manifests.formats import ASR, BOS, EOS, SEGMENT, SPEECH_CLOSE, SPEECH_OPEN
from manifests.io import check_metrics, read_records, split_metrics, write_records, write_table
from manifests.schema import Alignment, Sample, Text, to_table
from pipeline.stage_interleave import INTERLEAVE_METRICS, InterleaveConfig, run
from tests.interleave_corpus import SENTENCES, make_corpus


@pytest.fixture(scope="module")
def spoken_module():
    import librosa

    from aligners.espeak import espeak

    def make(sentence, voice="en-us", rate=160):
        engine = espeak()
        audio, words = engine.synthesize(sentence, voice=voice, rate=rate)
        return librosa.resample(audio, orig_sr=engine.sample_rate, target_sr=16000), words

    return make


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, spoken_module):
    return make_corpus(tmp_path_factory.mktemp("corpus"), spoken_module)


def _run(corpus, tmp_path, **kw):
    out = tmp_path / "samples"
    cfg = InterleaveConfig(**corpus, out=str(out), metrics=str(tmp_path / "m.json"), report=str(tmp_path / "r.json"),
                           plot=str(tmp_path / "p_{segmenter}.csv"), figure=kw.pop("figure", ""), **kw)
    return run(cfg), pl.read_parquet(out / "*.parquet")


def _seq(spans):
    return [s["text"] if s["modality"] == "token" else s["modality"][0].upper() for s in spans]


@pytest.mark.parametrize("recipe,kinds", [
    ("asr_only", {"asr"}),
    ("asr_il", {"asr", "interleave_word", "interleave_segment"}),
    ("asr_text_il", {"asr", "interleave_word", "interleave_segment", "text"}),
    ("il_segment_silence", {"asr", "interleave_segment"}),
    ("demo", {"asr", "interleave_word", "interleave_segment", "text"}),
    ("asr:1,interleave_mixed:1", {"asr", "interleave_mixed"}),
])
def test_recipes_produce_their_kinds(corpus, tmp_path, recipe, kinds):
    metrics, df = _run(corpus, tmp_path, recipe=recipe, mix_by="samples")  # by tokens, 10 short texts limit asr_text_il
    assert set(df["kind"]) == kinds == set(metrics["samples_by_kind"])
    assert 0 < metrics["samples_by_kind"]["asr"] <= 5
    assert metrics["aligned_utterances"] == 4 and metrics["utterances_in_split"] == 5
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["skipped"] == {"other_split": 1, "alignment_failed": 1}
    assert report["skipped_examples"]["alignment_failed"] == ["u4"]
    assert df["sample_id"].n_unique() == len(df)
    check_metrics(metrics)


def test_a_partial_alignment_is_counted_apart_and_not_used(tmp_path, spoken_module):
    """A partial record (a gap, or speech no word explains) has a transcript that does not match its
    audio as a whole: it makes no sample, and the report names it as partial, not failed."""
    paths = make_corpus(tmp_path / "c", spoken_module, partial=True)
    metrics, df = _run(paths, tmp_path, recipe="asr_il", mix_by="samples")
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["skipped"] == {"other_split": 1, "alignment_failed": 1, "alignment_partial": 1}
    assert report["skipped_examples"]["alignment_partial"] == ["u3"]
    assert "u3" not in set(df["source_id"]) and metrics["aligned_utterances"] == 3


def test_the_paper_token_formats_reach_the_shards(corpus, tmp_path):
    metrics, df = _run(corpus, tmp_path, recipe="asr_il", segmenter="silence_punct")
    assert metrics["samples_by_kind"]["asr"] == 4  # not u4: its alignment failed (audio and words disagree)
    with_failed, _ = _run(corpus, tmp_path / "all", recipe="asr_il", asr_failed_alignments=True)
    assert with_failed["samples_by_kind"]["asr"] == 5  # every utterance of the split, as the paper's ASR data
    rows = {r["sample_id"]: r for r in df.iter_rows(named=True)}
    asr = rows["u0:asr"]["spans"]
    assert _seq(asr) == [BOS, "S", ASR, "T", EOS] and asr[3]["text"] == SENTENCES[0]  # as written
    word = [r for r in rows.values() if r["kind"] == "interleave_word"]
    assert word and {r["sample_id"].rsplit(":", 1)[1] for r in word} == {"a1", "t1"}
    for r in word:
        seq = _seq(r["spans"])
        assert seq[0] == BOS and seq[-1] == EOS and seq[-2] == "T" and SEGMENT not in seq
        body = seq[1:-1]
        assert all(a != b for a, b in zip(body, body[1:]))  # one unit at a time, alternating
    for r in (r for r in rows.values() if r["kind"] == "interleave_segment"):
        seq = _seq(r["spans"])
        assert seq[2::2][:-1] == [SEGMENT] * (len(seq[2::2]) - 1) and seq[-2] == "T"
    assert metrics["dropped_final_unit"] > 0 and metrics["raw_text_fallback"] >= 0
    seg = metrics["segments"]
    assert seg["silence_punct"]["segments"] >= seg["silence"]["segments"] > 0


def test_normalised_text_and_the_tagged_layout_are_options(corpus, tmp_path):
    _, df = _run(corpus, tmp_path, recipe="asr:1,interleave_word:1", text_form="norm", tokens="tagged")
    asr = df.filter(pl.col("sample_id") == "u0:asr")["spans"][0]
    assert _seq(asr) == [BOS, SPEECH_OPEN, "S", SPEECH_CLOSE, ASR, "T", EOS]
    assert asr[5]["text"] == "the patient was given metformin twice a day"
    word = df.filter(pl.col("sample_id") == "u0:interleave_word:a1")["spans"][0]
    assert _seq(word)[:5] == [BOS, SPEECH_OPEN, "S", SPEECH_CLOSE, "T"]


def test_text_samples_end_each_sentence_with_eos(corpus, tmp_path):
    metrics, df = _run(corpus, tmp_path, recipe="text:1", transcripts_as_text=True, mix_by="samples")
    spans = df.filter(pl.col("sample_id") == "u2:transcript_text")["spans"][0]
    assert [s["text"] for s in spans] == [BOS, "Take two tablets after dinner.", EOS, "Then rest for an hour.", EOS]
    assert metrics["samples_by_kind"] == {"text": 15}  # 10 domain texts and 5 training transcripts


def test_tts_pairs_and_their_interleaved_sequences_share_one_synthesis(corpus, tmp_path):
    metrics, df = _run(corpus, tmp_path, recipe="asr:2,tts_pair:1,tts_interleave:1", mix_by="samples",
                       embed_audio=True, tts_voices="en-us", word_probability=1.0)
    assert {"tts_pair", "tts_interleave"} <= set(metrics["samples_by_kind"])
    samples = read_records(tmp_path / "samples", Sample)
    alignments = {a.utt_id: a for a in read_records(tmp_path / "samples" / "tts" / "alignments", Alignment)}
    for s in samples:
        audio, rate = sf.read(io.BytesIO(s.audio))
        assert rate == 16000 and abs(len(audio) / rate - s.duration) < 0.01
    for s in (s for s in samples if s.kind.startswith("tts")):
        words = alignments[s.source_id].words
        assert 0 <= words[0].start < words[-1].end <= s.duration + 1e-6
        assert sf.info(s.audio_path).duration == pytest.approx(s.duration, abs=0.01)
        if s.kind == "tts_interleave":
            speech = [sp for sp in s.spans if sp.modality == "speech"]
            assert s.sample_id.split(":")[2] == "word" and speech and s.spans[-2].modality == "text"
            assert all(any(abs(sp.start - w.start) < 1e-6 for w in words) for sp in speech)


def test_shards_are_zstd_with_byte_bounded_row_groups_and_load_in_datasets(corpus, tmp_path):
    import datasets

    _run(corpus, tmp_path, recipe="demo", embed_audio=True, shard_size=2, row_group_mb=0.05)
    files = sorted((tmp_path / "samples").glob("part-*.parquet"))
    assert len(files) >= 3
    for f in files:
        meta = pq.ParquetFile(f).metadata
        assert meta.num_rows == 0 or meta.row_group(0).column(0).compression == "ZSTD"
        for g in range(meta.num_row_groups):
            rows = pq.ParquetFile(f).read_row_group(g)
            assert rows.num_rows == 1 or sum(len(a["bytes"] or b"") for a in rows["audio"].to_pylist() if a) <= 0.05 * 2**20
    ds = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train", cache_dir=str(tmp_path / "hf"))
    assert isinstance(ds.features["audio"], datasets.Audio)  # decoding it is test_export's (it needs FFmpeg)
    ds = ds.cast_column("audio", datasets.Audio(decode=False))
    assert set(ds.column_names) >= {"sample_id", "kind", "spans", "audio"} and ds[0]["spans"][0]["text"] == BOS


def test_same_seed_same_bytes_and_rerun_reuses_finished_shards(corpus, tmp_path, monkeypatch):
    import pipeline.stage_interleave as stage

    a, _ = _run(corpus, tmp_path / "a", recipe="asr_il", shard_size=2)
    again, _ = _run(corpus, tmp_path / "a", recipe="asr_il", shard_size=2)
    assert again["shards_reused"] == again["shards"] == a["shards"] == 3
    assert {k: v for k, v in a.items() if k not in ("wall_seconds", "shards_reused")} == \
        {k: v for k, v in again.items() if k not in ("wall_seconds", "shards_reused")}
    _run(corpus, tmp_path / "b", recipe="asr_il", shard_size=2, seed=1)
    assert (tmp_path / "a/samples/part-00000.parquet").read_bytes() != (tmp_path / "b/samples/part-00000.parquet").read_bytes()
    monkeypatch.setattr(stage, "INTERLEAVE_VERSION", stage.INTERLEAVE_VERSION + 1)
    assert _run(corpus, tmp_path / "a", recipe="asr_il", shard_size=2)[0]["shards_reused"] == 0


def test_tasks_handed_out_in_small_windows_write_the_same_bytes(corpus, tmp_path, monkeypatch):
    """Pass 1's histograms are summed a window of tasks at a time (the driver no longer holds one per
    task): windows of one task give the same mixture and the same shards as one window of all."""
    import pipeline.stage_interleave as stage

    kw = dict(recipe="asr:2,interleave_mixed:2,text:1", shard_size=2, max_repeats=3)
    whole, _ = _run(corpus, tmp_path / "whole", **kw)
    monkeypatch.setattr(stage, "WINDOW_TASKS", 1)
    windowed, _ = _run(corpus, tmp_path / "windowed", **kw)
    drop = ("wall_seconds",)
    assert {k: v for k, v in whole.items() if k not in drop} == {k: v for k, v in windowed.items() if k not in drop}
    files = sorted(p.name for p in (tmp_path / "whole" / "samples").glob("part-*.parquet"))
    assert len(files) >= 3 and files == sorted(p.name for p in (tmp_path / "windowed" / "samples").glob("part-*.parquet"))
    for name in files:
        assert (tmp_path / "whole/samples" / name).read_bytes() == (tmp_path / "windowed/samples" / name).read_bytes()


@pytest.mark.slow
def test_one_and_two_workers_write_identical_bytes(corpus, tmp_path):
    kw = dict(recipe="asr:2,interleave_mixed:2,tts_pair:1", mix_by="samples", shard_size=2, embed_audio=True)
    written = {}
    for workers in (1, 2):  # the same output directory (tts audio paths name it), emptied in between
        shutil.rmtree(tmp_path / "samples", ignore_errors=True)
        metrics, _ = _run(corpus, tmp_path, workers=workers, **kw)
        assert metrics["shards_reused"] == 0
        written[workers] = [(f.name, f.read_bytes()) for f in sorted((tmp_path / "samples").rglob("*.*"))]
    names = [n for n, _ in written[1]]
    assert sum(n.endswith(".flac") for n in names) >= 2 and sum(n.endswith(".parquet") for n in names) >= 6
    assert written[1] == written[2]


def test_alignment_files_with_row_ranges_and_without_give_the_same_samples(corpus, tmp_path):
    alignments = read_records(corpus["alignments"], Alignment)  # one file, no `utt_rows`: merge join on utt_id
    for k, lo in enumerate(range(0, len(alignments), 2)):  # as `jstip align` writes them: row ranges in the metadata
        write_table(to_table(alignments[lo:lo + 2], Alignment), tmp_path / "ranged" / f"part-{k:05d}.parquet",
                    metadata={"utt_rows": f"{lo}:{lo + len(alignments[lo:lo + 2])}"})
    rows = {}
    for name, paths in (("joined", corpus), ("ranged", {**corpus, "alignments": str(tmp_path / "ranged")})):
        for size in (0, 2):
            _, df = _run(paths, tmp_path / f"{name}{size}", recipe="asr_il", shard_size=size)
            rows[name, size] = df.sort("sample_id").to_dicts()
    assert len(set(map(str, rows.values()))) == 1 and len(rows["joined", 0]) > 5


def test_alignments_out_of_manifest_order_are_a_clear_error(tmp_path, spoken_module):
    paths = make_corpus(tmp_path / "c", spoken_module)
    alignments = read_records(paths["alignments"], Alignment)
    write_records(alignments[3:] + alignments[:3], Alignment, tmp_path / "c/alignments/part-00000.parquet")
    with pytest.raises(JstipError, match="not in the utterance manifest's order"):
        _run(paths, tmp_path, recipe="asr_il")
    write_records(alignments[:2] + alignments[3:], Alignment, tmp_path / "c/alignments/part-00000.parquet")
    metrics, _ = _run(paths, tmp_path, recipe="asr_only")  # a gap: u2 has no alignment record
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["skipped"]["no_alignment"] == 1 and report["skipped_examples"]["no_alignment"] == ["u2"]
    assert metrics["samples_by_kind"]["asr"] == 4  # u2 without a record still gives asr; u4's alignment failed


def test_a_mixture_limited_by_a_small_pool_says_how_much_speech_it_leaves(corpus, tmp_path, capsys):
    metrics, _ = _run(corpus, tmp_path, recipe="asr_text")  # 10 short texts balance few utterances' tokens
    err = capsys.readouterr().err
    assert "limited by the text pool" in err and "left unused" in err
    assert 0 < metrics["speech_share_unused"] < 1 and metrics["speech_hours_used"] < metrics["speech_hours_in_split"]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["limited_by"] == "text" and report["pools"]["text"]["share_of_pool_used"] == 1.0


def test_metrics_report_and_the_segment_length_plot(corpus, tmp_path):
    metrics, _ = _run(corpus, tmp_path, recipe="asr_il", figure=str(tmp_path / "p.png"))
    check_metrics(metrics)
    report = json.loads((tmp_path / "r.json").read_text())
    kept, rest = split_metrics(metrics, INTERLEAVE_METRICS)  # a handful in metrics, every other figure in the report
    assert json.loads((tmp_path / "m.json").read_text()) == kept and report["figures"] == rest
    assert kept["segments"] == {"silence": {"mean_words": 5.125}, "silence_punct": {"mean_words": 5.125}}
    assert report["paper_row"].startswith("Table I") and report["mix_by"] == "tokens"
    assert report["pools"]["asr"]["share_of_pool_used"] == 1.0
    for name in ("silence", "silence_punct"):
        lines = (tmp_path / f"p_{name}.csv").read_text().splitlines()
        assert lines[0] == "words,share,segments" and len(lines) == 61
        assert sum(float(x.split(",")[1]) for x in lines[1:]) == pytest.approx(1.0, abs=1e-3)
        assert sum(int(x.split(",")[2]) for x in lines[1:]) == metrics["segments"][name]["segments"]
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_settings_are_clear_errors(corpus, tmp_path):
    with pytest.raises(JstipError, match="unknown recipe 'nope'"):
        _run(corpus, tmp_path, recipe="nope")
    with pytest.raises(JstipError, match="--layout 'zigzag' is unknown"):
        _run(corpus, tmp_path, layout="zigzag")
    with pytest.raises(JstipError, match="spirit speech range|spirit-speech-words"):
        _run(corpus, tmp_path, word_sampler="spirit", spirit_speech_words="5-2")
    with pytest.raises(JstipError, match="0.01 <= η <= 0.99"):  # issue 13: once ~24 GB per sample
        _run(corpus, tmp_path, word_sampler="poisson", speech_fraction=1e-9)
    with pytest.raises(JstipError, match="selects no samples"):
        _run(corpus, tmp_path, split="nothing")
    with pytest.raises(JstipError, match="sets unknown options"):
        _run(corpus, tmp_path, recipe="mine", recipes={"mine": {"mixture": "asr:1", "nope": 1}})


def test_the_entity_sampler_writes_the_listed_entities_as_text(corpus, tmp_path):
    entities = tmp_path / "entities.txt"
    entities.write_text("metformin\tcommon\nblood pressure\nfracture\n")
    metrics, df = _run(corpus, tmp_path, recipe="il_word", mix_by="samples", word_sampler="entity", random_p=0.99,
                       entity_list=str(entities))
    df = df.filter(pl.col("kind") == "interleave_word")
    assert len(df) >= 3
    spoken = " ".join(s["text"] for spans in df["spans"] for s in spans if s["modality"] == "speech").lower()
    written = " ".join(s["text"] for spans in df["spans"] for s in spans if s["modality"] == "text").lower()
    assert "metformin" in written and "fracture" in written and "metformin" not in spoken
    assert "pressure" not in spoken  # 'blood' opens its sentence and stays speech; 'pressure' is written
    assert json.loads((tmp_path / "r.json").read_text())["settings"]["entity_list"] == str(entities)
    with pytest.raises(JstipError, match="needs --entity-list"):
        _run(corpus, tmp_path, recipe="il_word", word_sampler="entity")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(JstipError, match="holds no phrase"):
        _run(corpus, tmp_path, recipe="il_word", word_sampler="entity", entity_list=str(tmp_path / "empty.txt"))


def test_no_texts_drops_the_text_kind_and_says_so(corpus, tmp_path, capsys):
    metrics, _ = _run({**corpus, "texts": ""}, tmp_path, recipe="demo")
    assert set(metrics["samples_by_kind"]) == {"asr", "interleave_word", "interleave_segment"}
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["dropped_kinds"] == {"text": "no text records with words (--texts '')"}
    assert report["mixture"] == {"asr": 0.5, "interleave_word": 0.25, "interleave_segment": 0.25}
    assert "text left out of the mixture" in capsys.readouterr().err


def test_duplicate_ids_are_an_error_naming_the_id(tmp_path, spoken_module):
    paths = make_corpus(tmp_path / "c", spoken_module)
    texts = read_records(paths["texts"], Text)
    write_records(texts + texts[:1], Text, paths["texts"])
    with pytest.raises(JstipError, match="'t0:text'.*twice"):
        _run(paths, tmp_path, recipe="text:1", mix_by="samples", max_repeats=1)


def test_tts_kinds_use_recorded_pairs_and_their_word_times_instead_of_synthesizing(corpus, tmp_path):
    """Pairs that exist as audio (here the corpus's own speech with its true word times) are matched to the
    TTS texts by transcript; a text without a recording is counted, and nothing is synthesized."""
    utts = pl.read_parquet(corpus["utterances"]).filter(pl.col("split") == "train")
    texts = [Text(f"tt{i}", t, t.lower(), "tts") for i, t in enumerate(utts["text"].to_list() + ["Never recorded."])]
    write_records(texts, Text, tmp_path / "tts_texts.parquet")
    metrics, df = _run(corpus, tmp_path, recipe="asr:1,tts_pair:1,tts_interleave:1", mix_by="samples", max_repeats=3,
                       tts_texts=str(tmp_path / "tts_texts.parquet"), tts_recordings=corpus["utterances"],
                       tts_alignments=corpus["alignments"], word_probability=1.0)
    pairs = df.filter(pl.col("kind") == "tts_pair")
    assert len(pairs) and set(pairs["audio_path"]) <= set(utts["audio_path"])
    by_text = dict(zip(utts["text"], utts["audio_path"]))
    aligned = {a.utt_id: a for a in read_records(corpus["alignments"], Alignment)}
    for row in df.filter(pl.col("kind").str.starts_with("tts")).iter_rows(named=True):
        text = texts[int(row["source_id"][2:])].text
        assert row["audio_path"] == by_text[text]  # the recording of this very transcript
        utt = utts.filter(pl.col("text") == text)["utt_id"][0]
        starts = {round(w.start, 6) for w in aligned[utt].words}
        speech = [s for s in row["spans"] if s["modality"] == "speech"]
        assert row["kind"] == "tts_pair" or all(round(s["start"], 6) in starts for s in speech)
    assert not list((tmp_path / "samples" / "tts").glob("*.flac"))  # nothing synthesized
    report = json.loads((tmp_path / "r.json").read_text())
    assert "no recording" in json.dumps(report) and "u4" in json.dumps(report)  # unrecorded text, failed alignment
    with pytest.raises(JstipError, match="go together"):
        _run(corpus, tmp_path, recipe="asr:1,tts_pair:1", tts_recordings=corpus["utterances"])
