"""Speech of the world corpus: espeak-ng audio with voices, rates, silence and noise, and true word times.

Word times are the synthesizer's own: espeak's word events are grouped by the written token
they fall in (a number such as "150" gives two events), and a token that normalises to several
words ("150" -> one hundred fifty) shares its time evenly among them, scored 0.5 to mark the
estimate (1.0 otherwise). Leading silence shifts the times; noise covers silence and speech.

Synthesis runs in this process in a fixed order: espeak-ng keeps filter state from call to call,
so the same plan gives the same audio when run the same way.

`jitter` moves word boundaries at random for the boundary-noise ablation (the paper expects word
interleaving to suffer from alignment error more than segment interleaving).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from manifests.schema import WordSpan

from corpora.textnorm import normalize
from .speakers import Speaker


@dataclass(frozen=True)
class SpeechItem:
    """One utterance to synthesize: its text, voice, rate, silence and noise (snr None: clean)."""

    utt_id: str
    text: str
    speaker: Speaker
    rate: int
    lead: float
    trail: float
    snr_db: float | None
    seed: int


def assign(lines, speakers: list[Speaker], min_rate: int, max_rate: int, noise_share: float, snr_min: float,
           snr_max: float, max_silence: float, seed: int, salt: str) -> list[SpeechItem]:
    """Speech settings for each line: speakers in turn (shuffled), rate around the speaker's own."""
    if not speakers:
        raise ValueError(f"no speakers for the {salt} set")
    rng = np.random.default_rng(hash_key(f"{seed}-{salt}"))
    order = rng.permutation(len(lines))
    items = []
    for k, i in enumerate(order):
        line, speaker = lines[i], speakers[k % len(speakers)]
        rate = int(np.clip(speaker.rate + rng.integers(-15, 16), min_rate, max_rate))
        lead, trail = (float(x) for x in rng.uniform(0.05, max(max_silence, 0.05), 2))
        snr = float(rng.uniform(snr_min, snr_max)) if rng.random() < noise_share else None
        items.append(SpeechItem(line.line_id, line.text, speaker, rate, round(lead, 3), round(trail, 3),
                                None if snr is None else round(snr, 1), int(rng.integers(2**31 - 1))))
    return sorted(items, key=lambda item: item.utt_id)


def hash_key(text: str) -> int:
    """A stable integer from a string (Python's hash() is salted per process)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def token_times(text: str, events: list[tuple[int, float, float]]) -> list[WordSpan]:
    """Normalised words with times from espeak word events (char position, start, end).

    Each written token takes the events that start inside it; a token with none (espeak speaks
    "for a" as one word) joins the token before it (or after it, at the start), and the words of
    a group share its time evenly (score 0.5; 1.0 for a group of one word).
    """
    groups: list[tuple[list[str], list[tuple[float, float]]]] = []
    pending: list[str] = []
    for match in re.finditer(r"\S+", text):
        pieces = normalize(match.group()).split()
        inside = [(s, e) for pos, s, e in events if match.start() <= pos < match.end()]
        if inside:
            groups.append((pending + pieces, inside))
            pending = []
        elif groups:
            groups[-1][0].extend(pieces)
        else:
            pending.extend(pieces)
    if pending or not groups:
        raise ValueError(f"espeak spoke no word events for {text!r}")
    words: list[WordSpan] = []
    for pieces, inside in groups:
        start, end = min(s for s, _ in inside), max(e for _, e in inside)
        step = (end - start) / max(len(pieces), 1)
        for k, piece in enumerate(pieces):
            words.append(WordSpan(piece, round(start + k * step, 4), round(start + (k + 1) * step, 4),
                                  1.0 if len(pieces) == 1 else 0.5))
    if [w.word for w in words] != normalize(text).split():
        raise ValueError(f"word times do not cover the normalised text of {text!r}")
    return words


def synthesize(item: SpeechItem, sample_rate: int, words: bool = True) -> tuple[np.ndarray, list[WordSpan]]:
    """Audio (float32 at `sample_rate`) and word times of one item (none when `words` is false)."""
    import soxr

    from aligners.espeak import espeak

    engine = espeak()
    audio, spoken = engine.synthesize(item.text, voice=item.speaker.voice, rate=item.rate, seed=item.seed)
    if audio.size == 0:
        raise ValueError(f"espeak-ng produced no audio for {item.utt_id}")
    audio = soxr.resample(audio, engine.sample_rate, sample_rate).astype(np.float32)
    times = token_times(item.text, [(w.char_start, w.start, w.end) for w in spoken]) if words else []
    rng = np.random.default_rng(item.seed)
    peak = float(np.max(np.abs(audio))) or 1.0
    audio = audio / peak * float(rng.uniform(0.3, 0.9))
    lead, trail = int(item.lead * sample_rate), int(item.trail * sample_rate)
    audio = np.concatenate([np.zeros(lead, np.float32), audio, np.zeros(trail, np.float32)])
    if item.snr_db is not None:
        speech_power = float(np.mean(audio[lead: len(audio) - trail] ** 2)) or 1e-8
        noise = rng.standard_normal(audio.size).astype(np.float32)
        audio = audio + noise * np.sqrt(speech_power / 10 ** (item.snr_db / 10))
    shift = lead / sample_rate
    times = [WordSpan(w.word, round(w.start + shift, 4), round(w.end + shift, 4), w.score) for w in times]
    return np.clip(audio, -1.0, 1.0).astype(np.float32), times


def jitter(words: list[WordSpan], max_ms: float, duration: float, rng: np.random.Generator) -> list[WordSpan]:
    """Every word boundary moved by a uniform draw in ±`max_ms` (a boundary two words share moves once),
    kept in order (at least 10 ms per word) and inside the recording."""
    if max_ms <= 0 or not words:
        return list(words)
    points = sorted({w.start for w in words} | {w.end for w in words})
    moved = points + rng.uniform(-max_ms / 1000, max_ms / 1000, len(points))
    moved = np.clip(moved, 0.0, duration)
    for i in range(1, len(moved)):  # keep boundaries increasing
        moved[i] = max(moved[i], moved[i - 1] + 0.01)
    if moved[-1] > duration:  # squeezed past the end: shift back uniformly
        moved -= moved[-1] - duration
    where = dict(zip(points, moved.tolist()))
    return [WordSpan(w.word, round(where[w.start], 4), round(where[w.end], 4), w.score) for w in words]
