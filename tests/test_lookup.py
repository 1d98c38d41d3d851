"""Lookups by id a row group at a time give what a dict of the whole manifest gives."""
import random

from manifests.io import write_table
from manifests.lookup import ById
from manifests.schema import ALIGN_OK, Alignment, WordSpan, to_table


def alignments(ids, tag):
    return [Alignment(i, tag, ALIGN_OK, "", (WordSpan(f"w{i}", 0.1, 0.2, 1.0),)) for i in ids]


def test_lookup_matches_a_dict_in_any_order_with_later_manifests_winning(tmp_path):
    ids = [f"utt{i:04d}" for i in range(500)]
    write_table(to_table(alignments(ids, "first"), Alignment), tmp_path / "a" / "part-00000.parquet",
                row_group_size=37)
    shuffled = random.Random(0).sample(ids[100:200], 100)  # unsorted: every group spans most ids
    write_table(to_table(alignments(shuffled, "second"), Alignment), tmp_path / "b.parquet", row_group_size=9)
    lookup = ById([str(tmp_path / "a"), str(tmp_path / "missing"), str(tmp_path / "b.parquet")], Alignment, "utt_id",
                  keep=2)
    expected = {a.utt_id: a for a in alignments(ids, "first") + alignments(shuffled, "second")}
    for key in ids + random.Random(1).sample(ids, 500):
        assert lookup.record(key) == expected[key]
        assert len(lookup.loaded) <= 2  # memory: a few row groups, never the manifest
    assert lookup.record("utt9999") is None and lookup.record("") is None
    assert lookup.row("utt0003")["aligner"] == "first" and lookup.row("utt0150")["aligner"] == "second"


def test_a_lookup_of_chosen_columns_reads_only_those(tmp_path):
    write_table(to_table(alignments(["a", "b"], "x"), Alignment), tmp_path / "al.parquet")
    lookup = ById([str(tmp_path / "al.parquet")], Alignment, "utt_id", columns=["utt_id", "status"])
    assert lookup.row("b") == {"utt_id": "b", "status": ALIGN_OK}


def test_a_spilled_map_gives_the_same_answers_on_disk_and_removes_its_file(monkeypatch):
    import os

    from manifests import spilled_map
    from manifests.spilled_map import SpilledMap

    keys = [f"k{i % 700}" for i in random.Random(2).sample(range(2000), 2000)]  # each key ~3 times
    small, big = SpilledMap(limit=50), SpilledMap(limit=10**6)
    for i, key in enumerate(keys):
        assert small.first(key, f"v{i}") == big.first(key, f"v{i}")
    assert small.spilled and not big.spilled and len(small) == len(big) == 700
    path = small.path
    assert os.path.exists(path)
    small.close()
    assert not os.path.exists(path)
    monkeypatch.setattr(spilled_map, "SPILL_KEYS", 1)  # the default limit is read when a map is made
    assert SpilledMap().limit == 1
