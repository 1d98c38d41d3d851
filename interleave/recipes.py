"""Recipes: the paper's data mixtures by name, and the hash-threshold selection that realises them.

A recipe is a mixture of sample kinds, `asr:2,interleave_word:1,interleave_segment:1` (weights,
normalised), optionally with settings it fixes (`segmenter`, `mix_by`, …). Mixing by `tokens`
(the paper's way: "2.3B interleaved tokens per run to balance the ASR data") gives each kind
weight x T estimated tokens; by `samples`, weight x N samples. T (N) is the largest total no pool
runs short of: the scarcest pool limits the mixture, and a kind with an empty pool leaves it.

Selection is streaming. Every candidate (kind, source id, repeat) gets a stable hash bucket
(`interleave/hashing.py`); a first pass sums each kind's measure per bucket (`histogram`);
`thresholds` walks the buckets in order (all sources once before any repeat) until each kind's
budget is filled; a second pass keeps a candidate iff its (repeat, bucket) lies below its kind's
threshold. No pass holds the corpus, and the choice never depends on sharding or workers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from manifests.schema import SAMPLE_KINDS

from .hashing import buckets, string_hash

MIX_BY = ("samples", "tokens")
BUCKET_BITS = 12  # 4096 buckets: the mixture is exact to within one bucket's share of a pool
UTTERANCE_KINDS = ("asr", "interleave_word", "interleave_segment", "interleave_mixed")
TEXT_KINDS = ("text", "tts_text", "tts_pair", "tts_interleave")
SPEECH_KINDS = UTTERANCE_KINDS + ("tts_pair", "tts_interleave")
INTERLEAVED_KINDS = ("interleave_word", "interleave_segment", "interleave_mixed", "tts_interleave")

# name -> (mixture or {mixture, settings...}, the paper's row). Paper token counts: ASR 2.3B (38k h),
# interleaved 2.3B ("to balance the ASR data": word and segment halves), PubMed 2.3B, TTS-pair
# transcripts 0.1B, TTS pairs 9k h (~0.55B, also the size of their interleaved sequences).
_IL = "interleave_word:1,interleave_segment:1"
PAPER_RECIPES: dict[str, tuple[Any, str]] = {
    "demo": ({"mixture": f"asr:2,{_IL},text:1", "mix_by": "samples"}, "the demo's small mixture (no paper row)"),
    "asr_only": ("asr:1", "Table I: ASR-only"),
    "asr_il": (f"asr:2,{_IL}", "Table I: ASR-only +Interleave (= Table III mixed, silence+punct.)"),
    "asr_text": ("asr:1,text:1", "Table I: ASR+PubMed (domain text)"),
    "asr_text_il": (f"asr:2,{_IL},text:2", "Table I: ASR+PubMed +Interleave"),
    "asr_tts": ("asr:38,tts_pair:9", "Table I: ASR+TTS-pairs"),
    "asr_tts_il": ("asr:38,interleave_word:19,interleave_segment:19,tts_pair:9", "Table I: ASR+TTS-pairs +Interleave"),
    "asr_ttstext": ("asr:23,tts_text:1", "Table I: ASR+TTS-transcription"),
    "asr_ttstext_il": ("asr:23,interleave_word:11.5,interleave_segment:11.5,tts_text:1",
                       "Table I: ASR+TTS-transcription +Interleave (Table III: + Mixed-IL sil.+punc.)"),
    "jstip_best": ("asr:23,interleave_word:11.5,interleave_segment:11.5,tts_interleave:5.5,text:23,tts_text:1",
                   "Table I: JSTIP-Best-EER (ASR + Interleave + TTS-Interleave + PubMed + TTS-transcription)"),
    "il_word": ("asr:1,interleave_word:1", "Table III: + Word-IL"),
    "il_segment_silence": ({"mixture": "asr:1,interleave_segment:1", "segmenter": "silence"},
                           "Table III: + Segment-IL, silence"),
    "il_segment_silence_punct": ({"mixture": "asr:1,interleave_segment:1", "segmenter": "silence_punct"},
                                 "Table III: + Segment-IL, sil. + punc."),
    "il_mixed_silence": ({"mixture": f"asr:2,{_IL}", "segmenter": "silence"}, "Table III: + Mixed-IL, silence"),
    "il_mixed_silence_punct": ({"mixture": f"asr:2,{_IL}", "segmenter": "silence_punct"},
                               "Table III: + Mixed-IL, sil. + punc."),
    "asr_ttstext_il_silence": ({"mixture": "asr:23,interleave_word:11.5,interleave_segment:11.5,tts_text:1",
                                "segmenter": "silence"}, "Table III: ASR+TTS-trans. + Mixed-IL, silence"),
}
DEFAULT_RECIPES: dict[str, Any] = {name: spec for name, (spec, _) in PAPER_RECIPES.items()}
RECIPE_ROWS: dict[str, str] = {name: row for name, (_, row) in PAPER_RECIPES.items()}
# names of our first build, kept working: each now means the paper's recipe closest to it
ALIASES = {"joint": "asr_text", "jstip_word": "il_word", "jstip_segment": "il_segment_silence_punct",
           "jstip_mixed": "il_mixed_silence_punct", "jstip_tts": "asr_tts_il"}


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
        if not weight >= 0 or kind in weights or weight == float("inf"):
            raise ValueError(f"recipe {spec!r}: {kind} is repeated or has a negative or infinite weight")
        if weight > 0:
            weights[kind] = weight
    total = sum(weights.values())
    if not total:
        raise ValueError(f"recipe {spec!r} has no kind with a positive weight, e.g. 'asr:2,text:1'")
    return {k: w / total for k, w in weights.items()}


def resolve(recipe: str, recipes: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """(normalised weights, settings the recipe fixes) of a recipe name or an inline mixture."""
    spec = recipes.get(recipe)
    if spec is None and recipe in ALIASES and ALIASES[recipe] in recipes:
        spec = recipes[ALIASES[recipe]]
    if spec is None:
        if ":" in recipe or recipe in SAMPLE_KINDS:
            spec = recipe
        else:
            raise ValueError(f"unknown recipe {recipe!r}; known: {', '.join(recipes)} (or write kind:weight,...)")
    settings: dict[str, Any] = {}
    if isinstance(spec, dict):
        settings = {k: v for k, v in spec.items() if k != "mixture"}
        if "mixture" not in spec:
            raise ValueError(f"recipe {recipe!r} is a mapping without `mixture:` (e.g. mixture: 'asr:1,text:1')")
        spec = spec["mixture"]
    return parse_mixture(spec), settings


def candidate_buckets(ids, seed: int, kind: str, repeat: int) -> np.ndarray:
    """Each candidate's place in its kind's order: repeat-major, then its hash bucket."""
    return repeat * (1 << BUCKET_BITS) + buckets(string_hash(ids, f"{seed}:{kind}:{repeat}"), BUCKET_BITS)


def histogram(ids, measure: np.ndarray, seed: int, kind: str, max_repeats: int) -> np.ndarray:
    """Sum of `measure` per (repeat, bucket) over the candidates `ids` of `kind`."""
    out = np.zeros(max_repeats << BUCKET_BITS)
    for r in range(max_repeats):
        out += np.bincount(candidate_buckets(ids, seed, kind, r), weights=measure, minlength=len(out))
    return out


def chosen(ids, seed: int, kind: str, max_repeats: int, threshold: int) -> list[tuple[int, np.ndarray]]:
    """(repeat, indices of the candidates taken) for each repeat that takes any."""
    out = []
    for r in range(max_repeats):
        if threshold <= r << BUCKET_BITS:
            break
        keep = np.flatnonzero(candidate_buckets(ids, seed, kind, r) < threshold)
        if len(keep):
            out.append((r, keep))
    return out


@dataclass
class Selection:
    """The outcome of mixing: per kind the threshold, the pool and what is taken (in the measure)."""

    weights: dict[str, float]
    thresholds: dict[str, int]
    capacity: dict[str, float]
    taken: dict[str, float]
    targets: dict[str, float]
    limited_by: str
    dropped: list[str]


def thresholds(hists: dict[str, np.ndarray], weights: dict[str, float]) -> Selection:
    """Per kind, the (repeat, bucket) below which candidates are taken so that the kinds meet their
    weights; a kind whose pool is empty is dropped and the others keep their ratios."""
    capacity = {k: float(hists[k].sum()) if k in hists else 0.0 for k in weights}
    dropped = [k for k in weights if capacity[k] <= 0]
    kept = {k: w for k, w in weights.items() if k not in dropped}
    if not kept:
        return Selection({}, {k: 0 for k in weights}, capacity, {k: 0.0 for k in weights}, {k: 0.0 for k in weights},
                         dropped[0], dropped)
    norm = {k: w / sum(kept.values()) for k, w in kept.items()}
    limiting = min(norm, key=lambda k: capacity[k] / norm[k])
    total = capacity[limiting] / norm[limiting]
    out, taken, targets = {k: 0 for k in dropped}, {k: 0.0 for k in dropped}, {}
    for kind, weight in norm.items():
        budget = weight * total
        hist = hists[kind]
        before = np.concatenate([[0.0], np.cumsum(hist)[:-1]])
        over = np.flatnonzero((before + hist / 2 > budget * (1 + 1e-9) + 1e-9) & (hist > 0))
        cut = int(over[0]) if len(over) else len(hist)
        out[kind] = cut
        taken[kind] = float(hist[:cut].sum())
        targets[kind] = budget
    return Selection(norm, out, capacity, taken, targets, limiting, dropped)
