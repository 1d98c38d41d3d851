import json

import soundfile as sf

from manifests.io import read_records
from manifests.schema import Rejected, Text, Utterance
from pipeline.importers import iter_corpus
from pipeline.stage_prepare import PrepareConfig, build_utterances, run, split_of


def _wav(path, sine, seconds=1.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, sine(seconds), 16000)
    return path


def test_mfa_directory_with_bad_inputs_keeps_every_record_accounted_for(tmp_path, sine):
    corpus = tmp_path / "corpus"
    _wav(corpus / "spk1" / "a.wav", sine)
    (corpus / "spk1" / "a.lab").write_text("Hello there, 3 dogs!\n")
    _wav(corpus / "spk1" / "b.wav", sine)
    (corpus / "spk1" / "b.txt").write_text("   \n")  # empty transcript
    _wav(corpus / "spk2" / "c.wav", sine)  # no transcript at all
    (corpus / "spk2" / "d.wav").write_bytes(b"garbage")
    (corpus / "spk2" / "d.lab").write_text("corrupt audio")
    domain = tmp_path / "domain.txt"
    domain.write_text("Warfarin 5 mg daily.\n\n!!!\nAspirin helps.\n")
    cfg = PrepareConfig(
        corpus=str(corpus), domain_text=str(domain), test_fraction=0.0,
        utterances=str(tmp_path / "u.parquet"), texts=str(tmp_path / "t.parquet"),
        rejected=str(tmp_path / "r.parquet"), metrics=str(tmp_path / "m.json"),
    )
    metrics = run(cfg)
    [utt] = read_records(cfg.utterances, Utterance)
    assert (utt.utt_id, utt.speaker, utt.text, utt.norm_text) == ("a", "spk1", "Hello there, 3 dogs!", "hello there three dogs")
    assert (utt.duration, utt.sample_rate, utt.split, utt.corpus) == (1.0, 16000, "train", "corpus")
    rejected = {r.record_id: r.reason for r in read_records(cfg.rejected, Rejected)}
    assert rejected["b"] == "empty transcript"
    assert "no .lab or .txt" in rejected["c"]
    assert "cannot read audio" in rejected["d"]
    assert "no words" in rejected["domain-000003"]
    assert [t.norm_text for t in read_records(cfg.texts, Text)] == ["warfarin five mg daily", "aspirin helps"]
    assert metrics["rejected"] == 4 and metrics["utterances"] == 1
    assert json.loads((tmp_path / "m.json").read_text()) == metrics


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
    assert isinstance(results[1], Rejected) and "outside" in results[1].reason
    (tmp_path / "list.jsonl").write_text('{"audio": "long.wav", "text": "whole file", "utt_id": "x"}\nnot json\n')
    results = list(build_utterances(iter_corpus(tmp_path / "list.jsonl"), "c", 0.0))
    assert isinstance(results[0], Utterance) and results[0].duration == 3.0 and results[0].utt_id == "x"
    assert isinstance(results[1], Rejected) and "not JSON" in results[1].reason


def test_splits_are_stable_and_near_the_fraction():
    ids = [f"utt{i}" for i in range(2000)]
    share = sum(split_of(i, 0.1) == "test" for i in ids) / len(ids)
    assert 0.08 < share < 0.12
    assert [split_of(i, 0.1) for i in ids] == [split_of(i, 0.1) for i in ids]
