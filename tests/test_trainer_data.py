"""Shard reading for training: row groups split by rank, embedded FLAC audio, planned batches with low padding."""
import dataclasses
import io

import numpy as np
import pytest
import soundfile as sf

from manifests.io import write_shards, write_table
from manifests.schema import SPEECH, TEXT, Sample, Span, to_table
from trainer.batching import cut_batches, plan_epoch, planned_from_shards
from trainer.data import Collator
from trainer.features import FrameSpec
from trainer.shards import read_metadata, row_groups, split_for_rank
from trainer.tokenizer import build_tokenizer

SR = 16000


def flac(seconds: float, freq: float) -> bytes:
    t = np.arange(int(seconds * SR)) / SR
    buf = io.BytesIO()
    sf.write(buf, (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR, format="FLAC")
    return buf.getvalue()


def samples(n: int) -> list[Sample]:
    return [Sample(f"s{i}", "asr", f"u{i}", "/nowhere/u.wav", 5.0, 0.5 + 0.05 * i,
                   (Span(SPEECH, "one two", 0.0, 0.5), Span(TEXT, "one two")), 2, 2, flac(0.5 + 0.05 * i, 300 + 50 * i))
            for i in range(n)]


def test_row_groups_are_dealt_to_ranks_and_rows_when_groups_are_few(tmp_path):
    write_table(to_table(samples(10), Sample), tmp_path / "one/part-00000.parquet", row_group_size=3)
    groups = row_groups(tmp_path / "one")
    assert [g.rows for g in groups] == [3, 3, 3, 1]
    ranks = [split_for_rank(groups, r, 2) for r in range(2)]
    ids = [[s.sample_id for g in rk for s in read_metadata(g)] for rk in ranks]
    assert ids == [["s0", "s1", "s2", "s6", "s7", "s8"], ["s3", "s4", "s5", "s9"]]
    few = split_for_rank(groups[:1], 1, 2)  # one row group, two ranks: rows alternate
    assert [s.sample_id for g in few for s in read_metadata(g)] == ["s1"]
    assert all(s.audio is None for g in groups for s in read_metadata(g))  # metadata only


def test_embedded_flac_is_read_from_the_shard_not_the_path(tmp_path):
    write_shards(samples(4), Sample, tmp_path / "shards", shard_size=2)
    tok = build_tokenizer(["one two"] * 5, vocab_size=60)
    spec = FrameSpec()
    data, too_long = planned_from_shards(str(tmp_path / "shards"), tok, Collator(tok, spec), spec, batch_size=2, pool=2)
    assert too_long == {} and len(data.plan(0)) == 2
    batch = data[(0, 0)]
    assert not batch.get("empty") and batch["skipped"] == {} and batch["mel"].shape[0] == 2
    assert batch["cursor"] == (0, 1) and data[(0, 1)]["cursor"] == (1, 0)
    # the same samples without bytes point at a missing file: skipped with the reason, not a crash
    bare = [dataclasses.replace(s, audio=None) for s in samples(2)]
    write_shards(bare, Sample, tmp_path / "bare", shard_size=2)
    data, _ = planned_from_shards(str(tmp_path / "bare"), tok, Collator(tok, spec), spec, batch_size=2)
    out = data[(0, 0)]
    assert out["empty"] and set(out["skipped"]) == {"s0", "s1"}
    assert all(r.startswith("audio unreadable") for r in out["skipped"].values())


def test_plans_are_deterministic_cover_every_sample_and_keep_padding_low():
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(10, 200, 2000)]
    groups = [list(range(i, i + 100)) for i in range(0, 2000, 100)]
    plan = plan_epoch(groups, lengths, 16, 0, 32, seed=1, epoch=0)
    assert plan == plan_epoch(groups, lengths, 16, 0, 32, seed=1, epoch=0) != plan_epoch(groups, lengths, 16, 0, 32, 1, 1)
    assert sorted(i for b in plan for i in b) == list(range(2000))

    def padding(p):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in p) / \
            sum(max(lengths[i] for i in b) * len(b) for b in p)

    assert padding(plan) < 0.1 < padding(plan_epoch(groups, lengths, 16, 0, 1, 1, 0))  # unsorted: far more
    by_tokens = plan_epoch(groups, lengths, 0, 2048, 32, seed=1, epoch=0)
    assert all(max(lengths[i] for i in b) * len(b) <= 2048 or len(b) == 1 for b in by_tokens)
    assert padding(by_tokens) < 0.05

    # jitter: when one pool holds every sample, an exact sort gives the same batches every epoch;
    # jittered lengths vary them, padding stays modest and the plan stays reproducible
    distinct = [int(x) for x in rng.permutation(np.arange(1000, 1400))]
    one_pool = [list(range(400))]
    exact = [{frozenset(b) for b in plan_epoch(one_pool, distinct, 16, 0, 32, 1, e)} for e in (0, 1)]
    varied = [{frozenset(b) for b in plan_epoch(one_pool, distinct, 16, 0, 32, 1, e, jitter=0.1)} for e in (0, 1)]
    assert exact[0] == exact[1] and len(varied[0] & varied[1]) <= 2
    jittered = plan_epoch(groups, lengths, 16, 0, 32, 1, 0, jitter=0.1)
    assert jittered == plan_epoch(groups, lengths, 16, 0, 32, 1, 0, jitter=0.1) != plan
    assert padding(plan) < padding(jittered) < 0.15


def test_token_budget_cut_respects_budget_and_padding_cap():
    lengths = [10, 10, 11, 50, 52, 400]
    assert cut_batches(range(6), lengths, 0, 120) == [[0, 1, 2], [3, 4], [5]]
    with pytest.raises(Exception):
        planned_from_shards("/does/not/exist", None, None, FrameSpec())
