"""prepare on every input layout, with bad inputs of each kind built here: nothing is lost."""
import csv
import json
import os
import random

import pytest
import soundfile as sf

from manifests.io import read_records
from manifests.schema import Rejected, Text, Utterance
from corpora import iter_corpus
from corpora.checks import build_utterances, split_of
from pipeline.stage_prepare import PrepareConfig, run


def _wav(path, sine, seconds=1.0, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, sine(seconds), 16000, format=fmt)
    return path


def _cfg(tmp_path, corpus, **kw):
    out = tmp_path / "out"
    return PrepareConfig(corpus=str(corpus), test_fraction=kw.pop("test_fraction", 0.0),
                         utterances=str(out / "u.parquet"), texts=str(out / "t.parquet"),
                         rejected=str(out / "r.parquet"), metrics=str(out / "m.json"), report=str(out / "rep.json"),
                         audio_dir=str(out / "audio"), **kw)


def _rejected(cfg):
    return {r.record_id: r.reason for r in read_records(cfg.rejected, Rejected)}


def test_mfa_directory_with_bad_inputs_keeps_every_record_accounted_for(tmp_path, sine):
    corpus = tmp_path / "corpus"
    _wav(corpus / "spk1" / "a.wav", sine)
    (corpus / "spk1" / "a.lab").write_text("Hello there, 3 dogs!\n")
    _wav(corpus / "spk1" / "b.wav", sine)
    (corpus / "spk1" / "b.txt").write_text("   \n")  # empty transcript
    _wav(corpus / "spk2" / "c.wav", sine)  # no transcript at all
    (corpus / "spk2" / "d.wav").write_bytes(b"garbage")
    (corpus / "spk2" / "d.lab").write_text("corrupt audio")
    (corpus / "spk2" / "e.lab").write_text("a transcript whose audio is missing")
    _wav(corpus / "spk2" / "f.wav", sine)
    (corpus / "spk2" / "f.lab").write_bytes("café naïve résumé".encode("latin-1"))
    _wav(corpus / "spk2" / "g.wav", sine)
    (corpus / "spk2" / "g.lab").write_text("hello 你好 world مرحبا again")
    domain = tmp_path / "domain.txt"
    domain.write_text("Warfarin 5 mg daily.\n\n!!!\nAspirin helps.\n")
    cfg = _cfg(tmp_path, corpus, domain_text=str(domain))
    metrics = run(cfg)
    [utt] = read_records(cfg.utterances, Utterance)
    assert (utt.utt_id, utt.speaker, utt.text, utt.norm_text) == ("a", "spk1", "Hello there, 3 dogs!", "hello there three dogs")
    assert (utt.duration, utt.sample_rate, utt.split, utt.corpus) == (1.0, 16000, "train", "corpus")
    assert os.path.isabs(utt.audio_path)
    rejected = _rejected(cfg)
    assert rejected["b"].startswith("empty_transcript")
    assert rejected["c"].startswith("no_transcript")
    assert rejected["d"].startswith("unreadable_audio")
    assert rejected["e"].startswith("missing_audio") and "e.lab" in rejected["e"]
    assert rejected["f"].startswith("bad_encoding") and "prepare.encoding" in rejected["f"]
    assert rejected["g"].startswith("foreign_script") and "你好 (CJK)" in rejected["g"] and "مرحبا (ARABIC)" in rejected["g"]
    assert rejected["domain-000003"].startswith("no_words")
    assert [t.norm_text for t in read_records(cfg.texts, Text)] == ["warfarin five milligrams daily", "aspirin helps"]
    assert metrics == json.loads((tmp_path / "out" / "m.json").read_text())
    assert metrics["rejected"] == 7 and metrics["utterances"] == 1
    assert all(isinstance(v, (int, float)) or all(isinstance(n, int) for n in v.values()) for v in metrics.values())
    assert metrics["rejected_by_reason"] == {"empty_transcript": 1, "no_transcript": 1, "unreadable_audio": 1,
                                             "missing_audio": 1, "bad_encoding": 1, "foreign_script": 1, "no_words": 1}
    report = json.loads((tmp_path / "out" / "rep.json").read_text())
    assert report["rejected_utterances"]["missing_audio"]["examples"][0]["id"] == "e"


