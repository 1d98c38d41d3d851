"""Encoder input features (log-mel, raw-waveform rows, w2v-BERT fbank), and the frame arithmetic that
ties word times to encoder frames.

The encoder turns a waveform into frames at a fixed rate: log-mel (10 ms hop) → conv
subsampling ×2 → frame stacking ×k. Every place that needs to know how many frames an
utterance has, or which frames a speech span covers, goes through the functions of
`manifests.frames` (re-exported here), so the collator (which counts `<|audio|>`
placeholders), the model (which slices encoder output) and `jstip inspect` can never
disagree. torchaudio is not available, so the mel spectrogram is `torch.stft` with a
librosa mel filterbank. The inputs of pretrained wav2vec2-family and w2v-BERT encoders
(`encoder: hf`) come from their own transformers feature extractors, so they are normalised as
the models were trained; each row is then one encoder frame (`FrameSpec.features`).
"""
from __future__ import annotations

import numpy as np
import torch

from manifests.frames import FrameSpec, encoded_frames, mel_frames, span_frames, subsampled_frames

__all__ = ["FEATURES", "FrameSpec", "LogMel", "StackedFbank", "WaveformRows", "encoded_frames", "feature_extractor",
           "mel_frames", "span_frames", "subsampled_frames"]
FEATURES = ("logmel", "waveform", "fbank")


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


def _rows(x: np.ndarray, n_rows: int) -> torch.Tensor:
    """`[n, W]` cut or zero-padded to `n_rows` rows (0 is the extractors' padding value: the mean after
    their normalisation)."""
    out = torch.zeros(n_rows, x.shape[1])
    n = min(n_rows, x.shape[0])
    out[:n] = torch.from_numpy(np.ascontiguousarray(x[:n], dtype=np.float32))
    return out


class WaveformRows:
    """A waveform as `[mel_frames(n), hop_length]` rows of raw samples, one per encoder frame (wav2vec2,
    HuBERT, wav2vec2-conformer): normalised by transformers' `Wav2Vec2FeatureExtractor` (zero mean,
    unit variance per utterance when `spec.normalize`), zero-padded at the end."""

    def __init__(self, spec: FrameSpec) -> None:
        from transformers import Wav2Vec2FeatureExtractor

        self.spec = spec
        self.extractor = Wav2Vec2FeatureExtractor(sampling_rate=spec.sample_rate, do_normalize=spec.normalize)

    def __call__(self, wave: torch.Tensor | np.ndarray) -> torch.Tensor:
        wave = np.asarray(wave, dtype=np.float32).reshape(-1)
        values = self.extractor(wave, sampling_rate=self.spec.sample_rate, return_tensors="np")["input_values"][0]
        n_rows, hop = mel_frames(wave.size, self.spec), self.spec.hop_length
        flat = np.zeros(n_rows * hop, dtype=np.float32)
        flat[: min(values.size, flat.size)] = values[: flat.size]
        return torch.from_numpy(flat.reshape(n_rows, hop))


class StackedFbank:
    """w2v-BERT 2.0's input: transformers' `SeamlessM4TFeatureExtractor` (80-dim Kaldi fbank, 25 ms / 10 ms,
    normalised per mel bin over the utterance, two frames stacked → 160 dims per 20 ms), one row per
    encoder frame, zero-padded to `mel_frames(n)` rows."""

    def __init__(self, spec: FrameSpec) -> None:
        from transformers import SeamlessM4TFeatureExtractor

        self.spec = spec
        self.extractor = SeamlessM4TFeatureExtractor(sampling_rate=spec.sample_rate)
        self.min_samples = self.spec.hop_length + 400  # two fbank frames of 25 ms

    def __call__(self, wave: torch.Tensor | np.ndarray) -> torch.Tensor:
        wave = np.asarray(wave, dtype=np.float32).reshape(-1)
        n_rows = mel_frames(wave.size, self.spec)
        if wave.size < self.min_samples:
            wave = np.pad(wave, (0, self.min_samples - wave.size))
        feats = self.extractor(wave, sampling_rate=self.spec.sample_rate, return_tensors="np",
                               return_attention_mask=False)["input_features"][0]
        return _rows(feats, n_rows)


def feature_extractor(spec: FrameSpec):
    """The callable that turns one waveform into the encoder's feature rows (`spec.features`)."""
    kinds = {"logmel": LogMel, "waveform": WaveformRows, "fbank": StackedFbank}
    if spec.features not in kinds:
        raise ValueError(f"FrameSpec.features {spec.features!r} is unknown; use one of {', '.join(FEATURES)}")
    return kinds[spec.features](spec)
