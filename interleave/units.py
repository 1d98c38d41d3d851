"""The units interleaving alternates over, computed for a whole batch of aligned sources at once.

A *word unit* is one whitespace token of the transcript as written ("500," is one unit covering the
aligned words "five hundred"; its speech runs from the first word's start to the last word's end),
or, with `form="norm"`, one aligned (normalised) word. The raw tokens are mapped onto the aligned
words by normalising each token on its own (cached per distinct token); a token that normalises
to nothing ("—", "&" aside) joins the unit before it. When the mapping fails for a source (the
aligner dropped or changed a word), that source falls back to normalised word units and
`Units.raw` says so.

A *segment unit* is a run of consecutive word units: cut where the speaker is silent for at least
`max_pause` seconds (`silence`), after a word unit ending with clause punctuation . , ; : ! ?
(`punctuation`, from the raw transcript), at either (`silence_punct`, the paper's second
segmenter) or every N units (`every_n`). A source with two or more units that no rule cuts is cut
at its widest pause, so it can still be interleaved (counted in `widest_gap`). Cuts fall between
word units, never inside "five hundred".

Everything is columnar: words, units and segments are flat numpy/Arrow arrays with per-source
offsets, so a batch of thousands of utterances costs a few dozen vectorised operations.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SEGMENTERS = ("silence", "silence_punct", "punctuation", "every_n")
FORMS = ("raw", "norm")
CLAUSE_END = re.compile(r"[.,;:!?]['\")\]]*$")


def ragged_arange(lengths: np.ndarray) -> np.ndarray:
    """[0..l0), [0..l1), … concatenated."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)


def _rebased(offsets: pa.Array) -> np.ndarray:
    out = np.asarray(offsets, dtype=np.int64)
    return out - out[0]


@dataclass
class Words:
    """Aligned words of n sources: source i owns words offsets[i]:offsets[i+1]."""

    offsets: np.ndarray
    word: pa.Array
    start: np.ndarray
    end: np.ndarray

    @classmethod
    def from_lists(cls, words: pa.Array | pa.ChunkedArray) -> "Words":
        """From an Arrow `list<struct{word, start, end, …}>` column (null lists are empty)."""
        if isinstance(words, pa.ChunkedArray):
            words = words.combine_chunks() if words.num_chunks else pa.array([], words.type)
        raw = np.asarray(words.offsets, dtype=np.int64)
        values = words.values.slice(raw[0], raw[-1] - raw[0])
        offsets = raw - raw[0]
        return cls(offsets, values.field("word"), _floats(values.field("start")), _floats(values.field("end")))

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)


def _floats(values: pa.Array) -> np.ndarray:
    return np.asarray(values.fill_null(0.0).to_numpy(zero_copy_only=False), dtype=np.float64)


@dataclass
class Units:
    """Units of n sources: source i owns units offsets[i]:offsets[i+1], in time order."""

    offsets: np.ndarray
    text: pa.Array | None  # what a text span of the unit says (None in the first pass)
    start: np.ndarray  # speech span of the unit (seconds from the source's audio start)
    end: np.ndarray
    words: np.ndarray  # aligned words the unit covers
    clause: np.ndarray  # a clause ends after the unit (raw punctuation)
    raw: np.ndarray  # per source: the raw tokens mapped onto the aligned words

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def source(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.offsets) - 1), self.counts)


def token_info(token: str, normalize: Callable[[str], str]) -> tuple[tuple[str, ...], bool]:
    """(the normalised words of one raw token, whether a clause ends after it)."""
    return tuple(normalize(token).split()), bool(CLAUSE_END.search(token))


# A plain word, maybe quoted or bracketed by ( ), maybe ending with punctuation: it normalises to
# itself in lower case without the punctuation around it, which Arrow does for all of them at once;
# every other token (digits, hyphens, symbols, annotations, non-ASCII) goes through `normalize`.
_PLAIN = r"^[\"'(]*[A-Za-z]+(?:'[A-Za-z]+)*[.,;:!?\"')]*$"
_AROUND = r"^[\"'(]+|[.,;:!?\"')]+$"
_CLAUSE = r"[.,;:!?]['\")\]]*$"


