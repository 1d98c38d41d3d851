import pyarrow.parquet as pq

from manifests.io import read_records
from manifests.schema import Alignment
from pipeline.stage_align import AlignConfig, run as align
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
    # a transcript that does not match its audio at all must fail with a reason, not crash the run
    outputs = {}
    for workers in (1, 2):
        cfg = AlignConfig(utterances=str(tmp_path / "u.parquet"), out=str(tmp_path / f"a{workers}"), shard_size=2,
                          workers=workers, reference=str(tmp_path / "demo" / "reference.parquet"),
                          metrics=str(tmp_path / "m" / f"align{workers}.json"))
        metrics = align(cfg)
        outputs[workers] = [pq.read_table(p) for p in sorted((tmp_path / f"a{workers}").glob("part-*.parquet"))]
        assert metrics["utterances"] == 6 and metrics["aligned"] + metrics["failed"] == 6
        assert metrics["aligned"] >= 5
        assert metrics["boundary_error_mean_ms"] < 40
    assert len(outputs[1]) == 3
    assert all(a.equals(b) for a, b in zip(outputs[1], outputs[2]))
    alignments = read_records(tmp_path / "a1", Alignment)
    assert all((a.status == "ok" and len(a.words) > 0) or a.reason for a in alignments), alignments


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
    cfg = AlignConfig(utterances=str(tmp_path / "u.parquet"), out=str(tmp_path / "a"), shard_size=2,
                      reference=str(tmp_path / "grids"), metrics=str(tmp_path / "m" / "align.json"))
    first = align(cfg)
    assert first["shards"] == 2 and first["shards_skipped"] == 0 and first["utterances_scored"] == first["aligned"]
    assert first["boundary_error_mean_ms"] < 40 and 0 < first["real_time_factor"] < 1
    assert "boundary_error_mean_ms" in capsys.readouterr().err  # the table
    stamp = [p.stat().st_mtime_ns for p in sorted((tmp_path / "a").glob("part-*.parquet"))]
    second = align(cfg)
    assert second["shards_skipped"] == 2 and second["aligned"] == first["aligned"]
    assert stamp == [p.stat().st_mtime_ns for p in sorted((tmp_path / "a").glob("part-*.parquet"))]
    third = align(AlignConfig(**{**cfg.__dict__, "shard_size": 3}))  # new sharding: everything reruns
    assert third["shards"] == 1 and third["shards_skipped"] == 0 and len(list((tmp_path / "a").glob("part-*"))) == 1
