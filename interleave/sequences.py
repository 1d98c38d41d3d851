"""Training sequences in the paper's token formats (manifests/formats.py), built as Arrow columns.

A builder lays out *slots* for every sample of a batch at once: speech (times into the source's
audio), text (an index into a pool of strings) or one special token. `spans_column` turns the
slots into the Sample `spans` column; with `tagged=True` (our first build's layout, an
extension) every speech span is wrapped in `<|speech|>` … `<|/speech|>`.

The paper's construction (`alternation`): from units (A1,T1) … (An,Tn), deterministic alternation
in two complementary variants, `a1` = A1 T2 A3 … and `t1` = T1 A2 T3 …, both ending with text.
With n units exactly one variant ends with text by itself; the other drops its final (speech)
unit, so that the pair is complementary: every unit is a text target in one of them and speech
in the other (the dropped one is text in the variant that keeps it). A variant needs speech and
text: `a1` needs 2 units, `t1` needs 3. `variants` picks `both` (default), `whole` (the variant
that keeps every unit), `speech_first` or `text_first`. Word level puts nothing between units;
segment level puts `<N>` before every unit but the first.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from manifests.formats import ASR, BOS, EOS, SEGMENT, SPEECH_CLOSE, SPEECH_OPEN, TOKENS
from manifests.schema import SPAN_TYPE, SPEECH, TEXT, TOKEN

from .units import Units, ragged_arange

SPEECH_CODE, TEXT_CODE, TOKEN_CODE = 0, 1, 2
_MODALITIES = pa.array([SPEECH, TEXT, TOKEN], pa.string())
_TOKEN_POOL = pa.array(list(TOKENS), pa.string())
TOK = {name: i for i, name in enumerate(TOKENS)}
VARIANTS = ("both", "whole", "speech_first", "text_first")
VARIANT_LABELS = ("a1", "t1")  # speech first, text first


@dataclass
class Slots:
    """The spans of a batch of samples before they become Arrow: sample i owns offsets[i]:offsets[i+1]."""

    offsets: np.ndarray
    code: np.ndarray  # SPEECH_CODE, TEXT_CODE or TOKEN_CODE
    index: np.ndarray  # token: index in TOKENS; speech/text: index in `pool`
    start: np.ndarray
    end: np.ndarray
    pool: pa.Array  # the strings of speech and text slots


def spans_column(slots: Slots, tagged: bool = False) -> tuple[pa.ListArray, np.ndarray]:
    """The `spans` list column and the number of token spans of each sample."""
    offsets, code, index, start, end = slots.offsets, slots.code, slots.index, slots.start, slots.end
    if tagged:
        speech = code == SPEECH_CODE
        width = 1 + 2 * speech
        per_sample = _per_sample(width, offsets)
        pos = np.cumsum(width) - width + speech  # where each slot lands
        n = int(width.sum())
        new_code = np.full(n, TOKEN_CODE, np.int8)
        new_index = np.full(n, TOK[SPEECH_OPEN], np.int64)
        new_index[pos[speech] + 1] = TOK[SPEECH_CLOSE]
        new_start, new_end = np.zeros(n), np.zeros(n)
        new_code[pos], new_index[pos], new_start[pos], new_end[pos] = code, index, start, end
        code, index, start, end = new_code, new_index, new_start, new_end
        offsets = np.concatenate([[0], np.cumsum(per_sample)])
    pool = pa.concat_arrays([_TOKEN_POOL, slots.pool.cast(pa.string())])
    take = np.where(code == TOKEN_CODE, index, index + len(TOKENS))
    struct = pa.StructArray.from_arrays(
        [_MODALITIES.take(pa.array(code.astype(np.int64))), pool.take(pa.array(take)),
         pa.array(start, pa.float64()), pa.array(end, pa.float64())], fields=list(SPAN_TYPE))
    n_tokens = _per_sample((code == TOKEN_CODE).astype(np.int64), offsets)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), struct), n_tokens


def _per_sample(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sums of `values` over each sample's slots."""
    cum = np.concatenate([[0], np.cumsum(values, dtype=np.int64)])
    return cum[offsets[1:]] - cum[offsets[:-1]]


def asr_slots(durations: np.ndarray, transcripts: pa.Array, speech_text: pa.Array | None = None) -> Slots:
    """`<s>` A `<|asr|>` T `</s>` per sample: the whole audio, then its transcript."""
    n = len(durations)
    speech_text = transcripts if speech_text is None else speech_text
    code = np.tile(np.array([TOKEN_CODE, SPEECH_CODE, TOKEN_CODE, TEXT_CODE, TOKEN_CODE], np.int8), n)
    index = np.stack([np.full(n, TOK[BOS]), n + np.arange(n), np.full(n, TOK[ASR]), np.arange(n),
                      np.full(n, TOK[EOS])], axis=1).ravel()
    start = np.zeros(5 * n)
    end = np.zeros((n, 5))
    end[:, 1] = durations
    pool = pa.concat_arrays([transcripts.cast(pa.string()), speech_text.cast(pa.string())])
    return Slots(np.arange(0, 5 * n + 1, 5), code, index, start, end.ravel(), pool)


