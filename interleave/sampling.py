"""Seeded choice of which words are spoken and which are written.

Randomness is drawn per sample from (global seed, sample id), so a sample is the same
whatever the sharding, worker count or order of processing.
"""
from __future__ import annotations

import hashlib

import numpy as np


def rng_for(seed: int, key: str) -> np.random.Generator:
    """A generator that depends only on the global seed and the record's id."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def poisson_speech_mask(n_words: int, lam: float, eta: float, rng: np.random.Generator) -> list[bool]:
    """True for speech words: alternating runs starting with speech, speech runs of mean λ.

    Run lengths are 1 + Poisson(mean - 1) (a run is never empty, and the mean stays exact);
    text runs have mean λ(1-η)/η, so the expected speech share is η (reachable while that
    mean is at least 1, i.e. η <= λ/(λ+1)). With two or more words at least one word stays
    text, so every sample has something to predict.
    """
    if not 0.0 < eta < 1.0:
        raise ValueError(f"eta must lie strictly between 0 and 1, got {eta}")
    text_mean = lam * (1.0 - eta) / eta
    mask: list[bool] = []
    speech = True
    while len(mask) < n_words:
        length = 1 + int(rng.poisson(max((lam if speech else text_mean) - 1.0, 0.0)))
        mask.extend([speech] * min(length, n_words - len(mask)))
        speech = not speech
    if n_words >= 2 and all(mask):
        mask[-1] = False
    return mask
