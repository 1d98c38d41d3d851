"""Reading and writing audio: files an utterance points at (whole or an offset/duration slice)
and the FLAC bytes a sample may embed.

Audio is returned as mono float32 at the requested sample rate, resampled with librosa
when the source's own rate differs, so every consumer (aligners, trainer) sees the same signal.
"""
from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError
from .io import atomic_path
from .storage import is_url, open_binary


def audio_info(path: str | Path) -> tuple[int, float]:
    """(sample_rate, duration in seconds) of an audio file, or an AudioError saying why not."""
    try:
        if is_url(path):
            with open_binary(path) as f:
                info = sf.info(f)
        else:
            info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise AudioError(f"cannot read audio {path}: {exc}") from exc
    if info.frames == 0:
        raise AudioError(f"audio {path} holds no samples")
    return int(info.samplerate), info.frames / info.samplerate


def load_audio(path: str | Path, offset: float = 0.0, duration: float | None = None, sample_rate: int = 16000) -> np.ndarray:
    """Mono float32 samples of `path` from `offset` for `duration` seconds at `sample_rate`."""
    try:
        with _source(path) as source, sf.SoundFile(source) as f:
            native = f.samplerate
            start = int(round(offset * native))
            if start > f.frames:
                raise AudioError(f"offset {offset:.3f}s lies past the end of {path} ({f.frames / native:.3f}s)")
            f.seek(start)
            frames = -1 if duration is None else int(round(duration * native))
            data = f.read(frames, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise AudioError(f"cannot read audio {path}: {exc}") from exc
    return _mono_at(data, native, sample_rate)


def decode_through(path: str | Path, offset: float, duration: float, block_frames: int = 65536) -> int:
    """Decode `duration` seconds of `path` from `offset` into one reused buffer, keeping nothing: the
    check that a file decodes, without allocating its samples (a whole-file read per file made the
    allocator's page faults cost as much system time as the decoding). Returns the frames decoded."""
    try:
        with _source(path) as source, sf.SoundFile(source) as f:
            start = int(round(offset * f.samplerate))
            if start > f.frames:
                raise AudioError(f"offset {offset:.3f}s lies past the end of {path} ({f.frames / f.samplerate:.3f}s)")
            f.seek(start)
            left = min(int(round(duration * f.samplerate)), f.frames - start)
            buffer = np.empty((min(block_frames, max(left, 1)), f.channels), dtype="float32")
            done = 0
            while done < left:
                got = f.read(out=buffer[:min(len(buffer), left - done)])
                if not len(got):
                    raise AudioError(f"{path} ends after {(start + done) / f.samplerate:.3f}s of frames it declares")
                done += len(got)
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise AudioError(f"cannot read audio {path}: {exc}") from exc
    return done


@contextmanager
def _source(path: str | Path):
    """What soundfile opens: the local path, or a seekable file object over an fsspec URL."""
    if is_url(path):
        with open_binary(path) as f:
            yield f
    else:
        yield str(path)


def decode_audio_bytes(data: bytes, sample_rate: int, name: str = "") -> np.ndarray:
    """Mono float32 samples of in-memory audio bytes (FLAC, WAV, ...) at `sample_rate`.

    `name` (the sample the bytes belong to) goes into the AudioError raised for bad bytes.
    """
    try:
        wave, native = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioError(f"cannot decode the embedded audio of {name}: {exc}") from exc
    return _mono_at(wave, native, sample_rate)


def _mono_at(frames: np.ndarray, native: int, sample_rate: int) -> np.ndarray:
    """(frames, channels) samples at rate `native` -> contiguous mono float32 at `sample_rate`."""
    samples = frames.mean(axis=1)
    if native != sample_rate:
        import librosa  # imported lazily: it is slow to import and only needed when rates differ

        samples = librosa.resample(samples, orig_sr=native, target_sr=sample_rate)
    return np.ascontiguousarray(samples, dtype=np.float32)


def encode_flac(samples: np.ndarray, sample_rate: int) -> bytes:
    """Mono float samples as 16-bit FLAC bytes (deterministic: the same input gives the same bytes)."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def write_audio(samples: np.ndarray, path: str | Path, sample_rate: int) -> Path:
    """Write mono float samples as 16-bit PCM (WAV or FLAC by suffix), atomically."""
    with atomic_path(path) as tmp:
        sf.write(tmp, np.clip(samples, -1.0, 1.0), sample_rate, subtype="PCM_16")
    return Path(path)
