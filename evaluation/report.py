"""`jstip report`: the reproduction's tables, claims and plots from the finished runs' metrics.

Runs come from the committed run records (`--runs-dir`, `run_records.py`: each holds its row, seed,
params, metrics and per-utterance entity results) and, unless `--records-only`, from `dvc exp show
--json` (run here, or a saved file), where every finished experiment is assigned to a row of
`experiments/repro/experiment.yaml` by its params (`experiment.match_row`: what ran, not what its
name says). A run in both (same rev, or same row and seed) counts once: the record wins. Writes to `--out`:

| file | what |
| --- | --- |
| `tables.md` | one table per paper table: per row the seeds found and every metric as mean ± half-width of the 95% t interval over seeds, beside the paper's figures, and the (row, seed) pairs with no finished run; then the claims and the runs left out |
| `summary.csv` | row, metric, n, mean, sd, low, high |
| `runs.csv` | every run: name, rev, row, seed and its metrics (no run is dropped from this file) |
| `claims.csv` | each claim (B vs A on a metric): mean per-seed difference, t interval, seeds in B's favour; for entity error rates also the paired bootstrap over test utterances pooled over the seeds both rows have (`utt_*`, from each record's utterances or each DVC run's `reports/evaluate.json`: `report_utterances.py`) |
| `eer.png`, `gap.png` | entity error rate per row with intervals; modality gap (speech-in minus text-in) per row |

Every finished run that matches a row is used: no seed is chosen. Runs that failed, are still
queued, or match no row are listed with the reason.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from manifests.errors import JstipError
from manifests.io import write_text_atomic

from .experiment import Experiment, Row, flatten, load, match_row
from .seeds import Summary, paired_seed_difference, summarize
from .report_utterances import Reader, bootstrap_claim, dvc_reader, entity_category
from .run_records import RUNS_DIR, read_records


@dataclass
class Run:
    name: str
    rev: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    baseline: dict[str, Any]
    state: str
    row: Row | None = None
    seed: int | None = None
    source: str = ""  # a record's origin (`dvc:<rev>` or `dir:<path>`); '' for a DVC run


def _file_values(files: dict[str, Any] | None, wanted) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, content in (files or {}).items():
        if wanted(path) and isinstance(content, dict) and isinstance(content.get("data"), dict):
            out[path] = content["data"]
    return out


def parse_exp_show(data: list[dict], exp: Experiment) -> list[Run]:
    """Every experiment of `dvc exp show --json`, with its params (the experiment's params file,
    flattened) and metrics (files under the experiment's directory, as `<stem>.<dotted key>`)."""
    folder = str(Path(exp.params_file).parent)
    prefix = "" if folder in ("", ".") else folder + "/"

    def params_of(entry: dict) -> dict[str, Any]:
        files = _file_values((entry.get("data") or {}).get("params"), lambda p: p == exp.params_file)
        return flatten(next(iter(files.values()), {}))

    def metrics_of(entry: dict) -> dict[str, Any]:
        files = _file_values((entry.get("data") or {}).get("metrics"), lambda p: p.startswith(prefix))
        return {k: v for path, values in files.items() for k, v in flatten(values, Path(path).stem + ".").items()}

    runs = []
    for base in data:
        baseline = params_of(base)
        for group in base.get("experiments") or []:
            state = ((group.get("executor") or {}).get("state")) or "success"
            for entry in group.get("revs") or []:
                if entry.get("error"):
                    state = "failed"
                runs.append(Run(entry.get("name") or group.get("name") or entry.get("rev", "")[:7],
                                entry.get("rev", ""), params_of(entry), metrics_of(entry), baseline, state))
    return runs


def assign(exp: Experiment, runs: list[Run], preset: str = "") -> None:
    """Set each finished run's row and seed (runs not finished or matching no row keep row None)."""
    for run in runs:
        if run.state not in ("success", "done") or not run.metrics:
            continue
        run.row = match_row(exp, run.baseline, run.params, preset)
        seeds = {run.params.get(k) for k in exp.seed_params}
        run.seed = int(seeds.pop()) if len(seeds) == 1 and None not in seeds else None


def record_runs(exp: Experiment, records: list[tuple[Path, dict[str, Any]]], preset: str = "") -> list[Run]:
    """Runs from run records: row and seed as recorded (matched when written); a record of another preset
    or of a row experiment.yaml no longer has stays out of the tables, listed with the reason."""
    ids = {r.row_id for r in exp.rows if not r.ref}
    runs = []
    for path, rec in records:
        state = ("success" if rec.get("preset", "cpu") == (preset or "cpu") else f"preset {rec.get('preset')}")
        if state == "success" and rec["row"] not in ids:
            state = f"row {rec['row']} not in {exp.path.name}"
        run = Run(rec["name"], str(path), rec["params"], rec["metrics"], {}, state, source=rec.get("source", ""))
        if state == "success":
            run.row, run.seed = exp.row(rec["row"]), int(rec["seed"])
        runs.append(run)
    return runs


def merge(recorded: list[Run], dvc: list[Run]) -> tuple[list[Run], int]:
    """Record runs plus the DVC runs not recorded (same rev as a record's source, or same row and seed as a
    recorded run, is the same run: the record wins); and how many DVC runs were dropped as duplicates."""
    sources = {r.source for r in recorded}
    keys = {(r.row.row_id, r.seed) for r in recorded if r.row is not None}
    kept = [r for r in dvc if f"dvc:{r.rev}" not in sources
            and (r.row is None or (r.row.row_id, r.seed) not in keys)]
    return recorded + kept, len(dvc) - len(kept)


def missing(exp: Experiment, runs: list[Run], table: str) -> list[tuple[str, list[int]]]:
    """Per runnable row shown in `table` (its source row, once), the seeds with no finished run."""
    have = {(r.row.row_id, r.seed) for r in runs if r.row is not None}
    out, seen = [], set()
    for row in (r for r in exp.rows if r.table == table and not r.pending):
        if row.source in seen:
            continue
        seen.add(row.source)
        seeds = [s for s in exp.seeds if (row.source, s) not in have]
        if seeds:
            out.append((row.source, seeds))
    return out


def metric_value(exp: Experiment, run: Run, name: str) -> float | None:
    """A run's value of a metric, scaled (derived metrics: the difference of two, each scaled)."""
    metric = next(m for m in exp.metrics if m.name == name)
    if metric.minus:
        a, b = (metric_value(exp, run, n) for n in metric.minus)
        return None if a is None or b is None else a - b
    value = run.metrics.get(metric.key)
    return float(value) * metric.scale if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def summaries(exp: Experiment, runs: list[Run]) -> dict[tuple[str, str], Summary]:
    """(row id, metric) -> summary over the row's runs (one per seed)."""
    out = {}
    for row in exp.rows:
        members = [r for r in runs if r.row is not None and r.row.row_id == row.source]
        for metric in exp.metrics:
            out[(row.row_id, metric.name)] = summarize([metric_value(exp, r, metric.name) for r in members])
    return out


def _cell(s: Summary, digits: int = 1, of: int = 0) -> str:
    """Mean ± half-width; `(k of n)` when only k of the row's n runs have the metric (e.g. probes added later)."""
    if s.mean is None:
        return "–"
    fewer = f" ({s.n} of {of})" if s.n < of else ""
    if s.half_width is None:
        return f"{s.mean:.{digits}f}{fewer}"
    return f"{s.mean:.{digits}f} ± {s.half_width:.{digits}f}{fewer}"


def claims(exp: Experiment, runs: list[Run], reader: Reader | None = None) -> list[dict[str, Any]]:
    """Each claim paired by seed; with `reader` (rev -> evaluate report), entity error rates also paired by
    test utterance (`report_utterances.bootstrap_claim`, in the metric's scale)."""
    out = []
    cache: dict[str, Any] = {}
    for claim in exp.claims:
        values, members = {}, {}
        for side in ("a", "b"):
            source = exp.row(claim[side]).source
            members[side] = [r for r in runs if r.row is not None and r.row.row_id == source]
            values[side] = {r.seed: metric_value(exp, r, claim["metric"]) for r in members[side]}
        result = paired_seed_difference(values["a"], values["b"])
        metric = next(m for m in exp.metrics if m.name == claim["metric"])
        better = result.higher_b if metric.higher_is_better else result.favour_b  # a tie favours neither
        row = {"a": claim["a"], "b": claim["b"], "metric": claim["metric"], "seeds": result.n,
               "diff": result.diff, "low": result.low, "high": result.high, "seeds_b_better": better,
               "utt_diff": None, "utt_low": None, "utt_high": None, "utt_p_not_better": None,
               "note": claim.get("note", "")}
        category = entity_category(metric.key)
        if reader is not None and category is not None:
            shared = set(values["a"]) & set(values["b"])  # the seeds both rows have, as the seed pairing uses
            members = {side: sorted((r for r in members[side] if r.seed in shared), key=lambda r: r.seed)
                       for side in ("a", "b")}
            reports = {side: [rep for r in members[side]
                              if (rep := cache[r.rev] if r.rev in cache else cache.setdefault(r.rev, reader(r.rev)))]
                       for side in ("a", "b")}
            boot = bootstrap_claim(reports["a"], reports["b"], category)
            for key in ("utt_diff", "utt_low", "utt_high"):
                if boot.get(key) is not None:
                    boot[key] *= metric.scale
            row.update(boot)
        out.append(row)
    return out


def markdown(exp: Experiment, runs: list[Run], stats: dict, claim_rows: list[dict], tables: list[str]) -> str:
    lines = []
    paper_cols = list(exp.paper_metrics.items())
    for table in tables:
        lines += [f"### {exp.tables[table]}", ""]
        header = ["row", "seeds"] + [m.label for m in exp.metrics] + [f"paper {label}" for _, label in paper_cols]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in (r for r in exp.rows if r.table == table):
            n = max((stats[(row.row_id, m.name)].n for m in exp.metrics), default=0)
            label = row.label + (f" (= {row.ref})" if row.ref else "") + (" *pending*" if row.pending else "")
            cells = [label, f"{n}/{len(exp.seeds)}"] + [_cell(stats[(row.row_id, m.name)], of=n) for m in exp.metrics]
            cells += [str(row.paper.get(key, "–")) for key, _ in paper_cols]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        gaps = missing(exp, runs, table)
        if gaps:
            lines += ["missing: " + "; ".join(f"{row} " + ", ".join(f"s{s}" for s in seeds) for row, seeds in gaps), ""]
    lines += ["Mean ± half-width of the 95% t interval over seeds; every finished run is included; `(k of n)`: "
              "only k of the row's n runs have that metric.", ""]
    if claim_rows:
        lines += ["### Claims (B vs A)", "",
                  "| B | A | metric | B − A (seeds) | 95% t interval | seeds with B better "
                  "| B − A (utterances) | 95% bootstrap interval | p (B not better) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for c in claim_rows:
            interval = "–" if c["low"] is None else f"[{c['low']:.2f}, {c['high']:.2f}]"
            diff = "–" if c["diff"] is None else f"{c['diff']:+.2f}"
            utt = "–" if c.get("utt_diff") is None else f"{c['utt_diff']:+.2f}"
            utt_interval = "–" if c.get("utt_low") is None else f"[{c['utt_low']:.2f}, {c['utt_high']:.2f}]"
            p = "–" if c.get("utt_p_not_better") is None else f"{c['utt_p_not_better']:.3f}"
            lines.append(f"| {c['b']} | {c['a']} | {c['metric']} | {diff} | {interval} | {c['seeds_b_better']}/{c['seeds']} "
                         f"| {utt} | {utt_interval} | {p} |")
        lines += ["", "Seeds: per-seed differences with a t interval (another seed's view). Utterances: paired "
                  "bootstrap over test utterances, pooled over the seeds both rows have (this test set's view; "
                  "entity error rates only); p is the share of draws in which B is not better.", ""]
    left = [r for r in runs if r.row is None]
    if left:
        lines += ["### Runs not in the tables", ""]
        for r in left:
            why = r.state if r.state not in ("success", "done") else ("no metrics" if not r.metrics else "params match no row")
            lines.append(f"- {r.name} ({r.rev[:7]}): {why}")
        lines.append("")
    return "\n".join(lines)


def _csv(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_report(exp: Experiment, runs: list[Run], out: str | Path, tables: list[str], plots: bool = True,
                 reader: Reader | None = None) -> dict:
    out = Path(out)
    stats = summaries(exp, runs)
    claim_rows = claims(exp, runs, reader)
    write_text_atomic(markdown(exp, runs, stats, claim_rows, tables), out / "tables.md")
    write_text_atomic(_csv([{"row": row, "metric": metric, "n": s.n, "mean": s.mean, "sd": s.sd, "low": s.low,
                             "high": s.high} for (row, metric), s in stats.items()]), out / "summary.csv")
    write_text_atomic(_csv([{"name": r.name, "rev": r.rev, "state": r.state, "row": r.row.row_id if r.row else "",
                             "seed": r.seed, **{m.name: metric_value(exp, r, m.name) for m in exp.metrics}}
                            for r in runs]), out / "runs.csv")
    write_text_atomic(_csv(claim_rows), out / "claims.csv")
    if plots:
        from .report_plots import plot_metric

        seeds = {(row.row_id, m.name): [v for r in runs if r.row is not None and r.row.row_id == row.source
                                        if (v := metric_value(exp, r, m.name)) is not None]
                 for row in exp.rows for m in exp.metrics}
        for name, metric_names in {"eer": [m.name for m in exp.metrics if m.name.startswith("eer")],
                                   "gap": [m.name for m in exp.metrics if m.name.endswith("gap")]}.items():
            if metric_names:
                plot_metric(exp, stats, tables, metric_names, out / f"{name}.png", seeds)
    return {"runs": len(runs), "in_tables": sum(r.row is not None for r in runs), "out": str(out)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--experiment", default="experiments/repro/experiment.yaml",
                        help="the experiment definition (rows, metrics, claims)")
    parser.add_argument("--exp-json", default="", help="saved `dvc exp show --json` output ('-' stdin); "
                                                       "default: run `dvc exp show --json --all-commits` here")
    parser.add_argument("--preset", default="cpu", help="which preset's runs to tabulate (cpu, gpu)")
    parser.add_argument("--tables", default="", help="comma-separated table ids (default: all)")
    parser.add_argument("--out", default="experiments/repro/results", help="output directory")
    parser.add_argument("--no-plots", action="store_true", help="tables and CSV only")
    parser.add_argument("--no-utterance-bootstrap", action="store_true",
                        help="skip the paired bootstrap over test utterances (it reads each record's utterances "
                             "and each DVC run's reports/evaluate.json from DVC's cache)")
    parser.add_argument("--runs-dir", default=RUNS_DIR, help="committed run records (record_run.py); "
                                                             "a run recorded there and in DVC counts once")
    parser.add_argument("--records-only", action="store_true", help="the run records only, no `dvc exp show`")


def read_exp_show(source: str) -> list[dict]:
    """`dvc exp show --json` data: from a saved file, stdin ('-'), or run here ('')."""
    if source == "-":
        return json.load(sys.stdin)
    if source:
        return json.loads(Path(source).read_text())
    done = subprocess.run(["dvc", "exp", "show", "--json", "--all-commits"], capture_output=True, text=True)
    if done.returncode != 0:
        raise JstipError(f"`dvc exp show --json` failed: {done.stderr.strip()[-400:]}")
    return json.loads(done.stdout)


def main(args: argparse.Namespace) -> int:
    exp = load(args.experiment)
    tables = [t for t in args.tables.split(",") if t] or list(exp.tables)
    unknown = sorted(set(tables) - set(exp.tables))
    if unknown:
        raise JstipError(f"unknown tables {unknown}; known: {', '.join(exp.tables)}")
    records = read_records(args.runs_dir)
    recorded = record_runs(exp, records, args.preset)
    dvc_runs: list[Run] = []
    if not args.records_only:
        try:
            dvc_runs = parse_exp_show(read_exp_show(args.exp_json), exp)
        except (json.JSONDecodeError, OSError, AttributeError, TypeError) as exc:
            raise JstipError(f"cannot read experiments from {args.exp_json or 'dvc exp show'}: {exc}") from exc
        assign(exp, dvc_runs, args.preset)
    runs, duplicates = merge(recorded, dvc_runs)
    reader = None
    if not args.no_utterance_bootstrap:
        utterances = {str(path): {"utterances": rec["utterances"]} for path, rec in records if rec.get("utterances")}
        paths = {str(path) for path, _ in records}
        from_dvc = dvc_reader(".", str(Path(exp.params_file).parent / "reports" / "evaluate.json"))

        def reader(rev: str) -> dict | None:  # a record without utterances has none (not DVC's)
            return utterances.get(rev) if rev in paths else from_dvc(rev)
    summary = write_report(exp, runs, args.out, tables, plots=not args.no_plots, reader=reader)
    summary.update(records=len(recorded), dvc_duplicates=duplicates)
    print(json.dumps(summary, indent=2))
    return 0
