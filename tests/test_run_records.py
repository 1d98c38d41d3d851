"""Run records: written from run directories made in the test, read back by `jstip report`, and
used by run_experiments.py's queue plan to skip finished runs."""
from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from evaluation.experiment import load, queue_commands
from evaluation.run_records import from_run_dir, plan_queue, read_records, write_record
from manifests.errors import JstipError
from pipeline.cli import main
from tests.test_repro_report import EXPERIMENT, REPO, _entry, _evaluate_report, _metrics, _seeds, exp_show

sys.path.insert(0, str(REPO / "experiments" / "repro"))
import record_run  # noqa: E402
import run_experiments  # noqa: E402

BASELINE = REPO / "experiments" / "repro" / "params.yaml"
EER_RARE = {"asr_only": [0.40, 0.44, 0.42], "asr_il": [0.30, 0.35, 0.31]}


def run_dir(root: Path, recipe: str, seed: int, eer_rare: float, rare_misses: int) -> Path:
    """A finished run made outside DVC: params.yaml as the baseline's, metrics and an evaluate report."""
    d = root / f"{recipe}-{seed}"
    (d / "metrics").mkdir(parents=True)
    (d / "reports").mkdir()
    shutil.copy(BASELINE, d / "params.yaml")
    m = _metrics(eer_rare)
    for stem in ("eval", "probe"):
        (d / "metrics" / f"{stem}.json").write_text(json.dumps(m[stem]))
    report = _evaluate_report({"rare": {i: 1 for i in range(rare_misses)}, "common": {}})
    for u in report["utterances"]:
        u["hypothesis"] = "words the record leaves out"
    (d / "reports" / "evaluate.json").write_text(json.dumps(report))
    return d


def _sets(recipe: str, seed: int) -> list[str]:
    return [f"interleave.recipe={recipe}", f"interleave.seed={seed}", f"train.seed={seed}"]


def _record(exp, d: Path, recipe: str, seed: int) -> dict:
    return from_run_dir(exp, d / "params.yaml", _sets(recipe, seed),
                        {s: d / "metrics" / f"{s}.json" for s in ("eval", "probe")},
                        d / "reports" / "evaluate.json", BASELINE)


