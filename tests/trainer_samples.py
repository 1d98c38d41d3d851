"""Samples in the paper's token formats (manifests/formats.py) for the trainer tests, and test audio.

Until the interleave stage writes token spans itself, the trainer tests build them here with
`manifests.formats.token`, exactly as `formats.py` lists them.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from manifests.formats import ASR, BOS, EOS, SEGMENT, token
from manifests.schema import SPEECH, TEXT, Sample, Span

SR = 16000


def tone(seconds: float, freq: float, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    t = np.arange(int(round(seconds * SR))) / SR
    wave = 0.2 * np.sin(2 * np.pi * freq * t)
    if noise:
        wave = wave + noise * np.random.default_rng(seed).standard_normal(t.size)
    return wave.astype(np.float32)


def write_wav(path: Path, wave: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, SR)
    return str(path)


def flac(wave: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, SR, format="FLAC")
    return buf.getvalue()


def asr(sample_id: str, path: str, duration: float, text: str, audio: bytes | None = None,
        kind: str = "asr") -> Sample:
    """`<s> A <|asr|> T </s>`."""
    spans = (token(BOS), Span(SPEECH, text, 0.0, duration), token(ASR), Span(TEXT, text), token(EOS))
    n = len(text.split())
    return Sample(sample_id, kind, sample_id.split(":")[0], path, 0.0, duration, spans, n, n, audio)


def word_interleave(sample_id: str, path: str, duration: float, pieces: list[tuple[str, str, float, float]],
                    audio: bytes | None = None) -> Sample:
    """`<s> A1 T2 A3 … Tn </s>` from (modality, words, start, end) pieces (times ignored for text)."""
    spans = [token(BOS)] + [Span(SPEECH, w, a, b) if m == SPEECH else Span(TEXT, w) for m, w, a, b in pieces]
    spans.append(token(EOS))
    ns = sum(len(w.split()) for m, w, _, _ in pieces if m == SPEECH)
    nt = sum(len(w.split()) for m, w, _, _ in pieces if m == TEXT)
    return Sample(sample_id, "interleave_word", sample_id.split(":")[0], path, 0.0, duration, tuple(spans), ns, nt,
                  audio)


def segment_interleave(sample_id: str, path: str, duration: float, pieces: list[tuple[str, str, float, float]],
                       audio: bytes | None = None) -> Sample:
    """`<s> A1 <N> T2 <N> A3 … <N> Tn </s>`."""
    spans = [token(BOS)]
    for k, (m, w, a, b) in enumerate(pieces):
        if k:
            spans.append(token(SEGMENT))
        spans.append(Span(SPEECH, w, a, b) if m == SPEECH else Span(TEXT, w))
    spans.append(token(EOS))
    ns = sum(len(w.split()) for m, w, _, _ in pieces if m == SPEECH)
    nt = sum(len(w.split()) for m, w, _, _ in pieces if m == TEXT)
    return Sample(sample_id, "interleave_segment", sample_id.split(":")[0], path, 0.0, duration, tuple(spans), ns,
                  nt, audio)


def text(sample_id: str, sentences: list[str]) -> Sample:
    """`<s> S1 </s> S2 </s> …`."""
    spans = [token(BOS)]
    for s in sentences:
        spans += [Span(TEXT, s), token(EOS)]
    n = sum(len(s.split()) for s in sentences)
    return Sample(sample_id, "text", sample_id, "", 0.0, 0.0, tuple(spans), 0, n)
