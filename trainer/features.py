"""Log-mel features, and the frame arithmetic that ties word times to encoder frames.

The encoder turns a waveform into frames at a fixed rate: log-mel (10 ms hop) → conv
subsampling ×2 → frame stacking ×k. Every place that needs to know how many frames an
utterance has, or which frames a speech span covers, goes through the functions of
`manifests.frames` (re-exported here), so the collator (which counts `<|audio|>`
placeholders), the model (which slices encoder output) and `jstip inspect` can never
disagree. torchaudio is not available, so the mel spectrogram is `torch.stft` with a
librosa mel filterbank.
"""
from __future__ import annotations

import numpy as np
import torch

from manifests.frames import FrameSpec, encoded_frames, mel_frames, span_frames, subsampled_frames

__all__ = ["FrameSpec", "LogMel", "encoded_frames", "mel_frames", "span_frames", "subsampled_frames"]


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
