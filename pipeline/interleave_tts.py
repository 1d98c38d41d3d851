"""`tts_pair` samples: domain text spoken by espeak-ng, with the synthesizer's own word times.

The synthetic speech-text pairs the JSTIP paper compares domain text against. Voice, rate
and espeak's noise seed are drawn from (global seed, sample id), so a pair is the same in
any worker. The audio goes to `<out>/tts/<text id>-<hash>.flac` (always, so `audio_path` is valid)
and, with `embed_audio`, into the sample itself; the word times go to an alignment record.
"""
from __future__ import annotations

import hashlib
import re
from types import SimpleNamespace
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from interleave.builders import tts_pair_sample
from interleave.sampling import rng_for
from manifests.schema import ALIGN_OK, Alignment, Sample, Text, WordSpan

from .textnorm import normalize


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


def tts_audio_path(out: str, text_id: str, repeat: int) -> Path:
    """`<out>/tts/<id made file-safe>-<hash of the raw id>[.repeat].flac`: distinct ids that sanitise
    alike (`a/b`, `a_b`) keep distinct files."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", text_id)[:80]
    digest = hashlib.sha256(text_id.encode()).hexdigest()[:8]
    return Path(out) / "tts" / f"{safe}-{digest}{f'.{repeat}' if repeat else ''}.flac"


def tts_request(text: Text, repeat: int, s: dict[str, Any]) -> tuple[str, str, int, int]:
    """(text, voice, rate, noise seed) of a pair, drawn from (seed, sample id)."""
    from .interleave_build import sample_id

    rng = rng_for(s["seed"], sample_id(text.text_id, "tts_pair", repeat))
    voices = [v.strip() for v in s["tts_voices"].split(",") if v.strip()]
    voice = voices[int(rng.integers(len(voices)))]
    rate = int(rng.integers(s["tts_min_rate"], s["tts_max_rate"] + 1))
    return text.text, voice, rate, int(rng.integers(2**31 - 1))


def synthesize_pairs(items: list[tuple[Text, int]], s: dict[str, Any]) -> list[tuple[Sample, Alignment, bytes | None] | str]:
    """Speak each (text, repeat) in one fresh espeak process; per item the sample, its word times
    and (to embed) FLAC bytes, or the reason it failed."""
    import librosa

    from manifests.audio import encode_flac, write_audio

    from .interleave_build import sample_id
    from .tts_subprocess import synthesize_fresh

    requests = [tts_request(text, repeat, s) for text, repeat in items]
    out: list[Any] = []
    for (text, repeat), request, result in zip(items, requests, synthesize_fresh(requests)):
        if isinstance(result, str) or result[0].size == 0 or not result[1]:
            out.append(f"tts: espeak-ng produced no speech for {text.text_id} ({text.text[:40]!r}) {result if isinstance(result, str) else ''}")
            continue
        audio, spoken, rate = result
        audio = librosa.resample(audio, orig_sr=rate, target_sr=s["tts_sample_rate"]).astype(np.float32)
        path = tts_audio_path(s["out"], text.text_id, repeat)
        write_audio(audio, path, s["tts_sample_rate"])
        duration = len(audio) / s["tts_sample_rate"]
        words = tts_words([SimpleNamespace(text=t, start=a, end=b) for t, a, b in spoken])
        norm = Text(text.text_id, text.text, " ".join(w.word for w in words), text.source)
        sid = sample_id(text.text_id, "tts_pair", repeat)
        sample = tts_pair_sample(norm, str(path), duration, sid, s["asr_prompt"])
        alignment = Alignment(sid, f"espeak:{request[1]}:{request[2]}", ALIGN_OK, "", tuple(words))
        out.append((sample, alignment, encode_flac(audio, s["tts_sample_rate"]) if s["embed_audio"] else None))
    return out
