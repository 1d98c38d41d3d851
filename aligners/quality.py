"""Word boundary error of an alignment against a reference, as Aligner-SUPERB defines it.

Words are matched by sequence alignment of the two word lists (so a missing or extra
word does not shift every later comparison); each matched word contributes
(|Δstart| + |Δend|) / 2.
"""
from __future__ import annotations

import difflib
from typing import Iterable, Sequence

import numpy as np

from manifests.schema import WordSpan


def matched_word_errors(hyp: Sequence[WordSpan], ref: Sequence[WordSpan]) -> list[tuple[float, float]]:
    """(boundary error, onset error) in seconds for each word matched between `hyp` and `ref`."""
    matcher = difflib.SequenceMatcher(a=[w.word for w in hyp], b=[w.word for w in ref], autojunk=False)
    errors = []
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            h, r = hyp[block.a + k], ref[block.b + k]
            onset = abs(h.start - r.start)
            errors.append(((onset + abs(h.end - r.end)) / 2, onset))
    return errors


def boundary_report(pairs: Iterable[tuple[Sequence[WordSpan], Sequence[WordSpan]]]) -> dict:
    """Mean/median boundary error (ms), onset error and the share within 20, 50 and 100 ms."""
    errors = [e for hyp, ref in pairs for e in matched_word_errors(hyp, ref)]
    if not errors:
        return {"words_matched": 0}
    boundary = np.array([e[0] for e in errors]) * 1000
    onset = np.array([e[1] for e in errors]) * 1000
    report = {
        "words_matched": len(errors),
        "boundary_error_mean_ms": round(float(boundary.mean()), 2),
        "boundary_error_median_ms": round(float(np.median(boundary)), 2),
        "onset_error_mean_ms": round(float(onset.mean()), 2),
    }
    for limit in (20, 50, 100):
        report[f"within_{limit}ms"] = round(float((boundary <= limit).mean()), 4)
    return report


def failure_kind(reason: str) -> str:
    """The kind of a failure: its reason up to the first colon (e.g. `no alignment found`)."""
    return reason.split(":")[0].strip()[:80] or "unspecified"


def quality_report(utterances: Sequence, alignments: Sequence, reference: dict | None = None) -> dict:
    """Counts (aligned, failed by kind), audio hours and, given reference alignments by id, boundary errors."""
    from collections import Counter

    failed = [a for a in alignments if a.status != "ok"]
    report: dict = {
        "utterances": len(alignments),
        "aligned": len(alignments) - len(failed),
        "failed": len(failed),
        "failed_by_reason": dict(sorted(Counter(failure_kind(a.reason) for a in failed).items())),
        "audio_seconds": round(sum(u.duration for u in utterances), 2),
    }
    if reference is not None:
        pairs = [(a.words, reference[a.utt_id].words) for a in alignments
                 if a.status == "ok" and a.utt_id in reference]
        report["utterances_scored"] = len(pairs)
        report.update(boundary_report(pairs))
    return report


def format_report(report: dict) -> str:
    """The report as a small two-column table for the terminal."""
    rows = [("aligner", report.get("aligner", "")), ("utterances", report.get("utterances")),
            ("aligned", report.get("aligned")), ("failed", report.get("failed"))]
    rows += [(f"  failed: {k}", v) for k, v in report.get("failed_by_reason", {}).items()]
    for key in ("audio_seconds", "real_time_factor", "wall_real_time_factor", "workers", "shards", "shards_skipped",
                "utterances_scored", "words_matched", "boundary_error_mean_ms", "boundary_error_median_ms",
                "onset_error_mean_ms", "within_20ms", "within_50ms", "within_100ms"):
        if key in report:
            rows.append((key, report[key]))
    width = max(len(k) for k, _ in rows)
    # None: not measured (e.g. real-time factors when every shard was skipped)
    return "\n".join(f"{k:<{width}}  {'n/a' if v is None else v}" for k, v in rows)