def test_encoding_policy_named_codec_and_any_script(tmp_path, sine):
    corpus = tmp_path / "corpus"
    _wav(corpus / "s" / "f.wav", sine)
    (corpus / "s" / "f.lab").write_bytes("café naïve résumé déjà vu".encode("latin-1"))
    _wav(corpus / "s" / "g.wav", sine)
    (corpus / "s" / "g.lab").write_text("hello 你好 world")
    found = {u.utt_id: u for u in build_utterances(iter_corpus(corpus, encoding="latin-1"), "c", 0.0, scripts="any")}
    assert found["f"].norm_text == "cafe naive resume deja vu"
    found = {getattr(u, "utt_id", ""): u for u in build_utterances(iter_corpus(corpus), "c", 0.0, scripts="any")}
    assert found["g"].norm_text == "hello 你好 world"  # kept, not dropped, when scripts: any


def test_truncated_flac_and_missing_file_are_rejected_in_prepare(tmp_path, sine):
    corpus = tmp_path / "corpus"
    good = _wav(corpus / "s" / "whole.flac", sine, seconds=3.0)
    (corpus / "s" / "whole.lab").write_text("fine")
    data = good.read_bytes()
    (corpus / "s" / "cut.flac").write_bytes(data[: len(data) // 2])
    (corpus / "s" / "cut.lab").write_text("truncated")
    (tmp_path / "list.csv").write_text("audio,text,utt_id\ncorpus/s/nothing.wav,gone,n1\n")
    results = {r.utt_id if isinstance(r, Utterance) else r.record_id: r
               for r in build_utterances(iter_corpus(corpus), "c", 0.0)}
    assert isinstance(results["whole"], Utterance)
    assert results["cut"].reason.startswith("unreadable_audio") and "truncated" in results["cut"].reason
    [missing] = build_utterances(iter_corpus(tmp_path / "list.csv"), "c", 0.0)
    assert missing.record_id == "n1" and missing.reason.startswith("missing_audio") and "does not exist" in missing.reason
    assert "System error" not in missing.reason


def test_librispeech_layout(tmp_path, sine):
    chapter = tmp_path / "ls" / "61" / "70968"
    chapter.mkdir(parents=True)
    sf.write(chapter / "61-70968-0000.flac", sine(0.5), 16000)
    (chapter / "61-70968.trans.txt").write_text("61-70968-0000 HE BEGAN A CONFUSED COMPLAINT\n61-70968-0001 MISSING AUDIO\n")
    found = list(iter_corpus(tmp_path / "ls"))
    assert [(r.utt_id, r.speaker, r.problem == "") for r in found] == [("61-70968-0000", "61", True), ("61-70968-0001", "61", False)]
    utts = [u for u in build_utterances(found, "ls", 0.0) if isinstance(u, Utterance)]
    assert utts[0].norm_text == "he began a confused complaint"


def test_csv_and_jsonl_lists_with_offsets(tmp_path, sine):
    _wav(tmp_path / "long.wav", sine, seconds=3.0)
    (tmp_path / "list.csv").write_text("audio,text,offset,duration,speaker\nlong.wav,first part,0.5,1.0,ann\nlong.wav,too far,2.5,1.0,ann\n")
    results = list(build_utterances(iter_corpus(tmp_path / "list.csv"), "c", 0.0))
    assert isinstance(results[0], Utterance) and (results[0].offset, results[0].duration, results[0].speaker) == (0.5, 1.0, "ann")
    assert results[0].audio_path == str(tmp_path / "long.wav")
    assert isinstance(results[1], Rejected) and results[1].reason.startswith("bad_stretch")
    (tmp_path / "list.jsonl").write_text('{"audio": "long.wav", "text": "whole file", "utt_id": "x"}\nnot json\n'
                                         '["an", "array"]\n"a string"\n')
    results = list(build_utterances(iter_corpus(tmp_path / "list.jsonl"), "c", 0.0))
    assert isinstance(results[0], Utterance) and results[0].duration == 3.0 and results[0].utt_id == "x"
    assert [r.record_id for r in results[1:]] == ["list.jsonl:2", "list.jsonl:3", "list.jsonl:4"]
    assert "not JSON" in results[1].reason and "JSON list" in results[2].reason and "JSON str" in results[3].reason


def test_bad_numbers_and_encodings_in_a_list_are_rows_rejected_under_their_id(tmp_path, sine):
    _wav(tmp_path / "a.wav", sine, seconds=2.0)
    rows = ["audio,text,offset,duration,utt_id", "a.wav,fine,0,1,ok", "a.wav,nan offset,nan,1,r1",
            "a.wav,nan duration,0,NaN,r2", "a.wav,text duration,0,abc,r3", "a.wav,inf,0,inf,r4",
            "a.wav,caf\xe9,0,1,r5", "a.wav,no duration,0.5,,r6"]
    (tmp_path / "list.csv").write_bytes("\n".join(rows).encode("latin-1") + b"\n")
    results = {getattr(r, "utt_id", None) or r.record_id: r for r in build_utterances(iter_corpus(tmp_path / "list.csv"), "c", 0.0)}
    assert isinstance(results["ok"], Utterance) and isinstance(results["r6"], Utterance) and results["r6"].duration == 1.5
    for bad in ("r1", "r2", "r3", "r4"):
        assert results[bad].reason.startswith("bad_row"), results[bad]
    assert results["r5"].reason.startswith("bad_encoding") and "line 7" in results["r5"].reason
    latin = {getattr(r, "utt_id", ""): r for r in build_utterances(iter_corpus(tmp_path / "list.csv", encoding="latin-1"), "c", 0.0)}
    assert latin["r5"].text == "café"
    lines = [{"audio": "a.wav", "text": "null duration", "duration": None, "utt_id": "j1"},
             {"audio": "a.wav", "text": "text duration", "duration": "long", "utt_id": "j2"},
             {"audio": "a.wav", "text": "bool offset", "offset": True, "utt_id": "j3"},
             {"audio": "a.wav", "text": 5, "utt_id": "j4"}]
    (tmp_path / "list.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    results = {getattr(r, "utt_id", None) or r.record_id: r for r in build_utterances(iter_corpus(tmp_path / "list.jsonl"), "c", 0.0)}
    assert isinstance(results["j1"], Utterance) and results["j1"].duration == 2.0
    assert all(results[k].reason.startswith("bad_row") for k in ("j2", "j3", "j4"))


def test_nan_offset_never_reaches_the_metrics(tmp_path, sine):
    _wav(tmp_path / "a.wav", sine)
    (tmp_path / "list.csv").write_text("audio,text,offset\na.wav,good,0\na.wav,bad,nan\n")
    cfg = _cfg(tmp_path, tmp_path / "list.csv")
    metrics = run(cfg)
    assert metrics["utterances"] == 1 and metrics["rejected"] == 1
    assert "NaN" not in (tmp_path / "out" / "m.json").read_text()


def test_ids_and_splits_do_not_move_when_rows_are_reordered_added_or_removed(tmp_path, sine):
    for i in range(20):
        _wav(tmp_path / "audio" / f"f{i}.wav", sine, seconds=2.0)
    rows = [(f"audio/f{i}.wav", f"utterance {i}", "") for i in range(20)]
    rows += [("audio/f0.wav", "second half of f0", "1.0")]

    def prepare(selected):
        with open(tmp_path / "list.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["audio", "text", "offset"])
            writer.writerows(selected)
        return {u.text: (u.utt_id, u.split) for u in build_utterances(iter_corpus(tmp_path / "list.csv"), "c", 0.3)
                if isinstance(u, Utterance)}

    first = prepare(rows)
    assert len(first) == 21 and len({v[0] for v in first.values()}) == 21
    assert {s for _, s in first.values()} == {"train", "test"}
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    changed = shuffled[3:] + [("audio/f5.wav", "a new row", "0.5")]
    assert prepare(shuffled) == first
    after = prepare(changed)
    assert all(after[text] == first[text] for text in after if text in first)
    assert split_of(first["utterance 1"][0], 0.3) == first["utterance 1"][1]


def test_nemo_manifest(tmp_path, sine):
    _wav(tmp_path / "wavs" / "a.wav", sine, seconds=2.0)
    lines = [{"audio_filepath": "wavs/a.wav", "text": "the first", "duration": 1.0, "offset": 0.0},
             {"audio_filepath": str(tmp_path / "wavs" / "a.wav"), "text": "the second", "duration": 1.0, "offset": 1.0}]
    (tmp_path / "train_manifest.json").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    cfg = _cfg(tmp_path, tmp_path / "train_manifest.json")
    assert run(cfg)["utterances"] == 2
    utts = sorted(read_records(cfg.utterances, Utterance), key=lambda u: u.offset)
    assert [(u.norm_text, u.offset, u.duration) for u in utts] == [("the first", 0.0, 1.0), ("the second", 1.0, 1.0)]
    assert {u.audio_path for u in utts} == {str(tmp_path / "wavs" / "a.wav")}


def test_rejection_file_is_written_and_named_when_nothing_is_usable(tmp_path, capsys):
    from pipeline.cli import main

    (tmp_path / "list.csv").write_text("audio,text\nmissing.wav,nothing here\n")
    out = tmp_path / "out"
    code = main(["prepare", "--params", "", "--corpus", str(tmp_path / "list.csv"), "--rejected", str(out / "r.parquet"),
                 "--utterances", str(out / "u.parquet"), "--texts", str(out / "t.parquet"),
                 "--metrics", str(out / "m.json"), "--report", str(out / "rep.json"), "--audio-dir", str(out / "a")])
    assert code == 2
    err = capsys.readouterr().err
    assert str(out / "r.parquet") in err and "Traceback" not in err
    assert [r.record_id for r in read_records(out / "r.parquet", Rejected)] == [f"missing-{_hash('missing.wav')}"]


def _hash(relative):
    import hashlib

    return hashlib.sha1(relative.encode()).hexdigest()[:8]


def test_splits_are_stable_and_near_the_fraction():
    ids = [f"utt{i}" for i in range(2000)]
    share = sum(split_of(i, 0.1) == "test" for i in ids) / len(ids)
    assert 0.08 < share < 0.12
    assert [split_of(i, 0.1) for i in ids] == [split_of(i, 0.1) for i in ids]


def test_prepare_needs_a_corpus():
    from manifests.errors import JstipError

    with pytest.raises(JstipError, match="prepare.corpus"):
        run(PrepareConfig())


def test_text_only_prepare_writes_a_text_manifest_and_no_utterances(tmp_path):
    import polars as pl

    (tmp_path / "lm.txt").write_text("Take aspirin daily.\n\nMetformin treats diabetes.\n")
    out = {k: str(tmp_path / f"{k}.parquet") for k in ("utterances", "texts", "rejected")}
    metrics = run(PrepareConfig(domain_text=str(tmp_path / "lm.txt"), metrics=str(tmp_path / "m.json"),
                                report=str(tmp_path / "r.json"), audio_dir=str(tmp_path / "audio"), **out))
    assert metrics["utterances"] == 0 and metrics["texts"] == 2
    assert pl.read_parquet(out["texts"])["text"].to_list() == ["Take aspirin daily.", "Metformin treats diabetes."]
    assert pl.read_parquet(out["utterances"]).height == 0


def test_relative_corpus_paths_are_stored_absolute(tmp_path, sine, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _wav(tmp_path / "corpus" / "s" / "a.wav", sine)
    (tmp_path / "corpus" / "s" / "a.lab").write_text("hello")
    _wav(tmp_path / "lists" / "b.wav", sine)
    (tmp_path / "lists" / "l.csv").write_text("audio,text\nb.wav,hi\n")
    for corpus, expected in (("corpus", tmp_path / "corpus" / "s" / "a.wav"), ("lists/l.csv", tmp_path / "lists" / "b.wav")):
        [utt] = build_utterances(iter_corpus(corpus), "c", 0.0)
        assert utt.audio_path == str(expected)


def test_non_finite_times_from_any_importer_are_rejected(tmp_path, sine):
    from corpora import RawUtterance

    _wav(tmp_path / "a.wav", sine)
    raws = [RawUtterance("n1", str(tmp_path / "a.wav"), "hi", "s", float("nan"), 0.5),
            RawUtterance("n2", str(tmp_path / "a.wav"), "hi", "s", 0.0, float("nan")),
            RawUtterance("n3", str(tmp_path / "a.wav"), "hi", "s", 0.0, float("inf"))]
    assert [r.reason.split(":")[0] for r in build_utterances(raws, "c", 0.0)] == ["bad_row"] * 3
