"""Queue and run the reproduction's DVC experiments: every row of the chosen tables x every seed.

    python run_experiments.py --dry-run                      # print the commands (Table I, seeds 0 1 2, CPU preset)
    python run_experiments.py --run --jobs 2                 # queue them and run them, two at a time
    python run_experiments.py --tables table3,ablations --run
    python run_experiments.py --preset gpu --run --jobs 1

Run from this directory (`experiments/repro`). What it does, in order:
1. queues the first run alone and runs it with every core: that run also computes the shared stages
   (world corpus, prepare, align; phase 2: the stage-0 LM and encoder), which DVC's run-cache then
   gives every later run;
2. queues the other runs (`dvc exp run --queue --name <row>-s<seed> -S ...`) and runs them all
   (`dvc exp run --run-all --jobs N`); with N > 1 each run gets one torch thread (OMP_NUM_THREADS=1)
   so that N runs share the cores instead of fighting over them.
Afterwards `jstip report` (see README.md) writes the tables and plots from `dvc exp show`.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from pipeline.exp_config import load, queue_commands, shell  # noqa: E402


def _run(argv: list[str], env: dict[str, str], dry: bool) -> None:
    print("+ " + shell(argv), flush=True)
    if not dry:
        subprocess.run(argv, cwd=HERE, env=env, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", default=str(HERE / "experiment.yaml"))
    parser.add_argument("--tables", default="table1", help="comma-separated table ids of experiment.yaml")
    parser.add_argument("--seeds", default="", help="comma-separated seeds (default: the file's)")
    parser.add_argument("--preset", default="cpu", help="cpu (params.yaml) or a preset of experiment.yaml")
    parser.add_argument("--jobs", type=int, default=2, help="experiments run at the same time")
    parser.add_argument("--include-pending", action="store_true", help="also queue rows marked pending")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true", help="print the commands only")
    mode.add_argument("--queue-only", action="store_true", help="queue, run nothing")
    mode.add_argument("--run", action="store_true", help="queue and run")
    args = parser.parse_args(argv)

    exp = load(args.experiment)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()] or exp.seeds
    commands = queue_commands(exp, [t for t in args.tables.split(",") if t], seeds, args.preset,
                              include_pending=args.include_pending)
    if not commands:
        print("nothing to queue", file=sys.stderr)
        return 1
    env = dict(os.environ)  # the first run (with the shared stages) alone: every core is its own
    parallel = dict(env)
    if args.jobs > 1:
        parallel.setdefault("OMP_NUM_THREADS", "1")
    dry = args.dry_run
    first, rest = commands[0], commands[1:]
    _run(first, env, dry)
    if args.run or dry:
        _run(["dvc", "exp", "run", "--run-all", "--jobs", "1"], env, dry)
    for command in rest:
        _run(command, env, dry)
    if (args.run or dry) and rest:
        _run(["dvc", "exp", "run", "--run-all", "--jobs", str(args.jobs)], parallel, dry)
    print(f"{len(commands)} experiments {'planned' if dry else 'queued'}; then, from the repository root: "
          f"jstip report --preset {args.preset}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
