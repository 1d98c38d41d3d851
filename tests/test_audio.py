import numpy as np
import pytest
import soundfile as sf

from manifests.audio import audio_info, decode_audio_bytes, decode_through, encode_flac, load_audio, write_audio
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


def test_flac_bytes_round_trip_deterministically_and_decode_like_files(tmp_path, sine):
    x = sine(0.5, rate=22050)
    data = encode_flac(x, 22050)
    assert data[:4] == b"fLaC" and data == encode_flac(x.copy(), 22050)  # same input, same bytes
    assert np.allclose(decode_audio_bytes(data, 22050), x, atol=1e-4)
    (tmp_path / "x.flac").write_bytes(data)
    resampled = decode_audio_bytes(data, 16000)
    assert resampled.dtype == np.float32 and resampled.ndim == 1
    assert np.array_equal(resampled, load_audio(tmp_path / "x.flac", sample_rate=16000))
    assert np.array_equal(encode_flac(np.array([2.0, -3.0], np.float32), 16000), encode_flac(np.array([1.0, -1.0]), 16000))


def test_bad_audio_bytes_name_the_sample():
    with pytest.raises(AudioError, match="embedded audio of s1"):
        decode_audio_bytes(b"not audio at all", 16000, "s1")


def test_decode_through_reads_every_frame_in_small_blocks_and_catches_a_cut_file(tmp_path):
    rate = 16000
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, rate * 3).astype("float32")
    sf.write(tmp_path / "a.flac", wave, rate)
    assert decode_through(tmp_path / "a.flac", 0.0, 10.0, block_frames=1000) == len(wave)  # past the end: what is there
    assert decode_through(tmp_path / "a.flac", 1.0, 0.5, block_frames=1000) == rate // 2
    data = (tmp_path / "a.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])  # the header still declares 3 s
    with pytest.raises(AudioError):
        decode_through(tmp_path / "cut.flac", 0.0, 3.0, block_frames=1000)
