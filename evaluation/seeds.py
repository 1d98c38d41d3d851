"""Statistics over seeds for the reproduction's report: seed means with t intervals and paired
seed differences (the paired bootstrap over test utterances is `evaluation.bootstrap`).

Pure functions over numbers (numpy, scipy). With three seeds a t interval is wide (t = 4.30 at
95%): that is the honest interval for "another seed would give", and it is reported as such.
The paired bootstrap answers the narrower question "on this test set, does system B make fewer
entity errors than system A": it resamples test utterances with replacement, the same draw for
both systems, and reports the difference of their error rates with a percentile interval and
the share of draws in which B is not better (a one-sided p-value).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Summary:
    """Mean of a metric over runs (seeds), its standard deviation and a t interval."""

    n: int
    mean: float | None
    sd: float | None
    low: float | None
    high: float | None

    @property
    def half_width(self) -> float | None:
        return None if self.low is None or self.high is None else (self.high - self.low) / 2


def summarize(values: Sequence[float | None], confidence: float = 0.95) -> Summary:
    """Mean, sd and a two-sided t interval of the non-missing values (no interval below two values)."""
    from scipy import stats

    xs = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if xs.size == 0:
        return Summary(0, None, None, None, None)
    mean = float(xs.mean())
    if xs.size == 1:
        return Summary(1, mean, None, None, None)
    sd = float(xs.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, xs.size - 1)) * sd / math.sqrt(xs.size)
    return Summary(int(xs.size), mean, sd, mean - half, mean + half)


@dataclass(frozen=True)
class PairedResult:
    """B minus A: mean difference and interval, and how many pairs (seeds or draws) favour B."""

    n: int
    diff: float | None
    low: float | None
    high: float | None
    favour_b: int  # pairs where B is lower (better, for error rates)
    higher_b: int = 0  # pairs where B is higher (better, for accuracies); ties favour neither


def paired_seed_difference(a: dict[int, float | None], b: dict[int, float | None],
                           confidence: float = 0.95) -> PairedResult:
    """Per-seed differences b[s] - a[s] over the seeds both have, with a t interval."""
    seeds = sorted(s for s in set(a) & set(b) if a[s] is not None and b[s] is not None)
    diffs = [b[s] - a[s] for s in seeds]
    summary = summarize(diffs, confidence)
    return PairedResult(summary.n, summary.mean, summary.low, summary.high, sum(d < 0 for d in diffs),
                        higher_b=sum(d > 0 for d in diffs))
