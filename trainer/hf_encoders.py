"""Pretrained speech encoders through transformers' `AutoModel` (`encoder: hf`): wav2vec2, HuBERT,
wav2vec2-conformer (and other wav2vec2-family models: raw waveform in) and w2v-BERT 2.0 (stacked fbank in).

Why a wrapper: the trainer's batch carries feature rows `[A, T, W]` on one frame grid, and
`manifests.frames` must know how many encoder frames a clip gives before the model runs. So
one feature row is one encoder frame, and the rate is read from the model's config:
- waveform models: a row holds `prod(conv_stride)` raw samples (320 = 20 ms for wav2vec2 and
  HuBERT). The wrapper flattens the rows and appends `receptive field - stride` zero samples
  (80 for wav2vec2), so a clip of T rows gives exactly T frames, and masks each row's padding;
- w2v-BERT (`Wav2Vec2BertModel`): a row is one 160-dim stack of two 10 ms fbank frames from
  `SeamlessM4TFeatureExtractor` (20 ms), passed as `input_features` with a padding mask.
The model's own `forward` runs (SpecAugment in training when its config asks for it; rows
shorter than `mask_time_length` frames are left unmasked, since its sampler refuses them).
LayerDrop is set to 0: it skips blocks at random per process, which FSDP's per-block
all-gathers cannot follow. Models with `add_adapter` (a strided adapter after the encoder) are
refused: `stack` does that job here. Group-norm front ends (wav2vec2-base, HuBERT-base) normalise
over the padded length, as in transformers' own batched use, so a row's frames differ slightly
with the batch's padding; layer-norm models (large, conformer, w2v-BERT) do not.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from manifests.errors import JstipError

from .features import FrameSpec

FBANK_TYPES = ("wav2vec2-bert",)  # model types fed SeamlessM4T's stacked fbank; the others take raw waveform


def _is_fbank(config: Any) -> bool:
    return config.model_type in FBANK_TYPES


def _check(config: Any, where: str) -> None:
    if not _is_fbank(config) and not getattr(config, "conv_stride", None):
        raise JstipError(f"{where}: model_type {config.model_type!r} is not a speech encoder this trainer knows; "
                         "encoder: hf takes wav2vec2-family models (config with conv_kernel/conv_stride: wav2vec2, "
                         "hubert, wav2vec2-conformer, wavlm, ...) or wav2vec2-bert")
    if getattr(config, "add_adapter", False):
        raise JstipError(f"{where}: the model has add_adapter (a strided adapter after its encoder); set add_adapter "
                         "false and use train.stack for the LM rate")


def hf_config(path: str = "", saved: dict[str, Any] | None = None) -> Any:
    """The model's transformers config: `AutoConfig.from_pretrained(path)`, else rebuilt from `saved`
    (`encoder_config["model"]` of a checkpoint)."""
    from transformers import AutoConfig

    if path:
        try:
            config = AutoConfig.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise JstipError(f"cannot load a config from {path!r}: {exc}; give a local model directory "
                             "(config.json + weights, e.g. one written by save_pretrained)") from exc
    elif saved:
        rest = dict(saved)
        config = AutoConfig.for_model(rest.pop("model_type"), **rest)
    else:
        raise JstipError("encoder='hf' needs encoder_path (a local wav2vec2 / HuBERT / w2v-BERT / conformer model "
                         "directory)")
    _check(config, path or "saved encoder config")
    config.layerdrop = 0.0
    return config


def _feature_dict(path: str, config: Any) -> dict[str, Any]:
    """The model's feature extractor settings: its `preprocessor_config.json` when the directory has
    one, else transformers' defaults for its family."""
    from transformers import AutoFeatureExtractor, SeamlessM4TFeatureExtractor, Wav2Vec2FeatureExtractor

    fe = None
    if path:
        try:
            fe = AutoFeatureExtractor.from_pretrained(path)
        except (OSError, ValueError):
            fe = None  # no preprocessor_config.json: the family's defaults
    if fe is None:
        fe = SeamlessM4TFeatureExtractor() if _is_fbank(config) else Wav2Vec2FeatureExtractor()
    return fe.to_dict()


def _strides(config: Any) -> tuple[int, int]:
    """(total stride, receptive field) in samples of a waveform model's conv front end."""
    stride, field = 1, 1
    for k, s in zip(config.conv_kernel, config.conv_stride):
        field += (k - 1) * stride
        stride *= s
    return stride, field


