"""How span times become encoder frames: the one rule shared by the trainer and `jstip inspect`.

Manifests store word times, never frame indices (frames depend on the encoder). This module
is the arithmetic from times to frames for an encoder described by a `FrameSpec`: STFT
framing, conv subsampling, stacking. It is torch-free so that the data tools can show the
exact frame counts the model will see.

A speech span covers the output frames `span_frames` gives, whichever way it is encoded:
sliced from the whole utterance's encoder output, or (the paper's way) its log-mel rows
`span_mel` cut out, concatenated with the sample's other spans and encoded once. `span_mel`
is that span's output frames times the downsampling factor, so every piece of the
concatenation is a whole number of output frames and the encoder gives back exactly as many
frames as there are placeholders, in order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# Tolerance for floating-point word times that sit exactly on a frame boundary
# (0.12 / 0.04 = 2.9999999999999996 must still be frame 3).
_EPS = 1e-6


@dataclass(frozen=True)
class FrameSpec:
    """How waveform samples map to encoder frames: STFT framing (or raw-sample rows), conv subsampling, stacking."""

    sample_rate: int = 16000
    n_mels: int = 80
    win_length: int = 400  # 25 ms at 16 kHz
    hop_length: int = 160  # 10 ms at 16 kHz
    subsample: int = 2  # stride of the conv front end (one stride-2 conv)
    stack: int = 2  # frames concatenated by the projector
    # what a feature row holds (trainer/features.py): logmel (one 10 ms log-mel frame); waveform (hop_length raw
    # samples, for wav2vec2-family encoders); fbank (w2v-BERT's two stacked 80-dim fbank frames); with
    # waveform/fbank one row is one encoder frame (hop_length = the encoder's stride, subsample 1)
    features: str = "logmel"
    normalize: bool = True  # waveform: zero mean, unit variance per utterance (the model's feature extractor)

    @property
    def frame_duration(self) -> float:
        """Seconds per encoder output frame (after subsampling and stacking)."""
        return self.hop_length * self.subsample * self.stack / self.sample_rate

    @property
    def mel_per_frame(self) -> int:
        """Log-mel frames per encoder output frame: the downsampling factor (4 at 40 ms, 8 at 80 ms)."""
        return self.subsample * self.stack


def mel_frames(n_samples: int, spec: FrameSpec) -> int:
    """Number of log-mel frames `LogMel` yields for `n_samples` samples (centered STFT)."""
    return n_samples // spec.hop_length + 1


def subsampled_frames(n_mel: int, spec: FrameSpec) -> int:
    """Frames after the conv front end (kernel 3, padding 1, stride `spec.subsample`)."""
    return (n_mel - 1) // spec.subsample + 1 if n_mel > 0 else 0


def encoded_frames(n_mel: int, spec: FrameSpec) -> int:
    """Frames the projector outputs for `n_mel` log-mel frames (stacking drops the remainder)."""
    return subsampled_frames(n_mel, spec) // spec.stack


def span_frames(start: float, end: float, spec: FrameSpec, n_frames: int) -> tuple[int, int]:
    """Encoder frame range [floor(start/d), ceil(end/d)) of a speech span, clipped to `n_frames`.

    `start`/`end` are seconds relative to the utterance start and `d` is
    `spec.frame_duration`. A span that clips to nothing (shorter than a frame at the very
    end) keeps the last frame, so a speech span never becomes invisible. This is the only
    function that maps span times to frames: the collator uses it to count placeholders and
    the model to slice encoder output.
    """
    d = spec.frame_duration
    first = math.floor(start / d + _EPS)
    last = math.ceil(end / d - _EPS)
    first = min(max(first, 0), n_frames)
    last = min(max(last, first), n_frames)
    if last == first and n_frames > 0:
        first = min(first, n_frames - 1)
        last = first + 1
    return first, last


def span_mel(first: int, last: int, spec: FrameSpec) -> tuple[int, int]:
    """Log-mel rows [first·k, last·k) of output frames [first, last), k = `spec.mel_per_frame`.

    What a span contributes to the concatenation of a sample's speech spans (`span_encoding:
    concat`): encoded alone, k·n rows give exactly n output frames (`encoded_frames`). Rows past
    the end of the utterance's log-mel are padded by the caller.
    """
    k = spec.mel_per_frame
    return first * k, last * k
