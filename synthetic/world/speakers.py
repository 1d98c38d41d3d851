"""espeak-ng speakers of the world corpus: accent x voice variant, split into train, TTS and test.

A speaker is one accent with one variant (`en-gb-scotland+m3`, which sets pitch and timbre) and its
own base speaking rate.
The three groups are disjoint, as in the paper (evaluation speakers are not training speakers;
TTS pairs come from their own synthetic voices), while every accent and variant of the test
group also occurs in training in other combinations, so test speech stays in-distribution.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

ACCENTS = "en-us,en,en-gb-x-rp,en-gb-scotland,en-029,en-us-nyc,en-gb-x-gbclan,en-gb-x-gbcwmd"
VARIANTS = "m1,m2,m3,m4,m5,m6,m7,f1,f2,f3,f4,f5"
TRAIN, TEST, TTS = "train", "test", "tts"


@dataclass(frozen=True)
class Speaker:
    """One synthetic voice: espeak voice name and its base rate (words per minute)."""

    speaker_id: str
    voice: str
    rate: int
    group: str


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def make_speakers(accents: str, variants: str, n_test: int, n_tts: int, min_rate: int, max_rate: int,
                  seed: int) -> list[Speaker]:
    """Every accent x variant voice, shuffled; the first `n_test` test, the next `n_tts` TTS, the rest train.

    Test voices are chosen so that their accent and variant each also occur among the train voices.
    """
    accent_list, variant_list = _csv(accents), _csv(variants)
    if not accent_list or not variant_list:
        raise ValueError("world-corpus needs at least one accent and one variant")
    if min_rate > max_rate:
        raise ValueError(f"min_rate {min_rate} is above max_rate {max_rate}")
    rng = random.Random(f"world-speakers-{seed}")
    combos = [(a, v) for a in accent_list for v in variant_list]
    rng.shuffle(combos)
    if n_test + n_tts >= len(combos):
        raise ValueError(f"{len(combos)} voices ({len(accent_list)} accents x {len(variant_list)} variants) "
                         f"leave none for training after {n_test} test and {n_tts} TTS voices; add accents or variants")
    test: list[tuple[str, str]] = []
    rest = combos[:]
    for combo in combos:  # greedy: a test voice must leave its accent and variant in the remaining pool
        if len(test) == n_test:
            break
        remaining = [c for c in rest if c != combo]
        if any(c[0] == combo[0] for c in remaining) and any(c[1] == combo[1] for c in remaining):
            test.append(combo)
            rest = remaining
    tts, train = rest[:n_tts], rest[n_tts:]
    out = []
    for group, members in ((TEST, test), (TTS, tts), (TRAIN, train)):
        for accent, variant in members:
            voice = f"{accent}+{variant}"
            out.append(Speaker(voice.replace("+", "_"), voice, rng.randint(min_rate, max_rate), group))
    return out