class TokenCache(dict):
    """Raw tokens that are not plain words, with their normalised words and clause flag (per
    process; memoisation only, bounded by `limit` entries)."""

    def __init__(self, limit: int = 200_000):
        super().__init__()
        self.limit = limit


def _token_pieces(tokens: pa.Array, normalize: Callable[[str], str], cache: TokenCache | None = None):
    """Per token: how many normalised words it gives, whether it ends a clause, and where its words
    start in a pool of strings. Worked out once per distinct token of the batch: plain words by
    Arrow, the others by `normalize` (cached)."""
    cache = TokenCache() if cache is None else cache
    if len(cache) > cache.limit:
        cache.clear()
    encoded = pc.dictionary_encode(tokens)
    distinct = encoded.dictionary.cast(pa.string())
    n = len(distinct)
    plain = np.asarray(pc.match_substring_regex(distinct, _PLAIN).fill_null(False))
    clause = np.asarray(pc.match_substring_regex(distinct, _CLAUSE).fill_null(False))
    pieces = np.ones(n, np.int64)
    start = np.arange(n, dtype=np.int64)
    pool = [pc.replace_substring_regex(pc.utf8_lower(distinct), _AROUND, "")]
    other = np.flatnonzero(~plain)
    if len(other):
        info = []
        for token in distinct.take(pa.array(other)).to_pylist():
            got = cache.get(token)
            if got is None:
                got = cache[token] = token_info(token, normalize)
            info.append(got)
        counts = np.array([len(p) for p, _ in info], np.int64)
        pieces[other] = counts
        clause[other] = [c for _, c in info]
        start[other] = n + np.concatenate([[0], np.cumsum(counts)])[:-1]
        pool.append(pa.array([w for p, _ in info for w in p], pa.string()))
    index = np.asarray(encoded.indices, np.int64)
    return pieces[index], clause[index], pa.concat_arrays(pool), start[index]


def word_units(texts: pa.Array, words: Words, normalize: Callable[[str], str], form: str = "raw",
               cache: TokenCache | None = None, with_text: bool = True) -> Units:
    """Word units of each source from its raw transcript and aligned words (see the module doc).

    `with_text=False` (the first pass, which only counts) skips the unit strings (`text` is None)
    and trusts a mapping whose word counts agree without comparing the words themselves."""
    if form not in FORMS:
        raise ValueError(f"text form must be one of {', '.join(FORMS)}, got {form!r}")
    n = len(texts)
    n_words = words.counts
    split = pc.utf8_split_whitespace(pc.fill_null(texts, ""))
    tokens, tok_off = split.flatten(), _rebased(split.offsets)
    tok_src = np.repeat(np.arange(n), np.diff(tok_off))
    nonempty = np.asarray(pc.greater(pc.binary_length(tokens), 0).fill_null(False))
    if not nonempty.all():
        tokens, tok_src = tokens.filter(pa.array(nonempty)), tok_src[nonempty]
    pieces, clause, piece_pool, piece_start = _token_pieces(tokens, normalize, cache)

    # does each source's token sequence normalise to exactly its aligned words?
    cum = np.concatenate([[0], np.cumsum(pieces)])
    first_tok = np.searchsorted(tok_src, np.arange(n), side="left")
    last_tok = np.searchsorted(tok_src, np.arange(n), side="right")
    totals = cum[last_tok] - cum[first_tok]
    ok = (totals == n_words) & (n_words > 0)
    piece_src = np.repeat(tok_src, pieces)
    piece_rank = np.arange(len(piece_src)) - cum[first_tok][piece_src]
    sel = ok[piece_src]
    if sel.any() and with_text:
        piece_idx = np.repeat(piece_start - cum[:-1], pieces) + np.arange(cum[-1])
        wpos = words.offsets[piece_src[sel]] + piece_rank[sel]
        same = pc.equal(pc.take(piece_pool, pa.array(piece_idx[sel])),
                        pc.utf8_lower(pc.take(words.word, pa.array(wpos))))
        bad = np.asarray(same.fill_null(False)) == False  # noqa: E712
        ok &= np.bincount(piece_src[sel][bad], minlength=n) == 0

    word_clause = np.zeros(len(words.start), dtype=bool)
    if ok.any():  # a word ends a clause when it is the last piece of a token that does
        tsel = ok[tok_src] & (pieces > 0)
        last_piece = words.offsets[tok_src[tsel]] + (cum[1:][tsel] - cum[first_tok][tok_src[tsel]]) - 1
        word_clause[last_piece] = clause[tsel]
    if form == "norm":
        return _word_level(words, np.ones(n, bool), word_clause, ok, with_text)
    raw_units = _raw_units(tokens, tok_src, pieces, clause, ok, words, with_text)
    fallback = _word_level(words, ~ok, word_clause, ok, with_text)
    return _merge(raw_units, fallback, n, ok)


