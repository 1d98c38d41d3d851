"""Speech that no word covers: a transcript that misses spoken words.

A forced aligner places the words it is given. When the transcript leaves a sentence out, the words
around it are placed and the missing speech is left to silence and fillers (or words are stretched
over it), and the record would read `ok`. So the speech is found again with silero-vad (the model
`longform` uses, shipped in its wheel), each word is taken to cover its span and `margin` either
side, and the speech left over in stretches of `min_stretch` or more is summed. When that reaches
`min_seconds`, the utterance is noted `unexplained_speech` and its record becomes `partial`.
Words whose mean acoustic score is under `min_score` do not count as covering. Such words were
forced onto speech that is not theirs, which is what happens when the missing words are the
first ones. silero-vad runs only when loud frames (`loud_regions`, numpy) that no word covers could add
up to `min_seconds`, so a complete transcript costs almost nothing: 0.96x the aligner's time
without the check, against 1.8x with silero-vad on every utterance (`bench/align_unexplained.py`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from manifests.schema import WordSpan

from .longform import LongformSettings, speech_probabilities, speech_regions


@dataclass(frozen=True)
class CoverageSettings:
    """When speech no word covers makes a record partial (`min_seconds` 0: never checked)."""

    min_seconds: float = 1.0  # unexplained speech in one utterance that makes its record partial
    min_stretch: float = 0.3  # uncovered bits shorter than this are ignored (the VAD's edges, breaths)
    margin: float = 0.1  # a word covers this much speech either side of its span
    min_score: float = -0.005  # words scoring under this (log per frame vs the best path) cover nothing


def uncovered(regions: Sequence[tuple[float, float]], spans: Sequence[WordSpan],
              s: CoverageSettings) -> list[tuple[float, float]]:
    """Stretches of `regions` (speech) that no word of `spans` covers, `min_stretch` or longer."""
    covers = sorted((w.start - s.margin, w.end + s.margin) for w in spans if w.score >= s.min_score)
    out = []
    for a, b in regions:
        t = a
        for c, d in covers:
            if d <= t or c >= b:
                continue
            if c > t and c - t >= s.min_stretch:
                out.append((t, min(c, b)))
            t = max(t, d)
            if t >= b:
                break
        if b - t >= s.min_stretch:
            out.append((t, b))
    return out


def unexplained_speech(audio: np.ndarray, spans: Sequence[WordSpan], s: CoverageSettings,
                       rate: int = 16000) -> list[tuple[float, float]]:
    """The uncovered speech stretches of `audio` (16 kHz mono) given its word spans."""
    def read(start: float, seconds: float) -> np.ndarray:
        return audio[int(round(start * rate)) : int(round((start + seconds) * rate))]

    # a cheap look first: frames 15 dB over the recording's quiet floor that no word covers; only
    # when they could add up to `min_seconds` does the voice activity detector (1.8x the aligner's
    # time when run on every utterance) look at the audio
    if sum(b - a for a, b in uncovered(loud_regions(audio, rate), spans, s)) < s.min_seconds:
        return []
    regions = speech_regions(speech_probabilities(read, len(audio) / rate), LongformSettings())
    return uncovered(regions, spans, s)


def loud_regions(audio: np.ndarray, rate: int = 16000, frame: float = 0.032, over_db: float = 15.0,
                 min_gap: float = 0.2) -> list[tuple[float, float]]:
    """(start, end) seconds of frames `over_db` above the 10th percentile of frame energy, joined
    across gaps under `min_gap` (a superset of the speech, for a quick check)."""
    n = int(frame * rate)
    frames = len(audio) // n
    if frames == 0:
        return []
    energy = 10 * np.log10(np.mean(audio[: frames * n].reshape(frames, n).astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(energy > np.percentile(energy, 10) + over_db)
    regions: list[list[float]] = []
    for i in loud:
        a, b = i * frame, (i + 1) * frame
        if regions and a - regions[-1][1] < min_gap:
            regions[-1][1] = b
        else:
            regions.append([a, b])
    return [(a, b) for a, b in regions]
