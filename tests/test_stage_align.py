import dataclasses
import json
import os

import pyarrow.parquet as pq
import pytest

from manifests.io import file_metadata, read_records, write_records
from manifests.schema import Alignment, Utterance
from pipeline.stage_align import AlignConfig, aligner_options, run as align, settings_fingerprint
from pipeline.stage_demo_corpus import DemoCorpusConfig, run as demo_corpus
from pipeline.stage_prepare import PrepareConfig, run as prepare


def test_demo_corpus_to_alignments_with_one_and_two_workers(tmp_path):
    demo = demo_corpus(DemoCorpusConfig(out=str(tmp_path / "demo"), n_utterances=6, n_domain_texts=3,
                                        metrics=str(tmp_path / "m" / "demo.json")))
    assert demo["utterances"] == 6 and demo["speakers"] == 6
    assert len((tmp_path / "demo" / "domain_text.txt").read_text().splitlines()) == 3
    prepare(PrepareConfig(corpus=str(tmp_path / "demo" / "corpus"), utterances=str(tmp_path / "u.parquet"),
                          texts=str(tmp_path / "t.parquet"), rejected=str(tmp_path / "r.parquet"),
                          metrics=str(tmp_path / "m" / "prepare.json")))
    # a transcript that does not match its audio at all must fail with a reason, not crash the run:
    # 30 unrelated words cannot be placed in ~3 s of speech (8 unrelated words still could be)
    utterances = read_records(tmp_path / "u.parquet", Utterance)
    unrelated = " ".join((["purple", "elephants", "juggle", "frozen", "bicycles", "under", "lanterns"] * 5)[:30])
    bad = utterances[3].utt_id
    utterances[3] = dataclasses.replace(utterances[3], norm_text=unrelated)
    write_records(utterances, Utterance, tmp_path / "u.parquet")
    outputs = {}
    for workers in (1, 2):
        cfg = AlignConfig(utterances=str(tmp_path / "u.parquet"), out=str(tmp_path / f"a{workers}"), min_shards=3,
                          workers=workers, reference=str(tmp_path / "demo" / "reference.parquet"),
                          metrics=str(tmp_path / "m" / f"align{workers}.json"),
                          report=str(tmp_path / "r" / f"align{workers}.json"))
        metrics = align(cfg)
        outputs[workers] = [pq.read_table(p) for p in sorted((tmp_path / f"a{workers}").glob("part-*.parquet"))]
        assert (metrics["utterances"], metrics["aligned"], metrics["failed"]) == (6, 5, 1)
        assert metrics["utterances_scored"] == 5 and metrics["boundary_error_mean_ms"] < 40
    assert len(outputs[1]) >= 2
    assert all(a.equals(b) and a.schema.metadata == b.schema.metadata for a, b in zip(outputs[1], outputs[2]))
    # shard k holds consecutive utterance rows, and says which
    ranges = [file_metadata(p, "utt_rows") for p in sorted((tmp_path / "a1").glob("part-*.parquet"))]
    starts = [int(r.split(":")[0]) for r in ranges]
    stops = [int(r.split(":")[1]) for r in ranges]
    assert starts[0] == 0 and stops[-1] == 6 and starts[1:] == stops[:-1]
    assert [t.num_rows for t in outputs[1]] == [b - a for a, b in zip(starts, stops)]
    report = json.loads((tmp_path / "r" / "align1.json").read_text())
    assert report["failed_by_reason"] == {"stopped_early": 1} or report["failed_by_reason"] == {"no_alignment": 1}
    [example] = next(iter(report["examples"].values()))
    assert example["utt_id"] == bad
    alignments = read_records(tmp_path / "a1", Alignment)
    assert [a.utt_id for a in alignments] == [u.utt_id for u in utterances]
    for a, u in zip(alignments, utterances):
        if a.utt_id == bad:
            assert a.status == "failed" and a.words == () and "check that the transcript matches" in a.reason
            assert a.reason.split(":")[0] in ("stopped_early", "no_alignment")
        else:
            assert a.status == "ok" and not a.reason and [w.word for w in a.words] == u.norm_text.split()


