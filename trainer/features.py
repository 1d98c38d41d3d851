"""Log-mel features and the frame arithmetic that ties word times to encoder frames.

The encoder turns a waveform into frames at a fixed rate: log-mel (10 ms hop) → conv
subsampling ×2 → frame stacking ×k. Every place that needs to know how many frames an
utterance has, or which frames a speech span covers, goes through the functions here, so
the collator (which counts `<|audio|>` placeholders) and the model (which slices encoder
output) can never disagree. torchaudio is not available, so the mel spectrogram is
`torch.stft` with a librosa mel filterbank.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

# Tolerance for floating-point word times that sit exactly on a frame boundary
# (0.12 / 0.04 = 2.9999999999999996 must still be frame 3).
_EPS = 1e-6


@dataclass(frozen=True)
class FrameSpec:
    """How waveform samples map to encoder frames: STFT framing, conv subsampling, stacking."""

    sample_rate: int = 16000
    n_mels: int = 80
    win_length: int = 400  # 25 ms at 16 kHz
    hop_length: int = 160  # 10 ms at 16 kHz
    subsample: int = 2  # stride of the conv front end (one stride-2 conv)
    stack: int = 2  # frames concatenated by the projector

    @property
    def frame_duration(self) -> float:
        """Seconds per encoder output frame (after subsampling and stacking)."""
        return self.hop_length * self.subsample * self.stack / self.sample_rate


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


class LogMel(torch.nn.Module):
    """Whisper-style log-mel spectrogram of one mono waveform: `[n_frames, n_mels]`.

    Values are log10 of mel power, floored at 8 below the utterance maximum and scaled to
    roughly [-1, 1], so no global statistics are needed.
    """

    def __init__(self, spec: FrameSpec = FrameSpec()) -> None:
        super().__init__()
        import librosa  # slow to import; only needed when features are computed

        self.spec = spec
        self.n_fft = spec.win_length
        fb = librosa.filters.mel(sr=spec.sample_rate, n_fft=self.n_fft, n_mels=spec.n_mels)
        self.register_buffer("filters", torch.from_numpy(np.asarray(fb, dtype=np.float32)), persistent=False)
        self.register_buffer("window", torch.hann_window(spec.win_length), persistent=False)

    @torch.no_grad()
    def forward(self, wave: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Log-mel of a 1-D waveform; `mel_frames(len(wave))` rows."""
        wave = torch.as_tensor(wave, dtype=torch.float32, device=self.window.device)
        if wave.ndim != 1:
            raise ValueError(f"LogMel expects a 1-D waveform, got shape {tuple(wave.shape)}")
        n_out = mel_frames(wave.numel(), self.spec)
        if wave.numel() < self.n_fft // 2 + 1:  # reflect padding needs a few samples
            wave = torch.nn.functional.pad(wave, (0, self.n_fft // 2 + 1 - wave.numel()))
        stft = torch.stft(wave, self.n_fft, self.spec.hop_length, self.spec.win_length, self.window,
                          center=True, pad_mode="reflect", return_complex=True)
        power = stft.abs() ** 2  # [n_fft//2+1, frames]
        mel = self.filters @ power
        logmel = torch.clamp(mel, min=1e-10).log10()
        logmel = torch.maximum(logmel, logmel.max() - 8.0)
        return ((logmel + 4.0) / 4.0).T[:n_out].contiguous()
