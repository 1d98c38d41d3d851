"""Bootstrap confidence intervals for corpus rates, one system or two on the same items.

A corpus rate is a ratio of sums over items (utterances, questions): WER = Σ errors / Σ
reference words, EER = Σ missed / Σ instances, accuracy = Σ correct / Σ 1. Resampling items
with replacement and recomputing the ratio from the resampled sums gives the percentile
interval (Efron's percentile bootstrap at the utterance level, as speech evaluation
toolkits do: items are the independent unit, words within an utterance are not). Seeded, so
a rerun gives the same interval.

`paired_bootstrap` compares two systems on the same items with the same resamples (Koehn
2004; Bisani & Ney 2004): the interval of the difference and the share of resamples in which
the difference does not keep the sign of the observed one (a one-sided p-value).
Resamples are drawn in blocks of 100, so memory stays at 100 × items whatever their count.
"""
from __future__ import annotations

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


def paired_bootstrap(numerators_a: Sequence[float], numerators_b: Sequence[float],
                     denominators: Sequence[float] | None = None, resamples: int = DEFAULT_RESAMPLES,
                     seed: int = 0, confidence: float = 0.95) -> dict[str, float | None]:
    """Two systems on the same items: rate(b) − rate(a), its interval and a one-sided p-value.

    Rates are Σ numerators / Σ denominators (shared denominators: the same references or
    questions). `p_value` is the share of resamples whose difference is zero or of the other
    sign than the observed one (how often "b differs from a in this direction" fails); None
    when the observed difference is 0 or undefined.
    """
    a = np.asarray(numerators_a, dtype=np.float64)
    b = np.asarray(numerators_b, dtype=np.float64)
    den = np.ones_like(a) if denominators is None else np.asarray(denominators, dtype=np.float64)
    if not (a.shape == b.shape == den.shape) or a.ndim != 1:
        raise ValueError(f"paired inputs must be 1-D and of one length: {a.shape}, {b.shape}, {den.shape}")
    total = den.sum()
    if a.size == 0 or total <= 0:
        return {"delta": None, "lo": None, "hi": None, "p_value": None, "rate_a": None, "rate_b": None}
    rate_a, rate_b = float(a.sum() / total), float(b.sum() / total)
    delta = rate_b - rate_a
    diffs = np.concatenate([_ratio(b[i].sum(1), den[i].sum(1)) - _ratio(a[i].sum(1), den[i].sum(1))
                            for i in _resamples(a.size, resamples, seed)]) if resamples > 0 else np.zeros(0)
    lo, hi = _interval(diffs, confidence)
    finite = diffs[np.isfinite(diffs)]
    p = None
    if delta != 0 and finite.size:
        p = float(np.mean(finite <= 0) if delta > 0 else np.mean(finite >= 0))
    return {"delta": delta, "lo": lo, "hi": hi, "p_value": p, "rate_a": rate_a, "rate_b": rate_b}
