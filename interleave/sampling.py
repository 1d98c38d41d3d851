"""Seeded random choice of which units are spoken and which are written: an extension.

The paper alternates deterministically (`alternate`, see `interleave/sequences.py`) and leaves
random or word-type-based modality choice to future work; these samplers are that future work.
Each returns a mask over units (True = speech) that starts with speech, so each text span follows
acoustic and textual context, and keeps at least one text unit when there are two or more units
(the builder then drops trailing speech units, so the sequence ends with text as in the paper):
- `poisson`: speech runs of 1 + Poisson(λ - 1) units, text runs of mean λ(1-η)/η, so a
  fraction η of units is speech (slamkit/SIMS style);
- `alternate`: speech, text, speech, … one unit each (the segment-level default);
- `random`: each unit is speech with probability p;
- `spirit`: speech and text runs of lengths drawn uniformly from given ranges (SpiRit-LM);
- `entity`: every unit holding (part of) a listed entity phrase is text, the others speech with
  probability p: the modality chosen by word type (the paper's future work), so the model learns to
  write the domain's names after hearing their context. The first unit stays speech even when it is
  an entity (as above). Phrases match case-insensitively as whole words, punctuation aside.
Randomness is drawn per sample from (global seed, sample id), so a sample is the same
whatever the sharding, worker count or order of processing.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

SAMPLERS = ("alternate", "poisson", "random", "spirit", "entity")
# Sane ranges: outside them a sampler degenerates (all speech, all text) or, before the bounds on
# run lengths, asked for runs of billions of units (issue 13: eta=1e-9 needed ~24 GB).
LAMBDA_RANGE = (1.0, 1000.0)
FRACTION_RANGE = (0.01, 0.99)
MAX_RUN = 10_000


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
    entities: tuple[tuple[str, ...], ...] = ()  # entity: the phrases, as normalised words (`entity_phrases`)

    def check(self, name: str) -> None:
        """Raise ValueError naming the bad value for sampler `name`."""
        if name not in SAMPLERS:
            raise ValueError(f"unknown span sampler {name!r}; choose among {', '.join(SAMPLERS)}")
        lo, hi = FRACTION_RANGE
        if name == "poisson" and not (lo <= self.eta <= hi and LAMBDA_RANGE[0] <= self.lam <= LAMBDA_RANGE[1]):
            raise ValueError(f"poisson needs {LAMBDA_RANGE[0]:g} <= λ <= {LAMBDA_RANGE[1]:g} and {lo} <= η <= {hi}, "
                             f"got λ={self.lam}, η={self.eta}")
        if name in ("random", "entity") and not lo <= self.p <= hi:
            raise ValueError(f"{name} needs {lo} <= p <= {hi}, got p={self.p}")
        if name == "entity" and not self.entities:
            raise ValueError("entity needs a list of entity phrases (one per line), none given")
        if name == "spirit":
            for label, (a, b) in (("speech", self.speech_range), ("text", self.text_range)):
                if not 1 <= a <= b <= MAX_RUN:
                    raise ValueError(f"spirit {label} range must satisfy 1 <= min <= max <= {MAX_RUN}, got {a}..{b}")


def _finish(mask: list[bool], n: int) -> list[bool]:
    mask = mask[:n]
    if n >= 1:
        mask[0] = True
    if n >= 2 and all(mask):
        mask[-1] = False
    return mask


def _runs(n: int, speech_len, text_len) -> list[bool]:
    """Alternating runs; each draw adds at least one unit and runs are cut at n, so the work is O(n)
    whatever the run lengths (at most n draws)."""
    mask: list[bool] = []
    speech = True
    while len(mask) < n:
        length = max(1, min(n - len(mask), int(min(speech_len() if speech else text_len(), n))))
        mask.extend([speech] * length)
        speech = not speech
    return mask


def poisson_speech_mask(n_words: int, lam: float, eta: float, rng: np.random.Generator) -> list[bool]:
    """True for speech units: alternating runs starting with speech, speech runs of mean λ.

    Run lengths are 1 + Poisson(mean - 1) (a run is never empty, and the mean stays exact);
    text runs have mean λ(1-η)/η, so the expected speech share is η (reachable while that
    mean is at least 1, i.e. η <= λ/(λ+1)).
    """
    if not FRACTION_RANGE[0] <= eta <= FRACTION_RANGE[1]:
        raise ValueError(f"eta must lie in [{FRACTION_RANGE[0]}, {FRACTION_RANGE[1]}], got {eta}")
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


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("-", " "))


def entity_phrases(lines: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """The phrases of an entity list (one per line, an optional tab and category after it, as
    `evaluation/entities.py` reads it) as normalised word tuples, longest first."""
    phrases = {tuple(_words(line.partition("\t")[0])) for line in lines}
    return tuple(sorted((p for p in phrases if p), key=lambda p: (-len(p), p)))


@lru_cache(maxsize=4)
def _by_first_word(phrases: tuple[tuple[str, ...], ...]) -> dict[str, list[tuple[str, ...]]]:
    """The phrases by their first word, built once per list (a list may hold many thousand names)."""
    index: dict[str, list[tuple[str, ...]]] = {}
    for p in phrases:
        index.setdefault(p[0], []).append(p)
    return index


def entity_units(texts: Sequence[str], phrases: Sequence[tuple[str, ...]]) -> np.ndarray:
    """True for the units whose words take part in an occurrence of a phrase (leftmost, longest
    first), matched over the unit sequence so a phrase may span units (word-level units)."""
    words: list[str] = []
    owner: list[int] = []
    for i, text in enumerate(texts):
        for w in _words(text):
            words.append(w)
            owner.append(i)
    by_first = _by_first_word(tuple(phrases))
    hit = np.zeros(len(texts), bool)
    j = 0
    while j < len(words):
        step = 1
        for p in by_first.get(words[j], ()):
            if tuple(words[j:j + len(p)]) == p:
                hit[owner[j:j + len(p)]] = True
                step = len(p)
                break
        j += step
    return hit


def entity_mask(texts: Sequence[str], phrases: Sequence[tuple[str, ...]], p: float,
                rng: np.random.Generator) -> list[bool]:
    """Entity units text, the others speech with probability p."""
    draw = rng.random(len(texts)) < p
    return _finish([bool(x) for x in draw & ~entity_units(texts, phrases)], len(texts))


def speech_mask(name: str, n: int, params: SamplerParams, rng: np.random.Generator,
                texts: Sequence[str] | None = None) -> list[bool]:
    """The mask sampler `name` draws for `n` units (`entity` also reads the units' `texts`)."""
    params.check(name)
    if name == "entity":
        if texts is None or len(texts) != n:
            raise ValueError("the entity sampler needs the text of each unit")
        return entity_mask(texts, params.entities, params.p, rng)
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
