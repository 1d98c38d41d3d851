"""Both passes over one batch of text records, as pure functions: `text` (domain text, the paper's
PubMed), `tts_text` (the transcripts of the TTS pairs), `tts_pair` and `tts_interleave` (spoken by
the caller's `synthesize`, interleaved over the synthesizer's true word times). One synthesis per
(text, repeat) serves both TTS kinds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa

from .batch import BuildSettings, Facts, UtteranceBatch, _interleave, _segments, _taken, levels, sentence_guess, word_counts
from .samples import Built, asr, concat, text
from .tokens import estimate_interleave, estimate_text, estimate_tts, interleave_samples
from .units import TokenCache, Words, word_units

Synthesize = Callable[[Sequence[tuple[str, str, int]]], list]


@dataclass
class TextBatch:
    ids: pa.Array
    text: pa.Array
    norm_text: pa.Array

    @classmethod
    def from_table(cls, t: pa.Table) -> "TextBatch":
        return cls(*(t.column(c).combine_chunks() for c in ("text_id", "text", "norm_text")))

    def __len__(self) -> int:
        return len(self.ids)


def text_kinds(s: BuildSettings, roles: Sequence[str]) -> list[str]:
    """The text kinds a text manifest serves: `domain` gives `text`, `tts` the TTS kinds."""
    wanted = (["text"] if "domain" in roles else []) + (["tts_text", "tts_pair", "tts_interleave"] if "tts" in roles else [])
    return [k for k in wanted if k in s.kinds]


def text_measures(b: TextBatch, s: BuildSettings, roles: Sequence[str]) -> dict[str, tuple[pa.Array, np.ndarray]]:
    n_words = word_counts(b.norm_text)
    rows = np.flatnonzero(n_words > 0)
    ids, n = b.ids.take(pa.array(rows)), n_words[rows]
    out = {}
    for kind in text_kinds(s, roles):
        if kind in ("text", "tts_text"):
            tokens = estimate_text(n, sentence_guess(b.text.take(pa.array(rows))), s.rates)
            measure = np.ones(len(rows))
        elif kind == "tts_pair":
            tokens, measure = estimate_tts(n, s.tts_words_per_minute, s.rates, s.tagged), np.ones(len(rows))
        else:
            seconds = n * 60.0 / s.tts_words_per_minute
            stats = {"words": n, "inside": seconds * 0.85, "short_pauses": seconds * 0.1, "cuts": n // 12}
            lvl = levels(ids, s)
            tokens = np.where(lvl == 0, estimate_interleave(stats, "word", s.variants, s.rates, s.tagged),
                              estimate_interleave(stats, "segment", s.variants, s.rates, s.tagged))
            measure = interleave_samples(n, s.variants)
        out[kind] = (ids, tokens if s.mix_by == "tokens" else measure)
    return out


def build_texts(b: TextBatch, s: BuildSettings, roles: Sequence[str], thresholds: dict[str, int],
                normalize: Callable[[str], str], synthesize: Synthesize | None = None,
                cache: TokenCache | None = None) -> tuple[Built, Facts, list[Any]]:
    """Samples of the chosen text candidates; the third value is what `synthesize` returned (to store)."""
    facts = Facts()
    n_words = word_counts(b.norm_text)
    rows = np.flatnonzero(n_words > 0)
    facts.reasons = {"texts": len(b), "no_words": int(len(b) - len(rows))}
    ids = b.ids.take(pa.array(rows))
    picks = {k: _taken(ids, rows, s, k, thresholds.get(k, 0)) for k in text_kinds(s, roles)}
    parts: list[Built] = []
    for kind in ("text", "tts_text"):
        if kind in picks and len(picks[kind][0]):
            picked, reps = picks[kind]
            parts.append(text(kind, b.ids.take(pa.array(picked)), b.text.take(pa.array(picked)).to_pylist(),
                              n_words[picked], picked, reps, s.rates, normalize if s.text_form == "norm" else None,
                              s.rank(kind)))
    spoken = sorted({(int(r), int(p)) for k in ("tts_pair", "tts_interleave") if k in picks
                     for r, p in zip(*picks[k])})
    results: list[Any] = []
    if spoken and synthesize is not None:
        results = synthesize([(b.ids[r].as_py(), b.text[r].as_py(), rep) for r, rep in spoken])
        parts += _tts(b, s, spoken, results, picks, facts, normalize, cache)
    return concat(parts), facts, results


def _tts(b: TextBatch, s: BuildSettings, spoken, results, picks, facts: Facts, normalize, cache) -> list[Built]:
    """tts_pair and tts_interleave samples over the synthesized audio (one per spoken (row, repeat))."""
    good = [i for i, r in enumerate(results) if not isinstance(r, str)]
    for i, r in enumerate(results):
        if isinstance(r, str):
            facts.notes["tts_failed"] = facts.notes.get("tts_failed", 0) + 1
            facts.examples.setdefault("tts_failed", []).append(r)
    if not good:
        return []
    where = {spoken[i]: k for k, i in enumerate(good)}
    rows = np.array([spoken[i][0] for i in good], np.int64)
    paths = pa.array([results[i][0] for i in good], pa.string())
    durations = np.array([results[i][1] for i in good], np.float64)
    lists = pa.array([[{"word": w, "start": a, "end": e} for w, a, e in results[i][2]] for i in good],
                     pa.list_(pa.struct([("word", pa.string()), ("start", pa.float64()), ("end", pa.float64())])))
    words = Words.from_lists(lists)
    ids, raw = b.ids.take(pa.array(rows)), b.text.take(pa.array(rows))
    parts = []
    for kind in ("tts_pair", "tts_interleave"):
        if kind not in picks:
            continue
        sel = np.array([where[(int(r), int(p))] for r, p in zip(*picks[kind]) if (int(r), int(p)) in where], np.int64)
        reps = np.array([p for r, p in zip(*picks[kind]) if (int(r), int(p)) in where], np.int64)
        if not len(sel):
            continue
        if kind == "tts_pair":
            transcript = raw if s.text_form == "raw" else b.norm_text.take(pa.array(rows))
            parts.append(asr(kind, ids.take(pa.array(sel)), paths.take(pa.array(sel)), np.zeros(len(sel)),
                             durations[sel], transcript.take(pa.array(sel)), words.counts[sel], rows[sel], reps,
                             s.rates, s.tagged, s.rank(kind)))
            continue
        units = word_units(raw, words, normalize, s.text_form, cache)
        segments = _segments(units, s, s.segmenter)[0]
        batch = UtteranceBatch(ids, paths, np.zeros(len(rows)), durations, raw, raw, raw, raw, words)
        lvl = levels(ids.take(pa.array(sel)), s)
        for level, source in ((0, units), (1, segments)):
            m = lvl == level
            if m.any():
                built = _interleave(kind, level, source, sel[m], reps[m], batch, s, True)
                built.row = rows[built.row]
                parts.append(built)
    return parts
