"""The whole flow through DVC and the `jstip` CLI on a tiny synthesized corpus.

Runs the repository's own dvc.yaml with params.yaml scaled down, then checks what a user
checks: metrics for every stage, the four sample kinds in the shards, a second `dvc repro`
that runs nothing, and an interleave parameter change that reruns interleave onwards only.
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
CODE = ["manifests", "aligners", "interleave", "pipeline", "trainer"]
TINY = {
    "demo_corpus": {"n_utterances": 12, "n_domain_texts": 20},
    "prepare": {"test_fraction": 0.25},
    "align": {"shard_size": 4},
    "interleave": {"shard_size": 8, "text_ratio": 0.5},
    "train": {"steps": 20, "batch_size": 4, "warmup_steps": 4, "vocab_size": 300, "lm_hidden": 64,
              "lm_layers": 1, "lm_heads": 2, "lm_intermediate": 128, "enc_dim": 64, "enc_layers": 1,
              "enc_heads": 2, "proj_hidden": 128, "progress": False},
    "evaluate": {"max_new_tokens": 12, "progress": False},
}


def _dvc(workdir: Path, *args: str) -> str:
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
           "PYTHONPATH": str(workdir), "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=workdir, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.mark.slow
def test_dvc_repro_runs_the_whole_flow_and_reruns_only_what_changed(tmp_path):
    if shutil.which("jstip", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("the jstip command is not installed in this environment (pip install -e .)")
    for name in CODE:
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY.items():
        params.setdefault(section, {}).update(values)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    _dvc(tmp_path, "init", "--no-scm", "-q")

    first = _dvc(tmp_path, "repro")
    for stage in ("demo_corpus", "prepare", "align", "interleave", "train", "evaluate"):
        assert f"Running stage '{stage}'" in first
    metrics = {m: json.loads((tmp_path / "metrics" / f"{m}.json").read_text()) for m in ("align", "interleave", "train", "eval")}
    assert metrics["align"]["aligned"] >= 10 and "boundary_error_mean_ms" in metrics["align"]
    assert metrics["train"]["steps"] == 20
    assert 0.0 <= metrics["eval"]["wer"]
    kinds = pl.read_parquet(tmp_path / "data" / "samples" / "*.parquet")["kind"].unique().to_list()
    assert sorted(kinds) == ["asr", "interleave_segment", "interleave_word", "text"]
    assert (tmp_path / "plots" / "train_loss.csv").read_text().startswith("step,loss")

    assert "Running stage" not in _dvc(tmp_path, "repro")

    params["interleave"]["seed"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    third = _dvc(tmp_path, "repro")
    assert "Running stage 'interleave'" in third and "Running stage 'train'" in third
    for stage in ("demo_corpus", "prepare", "align"):
        assert f"Running stage '{stage}'" not in third