def frame_spec(encoder_config: dict[str, Any], stack: int) -> FrameSpec:
    """The frame grid of a wrapped model: one feature row per encoder frame (see the module docstring)."""
    from transformers import AutoConfig

    model = dict(encoder_config["model"])
    config = AutoConfig.for_model(model.pop("model_type"), **model)
    features = encoder_config["features"]
    rate = features.get("sampling_rate", 16000)
    if rate != 16000:
        raise JstipError(f"the encoder's feature extractor expects {rate} Hz audio; the trainer reads 16 kHz")
    if _is_fbank(config):
        if features.get("num_mel_bins", 80) != 80 or features.get("stride", 2) != 2:
            raise JstipError("w2v-BERT input: only SeamlessM4TFeatureExtractor's 80 mel bins stacked by 2 are supported")
        return FrameSpec(n_mels=160, hop_length=320, subsample=1, stack=stack, features="fbank")
    stride, _ = _strides(config)
    return FrameSpec(n_mels=stride, hop_length=stride, subsample=1, stack=stack, features="waveform",
                     normalize=bool(features.get("do_normalize", True)))


def load_hf_encoder(path: str, saved: dict[str, Any] | None, stack: int, pretrained: bool = True
                    ) -> tuple["HFSpeechEncoder", dict[str, Any]]:
    """The wrapped encoder and its `encoder_config` ({"model": config dict, "features": extractor dict},
    saved with checkpoints so that loading needs no path). `pretrained`: weights by `AutoModel.from_pretrained`
    from `path`; else fresh weights from the saved config (a checkpoint's weights are loaded afterwards)."""
    from transformers import AutoModel

    if pretrained and path or not saved:
        config = hf_config(path)
        features = _feature_dict(path, config)
    else:
        config = hf_config("", saved["model"])
        features = saved["features"]
    if pretrained and path:
        try:
            model = AutoModel.from_pretrained(path, config=config, dtype=torch.float32)  # fp32 master weights
        except (OSError, ValueError) as exc:
            raise JstipError(f"cannot load encoder weights from {path!r}: {exc}") from exc
    else:
        model = AutoModel.from_config(config)
    encoder_config = {"model": {k: v for k, v in config.to_dict().items() if not k.startswith("_")},
                      "features": features}
    return HFSpeechEncoder(model, frame_spec(encoder_config, stack)), encoder_config


class HFSpeechEncoder(nn.Module):
    """A transformers speech encoder on feature rows `[A, T, W]` → `([A, T, hidden], lengths)`."""

    def __init__(self, model: nn.Module, spec: FrameSpec) -> None:
        super().__init__()
        self.model, self.spec = model, spec
        self.dim = model.config.hidden_size
        self.fbank = _is_fbank(model.config)
        if not self.fbank:
            stride, field = _strides(model.config)
            self.tail = field - stride  # samples past the last row that its last frame reads

    def blocks(self) -> list[nn.Module]:
        """The encoder's transformer/conformer layers (FSDP shards each as a unit)."""
        return list(self.model.encoder.layers)

    def _no_time_mask(self, n: int, width: int, device: torch.device) -> torch.Tensor | None:
        """An empty SpecAugment mask when rows are shorter than its span (its sampler raises on them)."""
        c = self.model.config
        if self.training and getattr(c, "apply_spec_augment", False) and c.mask_time_prob > 0 \
                and width < c.mask_time_length:
            return torch.zeros(n, width, dtype=torch.bool, device=device)
        return None

    def forward(self, feats: torch.Tensor, lens: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        a, t, w = feats.shape
        lens = lens.to(feats.device)
        rows = torch.arange(t, device=feats.device)[None, :] < lens[:, None]
        no_mask = self._no_time_mask(a, t, feats.device)
        if self.fbank:
            out = self.model(input_features=feats, attention_mask=rows.long(), mask_time_indices=no_mask)
        else:
            wave = nn.functional.pad(feats.reshape(a, t * w), (0, self.tail))
            mask = torch.arange(wave.shape[1], device=feats.device)[None, :] < (lens[:, None] * w + self.tail)
            out = self.model(input_values=wave, attention_mask=mask.long(), mask_time_indices=no_mask)
        hidden = out.last_hidden_state
        if hidden.shape[1] != t:
            raise JstipError(f"the encoder gave {hidden.shape[1]} frames for {t} feature rows; its config's frame "
                             "rate and the FrameSpec disagree")
        return hidden, lens


def front_end_values(config: Any) -> int:
    """Activation values per encoder frame that a waveform model's conv front end keeps for backward: each
    conv layer's output at its own rate, three times (convolution, norm, GELU); 0 for w2v-BERT (fbank in).
    wav2vec2-large: 512 channels × (64 + 32 + ... + 1) positions × 3 ≈ 195k per 20 ms frame, about half of
    its 24 blocks' 393k."""
    if _is_fbank(config):
        return 0
    stride, _ = _strides(config)
    values, rate = stride, stride  # the raw samples
    for dim, s in zip(config.conv_dim, config.conv_stride):
        rate //= s
        values += 3 * dim * max(rate, 1)
    return values


def hf_sizes(config: Any) -> tuple[int, int, int]:
    """(layers, width, feed-forward width) of the encoder's blocks, for the memory plan."""
    return config.num_hidden_layers, config.hidden_size, config.intermediate_size
