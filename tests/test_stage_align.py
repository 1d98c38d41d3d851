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
