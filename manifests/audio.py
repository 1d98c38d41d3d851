"""Reading the audio an utterance points at: a whole file or an offset/duration slice of it.

Audio is returned as mono float32 at the requested sample rate, resampled with librosa
when the file's own rate differs, so every consumer (aligners, trainer) sees the same signal.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError
from .io import atomic_path


def audio_info(path: str | Path) -> tuple[int, float]:
    """(sample_rate, duration in seconds) of an audio file, or an AudioError saying why not."""
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioError(f"cannot read audio {path}: {exc}") from exc
    if info.frames == 0:
        raise AudioError(f"audio {path} holds no samples")
    return int(info.samplerate), info.frames / info.samplerate


def load_audio(path: str | Path, offset: float = 0.0, duration: float | None = None, sample_rate: int = 16000) -> np.ndarray:
    """Mono float32 samples of `path` from `offset` for `duration` seconds at `sample_rate`."""
    try:
        with sf.SoundFile(str(path)) as f:
            native = f.samplerate
            start = int(round(offset * native))
            if start > f.frames:
                raise AudioError(f"offset {offset:.3f}s lies past the end of {path} ({f.frames / native:.3f}s)")
            f.seek(start)
            frames = -1 if duration is None else int(round(duration * native))
            data = f.read(frames, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioError(f"cannot read audio {path}: {exc}") from exc
    samples = data.mean(axis=1)
    if native != sample_rate:
        import librosa  # imported lazily: it is slow to import and only needed when rates differ

        samples = librosa.resample(samples, orig_sr=native, target_sr=sample_rate)
    return np.ascontiguousarray(samples, dtype=np.float32)


def write_audio(samples: np.ndarray, path: str | Path, sample_rate: int) -> Path:
    """Write mono float samples as 16-bit PCM (WAV or FLAC by suffix), atomically."""
    with atomic_path(path) as tmp:
        sf.write(tmp, np.clip(samples, -1.0, 1.0), sample_rate, subtype="PCM_16")
    return Path(path)
