"""Bootstrap confidence intervals for corpus rates, one system or two on the same items.

A corpus rate is a ratio of sums over items (utterances, questions): WER = Σ errors / Σ
reference words, EER = Σ missed / Σ instances, accuracy = Σ correct / Σ 1. Resampling items
with replacement and recomputing the ratio from the resampled sums gives the percentile
interval (Efron's percentile bootstrap at the utterance level, as speech evaluation
toolkits do: items are the independent unit, words within an utterance are not). Seeded, so
a rerun gives the same interval.

`paired_bootstrap` compares two systems on the same items with the same resamples (Koehn
2004; Bisani & Ney 2004): the interval of the difference and the share of resamples in which
the difference does not keep the sign of the observed one (a one-sided p-value). It is the one
paired bootstrap of the project: `jstip evaluate`/`probe` compare two conditions with it, and the
reproduction's report pools several seeds of each system (runs × items) through it.
Resamples are drawn in blocks of 100, so memory stays at 100 × items whatever their count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

DEFAULT_RESAMPLES = 1000
_BLOCK = 100


def _resamples(n: int, resamples: int, seed: int):
    """Blocks of resamples `[b, n]`: the indices of the items drawn (with replacement)."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < resamples:
        b = min(_BLOCK, resamples - done)
        yield rng.integers(0, n, size=(b, n))
        done += b


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _interval(values: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None, None
    tail = (1.0 - confidence) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_ratio(numerators: Sequence[float], denominators: Sequence[float] | None = None,
                    resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                    confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile interval of Σ numerators / Σ denominators over items resampled with replacement.

    `denominators` None means 1 per item (a mean, e.g. accuracy). Returns (None, None) with no
    items, no resamples, or a zero denominator in every resample.
    """
    num = np.asarray(numerators, dtype=np.float64)
    den = np.ones_like(num) if denominators is None else np.asarray(denominators, dtype=np.float64)
    if num.shape != den.shape or num.ndim != 1:
        raise ValueError(f"numerators {num.shape} and denominators {den.shape} must be 1-D and of one length")
    if num.size == 0 or resamples < 1:
        return None, None
    values = [_ratio(num[i].sum(1), den[i].sum(1)) for i in _resamples(num.size, resamples, seed)]
    return _interval(np.concatenate(values), confidence)


@dataclass(frozen=True)
class Paired:
    """System B minus system A on the same items: the observed difference of their rates, its
    percentile interval, and how the resampled differences fall."""

    delta: float | None
    lo: float | None
    hi: float | None
    p_value: float | None  # share of resamples whose difference is 0 or of the other sign than `delta`
    p_b_not_lower: float | None  # share of resamples where B's rate is not lower (error rates: B not better)
    rate_a: float | None
    rate_b: float | None
    draws: int  # resamples with a defined difference
    b_lower: int  # resamples where B's rate is lower

    def as_dict(self) -> dict[str, float | None]:
        return {"delta": self.delta, "lo": self.lo, "hi": self.hi, "p_value": self.p_value,
                "rate_a": self.rate_a, "rate_b": self.rate_b}


def _runs(values: Sequence, n_items: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    array = array[None, :] if array.ndim == 1 else array
    if array.ndim != 2 or (n_items is not None and array.shape[1] != n_items):
        raise ValueError(f"numerators must be items or runs x items over the same {n_items} items; got {array.shape}")
    return array


def paired_bootstrap(numerators_a: Sequence, numerators_b: Sequence, denominators: Sequence[float] | None = None,
                     resamples: int = DEFAULT_RESAMPLES, seed: int = 0, confidence: float = 0.95) -> Paired:
    """Two systems on the same items (Koehn 2004; Bisani & Ney 2004): rate(B) − rate(A).

    A system's numerators are one value per item (one run) or runs × items (e.g. seeds, pooled:
    its rate is Σ over runs and items / (Σ denominators × runs)); the denominators (None: 1 per
    item) are shared, as the same references or questions are. Each resample draws items with
    replacement, the same indices for every run of both systems.
    """
    den1 = None if denominators is None else np.asarray(denominators, dtype=np.float64)
    a = _runs(numerators_a, None if den1 is None else den1.size)
    b = _runs(numerators_b, a.shape[1])
    den = np.ones(a.shape[1]) if den1 is None else den1
    if den.ndim != 1 or den.size != a.shape[1]:
        raise ValueError(f"paired inputs must cover the same items: {a.shape}, {b.shape}, {den.shape}")
    total = den.sum()
    if a.shape[1] == 0 or total <= 0:
        return Paired(None, None, None, None, None, None, None, 0, 0)
    a_sum, b_sum, runs_a, runs_b = a.sum(0), b.sum(0), a.shape[0], b.shape[0]
    rate_a, rate_b = float(a_sum.sum() / (total * runs_a)), float(b_sum.sum() / (total * runs_b))
    delta = rate_b - rate_a
    diffs = np.concatenate([_ratio(b_sum[i].sum(1), den[i].sum(1) * runs_b) - _ratio(a_sum[i].sum(1), den[i].sum(1) * runs_a)
                            for i in _resamples(den.size, resamples, seed)]) if resamples > 0 else np.zeros(0)
    lo, hi = _interval(diffs, confidence)
    finite = diffs[np.isfinite(diffs)]
    p = None
    if delta != 0 and finite.size:
        p = float(np.mean(finite <= 0) if delta > 0 else np.mean(finite >= 0))
    not_lower = float(np.mean(finite >= 0)) if finite.size else None
    return Paired(delta, lo, hi, p, not_lower, rate_a, rate_b, int(finite.size), int((finite < 0).sum()))
