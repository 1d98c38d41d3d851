"""Sample rows as Arrow columns: ids, the Sample schema, and the asr, text and interleave builders.

Sample ids: `<source id>:<kind>`, then `:<level>` for kinds that mix levels (`interleave_mixed`,
`tts_interleave`), `:a1` or `:t1` for the paper's variant (speech first, text first), and `#r` for
the r-th repeat (r > 0). `text` samples of training transcripts are `<utt>:transcript_text`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifests.schema import AUDIO_TYPE, SAMPLE_SCHEMA

from .sentences import split_many
from .sequences import Alternation, asr_slots, spans_column, text_slots
from .tokens import Rates, count


@dataclass
class Built:
    """Samples of one kind with what the stage counts and how they are ordered in a shard."""

    table: pa.Table
    row: np.ndarray  # the source's row in its batch
    rank: np.ndarray  # order among the samples of one row (kind, level, variant, repeat)
    speech_seconds: np.ndarray
    tokens: np.ndarray
    dropped: int = 0  # variants that dropped their final unit to end with text
    skipped: int = 0  # variants not built: too few units
    notes: dict = field(default_factory=dict)

    @classmethod
    def empty(cls) -> "Built":
        z = np.zeros(0)
        return cls(SAMPLE_SCHEMA.empty_table(), z.astype(np.int64), z.astype(np.int64), z, z)


def concat(parts: Sequence[Built]) -> Built:
    parts = [p for p in parts if p.table.num_rows] or [Built.empty()]
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    return Built(pa.concat_tables([p.table for p in parts]), cat("row"), cat("rank"), cat("speech_seconds"),
                 cat("tokens"), sum(p.dropped for p in parts), sum(p.skipped for p in parts))


def suffixes(kind: str, repeats: np.ndarray, level: np.ndarray | None = None, variant: np.ndarray | None = None) -> pa.Array:
    """`:kind[:level][:a1|:t1][#r]` for each sample (levels and variants as small codes), built by
    taking from the few distinct suffixes rather than string by string."""
    r = np.asarray(repeats, np.int64)
    n_rep = int(r.max(initial=0)) + 1
    lv = np.zeros(len(r), np.int64) if level is None else np.asarray(level, np.int64) + 1
    va = np.zeros(len(r), np.int64) if variant is None else np.asarray(variant, np.int64) + 1
    names = [f":{kind}{['', ':word', ':segment'][a]}{['', ':a1', ':t1'][b]}{f'#{c}' if c else ''}"
             for a in range(3) for b in range(3) for c in range(n_rep)]
    return pa.array(names, pa.string()).take(pa.array((lv * 3 + va) * n_rep + r))


def assemble(kind: str, ids: pa.Array, suffix: pa.Array, audio_path: pa.Array | None, offset: np.ndarray,
             duration: np.ndarray, spans: pa.Array, n_speech: np.ndarray, n_text: np.ndarray) -> pa.Table:
    """A table of the Sample schema (no embedded audio: the stage adds it)."""
    n = len(ids)
    paths = audio_path if audio_path is not None else pa.array([""] * n, pa.string())
    columns = [pc.binary_join_element_wise(ids.cast(pa.string()), suffix, ""), pa.array([kind] * n, pa.string()),
               ids.cast(pa.string()), paths.cast(pa.string()), pa.array(offset, pa.float64()),
               pa.array(duration, pa.float64()), spans, pa.array(n_speech, pa.int32()), pa.array(n_text, pa.int32()),
               pa.nulls(n, AUDIO_TYPE)]
    return pa.Table.from_arrays(columns, schema=SAMPLE_SCHEMA)


def asr(kind: str, ids: pa.Array, audio_path: pa.Array, offset: np.ndarray, duration: np.ndarray,
        transcript: pa.Array, n_words: np.ndarray, rows: np.ndarray, repeats: np.ndarray, rates: Rates,
        tagged: bool = False, rank: int = 0) -> Built:
    """`<s>` A `<|asr|>` T `</s>` for each row: asr samples and tts pairs."""
    spans, n_tokens = spans_column(asr_slots(np.asarray(duration, np.float64), transcript), tagged)
    table = assemble(kind, ids, suffixes(kind, repeats), audio_path, offset, duration, spans, n_words, n_words)
    return Built(table, np.asarray(rows), np.full(len(rows), rank) + np.asarray(repeats) * 100,
                 np.asarray(duration, np.float64), count(duration, n_words, n_tokens, rates))


def text(kind: str, ids: pa.Array, raw: Sequence[str | None], n_words: np.ndarray, rows: np.ndarray,
         repeats: np.ndarray, rates: Rates, normalize: Callable[[str], str] | None = None,
         rank: int = 0, id_kind: str | None = None) -> Built:
    """`<s>` S1 `</s>` S2 `</s>` … for each row (sentences as written, or normalised with `normalize`);
    a record with no sentence gives no sample (counted in `skipped`)."""
    counts, sentences = split_many(raw)
    counts = np.array(counts, np.int64)
    if normalize is not None:
        normed = [normalize(s) for s in sentences]
        keep = np.array([bool(s) for s in normed], bool)
        sentences = [s for s in normed if s]
        owner = np.repeat(np.arange(len(counts)), counts)
        counts = np.bincount(owner[keep], minlength=len(counts)) if len(owner) else counts
    has = counts > 0
    spans, n_tokens = spans_column(text_slots(counts[has], pa.array(sentences, pa.string())))
    sel = pa.array(np.flatnonzero(has))
    n = int(has.sum())
    table = assemble(kind, ids.take(sel), suffixes(id_kind or kind, np.asarray(repeats)[has]), None, np.zeros(n),
                     np.zeros(n), spans, np.zeros(n, np.int64), np.asarray(n_words)[has])
    return Built(table, np.asarray(rows)[has], np.full(n, rank) + np.asarray(repeats)[has] * 100, np.zeros(n),
                 count(0.0, np.asarray(n_words)[has], n_tokens, rates), skipped=int((~has).sum()))


def interleaved(kind: str, built: Alternation, ids: pa.Array, audio_path: pa.Array, offset: np.ndarray,
                duration: np.ndarray, repeats: np.ndarray, rates: Rates, tagged: bool = False,
                level: int | None = None, rank: int = 0) -> Built:
    """Interleaved samples from `built`: its `source` indexes the per-source columns (`ids`, …), its
    `candidate` the per-candidate `repeats`."""
    src = pa.array(built.source)
    spans, n_tokens = spans_column(built.slots, tagged)
    variant = built.variant if (built.variant >= 0).all() else None
    reps = np.asarray(repeats, np.int64)[built.candidate]
    levels = None if level is None else np.full(len(built.source), level)
    table = assemble(kind, ids.take(src), suffixes(kind, reps, levels, variant), audio_path.take(src),
                     np.asarray(offset)[built.source], np.asarray(duration)[built.source], spans,
                     built.speech_words, built.text_words)
    order = rank + 10 * (level or 0) + np.maximum(built.variant, 0) + 100 * reps
    return Built(table, built.source, order, built.speech_seconds,
                 count(built.speech_seconds, built.text_words, n_tokens, rates), int(built.dropped.sum()), built.skipped)