def _word_level(words: Words, which: np.ndarray, word_clause: np.ndarray, ok: np.ndarray, with_text: bool = True) -> Units:
    """One unit per aligned word of the sources in `which`."""
    counts = np.where(which, words.counts, 0)
    keep = np.repeat(which, words.counts)
    text = words.word.filter(pa.array(keep)) if with_text else None
    return Units(np.concatenate([[0], np.cumsum(counts)]), text, words.start[keep],
                 words.end[keep], np.ones(int(keep.sum()), np.int64), word_clause[keep], ok.copy())


def _raw_units(tokens, tok_src, pieces, clause, ok, words: Words, with_text: bool = True) -> Units:
    n = len(ok)
    tsel = ok[tok_src]
    src, npc = tok_src[tsel], pieces[tsel]
    cls = clause[tsel]
    has = npc > 0
    seen = np.cumsum(has)
    src_first = np.searchsorted(src, np.arange(n), side="left")
    before = np.concatenate([[0], seen])[src_first]  # units of earlier sources
    gid = np.maximum(seen - 1, before[src])  # leading empty tokens join the first unit
    first = np.flatnonzero(np.concatenate([[True], gid[1:] != gid[:-1]])) if len(gid) else np.zeros(0, np.int64)
    tok_offsets = np.concatenate([first, [len(gid)]]).astype(np.int32)
    text = None
    if with_text:
        toks = tokens.filter(pa.array(tsel))
        text = pc.binary_join(pa.ListArray.from_arrays(pa.array(tok_offsets), toks), " ")
    unit_src = src[first]
    unit_words = np.add.reduceat(npc, first) if len(first) else np.zeros(0, np.int64)
    c = np.concatenate([[0], np.cumsum(npc)])
    w0 = words.offsets[unit_src] + (c[first] - c[src_first][unit_src])
    w1 = w0 + unit_words - 1
    counts = np.bincount(unit_src, minlength=n)
    return Units(np.concatenate([[0], np.cumsum(counts)]), text, words.start[w0], words.end[w1], unit_words,
                 cls[tok_offsets[1:] - 1], ok.copy())


def _merge(a: Units, b: Units, n: int, ok: np.ndarray) -> Units:
    """Units of two disjoint sets of sources, in source order."""
    if not len(b.start) or not len(a.start):
        return a if len(a.start) else b
    order = np.argsort(np.concatenate([a.source, b.source]), kind="stable")
    cat = lambda x, y: np.concatenate([x, y])[order]  # noqa: E731
    counts = a.counts + b.counts
    text = None
    if a.text is not None:
        text = pc.take(pa.concat_arrays([a.text.cast(pa.string()), b.text.cast(pa.string())]), pa.array(order))
    return Units(np.concatenate([[0], np.cumsum(counts)]), text, cat(a.start, b.start), cat(a.end, b.end),
                 cat(a.words, b.words), cat(a.clause, b.clause), ok)


