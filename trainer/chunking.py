"""Where to cut long test audio so that each piece decodes in bounded memory.

Policy: a recording longer than `chunk_seconds` is cut into pieces of at most `chunk_seconds`.
Each cut lies in the second half of the window that starts at the previous cut, at the
centre of its quietest 100 ms (lowest mean energy of 10 ms frames): a pause between words
when there is one, else the least harmful place. So every piece but the last is at least
half a window long, and a recording of D seconds gives at most 2·D/`chunk_seconds` + 1
pieces. The energy is computed from blocks of `block_seconds` read one after another
(`manifests.audio.load_audio`), so planning holds 100 floats per second of audio, never the
recording. Decoding then reads and encodes one piece at a time; the pieces' hypotheses are
joined with a space (`trainer.decode`).
"""
from __future__ import annotations

import numpy as np

from manifests.audio import load_audio

SAMPLE_RATE = 16000
FRAME = 0.01  # energy frame, seconds
QUIET = 10  # frames in the quiet stretch a cut is centred on (100 ms)


def frame_energy(path: str, offset: float, duration: float, block_seconds: float = 60.0) -> np.ndarray:
    """Mean squared amplitude of each 10 ms frame of `path` from `offset` for `duration` seconds.

    Raises `manifests.errors.AudioError` when the audio cannot be read.
    """
    hop = int(SAMPLE_RATE * FRAME)
    block = max(1, int(block_seconds / FRAME)) * FRAME
    parts, t = [], 0.0
    while t < duration - 1e-9:
        wave = load_audio(path, offset + t, min(block, duration - t), SAMPLE_RATE)
        n = wave.size // hop
        if n == 0:
            break
        parts.append((wave[: n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(1))
        if wave.size < int(round(min(block, duration - t) * SAMPLE_RATE)) - hop:
            break  # the file ended early
        t += block
    return np.concatenate(parts) if parts else np.zeros(0)


def plan_cuts(energy: np.ndarray, duration: float, chunk_seconds: float) -> list[tuple[float, float]]:
    """Pieces `(start, end)` in seconds covering `0..duration`, each at most `chunk_seconds` long."""
    if chunk_seconds <= 0:
        raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")
    if duration <= chunk_seconds:
        return [(0.0, duration)]
    smooth = np.convolve(energy, np.ones(QUIET) / QUIET, mode="same") if energy.size >= QUIET else energy
    pieces, start = [], 0.0
    while duration - start > chunk_seconds:
        lo, hi = int((start + chunk_seconds / 2) / FRAME), int((start + chunk_seconds) / FRAME)
        window = smooth[lo:hi]
        cut = (lo + int(np.argmin(window)) + 0.5) * FRAME if window.size else start + chunk_seconds
        cut = min(max(cut, start + FRAME), start + chunk_seconds)
        pieces.append((start, cut))
        start = cut
    pieces.append((start, duration))
    return pieces


def plan_pieces(path: str, offset: float, duration: float, chunk_seconds: float) -> list[tuple[float, float]]:
    """`plan_cuts` for the stretch `offset..offset+duration` of `path` (reads only when it is long)."""
    if duration <= chunk_seconds:
        return [(0.0, duration)]
    return plan_cuts(frame_energy(path, offset, duration), duration, chunk_seconds)
