"""What each queued run actually trained on: `samples_seen_by_kind` / `samples_by_kind` of every
experiment's `reports/train.json` (read from the experiment's dvc.lock and the local DVC cache).

    python kinds_seen.py            # one line per experiment, seed by seed

A run that stops before an epoch sees only the row groups its data order reached; this shows
whether a recipe's kinds were in its training at all.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO, check=True).stdout


def main() -> int:
    rows = {}
    for ref in _git("for-each-ref", "refs/exps", "--format=%(refname)").split():
        if ref.count("/") < 4:  # refs/exps/<xx>/<baseline>/<name>; skips the queue's stash refs
            continue
        name = ref.rsplit("/", 1)[1]
        try:
            lock = yaml.safe_load(_git("show", f"{ref}:experiments/repro/dvc.lock"))
            md5 = next(o["md5"] for o in lock["stages"]["train"]["outs"] if o["path"] == "reports/train.json")
            report = json.loads((REPO / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).read_text())
        except (subprocess.CalledProcessError, KeyError, StopIteration, OSError, TypeError) as exc:
            print(f"{name}: no train report ({exc.__class__.__name__})", file=sys.stderr)
            continue
        rows[name] = (report.get("samples_seen_by_kind") or {}, report.get("samples_by_kind") or {})
    for name in sorted(rows, key=lambda n: (n.rsplit("-s", 1)[-1], n)):
        seen, have = rows[name]
        print(f"| {name} | " + ", ".join(f"{k} {seen.get(k, 0)}/{v}" for k, v in have.items()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
