import numpy as np
import pytest
import soundfile as sf

from manifests.audio import audio_info, load_audio, write_audio
from manifests.errors import AudioError


def test_write_then_load_round_trips(tmp_path, sine):
    x = sine(1.0)
    write_audio(x, tmp_path / "a.wav", 16000)
    y = load_audio(tmp_path / "a.wav")
    assert np.allclose(x, y, atol=1e-4)
    assert audio_info(tmp_path / "a.wav") == (16000, 1.0)


def test_offset_and_duration_select_a_stretch(tmp_path):
    x = np.linspace(-0.5, 0.5, 16000, dtype=np.float32)
    write_audio(x, tmp_path / "a.flac", 16000)
    y = load_audio(tmp_path / "a.flac", offset=0.25, duration=0.5)
    assert len(y) == 8000
    assert np.allclose(y, x[4000:12000], atol=1e-4)


def test_other_rates_and_stereo_are_resampled_to_mono(tmp_path, sine):
    stereo = np.stack([sine(1.0, rate=22050), sine(1.0, rate=22050)], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 22050)
    y = load_audio(tmp_path / "s.wav", sample_rate=16000)
    assert y.ndim == 1 and abs(len(y) - 16000) <= 1


def test_corrupt_audio_raises_a_clear_error(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(AudioError, match="bad.wav"):
        load_audio(tmp_path / "bad.wav")
    with pytest.raises(AudioError):
        audio_info(tmp_path / "missing.wav")
