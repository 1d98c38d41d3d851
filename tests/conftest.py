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
