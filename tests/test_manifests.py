import json

import pyarrow.parquet as pq
import pytest

from manifests.errors import ManifestError
from manifests.io import (
    atomic_path, iter_records, read_records, read_row_group, row_group_sizes, write_metrics, write_records,
    write_shards, write_table,
)
from manifests.schema import (
    Alignment, Hypothesis, Rejected, Sample, Span, Text, Utterance, WordSpan, schema_of, to_table,
)

RECORDS = [
    Utterance("u1", "a.wav", 0.5, 2.0, 16000, "spk", "Hello, World!", "hello world", "demo", "train"),
    Alignment("u1", "pocketsphinx", "ok", "", (WordSpan("hello", 0.1, 0.4, -1.0), WordSpan("world", 0.5, 0.9, -2.0))),
    Alignment("u2", "pocketsphinx", "failed", "empty transcript", ()),
    Text("t1", "Take 5 mg.", "take five mg", "domain.txt"),
    Sample("u1:asr", "asr", "u1", "a.wav", 0.5, 2.0, (Span("speech", "hello world", 0.0, 2.0), Span("text", "hello world")), 2, 2),
    Rejected("prepare", "u3", "empty transcript"),
    Hypothesis("u1", "hello world", "hello word"),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_every_record_type_round_trips_through_parquet(tmp_path, record):
    path = tmp_path / "m.parquet"
    write_records([record, record], type(record), path)
    assert read_records(path, type(record)) == [record, record]
    assert pq.read_schema(path).equals(schema_of(type(record)), check_metadata=False)


def test_shards_are_numbered_bounded_and_stale_ones_removed(tmp_path):
    texts = [Text(f"t{i}", "x", "x", "s") for i in range(5)]
    write_shards(texts * 2, Text, tmp_path, shard_size=3)
    assert sorted(p.name for p in tmp_path.glob("part-*.parquet")) == [f"part-0000{i}.parquet" for i in range(4)]
    paths = write_shards(texts, Text, tmp_path, shard_size=3)
    assert [p.name for p in paths] == ["part-00000.parquet", "part-00001.parquet"]
    assert sorted(tmp_path.glob("part-*.parquet")) == paths
    assert [t.text_id for t in iter_records(tmp_path, Text)] == [t.text_id for t in texts]
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "t.parquet"
    write_records([Text("t", "x", "x", "s")], Text, path)
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half a file")
            raise RuntimeError("writer crashed")
    assert read_records(path, Text) == [Text("t", "x", "x", "s")]
    assert not list(tmp_path.glob(".*"))


def test_reading_the_wrong_record_type_names_the_missing_columns(tmp_path):
    write_records([Text("t", "x", "x", "s")], Text, tmp_path / "t.parquet")
    with pytest.raises(ManifestError, match="not a Utterance manifest"):
        read_records(tmp_path / "t.parquet", Utterance)


def test_missing_manifest_says_which_stage_to_run(tmp_path):
    with pytest.raises(ManifestError, match="run the stage"):
        read_records(tmp_path / "nope.parquet", Text)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="no part-"):
        read_records(tmp_path / "empty", Text)


def test_metrics_are_json(tmp_path):
    write_metrics({"b": 1, "a": {"x": 0.5}}, tmp_path / "m" / "s.json")
    assert json.loads((tmp_path / "m" / "s.json").read_text()) == {"a": {"x": 0.5}, "b": 1}


def test_row_groups_are_sized_and_read_alone(tmp_path):
    texts = [Text(f"t{i}", f"x{i}", f"x{i}", "s") for i in range(5)]
    write_table(to_table(texts, Text), tmp_path / "t.parquet", row_group_size=2)
    assert row_group_sizes(tmp_path / "t.parquet", Text) == [2, 2, 1]
    group = read_row_group(tmp_path / "t.parquet", 1, ["text_id", "text"])
    assert group.column_names == ["text_id", "text"]
    assert group.to_pylist() == [{"text_id": "t2", "text": "x2"}, {"text_id": "t3", "text": "x3"}]
    with pytest.raises(ManifestError, match="row group 7"):
        read_row_group(tmp_path / "t.parquet", 7, ["text_id"])


