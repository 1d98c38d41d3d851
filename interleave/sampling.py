"""Seeded choice of which units (words or segments) are spoken and which are written.

Four span samplers, each a parameter of the interleave stage; every one returns a mask over
units (True = speech) that starts with speech, so each text span follows acoustic and textual
context, and keeps at least one text unit when there are two or more units:
- `poisson`: speech runs of 1 + Poisson(λ - 1) units, text runs of mean λ(1-η)/η, so a
  fraction η of units is speech (slamkit/SIMS style);
- `alternate`: speech, text, speech, … one unit each (the segment-level default);
- `random`: each unit is speech with probability p;
- `spirit`: speech and text runs of lengths drawn uniformly from given ranges (SpiRit-LM).
Randomness is drawn per sample from (global seed, sample id), so a sample is the same
whatever the sharding, worker count or order of processing.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

SAMPLERS = ("poisson", "alternate", "random", "spirit")


def rng_for(seed: int, key: str) -> np.random.Generator:
    """A generator that depends only on the global seed and the record's id."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


@dataclass(frozen=True)
class SamplerParams:
    """The knobs of all samplers (each sampler reads its own)."""

    lam: float = 3.0
    eta: float = 0.5
    p: float = 0.5
    speech_range: tuple[int, int] = (1, 10)
    text_range: tuple[int, int] = (1, 10)

    def check(self, name: str) -> None:
        """Raise ValueError naming the bad value for sampler `name`."""
        if name not in SAMPLERS:
            raise ValueError(f"unknown span sampler {name!r}; choose among {', '.join(SAMPLERS)}")
        if name == "poisson" and not (0.0 < self.eta < 1.0 and self.lam > 0):
            raise ValueError(f"poisson needs λ > 0 and 0 < η < 1, got λ={self.lam}, η={self.eta}")
        if name == "random" and not 0.0 < self.p < 1.0:
            raise ValueError(f"random needs 0 < p < 1, got p={self.p}")
        if name == "spirit":
            for label, (lo, hi) in (("speech", self.speech_range), ("text", self.text_range)):
                if not 1 <= lo <= hi:
                    raise ValueError(f"spirit {label} range must satisfy 1 <= min <= max, got {lo}..{hi}")


def _finish(mask: list[bool], n: int) -> list[bool]:
    mask = mask[:n]
    if n >= 1:
        mask[0] = True
    if n >= 2 and all(mask):
        mask[-1] = False
    return mask


def _runs(n: int, speech_len, text_len) -> list[bool]:
    mask: list[bool] = []
    speech = True
    while len(mask) < n:
        mask.extend([speech] * max(1, int(speech_len() if speech else text_len())))
        speech = not speech
    return mask


def poisson_speech_mask(n_words: int, lam: float, eta: float, rng: np.random.Generator) -> list[bool]:
    """True for speech units: alternating runs starting with speech, speech runs of mean λ.

    Run lengths are 1 + Poisson(mean - 1) (a run is never empty, and the mean stays exact);
    text runs have mean λ(1-η)/η, so the expected speech share is η (reachable while that
    mean is at least 1, i.e. η <= λ/(λ+1)).
    """
    if not 0.0 < eta < 1.0:
        raise ValueError(f"eta must lie strictly between 0 and 1, got {eta}")
    text_mean = lam * (1.0 - eta) / eta
    return _finish(_runs(n_words, lambda: 1 + rng.poisson(max(lam - 1.0, 0.0)),
                         lambda: 1 + rng.poisson(max(text_mean - 1.0, 0.0))), n_words)


def alternate_mask(n: int) -> list[bool]:
    """Speech, text, speech, … one unit each."""
    return [i % 2 == 0 for i in range(n)]


def random_mask(n: int, p: float, rng: np.random.Generator) -> list[bool]:
    """Each unit speech with probability p (the first always speech)."""
    return _finish([bool(x) for x in rng.random(n) < p], n)


def spirit_mask(n: int, speech_range: tuple[int, int], text_range: tuple[int, int], rng: np.random.Generator) -> list[bool]:
    """Alternating runs with lengths uniform in `speech_range` / `text_range` (inclusive)."""
    return _finish(_runs(n, lambda: rng.integers(speech_range[0], speech_range[1] + 1),
                         lambda: rng.integers(text_range[0], text_range[1] + 1)), n)


def speech_mask(name: str, n: int, params: SamplerParams, rng: np.random.Generator) -> list[bool]:
    """The mask sampler `name` draws for `n` units."""
    params.check(name)
    if name == "poisson":
        return poisson_speech_mask(n, params.lam, params.eta, rng)
    if name == "alternate":
        return alternate_mask(n)
    if name == "random":
        return random_mask(n, params.p, rng)
    return spirit_mask(n, params.speech_range, params.text_range, rng)


def parse_range(value: str, what: str) -> tuple[int, int]:
    """'3-10' or '3,10' (or '5') as an inclusive (min, max) pair; ValueError naming `what`."""
    parts = [p for p in str(value).replace(",", "-").split("-") if p.strip()]
    try:
        lo, hi = (int(parts[0]), int(parts[-1])) if parts else (0, -1)
    except ValueError:
        lo, hi = 0, -1
    if not (len(parts) in (1, 2) and 1 <= lo <= hi):
        raise ValueError(f"{what} must be a word range like '3-10', got {value!r}")
    return lo, hi
