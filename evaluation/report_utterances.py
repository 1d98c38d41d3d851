"""The report's paired bootstrap over test utterances, from each run's per-utterance entity results.

A claim "B has a lower entity error rate than A" is tested twice in the report: paired by seed
(`report_stats.paired_seed_difference`, over 3 seeds: another seed's view) and here, paired by
test utterance and pooled over seeds (`evaluation.bootstrap.paired_bootstrap`: "on this test set, does B
miss fewer entities"). The per-utterance results are each run's `reports/evaluate.json` (written by
`jstip evaluate`: per utterance the entity instances and misses, in total and by category), a
DVC-cached output of the experiment: it is read from DVC's cache at the experiment's commit with
`dvc.api.open`, or from any `reader(rev)` a caller gives (tests, a saved copy).
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable

from evaluation.bootstrap import paired_bootstrap

EER_KEY = re.compile(r"^eval\.eer(?:_by_category\.(?P<category>\w+)\.eer)?$")

Reader = Callable[[str], "dict[str, Any] | None"]


def entity_category(key: str) -> str | None:
    """The category an EER metric key scores: '' for all entities, the name for `eer_by_category.<c>.eer`,
    None for any other metric (no utterance bootstrap)."""
    m = EER_KEY.match(key)
    return None if m is None else (m.group("category") or "")


def per_utterance(report: dict[str, Any], category: str) -> dict[str, tuple[int, int]]:
    """utt_id -> (instances, missed) of one category ('' all) from an evaluate report."""
    out = {}
    for u in report.get("utterances", []):
        if category:
            n, missed = (u.get("by_category") or {}).get(category, (0, 0))
        else:
            n, missed = u.get("entities", 0), len(u.get("entities_missed", []))
        out[u["utt_id"]] = (int(n), int(missed))
    return out


def dvc_reader(repo: str, path: str) -> Reader:
    """`reader(rev)`: the JSON at `path` (from the repository root) in experiment commit `rev`, read through
    DVC (its cache), or None when it cannot be read (e.g. the cache was cleared)."""
    def read(rev: str) -> dict[str, Any] | None:
        import dvc.api

        try:
            with dvc.api.open(path, repo=repo, rev=rev) as f:
                return json.load(f)
        except Exception:  # noqa: BLE001 - any DVC/git/JSON failure means: not available for this run
            return None

    return read


def bootstrap_claim(reports_a: list[dict], reports_b: list[dict], category: str, draws: int = 2000,
                    seed: int = 0) -> dict[str, Any]:
    """B − A error rate with a 95% percentile interval over utterances (pooled over runs), the share of
    draws in which B is not better, and the counts it rests on; empty values when nothing is comparable."""
    tables = [per_utterance(r, category) for r in reports_a + reports_b]
    if not reports_a or not reports_b:
        return {"utt_runs_a": len(reports_a), "utt_runs_b": len(reports_b)}
    ids = sorted(set.intersection(*(set(t) for t in tables)))
    totals = [tables[0][i][0] for i in ids]
    if any(t[i][0] != n for t in tables for i, n in zip(ids, totals)):
        return {"utt_runs_a": len(reports_a), "utt_runs_b": len(reports_b), "utt_note": "annotations differ between runs"}
    errors = [[t[i][1] for i in ids] for t in tables]
    result = paired_bootstrap(errors[:len(reports_a)], errors[len(reports_a):], totals, resamples=draws, seed=seed)
    return {"utt_runs_a": len(reports_a), "utt_runs_b": len(reports_b), "utt_utterances": len(ids),
            "utt_instances": int(sum(totals)), "utt_diff": result.delta, "utt_low": result.lo, "utt_high": result.hi,
            "utt_p_not_better": result.p_b_not_lower}