def test_records_from_run_dirs_make_the_report(tmp_path, capsys):
    exp = load(EXPERIMENT)
    runs = tmp_path / "runs"
    for recipe, values in EER_RARE.items():
        for seed, v in enumerate(values):
            d = run_dir(tmp_path / "made", recipe, seed, v, 20 if recipe == "asr_only" else 10)
            if (recipe, seed) == ("asr_il", 2):  # the command line, as a user runs it
                assert record_run.main(["--runs-dir", str(runs), "dir", "--params", str(d / "params.yaml"),
                                        *[a for s in _sets(recipe, seed) for a in ("--set", s)],
                                        "--metrics", str(d / "metrics" / "eval.json"),
                                        "--metrics", f"probe={d / 'metrics' / 'probe.json'}",
                                        "--evaluate-report", str(d / "reports" / "evaluate.json")]) == 0
            else:
                write_record(_record(exp, d, recipe, seed), runs)
    records = dict((p.name, r) for p, r in read_records(runs))
    assert sorted(records) == sorted(f"{r}-s{s}.json" for r in EER_RARE for s in range(3))
    rec = records["asr_il-s2.json"]
    assert (rec["row"], rec["seed"], rec["preset"]) == ("asr_il", 2, "cpu")
    assert rec["metrics"]["eval.eer_by_category.rare.eer"] == 0.31 and "probe.mcq_t2t" in rec["metrics"]
    assert rec["params"]["interleave.recipe"] == "asr_il" and rec["params"]["train.seed"] == 2
    assert rec["source"].startswith("dir:") and rec["date"] and len(rec["commit"]) == 40  # this checkout's
    assert len(rec["utterances"]) == 40 and set(rec["utterances"][0]) == {"utt_id", "entities", "entities_missed",
                                                                          "by_category"}

    assert "wrote" in capsys.readouterr().out
    out = tmp_path / "report"
    assert main(["report", "--experiment", str(EXPERIMENT), "--runs-dir", str(runs), "--records-only",
                 "--out", str(out), "--no-plots"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["in_tables"] == 6 and summary["records"] == 6
    md = (out / "tables.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| ASR-only |"))
    assert f"{100 * np.mean(EER_RARE['asr_only']):.1f} ±" in line and "| 3/3 |" in line
    table1_missing = next(x for x in md.splitlines() if x.startswith("missing:"))
    assert "asr_text s0, s1, s2" in table1_missing and "asr_only" not in table1_missing
    assert "asr_il" not in table1_missing
    claims = {(c["a"], c["b"], c["metric"]): c for c in csv.DictReader((out / "claims.csv").open())}
    rare = claims[("asr_only", "asr_il", "eer_rare")]
    assert float(rare["utt_diff"]) == pytest.approx(100 * (10 - 20) / 40)  # from the records' utterances
    assert rare["utt_runs_a"] == "3" and rare["utt_runs_b"] == "3"


def test_a_run_in_records_and_dvc_counts_once(tmp_path, capsys):
    exp = load(EXPERIMENT)
    runs = tmp_path / "runs"
    d = run_dir(tmp_path, "asr_only", 0, 0.9, 0)
    write_record(_record(exp, d, "asr_only", 0), runs)
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(exp_show()))  # asr_only s0-s2 (0.40, 0.44, 0.42) and asr_il in DVC
    assert main(["report", "--experiment", str(EXPERIMENT), "--runs-dir", str(runs), "--exp-json", str(saved),
                 "--out", str(tmp_path / "r"), "--no-plots", "--no-utterance-bootstrap"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dvc_duplicates"] == 1 and summary["in_tables"] == 7
    rows = list(csv.DictReader((tmp_path / "r" / "runs.csv").open()))
    s0 = [r for r in rows if r["row"] == "asr_only" and r["seed"] == "0"]
    assert len(s0) == 1 and float(s0[0]["eer_rare"]) == pytest.approx(90)  # the record wins
    md = (tmp_path / "r" / "tables.md").read_text()
    assert f"{(90 + 44 + 42) / 3:.1f} ±" in next(x for x in md.splitlines() if x.startswith("| ASR-only |"))


def test_records_refuse_unknown_params_and_disagreeing_seeds(tmp_path, capsys):
    exp = load(EXPERIMENT)
    d = run_dir(tmp_path, "asr_only", 0, 0.4, 0)
    files = {s: d / "metrics" / f"{s}.json" for s in ("eval", "probe")}
    with pytest.raises(JstipError, match="match no row"):
        from_run_dir(exp, d / "params.yaml", _sets("asr_only", 0) + ["train.lr=0.1"], files, None, BASELINE)
    with pytest.raises(JstipError, match="disagree"):
        from_run_dir(exp, d / "params.yaml", ["interleave.recipe=asr_only", "interleave.seed=0", "train.seed=1"],
                     files, None, BASELINE)
    runs = tmp_path / "runs"
    assert record_run.main(["--runs-dir", str(runs), "dir", "--params", str(d / "params.yaml"),
                            "--set", "interleave.recipe=nope", "--metrics", str(files["eval"])]) == 2
    assert "match no row" in capsys.readouterr().err and not runs.exists()
    # a record of a row experiment.yaml no longer has stays out of the tables, listed with why
    rec = _record(exp, d, "asr_only", 0)
    write_record({**rec, "row": "gone_row", "name": "gone_row-s0"}, runs)
    assert main(["report", "--experiment", str(EXPERIMENT), "--runs-dir", str(runs), "--records-only",
                 "--out", str(tmp_path / "r"), "--no-plots"]) == 0
    assert "gone_row-s0" in (tmp_path / "r" / "tables.md").read_text()
    assert json.loads(capsys.readouterr().out)["in_tables"] == 0


def test_queue_plan_skips_recorded_runs_unless_forced(tmp_path, capsys):
    exp = load(EXPERIMENT)
    runs = tmp_path / "runs"
    write_record(_record(exp, run_dir(tmp_path, "asr_il", 1, 0.3, 0), "asr_il", 1), runs)
    commands = queue_commands(exp, ["table1"], [0, 1, 2])
    queue, skipped = plan_queue(commands, runs)
    assert skipped == ["asr_il-s1"] and len(queue) == len(commands) - 1
    assert plan_queue(commands, runs, force=True) == (commands, [])

    assert run_experiments.main(["--dry-run", "--seeds", "1", "--runs-dir", str(runs)]) == 0
    out, err = capsys.readouterr()
    assert "skipped 1 recorded runs" in err and "asr_il-s1" in err
    assert "--name asr_il-s1" not in out and "--name asr_only-s1" in out
    assert run_experiments.main(["--dry-run", "--seeds", "1", "--runs-dir", str(runs), "--force"]) == 0
    assert "--name asr_il-s1" in capsys.readouterr().out


def test_records_from_dvc_experiments(tmp_path, capsys):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(exp_show()))
    runs = tmp_path / "runs"
    assert record_run.main(["--runs-dir", str(runs), "dvc", "--exp-json", str(saved), "--no-utterances"]) == 0
    err = capsys.readouterr().err
    assert "odd-s0" in err and "params match no row" in err and "asr_text-s1 (queued" in err  # said, not dropped
    records = {r["name"]: r for _, r in read_records(runs)}
    assert sorted(records) == sorted([f"asr_only-s{s}" for s in range(3)] + [f"asr_il-s{s}" for s in range(3)]
                                     + ["segment_il_sil-s0"])  # named by row, not by the experiment's name
    assert records["asr_il-s1"]["source"].startswith("dvc:") and records["asr_il-s1"]["metrics"]["eval.wer"] == 0.15
    assert record_run.main(["--runs-dir", str(runs), "dvc", "--exp-json", str(saved), "--no-utterances"]) == 0
    assert "0 of 7 records written" in capsys.readouterr().err  # existing records are kept without --force
