"""Speech encoders: log-mel `[A, T, n_mels]` → hidden frames `[A, T', d]` at 20 ms (T' = ceil(T/2)).

Two choices behind one interface (`forward(mel, mel_lens) -> (hidden, lengths)`, `.dim`):
- `ConvEncoder`: conv ×2 subsampling + a few pre-norm transformer layers, for from-scratch runs
  (dropout on residual and feed-forward paths, not on attention weights, which would make
  attention memory quadratic in the speech length);
- `WhisperSpeechEncoder`: the transformers `WhisperEncoder` (from a path, a name or a config),
  run on the batch's own length. Whisper insists on 30 s (3000 mel frames) of input; we call its
  conv front end, add the first T' rows of its positional table and run its layers with a padding
  mask, so a 3 s clip costs 3 s of compute, not 30 s. Clips longer than the table are an error.
Both subsample by 2 with kernel 3 / padding 1, which is what `features.subsampled_frames` counts.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from manifests.errors import JstipError

from .features import FrameSpec, subsampled_frames


class ConvEncoder(nn.Module):
    """Conv subsampling ×2 and a few pre-norm transformer layers over log-mel."""

    def __init__(self, n_mels: int, dim: int, layers: int, heads: int, dropout: float, spec: FrameSpec) -> None:
        super().__init__()
        self.spec, self.dim = spec, dim
        self.conv = nn.Sequential(
            nn.Conv1d(n_mels, dim, 3, padding=1), nn.GELU(),
            nn.Conv1d(dim, dim, 3, stride=spec.subsample, padding=1), nn.GELU(),
        )
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        # dropout on the residual and feed-forward paths only: dropout on attention weights makes
        # PyTorch materialise them (memory quadratic in the length of a sample's speech)
        layer.self_attn.dropout = 0.0
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def blocks(self) -> list[nn.Module]:
        """The transformer layers (FSDP shards each as a unit)."""
        return list(self.layers.layers)

    def forward(self, mel: torch.Tensor, mel_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`[A, T, n_mels]` log-mel → `([A, T', dim], lengths)`, T' = `subsampled_frames(T)`."""
        x = self.conv(mel.transpose(1, 2)).transpose(1, 2)
        lens = torch.tensor([subsampled_frames(int(n), self.spec) for n in mel_lens], device=x.device)
        x = x + _sinusoids(x.shape[1], x.shape[2], x.device).to(x.dtype)
        pad_mask = torch.arange(x.shape[1], device=x.device)[None, :] >= lens[:, None]
        x = self.layers(x, src_key_padding_mask=pad_mask)
        return self.norm(x), lens


def _sinusoids(length: int, dim: int, device: torch.device) -> torch.Tensor:
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    inv = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim)
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(pos * inv)
    table[:, 1::2] = torch.cos(pos * inv)[:, : dim // 2]
    return table


def load_whisper_encoder(path: str = "", config: dict[str, Any] | None = None) -> nn.Module:
    """A transformers `WhisperEncoder`: `from_pretrained(path)` (a Whisper model or a bare encoder),
    else built from `config` (a `WhisperConfig` dict, e.g. the one saved with a checkpoint)."""
    from transformers import WhisperConfig, WhisperModel
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    if path:
        try:
            cfg = WhisperConfig.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise JstipError(f"cannot load a Whisper config from {path!r}: {exc}; give a local Whisper model "
                             "directory (config.json + weights) or encoder='conv'") from exc
        archs = cfg.architectures or []
        try:
            if any(a.startswith("WhisperEncoder") for a in archs):
                return WhisperEncoder.from_pretrained(path, dtype=torch.float32)
            return WhisperModel.from_pretrained(path, dtype=torch.float32).get_encoder()
        except (OSError, ValueError) as exc:
            raise JstipError(f"cannot load Whisper weights from {path!r}: {exc}") from exc
    if not config:
        raise JstipError("encoder='whisper' needs encoder_path (a Whisper model directory or name)")
    return WhisperEncoder(WhisperConfig(**config))


class WhisperSpeechEncoder(nn.Module):
    """`WhisperEncoder` on the batch's own length, with a padding mask (no 30 s padding)."""

    def __init__(self, whisper: nn.Module, spec: FrameSpec) -> None:
        super().__init__()
        if spec.subsample != 2:
            raise JstipError(f"the Whisper encoder subsamples by 2, but FrameSpec.subsample is {spec.subsample}")
        self.whisper, self.spec = whisper, spec
        self.dim = whisper.config.d_model
        self.n_mels = whisper.config.num_mel_bins
        self.max_frames = whisper.config.max_source_positions

    def blocks(self) -> list[nn.Module]:
        """Whisper's encoder layers (FSDP shards each as a unit)."""
        return list(self.whisper.layers)

    def forward(self, mel: torch.Tensor, mel_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.whisper
        x = nn.functional.gelu(w.conv1(mel.transpose(1, 2)))
        x = nn.functional.gelu(w.conv2(x)).transpose(1, 2)
        if x.shape[1] > self.max_frames:
            raise JstipError(f"a clip of {mel.shape[1]} mel frames ({x.shape[1]} encoder frames) is longer than the "
                             f"Whisper encoder's {self.max_frames} positions (30 s); cut samples to at most 30 s")
        lens = torch.tensor([subsampled_frames(int(n), self.spec) for n in mel_lens], device=x.device)
        x = x + w.embed_positions.weight[: x.shape[1]].to(x.dtype)
        x = nn.functional.dropout(x, p=w.dropout, training=self.training)
        pad = torch.arange(x.shape[1], device=x.device)[None, :] >= lens[:, None]
        mask = torch.zeros(pad.shape, dtype=x.dtype, device=x.device).masked_fill(pad, torch.finfo(x.dtype).min)
        mask = mask[:, None, None, :].expand(-1, 1, x.shape[1], -1)
        for layer in w.layers:
            x = layer(x, mask)
        return w.layer_norm(x), lens
