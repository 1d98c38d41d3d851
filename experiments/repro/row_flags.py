"""Print one run's settings as bash arrays, for `rerun_row.sh` (a run made outside DVC's queue).

    python row_flags.py word_j050 1          # FLAGS_align=(--aligner import --source ...) FLAGS_interleave=(...) ...

`FLAGS_<stage>` holds the flags of each per-run stage (align only when the row changes the alignments);
`RECORD_SETS` the `--set key=value` arguments `record_run.py dir` records the run with. The settings are
those `run_experiments.py` queues (experiment.yaml: the preset, the row's `set`, the seed params).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from evaluation.experiment import load, run_settings, stage_flags, param_value  # noqa: E402
from manifests.errors import JstipError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("row", help="a row id of experiment.yaml (e.g. asr_text, word_j050)")
    parser.add_argument("seed", type=int)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--experiment", default=str(HERE / "experiment.yaml"))
    args = parser.parse_args(argv)
    try:
        settings = run_settings(load(args.experiment), args.row, args.seed, args.preset)
        flags = stage_flags(settings)
    except JstipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for stage, stage_argv in flags.items():
        print(f"FLAGS_{stage}=({' '.join(shlex.quote(a) for a in stage_argv)})")
    sets = [a for k, v in settings.items() for a in ("--set", f"{k}={param_value(v)}")]
    print(f"RECORD_SETS=({' '.join(shlex.quote(a) for a in sets)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
