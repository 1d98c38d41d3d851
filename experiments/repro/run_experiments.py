"""Queue and run the reproduction's DVC experiments: every row of the chosen tables x every seed.

    python run_experiments.py --dry-run                      # print the commands (Table I, seeds 0 1 2, CPU preset)
    python run_experiments.py --run --jobs 2                 # shared stages, then the runs, two at a time
    python run_experiments.py --tables table3,ablations --run
    python run_experiments.py --rows asr_text,asr_text_il --seeds 1,2 --run --jobs 2   # a part of the queue
    python run_experiments.py --preset gpu --run --jobs 1

Run from this directory (`experiments/repro`). What it does, in order:
1. runs the shared stages in this workspace with every core (`dvc repro` of the world corpus, prepare,
   align, the stage-0 LM and the pretrained speech encoder): DVC's run-cache then gives them to every
   queued run. They run here, not in a queued run's temporary copy, because the manifests store
   absolute audio paths, which must stay valid after that copy is removed;
2. queues every run (`dvc exp run --queue --name <row>-s<seed> -S ...`) and runs them all
   (`dvc exp run --run-all --jobs N`); with N > 1 each run gets one torch thread (OMP_NUM_THREADS=1)
   so that N runs share the cores instead of fighting over them.
A (row, seed) with a run record (`results/runs/<name>.json`, `record_run.py`) is finished: it is not
queued again unless --force, and the skipped names are printed.
Afterwards `record_run.py dvc` records the finished runs and `jstip report` (see README.md) writes the
tables and plots from the records and `dvc exp show`.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from evaluation.experiment import load, queue_commands, shell  # noqa: E402
from evaluation.run_records import plan_queue  # noqa: E402

# the last shared stages of dvc.yaml (`dvc repro` runs everything upstream of them too)
SHARED = ["prepare_test", "align", "align_tts", "pretrain_lm", "pretrain_encoder_eval", "pretrain_encoder_probe"]


def _run(argv: list[str], env: dict[str, str], dry: bool) -> None:
    print("+ " + shell(argv), flush=True)
    if not dry:
        subprocess.run(argv, cwd=HERE, env=env, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", default=str(HERE / "experiment.yaml"))
    parser.add_argument("--tables", default="table1", help="comma-separated table ids of experiment.yaml")
    parser.add_argument("--rows", default="", help="comma-separated row ids of those tables (default: every row): "
                                                  "the queue run in parts")
    parser.add_argument("--seeds", default="", help="comma-separated seeds (default: the file's)")
    parser.add_argument("--preset", default="cpu", help="cpu (params.yaml) or a preset of experiment.yaml")
    parser.add_argument("--jobs", type=int, default=2, help="experiments run at the same time")
    parser.add_argument("--include-pending", action="store_true", help="also queue rows marked pending")
    parser.add_argument("--runs-dir", default=str(HERE / "results" / "runs"), help="run records: these are finished")
    parser.add_argument("--force", action="store_true", help="queue recorded (finished) runs again too")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true", help="print the commands only")
    mode.add_argument("--queue-only", action="store_true", help="queue, run nothing")
    mode.add_argument("--run", action="store_true", help="queue and run")
    args = parser.parse_args(argv)

    exp = load(args.experiment)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()] or exp.seeds
    commands = queue_commands(exp, [t for t in args.tables.split(",") if t], seeds, args.preset,
                              include_pending=args.include_pending,
                              only_rows=[r for r in args.rows.split(",") if r.strip()] or None)
    if not commands:
        print("nothing to queue", file=sys.stderr)
        return 1
    commands, skipped = plan_queue(commands, args.runs_dir, args.force)
    if skipped:
        print(f"skipped {len(skipped)} recorded runs (--force queues them): {' '.join(skipped)}", file=sys.stderr)
    if not commands:
        print("every planned run is recorded: nothing to queue", file=sys.stderr)
        return 0
    env = dict(os.environ)  # the shared stages: every core is theirs
    parallel = dict(env)
    if args.jobs > 1:
        parallel.setdefault("OMP_NUM_THREADS", "1")
    dry = args.dry_run
    if args.run or dry:
        overrides = exp.preset(args.preset)
        if overrides:  # the preset changes shared params too: a workspace experiment applies them here
            sets = [a for key, value in overrides.items() for a in ("--set-param", f"{key}={value}")]
            _run(["dvc", "exp", "run", "--name", f"shared-{args.preset}", *sets, *SHARED], env, dry)
        else:
            _run(["dvc", "repro", *SHARED], env, dry)
    for command in commands:
        _run(command, env, dry)
    if args.run or dry:
        _run(["dvc", "exp", "run", "--run-all", "--jobs", str(args.jobs)], parallel, dry)
    print(f"{len(commands)} experiments {'planned' if dry else 'queued'}; then `python record_run.py dvc` here and, from the repository root: "
          f"jstip report --preset {args.preset}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