def test_row_group_readers_check_columns_and_fill_optional_ones(tmp_path):
    write_records([Text("t", "x", "x", "s")], Text, tmp_path / "t.parquet")
    with pytest.raises(ManifestError, match="not a Utterance manifest"):
        row_group_sizes(tmp_path / "t.parquet", Utterance)
    assert row_group_sizes(tmp_path / "t.parquet", Text, optional={"text"}) == [1]
    table = read_row_group(tmp_path / "t.parquet", 0, ["extra", "text_id"], optional={"extra"})
    assert table.to_pylist() == [{"extra": None, "text_id": "t"}]
    with pytest.raises(ManifestError, match="extra"):
        read_row_group(tmp_path / "t.parquet", 0, ["extra"])
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    for read in (lambda: row_group_sizes(tmp_path / "bad.parquet"), lambda: read_row_group(tmp_path / "bad.parquet", 0, ["a"])):
        with pytest.raises(ManifestError, match="cannot read"):
            read()


def test_manifests_written_before_a_field_existed_read_with_its_default(tmp_path):
    from manifests.io import read_records
    from manifests.schema import Alignment, WordSpan, to_table

    table = to_table([Alignment("u1", "p", "ok", "", (WordSpan("hi", 0.1, 0.3, -1.0),))], Alignment)
    pq.write_table(table.drop_columns(["phones"]), tmp_path / "old.parquet")  # as the skeleton wrote it
    (record,) = read_records(tmp_path / "old.parquet", Alignment)
    assert record.words == (WordSpan("hi", 0.1, 0.3, -1.0),) and record.phones == ()
    pq.write_table(table.drop_columns(["words"]), tmp_path / "broken.parquet")  # a required column is missing
    with pytest.raises(ManifestError, match="words"):
        read_records(tmp_path / "broken.parquet", Alignment)


def test_outputs_get_ordinary_permissions_not_mkstemps_private_ones(tmp_path):
    import os
    import stat

    from manifests.io import write_text_atomic

    old = os.umask(0o022)
    try:
        write_records([Text("t", "x", "x", "s")], Text, tmp_path / "t.parquet")
        write_text_atomic("x", tmp_path / "a.txt")
    finally:
        os.umask(old)
    for name in ("t.parquet", "a.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


def test_stage_metrics_are_numeric_with_identifier_keys_and_the_rest_goes_to_the_report(tmp_path):
    from manifests.io import check_metrics, write_stage_metrics

    write_stage_metrics({"aligned": 3, "share": float("nan"), "kinds": {"asr": 2}}, tmp_path / "m" / "a.json",
                        {"failed_by_reason": {"cannot read audio: /x.wav": 1}}, tmp_path / "r" / "a.json")
    assert json.loads((tmp_path / "m" / "a.json").read_text()) == {"aligned": 3, "share": None, "kinds": {"asr": 2}}
    assert json.loads((tmp_path / "r" / "a.json").read_text()) == {"failed_by_reason": {"cannot read audio: /x.wav": 1}}
    with pytest.raises(ManifestError, match="not a short identifier"):
        check_metrics({"failed": {"cannot read audio: /x.wav": 1}})
    figures = {"wer": 0.5, "wer_errors": 4, "by": {"rare": {"eer": 0.2, "eer_normalised": 0.1}, "common": {"eer": 0.3}}}
    write_stage_metrics(figures, tmp_path / "m" / "b.json", {"x": "y"}, tmp_path / "r" / "b.json", keep=("wer", "by.*.eer"))
    assert json.loads((tmp_path / "m" / "b.json").read_text()) == {"wer": 0.5, "by": {"rare": {"eer": 0.2}, "common": {"eer": 0.3}}}
    assert json.loads((tmp_path / "r" / "b.json").read_text()) == {"x": "y", "figures": {"wer_errors": 4, "by": {"rare": {"eer_normalised": 0.1}}}}
    with pytest.raises(ManifestError, match="aligner = 'pocketsphinx' is not a number"):
        check_metrics({"aligner": "pocketsphinx"})


def test_embedded_audio_is_stored_as_hugging_face_audio_and_old_binary_shards_still_read(tmp_path):
    import pyarrow as pa

    from manifests.io import read_records
    from manifests.schema import Sample, Span, to_table

    sample = Sample("u:asr", "asr", "u", "a.wav", 0.0, 1.0, (Span("speech", "hi", 0.0, 1.0),), 1, 1, b"fLaC...")
    table = to_table([sample], Sample)
    assert table.schema.field("audio").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    assert b"huggingface" in table.schema.metadata
    assert table.column("audio").to_pylist() == [{"bytes": b"fLaC...", "path": "u:asr.flac"}]
    write_records([sample], Sample, tmp_path / "new.parquet")
    assert read_records(tmp_path / "new.parquet", Sample) == [sample]
    old = table.set_column(table.schema.get_field_index("audio"), "audio", pa.array([b"fLaC..."], pa.binary()))
    pq.write_table(old, tmp_path / "old.parquet")
    assert read_records(tmp_path / "old.parquet", Sample) == [sample]
