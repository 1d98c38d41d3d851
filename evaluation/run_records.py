"""Run records: one committed JSON file per finished reproduction run, so results outlive DVC.

`dvc exp show` only knows the experiments of this clone, and per-utterance results live in DVC's
cache, which a `dvc gc` or a fresh clone loses. A record (`experiments/repro/results/runs/<name>.json`,
name `<row>-s<seed>`, `<row>-<preset>-s<seed>` for non-CPU presets, as `experiment.exp_name`) holds
what `jstip report` needs of a run: its row and seed, its full params (flattened, as the run saw
them), its metrics (`<stem>.<dotted key>`, e.g. `eval.eer_by_category.rare.eer`), the compact
per-utterance entity results the utterance bootstrap reads (`report_utterances.per_utterance`), where
it came from (a DVC rev or a directory), the code's git commit and the date.

A record is written from a DVC experiment (`from_dvc_runs`) or from a run made outside DVC
(`from_run_dir`: a params file, `--set` overrides, metrics files, the evaluate report); both refuse
a run whose params match no row of experiment.yaml or whose seed params disagree, so every record
is a row's run. `experiments/repro/record_run.py` is the command line; `jstip report --runs-dir`
reads them; `run_experiments.py` skips a (row, seed) that has one.
"""
from __future__ import annotations

import datetime as _dt
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from manifests.errors import JstipError
from manifests.io import write_text_atomic

from .experiment import Experiment, exp_name, flatten, match_row

RUNS_DIR = "experiments/repro/results/runs"
UTTERANCE_KEYS = ("utt_id", "entities", "entities_missed", "by_category")


def compact_utterances(report: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The per-utterance entity results of an evaluate report, only the keys the bootstrap reads."""
    return [{k: u[k] for k in UTTERANCE_KEYS if k in u} for u in (report or {}).get("utterances", [])]


def _git_commit(cwd: str | Path = ".") -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def build_record(exp: Experiment, baseline: dict[str, Any], params: dict[str, Any], metrics: dict[str, Any],
                 report: dict[str, Any] | None, source: str, commit: str, preset: str = "cpu") -> dict[str, Any]:
    """A record of one run; JstipError when its params match no row or its seed params disagree."""
    seeds = {params.get(k) for k in exp.seed_params}
    if len(seeds) != 1 or None in seeds:
        raise JstipError(f"{source}: seed params {exp.seed_params} disagree or are missing "
                         f"({ {k: params.get(k) for k in exp.seed_params} }); set them all to the run's seed")
    row = match_row(exp, baseline, params, preset)
    if row is None:
        raise JstipError(f"{source}: its params match no row of {exp.path} (preset {preset or 'cpu'}); "
                         "a run must differ from the baseline params only in a row's `set` and the seeds")
    if not metrics:
        raise JstipError(f"{source}: no metrics; a record is of a finished run (give its metrics files)")
    seed = int(seeds.pop())
    return {"name": exp_name(row, seed, preset), "row": row.row_id, "seed": seed, "preset": preset or "cpu",
            "params": params, "metrics": metrics, "utterances": compact_utterances(report), "source": source,
            "commit": commit, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def write_record(record: dict[str, Any], runs_dir: str | Path = RUNS_DIR) -> Path:
    """Write `<runs_dir>/<name>.json` atomically (one utterance per line keeps diffs readable)."""
    head = {k: v for k, v in record.items() if k != "utterances"}
    body = ",\n".join("    " + json.dumps(u, sort_keys=True) for u in record.get("utterances", []))
    text = json.dumps(head, indent=1, sort_keys=True)[:-2] + ',\n "utterances": [\n' + body + "\n ]\n}\n"
    return write_text_atomic(text, Path(runs_dir) / f"{record['name']}.json")


def read_records(runs_dir: str | Path = RUNS_DIR) -> list[tuple[Path, dict[str, Any]]]:
    """Every record of `runs_dir` (none when it does not exist); an unreadable file is an error naming it."""
    out = []
    for path in sorted(Path(runs_dir).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise JstipError(f"run record {path} is not valid JSON ({exc}); rewrite it with record_run.py") from exc
        missing = [k for k in ("name", "row", "seed", "params", "metrics") if k not in record]
        if missing:
            raise JstipError(f"run record {path} lacks {missing}; rewrite it with record_run.py")
        out.append((path, record))
    return out


def recorded_names(runs_dir: str | Path = RUNS_DIR) -> set[str]:
    return {p.stem for p in Path(runs_dir).glob("*.json")}


def _parse_set(item: str) -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise JstipError(f"--set {item!r}: expected key=value, e.g. interleave.recipe=asr_il")
    return key, yaml.safe_load(value)  # as `dvc exp run -S` reads values


def from_run_dir(exp: Experiment, params_file: str | Path, sets: list[str], metrics_files: dict[str, str | Path],
                 evaluate_report: str | Path | None, baseline_file: str | Path, preset: str = "cpu",
                 source: str = "", commit: str = "") -> dict[str, Any]:
    """A record of a run made outside DVC: its params file overlaid with `sets` (`key=value`), its metrics
    files (stem -> path, named like `dvc exp show`'s), its evaluate report, matched against `baseline_file`.
    `commit` (the code that ran) defaults to the HEAD of the git checkout holding the params file, else of
    this code's checkout."""
    for path in [params_file, baseline_file, *metrics_files.values()] + ([evaluate_report] if evaluate_report else []):
        if not Path(path).is_file():
            raise JstipError(f"{path} not found")
    params = flatten(yaml.safe_load(Path(params_file).read_text()) or {})
    params.update(dict(_parse_set(s) for s in sets))
    baseline = flatten(yaml.safe_load(Path(baseline_file).read_text()) or {})
    metrics = {k: v for stem, path in metrics_files.items()
               for k, v in flatten(json.loads(Path(path).read_text()), stem + ".").items()}
    report = json.loads(Path(evaluate_report).read_text()) if evaluate_report else None
    where = source or str(Path(params_file).resolve().parent)
    commit = commit or _git_commit(Path(params_file).resolve().parent) or _git_commit(Path(__file__).parent)
    return build_record(exp, baseline, params, metrics, report, f"dir:{where}", commit, preset)


def from_dvc_runs(exp: Experiment, runs: list, reader, preset: str = "cpu") -> list[dict[str, Any]]:
    """Records of the finished DVC experiments (`report.Run`s after `report.assign`) that match a row;
    `reader(rev)` gives each one's evaluate report (`report_utterances.dvc_reader`)."""
    out = []
    for run in runs:
        if run.row is None or run.seed is None:
            continue
        out.append(build_record(exp, run.baseline, run.params, run.metrics, reader(run.rev) if reader else None,
                                f"dvc:{run.rev}", run.rev, preset))
    return out


def plan_queue(commands: list[list[str]], runs_dir: str | Path, force: bool = False
               ) -> tuple[list[list[str]], list[str]]:
    """Split `dvc exp run --queue --name N` commands into those to queue and the names skipped because
    a record of N exists (none skipped with `force`)."""
    done = set() if force else recorded_names(runs_dir)
    queue, skipped = [], []
    for argv in commands:
        name = argv[argv.index("--name") + 1] if "--name" in argv else ""
        (skipped.append(name) if name in done else queue.append(argv))
    return queue, skipped
