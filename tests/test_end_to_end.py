"""The whole flow through DVC and the `jstip` CLI, both ways of working.

In a copy of this repository (the demo): the repository's own dvc.yaml and demo/dvc.yaml with
params.yaml scaled down; metrics for every stage, the four sample kinds, a second `dvc repro`
that runs nothing, an interleave parameter change that reruns interleave onwards only.

In a user's own repository: `jstip init` over a small espeak corpus of the test's own; editing
one transcript reruns prepare and what follows; the demo corpus never runs.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CODE = ["manifests", "corpora", "aligners", "interleave", "trainer", "evaluation", "synthetic", "pipeline"]
TINY = {
    "demo_corpus": {"n_utterances": 12, "n_domain_texts": 20},
    "prepare": {"test_fraction": 0.25},
    "align": {"shard_size": 4},
    "interleave": {"shard_size": 8, "text_ratio": 0.5},
    "train": {"steps": 20, "batch_size": 4, "warmup_steps": 4, "vocab_size": 300, "lm_hidden": 64,
              "lm_layers": 1, "lm_heads": 2, "lm_intermediate": 128, "enc_dim": 64, "enc_layers": 1,
              "enc_heads": 2, "proj_hidden": 128, "context": 256, "progress": False},
    "evaluate": {"max_new_tokens": 12, "progress": False},
    "probe": {"demo_items": 6, "shots": 2, "bootstrap": 100, "progress": False},
}


def _run(workdir: Path, *args: str, module: str = "dvc", code: Path = REPO) -> str:
    """`python -m module args` in `workdir`, with the jstip code of `code` (a copy, or this repository)."""
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
           "PYTHONPATH": str(code), "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=workdir, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{module} {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _need_jstip():
    if shutil.which("jstip", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("the jstip command is not installed in this environment (pip install -e .)")


@pytest.mark.slow
def test_dvc_repro_runs_the_whole_flow_and_reruns_only_what_changed(tmp_path):
    _need_jstip()
    for name in CODE:
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    (tmp_path / "demo").mkdir()
    shutil.copy(REPO / "demo" / "dvc.yaml", tmp_path / "demo" / "dvc.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY.items():
        params.setdefault(section, {}).update(values)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    _run(tmp_path, "init", "--no-scm", "-q", code=tmp_path)

    first = _run(tmp_path, "repro", code=tmp_path)
    for stage in ("demo/dvc.yaml:demo_corpus", "prepare", "align", "interleave", "train", "evaluate", "probe"):
        assert f"Running stage '{stage}'" in first
    metrics = {m: json.loads((tmp_path / "metrics" / f"{m}.json").read_text())
               for m in ("demo_corpus", "prepare", "align", "interleave", "train", "eval", "probe")}
    assert metrics["prepare"]["utterances"] == 12 and metrics["prepare"]["rejected"] == 0
    assert metrics["align"]["aligned_share"] >= 10 / 12 and "boundary_error_mean_ms" in metrics["align"]
    assert metrics["train"]["steps"] == 20 + metrics["train"]["stage1_steps"]
    assert 0.0 <= metrics["eval"]["wer"]
    assert set(metrics["eval"]["eer_by_category"]) <= {"common", "rare"}  # the demo's entity list has categories
    assert "mcq_gap" in metrics["probe"] and "qa_s2t" in metrics["probe"]
    assert json.loads((tmp_path / "reports" / "prepare.json").read_text())["rejected_utterances"] == {}
    kinds = pl.read_parquet(tmp_path / "data" / "samples" / "*.parquet")["kind"].unique().to_list()
    assert sorted(kinds) == ["asr", "interleave_segment", "interleave_word", "text"]
    assert (tmp_path / "plots" / "train_loss.csv").read_text().startswith("step,loss")

    assert "Running stage" not in _run(tmp_path, "repro", code=tmp_path)

    params["interleave"]["seed"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    third = _run(tmp_path, "repro", code=tmp_path)
    assert "Running stage 'interleave'" in third and "Running stage 'train'" in third
    for stage in ("demo_corpus", "prepare", "align"):
        assert f"Running stage '{stage}'" not in third
    _documented_examples_run(tmp_path)


def _documented_examples_run(project: Path) -> None:
    """The demo project's examples of docs/: the polars snippets, the tools on the shards, and the
    DVC experiment commands (a git repository is made first: experiments need one)."""
    from tests.doc_commands import DOCS, argv, blocks, commands

    for doc in DOCS:
        for code in blocks(doc, "python"):
            if "data/" in code:  # snippets over the demo's manifests
                subprocess.run([sys.executable, "-c", code], cwd=project, check=True, capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(project)})
    word_sample = pl.read_parquet(project / "data" / "samples" / "*.parquet").filter(
        pl.col("kind") == "interleave_word")["sample_id"][0]
    tools = [argv(c) for c in commands(REPO / "docs" / "interleave.md") + commands(REPO / "docs" / "pipeline.md")]
    tools = [w for w in tools if w[0] == "jstip" and w[1] in ("inspect", "stats", "export", "interleave")
             and not any("://" in a for a in w)]  # the object-storage examples need a store (tests/test_object_storage.py)
    for words in sorted(tools, key=lambda w: w[1] == "interleave"):  # a recipe of its own rewrites the shards: last
        words = [word_sample if w.startswith("demo-med-") else w for w in words]
        _run(project, *words[1:], module="pipeline.cli", code=project)
    git = ["git", "-c", "user.email=test@example.com", "-c", "user.name=test"]
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    # DVC's cached outputs (with a git repository DVC lists them itself; this project began without one)
    (project / ".gitignore").write_text("/data/\n/checkpoints/\n/reports/\n*.png\n*.jsonl\n*.jsonl.gz\n__pycache__/\n")
    _run(project, "config", "core.no_scm", "false", code=project)
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "the demo project"], cwd=project, check=True)
    for command in commands(REPO / "docs" / "pipeline.md"):
        words = argv(command)
        if words[0] == "dvc" and words[1] in ("metrics", "exp", "plots", "repro"):
            _run(project, *words[1:], code=project)


SENTENCES = ["The nurse checked the chart.", "Take two tablets after dinner.", "The scan showed no fracture.",
             "Please repeat the dose tomorrow.", "He walked to the station."]


@pytest.mark.slow
def test_your_own_repository_tracks_your_corpus(tmp_path, spoken):
    _need_jstip()
    from manifests.audio import write_audio

    corpus = tmp_path / "proj" / "corpus" / "spk"
    for i, sentence in enumerate(SENTENCES):
        audio, _ = spoken(sentence, voice="en-us" if i % 2 else "en-us+f3")
        write_audio(audio, corpus / f"utt{i}.wav", 16000)
        (corpus / f"utt{i}.lab").write_text(sentence + "\n")
    proj = tmp_path / "proj"
    _run(tmp_path, "init", str(proj), "--corpus", str(proj / "corpus"), module="pipeline.cli")
    _run(proj, "init", "--no-scm", "-q")
    first = _run(proj, "repro", "align")
    assert "Running stage 'prepare'" in first and "Running stage 'align'" in first and "demo" not in first
    utterances = pl.read_parquet(proj / "data" / "utterances.parquet")
    assert utterances.height == 5 and all(os.path.isabs(p) for p in utterances["audio_path"])

    (corpus / "utt3.lab").write_text("Please repeat the dose today.\n")
    second = _run(proj, "repro", "align")
    assert "Running stage 'prepare'" in second and "Running stage 'align'" in second
    edited = pl.read_parquet(proj / "data" / "utterances.parquet").filter(pl.col("utt_id") == "utt3")
    assert edited["norm_text"].to_list() == ["please repeat the dose today"]
    assert "Running stage" not in _run(proj, "repro", "align")

    elsewhere = tmp_path / "elsewhere"  # every stage works from any directory: paths are absolute
    elsewhere.mkdir()
    _run(elsewhere, "align", "--params", "", "--utterances", str(proj / "data" / "utterances.parquet"),
         "--out", str(elsewhere / "alignments"), "--metrics", str(elsewhere / "align.json"), module="pipeline.cli")
    assert json.loads((elsewhere / "align.json").read_text())["aligned_share"] == 1.0
