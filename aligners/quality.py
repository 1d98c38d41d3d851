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