def segment_cuts(units: Units, segmenter: str, max_pause: float = 0.4, every_n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(cut after each unit?, per source: cut at the widest pause because no rule cut it)."""
    if segmenter not in SEGMENTERS:
        raise ValueError(f"unknown segmenter {segmenter!r}; choose among {', '.join(SEGMENTERS)}")
    total, n = len(units.start), len(units.offsets) - 1
    src = units.source
    last = np.zeros(total, dtype=bool)
    counts = units.counts
    last[units.offsets[1:][counts > 0] - 1] = True
    pause = np.zeros(total)
    if total > 1:
        pause[:-1] = units.start[1:] - units.end[:-1]
    pause[last] = -np.inf
    cut = np.zeros(total, dtype=bool)
    if segmenter in ("silence", "silence_punct"):
        cut |= pause >= max_pause
    if segmenter in ("punctuation", "silence_punct"):
        cut |= units.clause
    if segmenter == "every_n":
        if every_n < 1:
            raise ValueError(f"every_n needs at least 1 unit per segment, got {every_n}")
        cut |= (np.arange(total) - units.offsets[src] + 1) % every_n == 0
    cut &= ~last
    need = (np.bincount(src[cut], minlength=n) == 0) & (counts >= 2)
    cand = np.flatnonzero(need[src] & ~last)
    if len(cand):
        order = np.lexsort((cand, -pause[cand], src[cand]))  # per source: widest pause, then earliest
        ranked = cand[order]
        firsts = ranked[np.concatenate([[True], src[ranked][1:] != src[ranked][:-1]])]
        cut[firsts] = True
    return cut, need


def bound_cuts(units: Units, cut: np.ndarray, min_words: int, max_duration: float) -> np.ndarray:
    """Extension bounds on segments, per source (a Python loop; off by default): segments longer
    than `max_duration` seconds are cut before the unit that overflows them, and segments of fewer
    than `min_words` words fold into their left (or right) neighbour."""
    if min_words <= 1 and max_duration <= 0:
        return cut
    cut = cut.copy()
    for i in range(len(units.offsets) - 1):
        lo, hi = int(units.offsets[i]), int(units.offsets[i + 1])
        if hi - lo < 2:
            continue
        segments, current = [], [lo]
        for u in range(lo + 1, hi):
            if cut[u - 1] or (max_duration > 0 and units.end[u] - units.start[current[0]] > max_duration):
                segments.append(current)
                current = []
            current.append(u)
        segments.append(current)
        merged: list[list[int]] = []
        for seg in segments:
            short = lambda s: int(units.words[s].sum()) < min_words  # noqa: E731
            if merged and (short(seg) or short(merged[-1])):
                merged[-1] = merged[-1] + seg
            else:
                merged.append(seg)
        cut[lo:hi] = False
        for seg in merged[:-1]:
            cut[seg[-1]] = True
    return cut


def segment_units(units: Units, cut: np.ndarray) -> Units:
    """Runs of word units between cuts (and source boundaries) as units of their own."""
    total, n = len(units.start), len(units.offsets) - 1
    if total == 0:
        return Units(np.zeros(n + 1, np.int64), pa.array([], pa.string()) if units.text is not None else None,
                     np.zeros(0), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, bool), units.raw)
    begins = np.zeros(total, dtype=bool)
    begins[units.offsets[:-1][units.counts > 0]] = True
    begins[1:] |= cut[:-1]
    first = np.flatnonzero(begins)
    last = np.concatenate([first[1:], [total]]) - 1
    offsets = np.concatenate([first, [total]]).astype(np.int32)
    text = None
    if units.text is not None:
        text = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), units.text.cast(pa.string())), " ")
    counts = np.bincount(units.source[first], minlength=n)
    return Units(np.concatenate([[0], np.cumsum(counts)]), text, units.start[first], units.end[last],
                 np.add.reduceat(units.words, first), units.clause[last], units.raw)
