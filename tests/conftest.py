"""Shared fixtures: small audio and corpora made by the tests themselves."""
from __future__ import annotations

import os
import sys
from pathlib import Path

# Before anything imports torch: OpenMP threads that spin-wait stall every step when the other
# core is busy (the shared-machine fixture went from 69 s to 3 s); `jstip` sets the same.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.fixture
def sine():
    """A function making a mono float32 sine tone."""

    def make(seconds: float = 1.0, freq: float = 440.0, rate: int = 16000) -> np.ndarray:
        t = np.arange(int(seconds * rate)) / rate
        return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)

    return make


@pytest.fixture(scope="session")
def spoken():
    """espeak-ng speech for a sentence at 16 kHz, with its true word times."""
    import librosa

    from aligners.espeak import espeak

    cache: dict = {}

    def make(sentence: str, voice: str = "en-us", rate: int = 160):
        key = (sentence, voice, rate)
        if key not in cache:
            engine = espeak()
            audio, words = engine.synthesize(sentence, voice=voice, rate=rate)
            cache[key] = (librosa.resample(audio, orig_sr=engine.sample_rate, target_sr=16000), words)
        return cache[key]

    return make


@pytest.fixture(scope="session", autouse=True)
def _fixtures_run_in_a_temporary_directory(tmp_path_factory):
    """Module- and session-scoped fixtures are set up before a test's own directory: they run in a
    scratch directory too (a fixture's default `reports/interleave.json` landed in the repository)."""
    old = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(old)


@pytest.fixture(autouse=True)
def _run_in_a_temporary_directory(tmp_path, monkeypatch):
    """Every test runs in its own directory: stages read ./params.yaml and write metrics/ and
    reports/ relative to it, which must never be the repository's own."""
    monkeypatch.chdir(tmp_path)


_DECODING: dict[str, str] = {}


def require_audio_decoding() -> None:
    """Skip (saying why) unless `datasets` can really decode audio here: decided by decoding a short
    FLAC through `datasets.Audio`, not by importing torchcodec, which imports fine and then fails to
    load FFmpeg's shared libraries on a machine without them. With JSTIP_REQUIRE_AUDIO_DECODING=1
    (CI, which installs FFmpeg first) a failure to decode fails the test instead."""
    if "why" not in _DECODING:
        _DECODING["why"] = _try_decoding()
    why = _DECODING["why"]
    if why and os.environ.get("JSTIP_REQUIRE_AUDIO_DECODING") == "1":
        pytest.fail(f"audio decoding required but unavailable: {why}")
    if why:
        pytest.skip(f"datasets cannot decode audio on this machine ({why}); install FFmpeg's shared libraries "
                    "(`make audio-libs`, or apt-get install ffmpeg) to run it")


def _try_decoding() -> str:
    """'' when a FLAC decodes through datasets.Audio, else the first line of why not."""
    try:
        import io

        import datasets
        import soundfile as sf

        buffer = io.BytesIO()
        sf.write(buffer, np.zeros(1600, dtype=np.float32), 16000, format="FLAC")
        decoded = datasets.Audio().decode_example({"bytes": buffer.getvalue(), "path": None})
        samples = decoded.get_all_samples() if hasattr(decoded, "get_all_samples") else decoded
        np.asarray(getattr(samples, "data", samples.get("array") if isinstance(samples, dict) else samples))
        return ""
    except Exception as exc:  # any failure to load or decode means: cannot decode here
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0][:160] if text else ''}"
