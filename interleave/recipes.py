"""Recipes: mixtures of sample kinds, by sample count or by token count.

A recipe is a spec like `asr:2,interleave_mixed:2,text:1` (weights, normalised). Each kind
draws from a pool of candidates (aligned utterances for speech kinds, domain texts for `text`
and `tts_pair`); the mixture is exact up to rounding and limited by the scarcest pool
(scaled by `max_repeats`, the most samples one source may give one kind). A kind with an
empty pool leaves the mixture and the others keep their ratios. Which candidates
are taken is decided by a hash of (seed, kind, source id), so the choice never depends on
sharding, worker count or input order.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

from manifests.schema import SAMPLE_KINDS, SPEECH, TEXT, Sample

MIX_BY = ("samples", "tokens")


@dataclass(frozen=True)
class Candidate:
    """A sample that could be built: `kind` from source `index` (its position in its pool)."""

    kind: str
    source_id: str
    index: int
    tokens: float = 1.0
    repeat: int = 0


def parse_mixture(spec: str) -> dict[str, float]:
    """'asr:2,text:1' -> {'asr': 2/3, 'text': 1/3}; ValueError naming the bad part."""
    weights: dict[str, float] = {}
    for part in (p.strip() for p in str(spec).split(",")):
        if not part:
            continue
        kind, _, value = part.partition(":")
        kind = kind.strip()
        if kind not in SAMPLE_KINDS:
            raise ValueError(f"recipe {spec!r} names unknown kind {kind!r}; kinds: {', '.join(SAMPLE_KINDS)}")
        try:
            weight = float(value) if value.strip() else 1.0
        except ValueError:
            raise ValueError(f"recipe {spec!r} gives {kind} the weight {value!r}; write kind:number") from None
        if weight < 0 or kind in weights:
            raise ValueError(f"recipe {spec!r}: {kind} is repeated or has a negative weight")
        if weight > 0:
            weights[kind] = weight
    total = sum(weights.values())
    if not total:
        raise ValueError(f"recipe {spec!r} has no kind with a positive weight, e.g. 'asr:2,text:1'")
    return {k: w / total for k, w in weights.items()}


def rank(seed: int, kind: str, source_id: str, repeat: int) -> bytes:
    """The order in which candidates of one kind are taken."""
    return hashlib.sha256(f"{seed}:{kind}:{source_id}:{repeat}".encode()).digest()[:8]


def sample_tokens(sample: Sample, speech_tokens_per_second: float, tokens_per_word: float) -> float:
    """Sequence-length estimate: speech frames plus tokens of the text spans."""
    seconds = sum(s.end - s.start for s in sample.spans if s.modality == SPEECH)
    words = sum(len(s.text.split()) for s in sample.spans if s.modality == TEXT)
    return seconds * speech_tokens_per_second + words * tokens_per_word


def select(
    pools: dict[str, Sequence[Candidate]], weights: dict[str, float], mix_by: str, seed: int, max_repeats: int = 1
) -> tuple[list[Candidate], dict]:
    """The candidates a recipe takes, with a summary (targets, the limiting kind).

    Kinds are filled in hash order of their candidates, all sources once before any repeat.
    By `samples` each kind gets weight x N samples; by `tokens` weight x T estimated tokens,
    N (T) being the largest total that no pool runs short of. A kind whose pool is empty is
    dropped from the mixture (listed in `summary["dropped"]`) and the others renormalised, so
    one missing source does not empty the run; `summary["weights"]` is the mixture used and
    `summary["empty"]` is set only when every pool is empty.
    """
    if mix_by not in MIX_BY:
        raise ValueError(f"mix_by must be one of {', '.join(MIX_BY)}, got {mix_by!r}")
    if max_repeats < 1:
        raise ValueError(f"max_repeats must be at least 1, got {max_repeats}")
    ordered: dict[str, list[Candidate]] = {}
    for kind in weights:
        pool = pools.get(kind, ())
        ordered[kind] = [
            Candidate(c.kind, c.source_id, c.index, c.tokens, r)
            for r in range(max_repeats)
            for c in sorted(pool, key=lambda c: rank(seed, kind, c.source_id, r))
        ]
    measure = (lambda c: 1.0) if mix_by == "samples" else (lambda c: c.tokens)
    capacity = {k: sum(measure(c) for c in ordered[k]) for k in weights}
    dropped = [k for k in weights if capacity[k] <= 0]
    summary: dict = {"mix_by": mix_by, "dropped": dropped, "pool_sizes": {k: len(pools.get(k, ())) for k in weights}}
    kept = {k: w for k, w in weights.items() if k not in dropped}
    if not kept:  # every pool is empty: nothing to mix
        summary.update(limited_by=dropped[0], targets={k: 0.0 for k in weights}, weights={},
                       empty=f"every pool is empty ({', '.join(weights)})")
        return [], summary
    weights = {k: w / sum(kept.values()) for k, w in kept.items()}  # empty kinds leave, the rest keep their ratios
    limiting = min(weights, key=lambda k: capacity[k] / weights[k])
    total = capacity[limiting] / weights[limiting]
    chosen: list[Candidate] = []
    targets = {}
    for kind, weight in weights.items():
        budget = weight * total
        targets[kind] = round(budget, 3)
        taken = 0.0
        for c in ordered[kind]:
            if taken + measure(c) / 2 > budget + 1e-6:
                break
            chosen.append(c)
            taken += measure(c)
    summary.update(limited_by=limiting, targets=targets, weights=weights)
    return chosen, summary
