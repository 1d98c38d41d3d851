"""Shard reading for training: row groups per rank, the columnar scan, embedded FLAC audio, deterministic
plans, packing into rows with almost no padding, worker streams and their cursors."""
import dataclasses
from collections import Counter

import numpy as np
import pytest

from manifests.errors import JstipError
from manifests.io import write_shards, write_table
from manifests.schema import SPEECH, TEXT, Sample, Span, to_table
from tests.trainer_samples import asr, flac, text, tone
from trainer.batching import Batching, Stage, cut_batches, data_from_samples, data_from_shards, pack_rows
from trainer.features import FrameSpec
from trainer.render import rendered_lengths
from trainer.shards import MemorySource, read_metadata, row_groups, scan, split_for_rank
from trainer.tokenizer import TokenIds, build_tokenizer

SPEC = FrameSpec()


def samples(n: int) -> list[Sample]:
    out = []
    for i in range(n):
        dur = 0.5 + 0.05 * i
        out.append(asr(f"s{i}", "/nowhere/u.wav", dur, "one two", flac(tone(dur, 300 + 50 * i))))
    return out


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(["one two three", "alpha beta gamma delta"] * 5, vocab_size=150)


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


def test_scan_counts_kinds_estimates_lengths_and_refuses_unformatted_shards(tok):
    mixed = samples(6) + [text("t0", ["alpha beta gamma", "one two"])]
    stats = scan(MemorySource(mixed, group_size=4), SPEC, chars_per_token=4.0)
    assert stats.rows == 7 and stats.rows_by_kind == {"asr": 6, "text": 1}
    exact = rendered_lengths(mixed, tok, TokenIds(tok), SPEC)
    assert stats.tokens == pytest.approx(sum(exact), rel=0.3)  # speech exact, text from characters
    old = Sample("old:asr", "asr", "old", "", 0.0, 1.0, (Span(SPEECH, "x", 0.0, 1.0), Span(TEXT, "x")), 1, 1)
    with pytest.raises(JstipError, match="old:asr.*rerun jstip interleave"):
        scan(MemorySource(mixed + [old], group_size=4), SPEC)


def test_embedded_flac_is_read_from_the_shard_not_the_path(tmp_path, tok):
    write_shards(samples(4), Sample, tmp_path / "shards", shard_size=2)
    data = data_from_shards(str(tmp_path / "shards"), tok, SPEC, Batching(batching="padded", batch_size=2, pool=2))
    batches = [b for _, b in zip(range(2), data.stream(Stage(), 0))]
    assert all(not b.get("empty") and b["skipped"] == {} and b["mel"].shape[0] == 2 for b in batches)
    assert batches[0]["cursor"] == (0, 0, 1) and batches[1]["cursor"] == (0, 1, 0)
    # the same samples without bytes point at a missing file: skipped with the reason, not a crash
    bare = [dataclasses.replace(s, audio=None) for s in samples(2)]
    write_shards(bare, Sample, tmp_path / "bare", shard_size=2)
    data = data_from_shards(str(tmp_path / "bare"), tok, SPEC, Batching(batching="padded", batch_size=2))
    out = next(data.stream(Stage(), 0))
    assert out["empty"] and set(out["skipped"]) == {"s0", "s1"}
    assert all(r.startswith("audio_unreadable: ") for r in out["skipped"].values())


def test_pools_and_plans_are_deterministic_and_cover_every_sample_once(tok):
    rng = np.random.default_rng(0)
    corpus = [text(f"t{i}", [" ".join(["alpha"] * int(rng.integers(1, 40)))]) for i in range(600)]
    for batching in ("padded", "packed"):
        data = data_from_samples(corpus, tok, SPEC, Batching(batching=batching, batch_size=4, context=128, pool=8),
                                 group_size=50)
        pools = data.pools(Stage(), 0)
        rows = sorted((g, r) for p in pools for g, a, b in p for r in range(a, b))
        assert rows == [(g, r) for g in range(12) for r in range(50)] and len(pools) > 1  # every row once
        assert pools != data.pools(Stage(), 1) and pools == data.pools(Stage(), 0)
        seen = []
        for k, groups in enumerate(pools):
            members, planned, skipped = data.plan_pool(Stage(), 0, k, groups)
            assert skipped == {}
            again = data.plan_pool(Stage(), 0, k, groups)[1]
            assert [p.members for p in planned] == [p.members for p in again]
            seen += [members[i].sample_id for p in planned for i in p.members]
        assert sorted(seen) == sorted(s.sample_id for s in corpus)


