"""The scale benchmark's smallest size, scaled down: its generated corpus, the paper's mixed recipe
on it (token balance, formats), and the Lhotse equivalent it is compared with."""
import gzip
import json

import polars as pl
import pytest

from bench.interleave_scale import generate, lhotse_equivalent
from manifests.formats import BOS, EOS, SEGMENT
from manifests.io import file_metadata
from pipeline.stage_interleave import InterleaveConfig, run


@pytest.fixture(scope="module")
def scale(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale")
    info = generate(root, hours=0.3, align_rows=25)
    return root, info


def test_generated_inputs_look_like_aligned_speech(scale):
    root, info = scale
    assert info["utterances"] == 109 and 0.25 < info["hours"] < 0.4
    files = sorted((root / "alignments").glob("part-*.parquet"))
    assert len(files) == 5 and file_metadata(files[1], "utt_rows") == "25:50"
    words = pl.read_parquet(root / "alignments" / "*.parquet").filter(pl.col("status") == "ok").explode("words").unnest("words")
    gaps = (words["start"].shift(-1) - words["end"]).filter((words["utt_id"].shift(-1) == words["utt_id"]))
    assert (gaps == 0).mean() > 0.6 and (gaps >= 0.25).mean() > 0.05  # mostly continuous, some pauses
    utts = pl.read_parquet(root / "utterances.parquet")
    assert utts["text"].str.contains(r"[A-Z].*[,.]").all() and 8 < utts["duration"].mean() < 12


def test_the_paper_mixed_recipe_balances_interleaved_and_asr_tokens(scale, tmp_path):
    root, _ = scale
    metrics = run(InterleaveConfig(utterances=str(root / "utterances.parquet"), alignments=str(root / "alignments"),
                                   texts=str(root / "texts.parquet"), out=str(tmp_path / "s"), recipe="jstip_mixed",
                                   metrics=str(tmp_path / "m.json"), report=str(tmp_path / "r.json"),
                                   plot=str(tmp_path / "p_{segmenter}.csv"), figure="", shard_size=25))
    share = metrics["token_share_by_kind"]
    assert share["asr"] == pytest.approx(share["interleave_word"] + share["interleave_segment"], abs=0.03)
    assert share["interleave_word"] == pytest.approx(share["interleave_segment"], abs=0.03)
    assert metrics["speech_share_unused"] == 0 and metrics["shards"] == 5
    df = pl.read_parquet(tmp_path / "s" / "*.parquet")
    for kind, spans in df.select("kind", "spans").iter_rows():
        seq = [s["text"] if s["modality"] == "token" else s["modality"] for s in spans]
        assert seq[0] == BOS and seq[-1] == EOS
        if kind == "interleave_word":
            assert all(a != b for a, b in zip(seq[1:-1], seq[2:-1])) and seq[-2] == "text"
        if kind == "interleave_segment":
            assert seq[2:-1:2] == [SEGMENT] * len(seq[2:-1:2]) and seq[-2] == "text"


def test_the_lhotse_equivalent_writes_a_cut_per_speech_span(scale, tmp_path):
    root, info = scale
    got = lhotse_equivalent(root, tmp_path / "cuts.jsonl.gz", hours=1.0)
    with gzip.open(tmp_path / "cuts.jsonl.gz", "rt") as f:
        cuts = [json.loads(line) for line in f]
    assert len(cuts) == got["cuts"] > 5 * info["utterances"]
    assert got["hours"] == pytest.approx(info["hours"], rel=0.1)
