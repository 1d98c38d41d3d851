"""Write run records (`results/runs/<row>-s<seed>.json`) of finished reproduction runs, to commit.

    python record_run.py dvc                                  # every finished DVC experiment of this clone
    python record_run.py dvc --exp-json exp.json              # from a saved `dvc exp show --json`
    python record_run.py dir --params /tmp/run/params.yaml --set interleave.recipe=asr_il \\
        --set interleave.seed=1 --set train.seed=1 --metrics /tmp/run/metrics/eval.json \\
        --metrics /tmp/run/metrics/probe.json --evaluate-report /tmp/run/reports/evaluate.json

Run from the repository root or anywhere: paths default to this directory's. A record is refused
(exit 2, the reason printed) when its params match no row of experiment.yaml or its seed params
disagree. A script beside run_experiments.py, not a `jstip report` flag: writing records is this
reproduction's bookkeeping (it needs DVC's cache and the run's files), while `jstip report` only reads.
An existing record is replaced only with --force (it may be the only copy of a run).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from evaluation.experiment import load  # noqa: E402
from evaluation.report import read_exp_show, assign, parse_exp_show  # noqa: E402
from evaluation.report_utterances import dvc_reader  # noqa: E402
from evaluation.run_records import from_dvc_runs, from_run_dir, write_record  # noqa: E402
from manifests.errors import JstipError  # noqa: E402


def _metrics_files(items: list[str]) -> dict[str, str]:
    """`NAME=PATH` or `PATH` (named by its stem, as `dvc exp show` names metrics files)."""
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        out[name if sep else Path(item).stem] = path if sep else item
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", default=str(HERE / "experiment.yaml"))
    parser.add_argument("--preset", default="cpu", help="the preset the run(s) used (cpu, gpu)")
    parser.add_argument("--runs-dir", default=str(HERE / "results" / "runs"))
    parser.add_argument("--force", action="store_true", help="replace existing records")
    sub = parser.add_subparsers(dest="source", required=True)
    dvc = sub.add_parser("dvc", help="every finished DVC experiment that matches a row")
    dvc.add_argument("--exp-json", default="", help="saved `dvc exp show --json` ('-' stdin); default: run it")
    dvc.add_argument("--no-utterances", action="store_true", help="skip reading reports/evaluate.json from DVC's cache")
    run_dir = sub.add_parser("dir", help="one run made outside DVC")
    run_dir.add_argument("--params", required=True, help="the params.yaml the run read")
    run_dir.add_argument("--set", action="append", default=[], help="key=value the run overrode (as dvc -S)")
    run_dir.add_argument("--metrics", action="append", default=[], required=True,
                         help="a metrics JSON, NAME=PATH or PATH (name: its stem, e.g. eval, probe)")
    run_dir.add_argument("--evaluate-report", default="", help="the run's reports/evaluate.json")
    run_dir.add_argument("--baseline", default=str(HERE / "params.yaml"),
                         help="the params a row's `set` is applied to (default: this directory's params.yaml)")
    run_dir.add_argument("--source", default="", help="where the run was made and how, kept in the record (default: "
                                                      "the directory of --params)")
    run_dir.add_argument("--commit", default="", help="git commit of the code that ran (default: the HEAD of the "
                                                      "checkout holding --params, else of this one)")
    args = parser.parse_args(argv)
    try:
        exp = load(args.experiment)
        if args.source == "dvc":
            runs = parse_exp_show(read_exp_show(args.exp_json), exp)
            assign(exp, runs, args.preset)
            reader = None if args.no_utterances else dvc_reader(str(HERE.parents[1]), str(
                Path(exp.params_file).parent / "reports" / "evaluate.json"))
            records = from_dvc_runs(exp, runs, reader, args.preset)
            for run in runs:
                if run.row is None or run.seed is None:
                    print(f"not recorded: {run.name} ({run.state}{', no metrics' if not run.metrics else ''}"
                          f"{', params match no row' if run.metrics and run.state in ('success', 'done') else ''})",
                          file=sys.stderr)
        else:
            records = [from_run_dir(exp, args.params, args.set, _metrics_files(args.metrics),
                                    args.evaluate_report or None, args.baseline, args.preset,
                                    source=args.source, commit=args.commit)]
    except (JstipError, json.JSONDecodeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    written = 0
    for record in records:
        target = Path(args.runs_dir) / f"{record['name']}.json"
        if target.exists() and not args.force:
            print(f"kept {target} (exists; --force replaces it)", file=sys.stderr)
            continue
        write_record(record, args.runs_dir)
        written += 1
        print(f"wrote {target}: row {record['row']}, seed {record['seed']}, {len(record['utterances'])} utterances")
    print(f"{written} of {len(records)} records written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
