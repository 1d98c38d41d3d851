"""prepare at scale: rows checked in slices on any executor, sorted and de-duplicated out of core.

The slice and sort-run sizes are shrunk here so that a few hundred rows make many tasks and many
spilled runs; the result must be what the in-memory checks give, and the same bytes for 1 or 2
workers."""
import filecmp
import random

import pyarrow as pa
import pytest
import soundfile as sf

from corpora import iter_corpus, streaming
from corpora.checks import build_utterances
from manifests import external_sort
from manifests.external_sort import ExternalSorter
from manifests.io import read_records
from manifests.schema import Rejected, Utterance
from pipeline.stage_prepare import PrepareConfig, run


def test_external_sort_matches_a_stable_in_memory_sort_and_keeps_the_first_of_each_key(tmp_path):
    rng = random.Random(3)
    keys = [f"k{rng.randrange(400):04d}" for _ in range(3000)]  # many repeats, across runs
    sorter = ExternalSorter("key", tmp_path / "spill", run_rows=250, chunk_rows=37)
    for start in range(0, len(keys), 113):
        part = keys[start:start + 113]
        sorter.add(pa.table({"key": part, "pos": list(range(start, start + len(part)))}))
    assert len(sorter.runs) >= 8  # spilled in runs of ~250 rows
    kept, dups = [], []
    batches = list(sorter.merged(batch_rows=100))
    for k, d in batches:
        kept += list(zip(k.column("key").to_pylist(), k.column("pos").to_pylist()))
        dups += d.column("pos").to_pylist()
    assert all(k.num_rows == 100 for k, _ in batches[:-1]) and "_arrival" not in batches[0][0].column_names
    expected = sorted(range(len(keys)), key=lambda i: (keys[i], i))
    first = {}
    for i in expected:
        first.setdefault(keys[i], i)
    assert kept == [(k, i) for k, i in sorted((k, i) for k, i in first.items())]
    assert sorted(dups) == sorted(set(range(len(keys))) - set(first.values()))
    sorter.close()
    assert not list((tmp_path / "spill").glob("run-*"))


def _corpus(tmp_path, sine, rows=300):
    """A list of `rows` rows over a few files, shuffled ids, with duplicates, missing files and overruns."""
    for f in range(5):
        sf.write(tmp_path / f"f{f}.wav", sine(6.0 + f * 0.013), 16000)
    rng = random.Random(0)
    lines = ["utt_id,audio,offset,duration,text,speaker"]
    for i in range(rows):
        utt = f"u{rng.randrange(10**6):06d}" if i % 41 else lines[-1].split(",")[0] if i > 1 else "u0"
        audio = f"f{i % 5}.wav" if i % 53 else "nowhere.wav"
        duration = 0.5 if i % 37 else 9.0  # a real overrun
        text = "" if i % 61 == 5 else f"row {i} says hello"
        lines.append(f"{utt},{audio},{(i % 12) * 0.5},{duration},{text},s{i % 7}")
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "list.csv"


def _cfg(tmp_path, corpus, out, **kw):
    out = tmp_path / out
    return PrepareConfig(corpus=str(corpus), domain_text="", test_fraction=0.2, utterances=str(out / "u.parquet"),
                         texts=str(out / "t.parquet"), rejected=str(out / "r.parquet"), metrics=str(out / "m.json"),
                         report=str(out / "rep.json"), audio_dir=str(out / "audio"), **kw)


def test_streamed_prepare_equals_the_in_memory_checks_in_many_slices_and_runs(tmp_path, sine, monkeypatch):
    corpus = _corpus(tmp_path, sine)
    monkeypatch.setattr(streaming, "SLICE_ROWS", 17)
    monkeypatch.setattr(external_sort, "RUN_ROWS", 40)
    metrics = run(_cfg(tmp_path, corpus, "out"))
    checked = list(build_utterances(iter_corpus(corpus), "list.csv", 0.2))
    expected = sorted((u for u in checked if isinstance(u, Utterance)), key=lambda u: u.utt_id)
    got = read_records(tmp_path / "out" / "u.parquet", Utterance)
    assert got == expected and len(got) > 200
    rejected = read_records(tmp_path / "out" / "r.parquet", Rejected)
    expected_rejected = [r for r in checked if isinstance(r, Rejected)]
    assert sorted((r.record_id, r.reason) for r in rejected) == sorted((r.record_id, r.reason) for r in expected_rejected)
    assert {"duplicate_id", "missing_audio", "bad_stretch", "empty_transcript"} <= set(metrics["rejected_by_reason"])
    assert metrics["utterances"] + metrics["rejected"] == 300
    assert metrics["speakers"] == len({u.speaker for u in expected})
    assert metrics["train_utterances"] == sum(u.split == "train" for u in expected)


@pytest.mark.slow
def test_one_or_two_workers_write_the_same_bytes(tmp_path, sine, monkeypatch):
    corpus = _corpus(tmp_path, sine, rows=500)
    monkeypatch.setattr(streaming, "SLICE_ROWS", 23)
    monkeypatch.setattr(external_sort, "RUN_ROWS", 90)
    one = run(_cfg(tmp_path, corpus, "w1", workers=1))
    two = run(_cfg(tmp_path, corpus, "w2", workers=2))
    assert one == two
    for name in ("u.parquet", "r.parquet", "m.json"):
        assert filecmp.cmp(tmp_path / "w1" / name, tmp_path / "w2" / name, shallow=False), name