def test_rerun_skips_finished_shards_and_scores_against_textgrids(tmp_path, capsys):
    from praatio import textgrid
    from praatio.utilities.constants import Interval

    demo_corpus(DemoCorpusConfig(out=str(tmp_path / "demo"), n_utterances=3, n_domain_texts=1,
                                 metrics=str(tmp_path / "m" / "demo.json")))
    prepare(PrepareConfig(corpus=str(tmp_path / "demo" / "corpus"), utterances=str(tmp_path / "u.parquet"),
                          texts=str(tmp_path / "t.parquet"), rejected=str(tmp_path / "r.parquet"),
                          metrics=str(tmp_path / "m" / "prepare.json")))
    # the demo's true word times as TextGrids, the way MFA would have written them
    (tmp_path / "grids").mkdir()
    for ref in read_records(tmp_path / "demo" / "reference.parquet", Alignment):
        grid = textgrid.Textgrid()
        end = ref.words[-1].end + 0.1
        grid.addTier(textgrid.IntervalTier("words", [Interval(w.start, w.end, w.word) for w in ref.words], 0, end))
        grid.save(str(tmp_path / "grids" / f"{ref.utt_id}.TextGrid"), format="long_textgrid", includeBlankSpaces=True)
    cfg = AlignConfig(utterances=str(tmp_path / "u.parquet"), out=str(tmp_path / "a"), shard_size=2, min_shards=1,
                      reference=str(tmp_path / "grids"), metrics=str(tmp_path / "m" / "align.json"),
                      report=str(tmp_path / "r.json"))
    first = align(cfg)
    assert first["shards"] == 2 and first["shards_skipped"] == 0 and first["utterances_scored"] == first["aligned"]
    assert first["boundary_error_mean_ms"] < 40 and 0 < first["real_time_factor"] < 1
    assert "boundary_error_mean_ms" in capsys.readouterr().err  # the table
    stamp = [p.stat().st_mtime_ns for p in sorted((tmp_path / "a").glob("part-*.parquet"))]
    second = align(cfg)
    assert second["shards_skipped"] == 2 and second["aligned"] == first["aligned"]
    # nothing aligned now: no speed measured (None, not a 0.0 that reads like one), "n/a" in the table
    assert second["real_time_factor"] is None and second["wall_real_time_factor"] is None
    assert second["cpu_per_align_second"] is None and second["audio_seconds_aligned_now"] == 0
    table = capsys.readouterr().err
    assert [line.split()[-1] for line in table.splitlines() if line.startswith("real_time_factor")] == ["n/a"]
    assert stamp == [p.stat().st_mtime_ns for p in sorted((tmp_path / "a").glob("part-*.parquet"))]
    third = align(AlignConfig(**{**cfg.__dict__, "shard_size": 3}))  # new sharding: everything reruns
    assert third["shards"] == 1 and third["shards_skipped"] == 0 and len(list((tmp_path / "a").glob("part-*"))) == 1


def _utt(utt_id: str, text: str) -> Utterance:
    return Utterance(utt_id, "unused.wav", 0.0, 2.0, 16000, "s", text, text, "c", "train")


def _write_grid(path, words):
    from praatio import textgrid
    from praatio.utilities.constants import Interval

    grid = textgrid.Textgrid()
    grid.addTier(textgrid.IntervalTier("words", [Interval(*w) for w in words], 0, 2.0))
    grid.save(str(path), format="long_textgrid", includeBlankSpaces=True)


@pytest.mark.parametrize("kind", ["ctm", "textgrid"])
def test_editing_the_import_source_at_the_same_path_redoes_the_shards(tmp_path, kind):
    write_records([_utt("u1", "one two"), _utt("u2", "three")], Utterance, tmp_path / "u.parquet")
    if kind == "ctm":
        source = tmp_path / "a.ctm"
        source.write_text("u1 1 0.20 0.30 one\nu1 1 0.60 0.30 two\nu2 1 0.10 0.20 three\n")
    else:
        source = tmp_path / "grids"
        source.mkdir()
        _write_grid(source / "u1.TextGrid", [(0.2, 0.5, "one"), (0.6, 0.9, "two")])
        _write_grid(source / "u2.TextGrid", [(0.1, 0.3, "three")])
    cfg = AlignConfig(utterances=str(tmp_path / "u.parquet"), out=str(tmp_path / "a"), aligner="import",
                      source=str(source), shard_size=1, metrics=str(tmp_path / "m.json"), report=str(tmp_path / "r.json"))
    assert align(cfg)["shards_skipped"] == 0
    assert align(cfg)["shards_skipped"] == 2  # unchanged source: nothing redone
    # re-exported at the same path with other times (and an mtime that differs even if the size does not)
    if kind == "ctm":
        source.write_text("u1 1 0.25 0.30 one\nu1 1 0.60 0.30 two\nu2 1 0.40 0.20 three\n")
        edited = source
    else:
        edited = source / "u2.TextGrid"
        _write_grid(edited, [(0.4, 0.6, "three")])
    before = edited.stat()
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    third = align(cfg)
    assert third["shards_skipped"] == 0 and third["aligned"] == 2
    u2 = read_records(tmp_path / "a", Alignment)[1]
    assert (u2.words[0].word, u2.words[0].start) == ("three", 0.4)  # the new times, not a stale shard


def test_speed_options_are_not_part_of_the_fingerprint():
    def fp(**kw):
        cfg = AlignConfig(**kw)
        return settings_fingerprint(cfg, aligner_options(cfg))

    assert fp(aligner="mfa", jobs=1) == fp(aligner="mfa", jobs=8)
    assert fp(aligner="mfa", jobs=1) != fp(aligner="mfa", beam=100)
    assert fp(aligner="ctc", model="m", batch_size=8, device="auto") == fp(aligner="ctc", model="m", batch_size=1,
                                                                           device="cpu")
    assert fp(aligner="ctc", model="m") != fp(aligner="ctc", model="n")
    # still passed to the backend, which needs them to run
    assert aligner_options(AlignConfig(aligner="mfa", jobs=8))["jobs"] == 8
    assert aligner_options(AlignConfig(aligner="ctc", model="m", batch_size=3))["batch_size"] == 3
