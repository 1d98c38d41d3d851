"""Word and segment spans of an aligned utterance: the units interleaving chooses among.

Segments are runs of words split where the speaker pauses (`max_pause`), kept at least
`min_words` long and at most `max_segment_duration` seconds, as DESIGN.md describes.
"""
from __future__ import annotations

from typing import Sequence

from manifests.schema import WordSpan


def pause_after(words: Sequence[WordSpan], i: int) -> float:
    """Silence between word i and word i+1 (0 for the last word)."""
    return max(0.0, words[i + 1].start - words[i].end) if i + 1 < len(words) else 0.0


def segment_spans(
    words: Sequence[WordSpan], max_pause: float = 0.4, min_words: int = 2, max_segment_duration: float = 10.0
) -> list[list[WordSpan]]:
    """Words grouped into segments at pauses >= `max_pause`, bounded in words and duration."""
    segments: list[list[WordSpan]] = []
    current: list[WordSpan] = []
    for i, word in enumerate(words):
        if current and word.end - current[0].start > max_segment_duration:
            segments.append(current)
            current = []
        current.append(word)
        if pause_after(words, i) >= max_pause:
            segments.append(current)
            current = []
    if current:
        segments.append(current)
    return _merge_short(segments, min_words)


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
    """Two segments cut at the widest gap: used when pauses alone give a single segment."""
    if len(words) < 2:
        return [list(words)]
    cut = max(range(len(words) - 1), key=lambda i: (pause_after(words, i), -abs(i + 1 - len(words) / 2)))
    return [list(words[: cut + 1]), list(words[cut + 1 :])]
