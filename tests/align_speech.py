"""Speech with known word times for the alignment tests and benches, made with espeak-ng.

`first_word_set`: utterances that open with a short function word ("the", "a", "in", ...) after
0.1-0.3 s of silence, in several voices and rates, over a faint room-noise floor; in some the
first word is spoken faintly (a reduced "the"), as in the read-speech utterance that once failed
whole (`no_alignment: placed 0 of 8 words, stuck at the start`). Word times come from espeak's
phoneme events (`synthetic.tts.tts_words`), shifted by the silence put in front.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np

from manifests.schema import WordSpan

RATE = 16000
FIRST_WORDS = ("the", "a", "in", "of", "to", "an", "at", "on", "it", "and")
RESTS = ("cartoon features a muskrat and a tadpole", "patient was given a new dose", "morning the clinic was closed",
         "doctor said nothing at all", "river ran past the old mill", "end of the story came quickly",
         "nurse checked the chart before noon", "scan showed no fracture in the wrist")
VOICES = ("en-us", "en-us+m3", "en-us+f3", "en-gb-x-rp+m2", "en-us+m7", "en", "en-us+f2", "en-029")
FAINT = (1.0, 1.0, 0.3, 0.1, 0.05)  # the first word's gain: as spoken, or reduced (down to -26 dB)
LEVELS = (1.0, 0.5, 0.2)  # the recording's level
OFFSETS = (0.0, 0.0, 0.01)  # DC offset


@dataclass(frozen=True)
class Spoken:
    """One synthetic utterance: its transcript words, 16 kHz audio and true word spans."""

    text: str
    audio: np.ndarray
    truth: list[WordSpan]
    lead: float  # seconds of silence before the first word
    first_gain: float


def speak(text: str, voice: str, rate: int, seed: int = 0) -> tuple[np.ndarray, list[WordSpan]]:
    """espeak-ng speech of `text` at 16 kHz and its normalised words' true spans."""
    import librosa

    from aligners.espeak import espeak
    from synthetic.tts import tts_words

    engine = espeak()
    audio, spoken = engine.synthesize(text, voice=voice, rate=rate, seed=seed)
    return librosa.resample(audio, orig_sr=engine.sample_rate, target_sr=RATE), tts_words(spoken)


def room_noise(n: int, rng: np.random.Generator, level: float) -> np.ndarray:
    """`level` RMS of noise tilted to low frequencies (a room's rumble, not white hiss)."""
    white = rng.standard_normal(n).astype(np.float32)
    brown = np.cumsum(white)
    tilted = brown - np.convolve(brown, np.ones(400) / 400, "same") + 0.1 * white
    return (level * tilted / max(float(np.std(tilted)), 1e-9)).astype(np.float32)


def first_word_set(n: int, seed: int = 0) -> list[Spoken]:
    """`n` utterances opening with a short function word after 0.1-0.3 s of silence (see module doc)."""
    import librosa

    from synthetic.tts import tts_words
    from synthetic.tts_subprocess import synthesize_fresh

    # texts and conditions drawn apart: the first k of a set of n are the set of k
    said, py, rng = random.Random(seed), random.Random(seed + 1), np.random.default_rng(seed)
    requests = [(f"{FIRST_WORDS[i % len(FIRST_WORDS)]} {RESTS[said.randrange(len(RESTS))]}", VOICES[i % len(VOICES)],
                 said.randint(150, 240), i) for i in range(n)]
    # one fresh espeak process: the library keeps state between calls, so the same set is the same
    # audio whatever was synthesized before it
    spoken = synthesize_fresh(requests)
    out = []
    for i, ((text, _, _, _), result) in enumerate(zip(requests, spoken)):
        wave, times, sr = result
        audio = librosa.resample(wave, orig_sr=sr, target_sr=RATE)
        truth = tts_words(SimpleNamespace(text=t, start=a, end=b) for t, a, b in times)
        # espeak's own leading silence is cut at the first phoneme: the silence put in front is the truth's
        cut = int(truth[0].start * RATE)
        lead = round(py.uniform(0.1, 0.3), 3)
        gain = FAINT[i % len(FAINT)]
        speech = audio[cut:].copy()
        first_end = int((truth[0].end - truth[0].start) * RATE)
        speech[:first_end] *= gain
        audio = np.concatenate([np.zeros(int(lead * RATE), np.float32), speech, np.zeros(int(0.15 * RATE), np.float32)])
        # recorded quietly or loudly, over a room's noise, some through a converter with a DC offset
        audio = py.choice(LEVELS) * audio + room_noise(len(audio), rng, py.choice((0.0005, 0.001, 0.003)))
        audio += py.choice(OFFSETS)
        shift = lead - cut / RATE
        truth = [WordSpan(w.word, round(w.start + shift, 4), round(w.end + shift, 4), w.score) for w in truth]
        out.append(Spoken(text, audio, truth, lead, gain))
    return out
