"""Word and segment spans of an aligned utterance: the units interleaving chooses among.

Three segmenters, each a parameter of the interleave stage:
- `pause`: runs of words split where the speaker pauses (`max_pause`), as DESIGN.md describes;
- `punctuation`: split after words that end a clause in the raw transcript (. , ; : ! ?);
- `every_n`: fixed runs of N words.
Pause and punctuation segments are then kept at least `min_words` long (short ones fold into a
neighbour) and at most `max_segment_duration` seconds (long ones are cut).
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

from manifests.schema import WordSpan

SEGMENTERS = ("pause", "punctuation", "every_n")
_CLAUSE_END = re.compile(r"[.,;:!?]['\")\]]*$")


def pause_after(words: Sequence[WordSpan], i: int) -> float:
    """Silence between word i and word i+1 (0 for the last word)."""
    return max(0.0, words[i + 1].start - words[i].end) if i + 1 < len(words) else 0.0


def split_at(words: Sequence[WordSpan], cut_after: set[int]) -> list[list[WordSpan]]:
    """Words cut into runs after each index in `cut_after`."""
    segments: list[list[WordSpan]] = []
    current: list[WordSpan] = []
    for i, word in enumerate(words):
        current.append(word)
        if i in cut_after:
            segments.append(current)
            current = []
    if current:
        segments.append(current)
    return segments


def bound_duration(segments: list[list[WordSpan]], max_segment_duration: float) -> list[list[WordSpan]]:
    """Cut segments so that none lasts longer than `max_segment_duration` (a single word may)."""
    out: list[list[WordSpan]] = []
    for segment in segments:
        current: list[WordSpan] = []
        for word in segment:
            if current and word.end - current[0].start > max_segment_duration:
                out.append(current)
                current = []
            current.append(word)
        if current:
            out.append(current)
    return out


def segment_spans(
    words: Sequence[WordSpan], max_pause: float = 0.4, min_words: int = 2, max_segment_duration: float = 10.0
) -> list[list[WordSpan]]:
    """Words grouped into segments at pauses >= `max_pause`, bounded in words and duration."""
    cuts = {i for i in range(len(words) - 1) if pause_after(words, i) >= max_pause}
    return _merge_short(bound_duration(split_at(words, cuts), max_segment_duration), min_words)


def clause_ends(raw_text: str, normalize: Callable[[str], str]) -> list[bool] | None:
    """For each normalised word of `raw_text`, whether a clause ends after it; None if empty.

    Each whitespace token of the raw text is normalised on its own ("500," -> five hundred),
    and the punctuation it ends with marks its last normalised word.
    """
    ends: list[bool] = []
    for token in raw_text.split():
        pieces = normalize(token).split()
        if pieces:
            ends += [False] * (len(pieces) - 1) + [bool(_CLAUSE_END.search(token))]
        elif ends and _CLAUSE_END.search(token):
            ends[-1] = True  # a lone "—" or "," token closes the clause before it
    return ends or None


def punctuation_spans(
    words: Sequence[WordSpan], ends: Sequence[bool], min_words: int = 2, max_segment_duration: float = 10.0
) -> list[list[WordSpan]]:
    """Words split after clause-ending punctuation (`ends` from `clause_ends`), bounded like pause segments.

    Raises ValueError when `ends` does not cover the words one to one (the caller falls back).
    """
    if len(ends) != len(words):
        raise ValueError(f"the raw transcript has {len(ends)} words, the alignment {len(words)}")
    cuts = {i for i, end in enumerate(ends[:-1]) if end}
    return _merge_short(bound_duration(split_at(words, cuts), max_segment_duration), min_words)


def every_n_spans(words: Sequence[WordSpan], n: int) -> list[list[WordSpan]]:
    """Runs of `n` words (the last may be shorter)."""
    if n < 1:
        raise ValueError(f"segment_words must be at least 1, got {n}")
    return [list(words[i : i + n]) for i in range(0, len(words), n)]


def _merge_short(segments: list[list[WordSpan]], min_words: int) -> list[list[WordSpan]]:
    """Fold segments with fewer than `min_words` words into their left (or right) neighbour."""
    merged: list[list[WordSpan]] = []
    for segment in segments:
        if merged and (len(segment) < min_words or len(merged[-1]) < min_words):
            merged[-1] = merged[-1] + segment
        else:
            merged.append(list(segment))
    return merged


def split_at_longest_pause(words: Sequence[WordSpan]) -> list[list[WordSpan]]:
    """Two segments cut at the widest gap: used when a segmenter gives a single segment."""
    if len(words) < 2:
        return [list(words)]
    cut = max(range(len(words) - 1), key=lambda i: (pause_after(words, i), -abs(i + 1 - len(words) / 2)))
    return [list(words[: cut + 1]), list(words[cut + 1 :])]
