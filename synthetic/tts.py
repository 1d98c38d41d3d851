"""The TTS kinds' speech: domain text spoken by espeak-ng, with the synthesizer's own word times,
or recordings that exist already (`recorded`: e.g. an in-house TTS's output, prepared as a corpus
and aligned, as the paper's 9k hours of synthetic pairs were made before any data preparation).

The synthetic speech-text pairs the JSTIP paper compares domain text against (`tts_pair`) and
their interleaved sequences (`tts_interleave`) share one synthesis per (text, repeat). Voice, rate
and espeak's noise seed are drawn from (global seed, text id, repeat), so a pair is the same in any
worker. The audio goes to `<out>/tts/<text id>-<hash>[.repeat].flac` (always, so `audio_path` is
valid); the word times go to an alignment record (`<out>/tts/alignments/`) for `jstip inspect`.
"""
from __future__ import annotations

import functools
import hashlib
import re
from types import SimpleNamespace
from typing import Any, Callable, Iterable

import numpy as np

from interleave.sampling import rng_for
from manifests import storage
from manifests.schema import ALIGN_OK, Alignment, PhoneSpan, Utterance, WordSpan

from corpora.textnorm import normalize

TTS_DIR = "tts"


def tts_words(spoken: Iterable[Any]) -> list[WordSpan]:
    """espeak's words (anything with text, start, end) normalised like transcripts.

    A token that normalises to several words ("500" -> five hundred) is spoken as one espeak
    word; its time is shared out evenly and scored 0.5 to mark the estimate. The demo corpus's
    reference alignments use this too.
    """
    words = []
    for w in spoken:
        pieces = normalize(w.text).split()
        step = (w.end - w.start) / max(len(pieces), 1)
        for k, piece in enumerate(pieces):
            words.append(WordSpan(piece, round(w.start + k * step, 4), round(w.start + (k + 1) * step, 4),
                                  1.0 if len(pieces) == 1 else 0.5))
    return words


def tts_phones(spoken: Iterable[Any]) -> list[PhoneSpan]:
    """espeak's phones (its mnemonics, `aligners.espeak._phone_times`) of the words `tts_words`
    keeps whole; a token spoken as several words ("500") has no phones of its own to give."""
    return [PhoneSpan(name, round(start, 4), round(end, 4))
            for w in spoken if len(normalize(w.text).split()) == 1 for name, start, end in getattr(w, "phones", ())]


def tts_audio_path(out: str, text_id: str, repeat: int) -> str:
    """`<out>/tts/<id made file-safe>-<hash of the raw id>[.repeat].flac`: distinct ids that sanitise
    alike (`a/b`, `a_b`) keep distinct files."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", text_id)[:80]
    digest = hashlib.sha256(text_id.encode()).hexdigest()[:8]
    return storage.join(str(out), TTS_DIR, f"{safe}-{digest}{f'.{repeat}' if repeat else ''}.flac")


def tts_request(text_id: str, text: str, repeat: int, s: dict[str, Any]) -> tuple[str, str, int, int]:
    """(text, voice, rate, noise seed) of a synthesis, drawn from (seed, text id, repeat)."""
    rng = rng_for(s["seed"], f"{text_id}:tts_pair" + (f"#{repeat}" if repeat else ""))
    voices = [v.strip() for v in s["tts_voices"].split(",") if v.strip()]
    voice = voices[int(rng.integers(len(voices)))]
    rate = int(rng.integers(s["tts_min_rate"], s["tts_max_rate"] + 1))
    return text, voice, rate, int(rng.integers(2**31 - 1))


def synthesizer(s: dict[str, Any], alignments: list[Alignment]) -> Callable[[list[tuple[str, str, int]]], list]:
    """A function speaking (text id, text, repeat) requests in one fresh espeak process; per request
    (audio path, duration, [(word, start, end)]) or the reason it failed. Word times are appended
    to `alignments` (id: the text id, `#r` for repeats)."""

    def speak(requests: list[tuple[str, str, int]]) -> list:
        import librosa

        from manifests.audio import write_audio

        from .tts_subprocess import synthesize_fresh

        asked = [tts_request(i, t, r, s) for i, t, r in requests]
        out: list[Any] = []
        for (text_id, text, repeat), request, result in zip(requests, asked, synthesize_fresh(asked)):
            if isinstance(result, str) or result[0].size == 0 or not result[1]:
                why = result if isinstance(result, str) else "no speech"
                out.append(f"{text_id}: espeak-ng produced no speech for {text[:40]!r} ({why})")
                continue
            audio, spoken, rate = result
            audio = librosa.resample(audio, orig_sr=rate, target_sr=s["tts_sample_rate"]).astype(np.float32)
            path = tts_audio_path(s["out"], text_id, repeat)
            write_audio(audio, path, s["tts_sample_rate"])
            words = tts_words([SimpleNamespace(text=t, start=a, end=b) for t, a, b in spoken])
            alignments.append(Alignment(text_id + (f"#{repeat}" if repeat else ""), f"espeak:{request[1]}:{request[2]}",
                                        ALIGN_OK, "", tuple(words)))
            out.append((str(path), len(audio) / s["tts_sample_rate"], [(w.word, w.start, w.end) for w in words]))
        return out

    return speak


@functools.lru_cache(maxsize=2)
def _recordings(utterances: str, alignments: str, stamp: tuple = ()) -> dict[str, tuple[str, str, float, tuple | None]]:
    """transcript as written -> (utt id, audio path, duration, ok aligned words or None); the first
    utterance (by id) wins when two share a transcript. Read once per worker process and `stamp`
    (the files' identities)."""
    from manifests.io import read_records

    words = {a.utt_id: a.words for a in read_records(alignments, Alignment) if a.status == ALIGN_OK and a.words}
    out: dict[str, tuple[str, str, float, tuple | None]] = {}
    for u in sorted(read_records(utterances, Utterance), key=lambda u: u.utt_id):
        out.setdefault(u.text, (u.utt_id, u.audio_path, u.duration, words.get(u.utt_id)))
    return out


def recorded(s: dict[str, Any], alignments: list[Alignment]) -> Callable[[list[tuple[str, str, int]]], list]:
    """`synthesizer`'s stand-in when the TTS pairs exist as recordings: a request (text id, text, repeat)
    is answered with the recording in `s["tts_recordings"]` whose transcript is the text, and the word
    times of its alignment in `s["tts_alignments"]` (e.g. the synthesizer's true times, imported). A text
    without a recording, or whose recording has no ok alignment, gets the reason instead."""
    table = _recordings(s["tts_recordings"], s["tts_alignments"], tuple(map(tuple, s.get("stamps", ()))))

    def speak(requests: list[tuple[str, str, int]]) -> list:
        out: list[Any] = []
        for text_id, text, repeat in requests:
            hit = table.get(text)
            if hit is None:
                out.append(f"{text_id}: no recording in {s['tts_recordings']} has the transcript {text[:40]!r}")
            elif hit[3] is None:
                out.append(f"{text_id}: recording {hit[0]} has no ok alignment in {s['tts_alignments']}")
            else:
                alignments.append(Alignment(text_id + (f"#{repeat}" if repeat else ""), f"recorded:{hit[0]}", ALIGN_OK,
                                            "", tuple(hit[3])))
                out.append((hit[1], hit[2], [(w.word, w.start, w.end) for w in hit[3]]))
        return out

    return speak
