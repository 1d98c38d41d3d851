"""Both passes of the interleave stage over one batch of utterances, as pure functions.

Pass 1 (`utterance_measures`): which rows may give which kind (the pools) and each candidate's
measure (tokens, or samples), from columns only. Pass 2 (`build_utterances`): the candidates under
their kind's threshold (see `recipes.py`) become samples. A batch is utterance rows joined with
their alignments: `asr` draws from every utterance of the split with a transcript except those
whose alignment failed (the aligner found the audio and the words disagree: silence, a wrong
transcript; `asr_failed_alignments` keeps them, as the paper's ASR data may), interleaved kinds from
those whose alignment is `ok` with 2+ words (failed alignments are removed, as in the paper), `text`
from their transcripts when `transcripts_as_text`.
Text records and the TTS kinds are in `text_batch.py`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .extension import sampled
from .hashing import string_hash, unit_interval
from .recipes import chosen, histogram
from .sampling import SamplerParams
from .samples import Built, asr, concat, interleaved, text
from .sequences import alternation, alternation_measure
from .tokens import Rates, count, estimate_asr, estimate_text
from .units import TokenCache, Units, Words, bound_cuts, segment_cuts, segment_units, word_units

HIST_SEGMENTERS = ("silence", "silence_punct")  # the paper's Figure 2
MAX_BIN = 60  # segments of 60+ words share the last bin


@dataclass(frozen=True)
class BuildSettings:
    """What building depends on (the stage's config, less paths and execution)."""

    kinds: tuple[str, ...]
    split: str = "train"
    seed: int = 0
    mix_by: str = "tokens"
    max_repeats: int = 1
    text_form: str = "raw"
    tagged: bool = False
    variants: str = "both"
    segmenter: str = "silence_punct"
    max_pause: float = 0.3
    min_words: int = 1
    max_segment_duration: float = 0.0
    segment_words: int = 5
    word_sampler: str = "alternate"
    segment_sampler: str = "alternate"
    sampler: SamplerParams = SamplerParams()
    layout: str = "switch"
    word_probability: float = 0.5
    transcripts_as_text: bool = False
    rates: Rates = Rates()
    tts_words_per_minute: float = 165.0
    asr_failed_alignments: bool = False

    def rank(self, kind: str) -> int:
        return 1000 * self.kinds.index(kind)


def word_counts(texts: pa.Array) -> np.ndarray:
    return np.asarray(pc.list_value_length(pc.utf8_split_whitespace(pc.fill_null(texts, ""))), np.int64)


def sentence_guess(texts: pa.Array) -> np.ndarray:
    """About how many sentences each text has (for token estimates only)."""
    ends = np.asarray(pc.count_substring_regex(pc.fill_null(texts, ""), r"[.!?]+['\")\]]*(\s|$)"), np.int64)
    return np.maximum(ends, 1)


def levels(ids: pa.Array, s: BuildSettings) -> np.ndarray:
    """0 (word) or 1 (segment) per source of a kind that mixes levels, drawn from (seed, id)."""
    return (unit_interval(string_hash(ids, f"{s.seed}:level")) >= s.word_probability).astype(np.int64)


@dataclass
class UtteranceBatch:
    """Utterance rows with their alignment (status null: no alignment record; words empty unless ok).
    Pass 1 reads only ids, splits and durations: the other columns are then None."""

    ids: pa.Array
    audio_path: pa.Array | None
    offset: np.ndarray
    duration: np.ndarray
    text: pa.Array | None
    norm_text: pa.Array | None
    split: pa.Array
    status: pa.Array
    words: Words

    @classmethod
    def from_table(cls, t: pa.Table) -> "UtteranceBatch":
        col = lambda name: t.column(name).combine_chunks() if name in t.column_names else None  # noqa: E731
        nums = lambda name: np.asarray(col(name).fill_null(0.0).to_numpy(zero_copy_only=False), np.float64) \
            if name in t.column_names else np.zeros(t.num_rows)  # noqa: E731
        return cls(col("utt_id"), col("audio_path"), nums("offset"), nums("duration"), col("text"), col("norm_text"),
                   col("split"), col("status"), Words.from_lists(col("words")))

    def __len__(self) -> int:
        return len(self.ids)

    def n_words(self) -> np.ndarray:
        """Words of each transcript: counted in `norm_text`, else (pass 1) the aligned words, else
        estimated from the duration at the aligned rows' speaking rate."""
        if self.norm_text is not None:
            return word_counts(self.norm_text)
        aligned = self.words.counts
        rate = aligned.sum() / max(self.duration[aligned > 0].sum(), 1e-9) if aligned.any() else 2.5
        return np.where(aligned > 0, aligned, np.maximum(1, np.round(self.duration * rate))).astype(np.int64)


def utterance_reasons(b: UtteranceBatch, s: BuildSettings) -> dict[str, np.ndarray]:
    """Masks over rows: where each row stands (one category per row)."""
    in_split = np.asarray(pc.equal(b.split, s.split).fill_null(False))
    has_words = (b.n_words() > 0) & (b.duration > 0)
    status = pc.fill_null(b.status, "")
    no_record = np.asarray(pc.equal(status, ""))
    ok = np.asarray(pc.equal(status, "ok")) & ~no_record
    # partial: words placed but a stretch left out or speech no word explains; its transcript does not
    # match its audio as a whole, so it is used like a failed alignment, and counted apart
    partial = np.asarray(pc.equal(status, "partial"))
    usable = in_split & has_words
    return {"other_split": ~in_split, "no_transcript": in_split & ~has_words, "no_alignment": usable & no_record,
            "alignment_partial": usable & partial,
            "alignment_failed": usable & ~no_record & ~ok & ~partial,
            "one_aligned_word": usable & ok & (b.words.counts < 2),
            "aligned": usable & ok & (b.words.counts >= 2)}


def utterance_pools(b: UtteranceBatch, s: BuildSettings) -> dict[str, np.ndarray]:
    """Rows each utterance kind of the recipe may draw from."""
    r = utterance_reasons(b, s)
    not_ok = r["alignment_failed"] | r["alignment_partial"]
    transcribed = r["no_alignment"] | not_ok | r["one_aligned_word"] | r["aligned"]
    speech = transcribed if s.asr_failed_alignments else transcribed & ~not_ok
    pools = {"asr": speech, **({"text": transcribed} if s.transcripts_as_text else {})}  # text needs no audio
    for kind in ("interleave_word", "interleave_segment", "interleave_mixed"):
        pools[kind] = r["aligned"]
    return {k: np.flatnonzero(m) for k, m in pools.items() if k in s.kinds}


def needs_text(s: BuildSettings) -> bool:
    """Whether the first pass must read transcripts: raw word units or punctuation cuts of interleaved kinds."""
    interleaved = any(k.startswith("interleave_") for k in s.kinds)
    return s.transcripts_as_text or interleaved and (s.text_form == "raw" or "punct" in s.segmenter)


def interleave_measures(b: UtteranceBatch, s: BuildSettings, normalize: Callable[[str], str],
                        cache: TokenCache | None = None) -> dict[str, np.ndarray]:
    """Per row and level ("word", "segment"): the tokens and samples its interleaved sequences
    would have, computed like pass 2 builds them but without any strings."""
    texts = b.text if b.text is not None else pa.nulls(len(b), pa.string())
    units = word_units(texts, b.words, normalize, s.text_form, cache, with_text=False)
    out = {}
    for level, source in (("word", units), ("segment", _segments(units, s, s.segmenter)[0])):
        sampler = s.word_sampler if level == "word" else s.segment_sampler
        variants = s.variants if sampler == "alternate" and s.layout == "switch" else "whole"
        m = alternation_measure(source, variants, level == "segment", s.tagged)
        out[f"{level}_tokens"] = count(m["speech_seconds"], m["text_words"], m["token_spans"], s.rates)
        out[f"{level}_samples"] = m["samples"] if variants == s.variants else np.minimum(m["samples"], 1)
    return out


def utterance_measures(b: UtteranceBatch, s: BuildSettings, normalize: Callable[[str], str] = str.lower,
                       cache: TokenCache | None = None) -> dict[str, tuple[pa.Array, np.ndarray]]:
    """Per kind: the candidates' ids and measures (tokens or samples)."""
    out = {}
    n_words = b.n_words()
    exact = interleave_measures(b, s, normalize, cache) if any(k.startswith("interleave_") for k in s.kinds) else {}
    for kind, rows in utterance_pools(b, s).items():
        ids = b.ids.take(pa.array(rows))
        if kind == "asr":
            tokens = estimate_asr(b.duration[rows], n_words[rows], s.rates, s.tagged)
            measure = np.ones(len(rows))
        elif kind == "text":
            tokens = estimate_text(n_words[rows], sentence_guess(b.text.take(pa.array(rows))), s.rates)
            measure = np.ones(len(rows))
        else:
            lvl = {"interleave_word": np.zeros(len(rows), np.int64), "interleave_segment": np.ones(len(rows), np.int64),
                   "interleave_mixed": levels(ids, s)}[kind]
            tokens = np.where(lvl == 0, exact["word_tokens"][rows], exact["segment_tokens"][rows])
            measure = np.where(lvl == 0, exact["word_samples"][rows], exact["segment_samples"][rows])
        out[kind] = (ids, tokens if s.mix_by == "tokens" else measure)
    return out


def histograms(measures: dict[str, tuple[pa.Array, np.ndarray]], s: BuildSettings) -> dict[str, np.ndarray]:
    return {k: histogram(ids, m, s.seed, k, s.max_repeats) for k, (ids, m) in measures.items()}


def _taken(ids: pa.Array, rows: np.ndarray, s: BuildSettings, kind: str, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, repeats) of the candidates of `kind` below its threshold, in row order."""
    got = chosen(ids, s.seed, kind, s.max_repeats, threshold)
    if not got:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    r = np.concatenate([np.full(len(idx), rep) for rep, idx in got])
    picked = np.concatenate([rows[idx] for _, idx in got])
    order = np.lexsort((r, picked))
    return picked[order], r[order]


@dataclass
class Facts:
    """What pass 2 counts besides the samples (merged over batches by the stage)."""

    reasons: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    segments: dict[str, list[int]] = field(default_factory=dict)  # words per segment histograms
    used_seconds: float = 0.0
    split_seconds: float = 0.0
    used_aligned: int = 0
    raw_fallback: int = 0
    widest_gap: int = 0
    notes: dict[str, int] = field(default_factory=dict)


def _segments(units: Units, s: BuildSettings, segmenter: str) -> tuple[Units, np.ndarray]:
    cut, widest = segment_cuts(units, segmenter, s.max_pause, s.segment_words)
    return segment_units(units, bound_cuts(units, cut, s.min_words, s.max_segment_duration)), widest


def _interleave(kind: str, level: int, units: Units, rows: np.ndarray, reps: np.ndarray, b: UtteranceBatch,
                s: BuildSettings, level_tag: bool) -> Built:
    sampler = s.word_sampler if level == 0 else s.segment_sampler
    if sampler == "alternate" and s.layout == "switch":
        alt = alternation(units, rows, s.variants, segment_level=level == 1)
    else:
        keys = [f"{i}:{kind}:{r}" for i, r in zip(b.ids.take(pa.array(rows)).to_pylist(), reps)]
        alt = sampled(units, rows, keys, sampler, s.sampler, s.seed, level == 1, s.layout)
    return interleaved(kind, alt, b.ids, b.audio_path, b.offset, b.duration, reps, s.rates, s.tagged,
                       level if level_tag else None, s.rank(kind))


def build_utterances(b: UtteranceBatch, s: BuildSettings, thresholds: dict[str, int],
                     normalize: Callable[[str], str], cache: TokenCache | None = None) -> tuple[Built, Facts]:
    """The samples of the chosen candidates of a batch, and what pass 2 counts."""
    facts = Facts()
    reasons = utterance_reasons(b, s)
    for name, mask in reasons.items():
        facts.reasons[name] = int(mask.sum())
        if name != "aligned" and mask.any():
            facts.examples[name] = b.ids.filter(pa.array(mask)).slice(0, 3).to_pylist()
    pools = utterance_pools(b, s)
    aligned = np.flatnonzero(reasons["aligned"])
    parts: list[Built] = []
    used = np.zeros(len(b), bool)
    units = segments = None
    if any(k.startswith("interleave_") for k in s.kinds):
        units = word_units(b.text, b.words, normalize, s.text_form, cache)
        facts.raw_fallback = int((~units.raw[aligned]).sum())
        segments, widest = _segments(units, s, s.segmenter)
        facts.widest_gap = int(widest[aligned].sum())
        for name in HIST_SEGMENTERS:
            segs = segments if name == s.segmenter else _segments(units, s, name)[0]
            keep = np.repeat(reasons["aligned"], segs.counts)
            facts.segments[name] = np.bincount(np.minimum(segs.words[keep], MAX_BIN), minlength=MAX_BIN + 1).tolist()
    for kind, rows in pools.items():
        picked, reps = _taken(b.ids.take(pa.array(rows)), rows, s, kind, thresholds.get(kind, 0))
        if not len(picked):
            continue
        if kind == "asr":
            transcript = b.text if s.text_form == "raw" else b.norm_text
            idx = pa.array(picked)
            parts.append(asr(kind, b.ids.take(idx), b.audio_path.take(idx), b.offset[picked], b.duration[picked],
                             transcript.take(idx), word_counts(b.norm_text)[picked], picked, reps, s.rates, s.tagged,
                             s.rank(kind)))
        elif kind == "text":
            raw = b.text.take(pa.array(picked)).to_pylist()
            parts.append(text(kind, b.ids.take(pa.array(picked)), raw, word_counts(b.norm_text)[picked], picked, reps,
                              s.rates, normalize if s.text_form == "norm" else None, s.rank(kind), "transcript_text"))
        else:
            lvl = {"interleave_word": 0, "interleave_segment": 1}.get(kind)
            per = levels(b.ids.take(pa.array(picked)), s) if lvl is None else np.full(len(picked), lvl)
            for level, source in ((0, units), (1, segments)):
                sel = per == level
                if sel.any():
                    parts.append(_interleave(kind, level, source, picked[sel], reps[sel], b, s, lvl is None))
        if kind != "text":
            used[picked] = True
    built = concat(parts)
    facts.used_seconds = float(b.duration[used].sum())
    in_split = reasons["no_alignment"] | reasons["one_aligned_word"] | reasons["aligned"]  # what a recipe may use
    if s.asr_failed_alignments:
        in_split = in_split | reasons["alignment_failed"] | reasons["alignment_partial"]
    facts.split_seconds = float(b.duration[in_split].sum())
    facts.used_aligned = int((used & reasons["aligned"]).sum())
    return built, facts