def test_every_pool_mixes_the_kinds_as_the_data_does_even_when_each_kind_has_its_own_row_groups(tok):
    # interleave writes each kind to its own shards: pools of whole row groups were one kind each
    corpus = [asr(f"a{i}", "/nowhere/u.wav", 0.5, "one two") for i in range(300)]
    corpus += [text(f"t{i}", ["three four"]) for i in range(100)]
    data = data_from_samples(corpus, tok, SPEC, Batching(batching="packed", batch_size=2, context=64, pool=4),
                             group_size=100)
    for epoch in (0, 1):
        pools = data.pools(Stage(), epoch)
        assert len(pools) >= 4
        for pool in pools:
            kinds = Counter(s.kind for g, a, b in pool for s in data.source.read(g, a, b))
            assert kinds["asr"] == pytest.approx(3 * kinds["text"], abs=3)
    only_asr = data.pools(Stage("stage1", ("asr",)), 0)
    assert {data.source.read(g, a, b)[0].kind for p in only_asr for g, a, b in p} == {"asr"}


def test_packing_fills_rows_and_padding_stays_under_two_percent(tok):
    rng = np.random.default_rng(1)
    lengths = [int(x) for x in rng.integers(20, 400, 3000)]
    rows = pack_rows(range(3000), lengths, 1024)
    assert sorted(i for r in rows for i in r) == list(range(3000))
    assert all(sum(lengths[i] for i in r) <= 1024 for r in rows)
    fill = sum(lengths) / (1024 * len(rows))
    assert fill > 0.98
    # padded rows of the same samples (length-sorted, exact) waste far more
    order = sorted(range(3000), key=lambda i: lengths[i])
    padded = cut_batches(order, lengths, 16, 0)
    waste = 1 - sum(lengths) / sum(max(lengths[i] for i in b) * len(b) for b in padded)
    assert waste > 1 - fill


def test_token_budget_cut_respects_budget_and_padding_cap():
    lengths = [10, 10, 11, 50, 52, 400]
    assert cut_batches(range(6), lengths, 0, 120) == [[0, 1, 2], [3, 4], [5]]


def test_samples_longer_than_the_context_are_set_aside_with_the_reason(tok):
    long = text("long", [" ".join(["alpha beta gamma delta"] * 40)])
    data = data_from_samples(samples(3) + [long], tok, SPEC, Batching(batching="packed", batch_size=2, context=64))
    _, planned, skipped = data.plan_pool(Stage(), 0, 0, [(0, 0, 4)])
    assert list(skipped) == ["long"] and skipped["long"].startswith("too_long: ")
    assert sum(len(p.members) for p in planned) == 3


def test_stage_kinds_filter_and_streams_resume_from_their_cursor(tok):
    corpus = samples(8) + [text(f"t{i}", ["one two three"]) for i in range(8)]
    data = data_from_samples(corpus, tok, SPEC, Batching(batching="padded", batch_size=2, pool=1), streams=2,
                             group_size=2)
    assert data.streams == 2
    asr_only = [b for _, b in zip(range(12), data.loader(Stage("stage1", ("asr",))))]
    assert [b["stream"] for b in asr_only] == [0, 1] * 6  # streams take turns, empty pools included
    assert {k for b in asr_only if not b.get("empty") for k in b["kinds"]} == {"asr"}
    full = [b for _, b in zip(range(9), data.loader(Stage()))]
    # resume after 5 batches: each stream from its own cursor, the next one first
    cursors = [full[4]["cursor"], full[3]["cursor"]]
    resumed = [b for _, b in zip(range(4), data.loader(Stage(), cursors, next_stream=1))]
    assert [b["sample_ids"] for b in resumed] == [b["sample_ids"] for b in full[5:9]]


