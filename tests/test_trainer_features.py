"""Log-mel shapes and the span → encoder-frame arithmetic (frame-exact, shared by collator and model)."""
import math

import numpy as np
import pytest
import torch

from manifests.frames import span_mel
from trainer.features import FrameSpec, LogMel, encoded_frames, mel_frames, span_frames

SPEC = FrameSpec()


def test_frame_duration_is_40_ms_with_default_stacking():
    assert SPEC.frame_duration == pytest.approx(0.04)
    assert FrameSpec(stack=1).frame_duration == pytest.approx(0.02)


@pytest.mark.parametrize("n_samples", [16000, 8001, 1234, 160, 50])
def test_logmel_shape_matches_frame_count(n_samples):
    wave = np.sin(2 * np.pi * 440 * np.arange(n_samples) / 16000).astype(np.float32)
    mel = LogMel(SPEC)(wave)
    assert mel.shape == (mel_frames(n_samples, SPEC), 80)
    assert torch.isfinite(mel).all()


def test_one_second_gives_101_mel_frames_and_25_encoder_frames():
    assert mel_frames(16000, SPEC) == 101
    assert encoded_frames(101, SPEC) == 25  # ceil(101 / 2) = 51 conv frames, // 2 stacked


def test_logmel_separates_tones():
    t = np.arange(16000) / 16000
    low = LogMel(SPEC)(np.sin(2 * np.pi * 300 * t).astype(np.float32))
    high = LogMel(SPEC)(np.sin(2 * np.pi * 3000 * t).astype(np.float32))
    assert low.mean(0).argmax() < high.mean(0).argmax()


@pytest.mark.parametrize(
    "start,end,expected",
    [
        (0.0, 1.0, (0, 25)),
        (0.12, 0.36, (3, 9)),  # exact boundaries: floor(3) and ceil(9), despite 0.12/0.04 = 2.999...
        (0.13, 0.35, (3, 9)),  # inside frames: floor(3.25) = 3, ceil(8.75) = 9
        (0.119, 0.361, (2, 10)),
        (0.5, 5.0, (12, 25)),  # clipped to the encoded length
        (0.99, 1.2, (24, 25)),  # would clip to nothing: keeps the last frame
        (0.2, 0.2, (5, 6)),  # zero-length span still gets one frame
    ],
)
def test_span_frames_floor_ceil_and_clip(start, end, expected):
    assert span_frames(start, end, SPEC, 25) == expected


def test_span_frames_agree_with_formula_on_random_times():
    rng = np.random.default_rng(0)
    d = SPEC.frame_duration
    for _ in range(500):
        a, b = sorted(rng.uniform(0, 3, size=2))
        first, last = span_frames(a, b, SPEC, 1000)
        assert first == math.floor(a / d + 1e-6)
        assert last == max(math.ceil(b / d - 1e-6), first + 1)


@pytest.mark.parametrize("stack", [2, 4])
def test_concatenated_span_rows_encode_to_exactly_their_frames(stack):
    """`span_encoding: concat`: each span contributes k rows per output frame (k = 4 at 40 ms, 8 at 80 ms),
    so a concatenation of spans gives back exactly the sum of their frames, aligned to span boundaries."""
    spec = FrameSpec(stack=stack)
    assert spec.mel_per_frame == 2 * stack and spec.frame_duration == pytest.approx(0.02 * stack)
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(5, 200))
        spans = sorted(rng.uniform(0, n * spec.frame_duration, size=(3, 2)).tolist())
        ranges = [span_frames(min(a, b), max(a, b), spec, n) for a, b in spans]
        rows = [span_mel(a, b, spec) for a, b in ranges]
        assert all(hi - lo == spec.mel_per_frame * (b - a) for (lo, hi), (a, b) in zip(rows, ranges))
        total = sum(hi - lo for lo, hi in rows)
        assert encoded_frames(total, spec) == sum(b - a for a, b in ranges)