def text_slots(sentence_counts: np.ndarray, sentences: pa.Array) -> Slots:
    """`<s>` S1 `</s>` S2 `</s>` … per sample (sample i owns the next sentence_counts[i] sentences)."""
    counts = np.asarray(sentence_counts, np.int64)
    lengths = 1 + 2 * counts
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    total = int(offsets[-1])
    code = np.full(total, TOKEN_CODE, np.int8)
    index = np.full(total, TOK[EOS], np.int64)
    index[offsets[:-1]] = TOK[BOS]
    k = ragged_arange(counts)
    pos = np.repeat(offsets[:-1], counts) + 1 + 2 * k
    code[pos] = TEXT_CODE
    index[pos] = np.arange(len(pos))
    return Slots(offsets, code, index, np.zeros(total), np.zeros(total), sentences)


@dataclass
class Alternation:
    """Samples built by deterministic alternation: their slots and what each one holds."""

    slots: Slots
    candidate: np.ndarray  # the position in `sources` each sample comes from
    source: np.ndarray  # the source each sample comes from
    variant: np.ndarray  # 0: a1 (speech first), 1: t1 (text first)
    dropped: np.ndarray  # the variant dropped its final unit to end with text
    speech_words: np.ndarray
    text_words: np.ndarray
    speech_seconds: np.ndarray
    skipped: int  # variants not built: too few units


def plan_variants(n_units: np.ndarray, variants: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(sample index into n_units, phase, units used) of every variant to build, and how many were skipped."""
    if variants not in VARIANTS:
        raise ValueError(f"variants must be one of {', '.join(VARIANTS)}, got {variants!r}")
    n = np.asarray(n_units, np.int64)
    wanted = {"both": [(0, True), (1, True)], "speech_first": [(0, True)], "text_first": [(1, True)],
              "whole": [(0, n % 2 == 0), (1, n % 2 == 1)]}[variants]
    parts, skipped = [], 0
    for phase, mask in wanted:
        mask = np.broadcast_to(mask, n.shape)
        used = n - ((n + phase) % 2 == 1)  # a1 keeps an even count, t1 an odd one
        valid = mask & (used >= 2 + phase)
        skipped += int((mask & ~valid & (n > 0)).sum())
        idx = np.flatnonzero(valid)
        parts.append((idx, np.full(len(idx), phase), used[idx]))
    idx = np.concatenate([p[0] for p in parts])
    order = np.lexsort((np.concatenate([p[1] for p in parts]), idx))
    return idx[order], np.concatenate([p[1] for p in parts])[order], np.concatenate([p[2] for p in parts])[order], skipped


def alternation(units: Units, sources: np.ndarray, variants: str = "both", segment_level: bool = False) -> Alternation:
    """The paper's interleaved sequences of `sources` (indices into `units`' sources), in order."""
    sources = np.asarray(sources, np.int64)
    n_units = units.counts[sources]
    which, phase, used, skipped = plan_variants(n_units, variants)
    src = sources[which]
    m = used
    n_samples = len(src)
    # slots per sample: <s>, m units (each but the first after <N> at segment level), </s>
    unit_slots = m + (m - 1) * segment_level
    lengths = unit_slots + 2
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    total = int(offsets[-1])
    code = np.full(total, TOKEN_CODE, np.int8)
    index = np.full(total, TOK[SEGMENT], np.int64)
    start, end = np.zeros(total), np.zeros(total)
    index[offsets[:-1]] = TOK[BOS]
    index[offsets[1:] - 1] = TOK[EOS]
    sample_of = np.repeat(np.arange(n_samples), m)
    j = ragged_arange(m)
    unit = units.offsets[src][sample_of] + j
    is_speech = (j + phase[sample_of]) % 2 == 0
    pos = offsets[:-1][sample_of] + 1 + j * (1 + int(segment_level))
    code[pos] = np.where(is_speech, SPEECH_CODE, TEXT_CODE)
    index[pos] = unit
    start[pos] = np.where(is_speech, units.start[unit], 0.0)
    end[pos] = np.where(is_speech, units.end[unit], 0.0)
    words = units.words[unit]
    speech_words = np.bincount(sample_of, weights=words * is_speech, minlength=n_samples).astype(np.int64)
    text_words = np.bincount(sample_of, weights=words * ~is_speech, minlength=n_samples).astype(np.int64)
    seconds = np.bincount(sample_of, weights=(units.end[unit] - units.start[unit]) * is_speech, minlength=n_samples)
    slots = Slots(offsets, code, index, start, end, units.text)
    return Alternation(slots, which, src, phase, used < units.counts[src], speech_words, text_words, seconds, skipped)


def alternation_measure(units: Units, variants: str = "both", segment_level: bool = False,
                        tagged: bool = False) -> dict[str, np.ndarray]:
    """Per source, what `alternation` would build, without building it: samples, speech seconds,
    text words and special-token spans (the first pass's exact token counts)."""
    n = len(units.offsets) - 1
    which, phase, used, _ = plan_variants(units.counts, variants)
    sample_of = np.repeat(np.arange(len(which)), used)
    j = ragged_arange(used)
    unit = units.offsets[which][sample_of] + j
    speech = (j + phase[sample_of]) % 2 == 0
    owner = which[sample_of]
    seconds = np.bincount(owner, weights=(units.end[unit] - units.start[unit]) * speech, minlength=n)
    text_words = np.bincount(owner, weights=units.words[unit] * ~speech, minlength=n)
    specials = 2 + (used - 1) * segment_level
    tokens = np.bincount(which, weights=specials, minlength=n) + 2 * tagged * np.bincount(owner, weights=speech, minlength=n)
    return {"samples": np.bincount(which, minlength=n).astype(np.float64), "speech_seconds": seconds,
            "text_words": text_words, "token_spans": tokens}
