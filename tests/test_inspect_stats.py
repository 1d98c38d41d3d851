"""`jstip inspect` and `jstip stats` on shards the interleave stage wrote."""
import pytest

from pipeline.cli import main
from pipeline.stage_interleave import InterleaveConfig, run
from tests.interleave_corpus import make_corpus
from tests.test_interleave_stage import spoken_module  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def shards(tmp_path_factory, spoken_module):  # noqa: F811
    root = tmp_path_factory.mktemp("inspect")
    paths = make_corpus(root, spoken_module)
    run(InterleaveConfig(**paths, out=str(root / "samples"), metrics=str(root / "m.json"), report=str(root / "r.json"),
                         plot=str(root / "p_{segmenter}.csv"), figure="", recipe="asr:1,interleave_word:1,text:1", mix_by="samples",
                         embed_audio=True))
    return root, paths


def test_inspect_prints_the_model_view_and_draws_a_png(shards, capsys):
    root, paths = shards
    png = root / "u0.png"
    assert main(["inspect", "u0:interleave_word:a1", "--samples", str(root / "samples"),
                 "--alignments", paths["alignments"], "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert out.startswith('<s> [speech ') and "frames @40ms" in out and '"The"]' in out
    assert " patient [speech " in out and out.splitlines()[0].endswith("day. </s>")  # the paper's word-level format
    assert "(2 special tokens)" in out and "8 aligned words" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_inspect_a_text_sample_and_an_unknown_id(shards, capsys):
    root, _ = shards
    text_id = next(line for line in [f"t{i}:text" for i in range(10)]
                   if main(["inspect", line, "--samples", str(root / "samples"), "--png", str(root / "t.png")]) == 0)
    out = capsys.readouterr().out
    assert out.startswith("<s> ") and out.splitlines()[0].endswith(". </s>") and text_id.endswith(":text")
    assert main(["inspect", "u0:nope", "--samples", str(root / "samples")]) == 2
    assert "samples of the same source: u0:asr, u0:interleave_word:a1" in capsys.readouterr().err


def test_stats_prints_a_table_per_kind(shards, capsys):
    root, paths = shards
    assert main(["stats", str(root / "samples")]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:]}
    assert set(rows) == {"asr", "interleave_word", "text", "TOTAL"} and rows["asr"][1] == "4"  # not the failed alignment
    assert main(["stats", paths["alignments"]]) == 0
    assert "no alignment found" in capsys.readouterr().out