def test_large_row_groups_are_read_in_chunks_with_their_own_audio(tmp_path):
    from trainer.shards import ShardSource

    originals = samples(7)
    write_table(to_table(originals, Sample), tmp_path / "s/part-00000.parquet", row_group_size=5)
    source = ShardSource(tmp_path / "s", chunk_rows=2)
    assert [g.n for g in source.groups] == [2, 2, 1, 2] and len(source.physical) == 2
    read = [(g, row, s) for g in range(len(source.groups)) for row, s in enumerate(source.read(g))]
    assert [s.sample_id for _, _, s in read] == [s.sample_id for s in originals]
    assert all(source.audio(g, row) == originals[int(s.sample_id[1:])].audio for g, row, s in read)
    assert source.kinds() == {"asr": 7}


def test_ctc_targets_as_characters_with_word_boundaries(tok):
    from trainer.data import Collator, SampleDataset, char_ids, char_targets

    ids = char_ids(tok)
    inverse = {v: k for k, v in ids.items()}
    assert "".join(inverse[i] for i in char_targets("Take 5 mg, twice-daily.", ids)) == "take 5 mg twicedaily"
    items = SampleDataset(samples(2), SPEC)
    by_tokens = Collator(tok, SPEC)([items[0], items[1]])
    by_chars = Collator(tok, SPEC, ctc_units="chars")([items[0], items[1]])
    assert "".join(inverse[int(i)] for i in by_chars["ctc_targets"]) == "one two" * 2
    assert by_chars["ctc_target_lens"].tolist() == [7, 7] and by_tokens["ctc_target_lens"].tolist() != [7, 7]
    assert all(torch_equal(by_chars[k], by_tokens[k]) for k in ("input_ids", "labels"))  # only the CTC targets differ
    with pytest.raises(JstipError, match="ctc_units"):
        Collator(tok, SPEC, ctc_units="phones")


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_character_ctc_reads_the_encoders_own_frames_where_letters_outnumber_lm_positions(tok, tmp_path):
    """At 80 ms per LM position (stack 4) speech has fewer positions than letters (~15 letters/s vs
    12.5 positions/s), so CTC over letters is impossible there: the `chars` head reads the encoder's
    20 ms frames instead, and a checkpoint keeps that choice."""
    from trainer.checkpoint import load_checkpoint, save_checkpoint
    from trainer.data import Collator, SampleDataset
    from trainer.model import SpeechLM, SpeechLMConfig

    spec = FrameSpec(stack=4)
    items = SampleDataset(samples(2), spec)  # 0.5 s of "one two": 7 letters, 25 encoder frames, 6 positions
    sizes = dict(enc_dim=32, enc_layers=1, enc_heads=2, proj_hidden=64, lm_hidden=48, lm_layers=1, lm_heads=2,
                 lm_intermediate=64, dropout=0.0, max_positions=256, stack=4, ctc_weight=1.0)
    model = SpeechLM(SpeechLMConfig(**sizes, ctc_units="chars"), tok)
    assert model.ctc_head.in_features == 32  # the encoder's width, not the LM's
    out = model(Collator(tok, spec, ctc_units="chars")([items[0], items[1]]))
    assert out.ctc_loss is not None and 0 < float(out.ctc_loss) < float("inf")  # feasible: not zeroed as infinite
    out.loss.backward()
    assert model.encoder.conv[0].weight.grad.abs().sum() > 0
    tokens = SpeechLM(SpeechLMConfig(**sizes), tok)
    assert tokens.ctc_head.in_features == 48  # the default: CTC of tokens on the projected frames
    save_checkpoint(model, tok, tmp_path / "ck")
    loaded, _ = load_checkpoint(tmp_path / "ck")
    assert loaded.cfg.ctc_units == "chars" and loaded.ctc_head.in_features == 32
