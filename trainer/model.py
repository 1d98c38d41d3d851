"""A tiny speech-LLM: conv+transformer speech encoder → stacking + MLP projector → causal LM.

SLAM-ASR style: log-mel is encoded once per utterance, k consecutive frames are stacked and
mapped by a 2-layer MLP into the LM's embedding space, and each speech span's frames
(sliced from its word times with `features.span_frames`) replace the `<|audio|>` placeholder
embeddings of the text sequence. The LM is any `AutoModelForCausalLM`: built from a Llama or
Qwen2 config for from-scratch runs, or loaded with `from_pretrained(lm)`. A checkpoint is a
directory with `model.safetensors` (every weight), `speechlm_config.json`, `lm_config.json`
and the tokenizer, so loading never needs the original LM path.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast, Qwen2Config

from manifests.errors import JstipError

from .features import FrameSpec, encoded_frames, span_frames, subsampled_frames
from .tokenizer import TokenIds, load_tokenizer

CONFIG_FILE, LM_CONFIG_FILE, WEIGHTS_FILE = "speechlm_config.json", "lm_config.json", "model.safetensors"


@dataclass
class SpeechLMConfig:
    """Every size of the speech-LLM; the LM part is ignored when `lm` names a pretrained model."""

    n_mels: int = 80
    stack: int = 2
    enc_dim: int = 144
    enc_layers: int = 2
    enc_heads: int = 4
    proj_hidden: int = 384
    lm: str = ""
    lm_type: str = "llama"
    lm_hidden: int = 192
    lm_layers: int = 3
    lm_heads: int = 4
    lm_intermediate: int = 512
    max_positions: int = 2048
    dropout: float = 0.1
    ctc_weight: float = 0.0  # > 0 adds a CTC loss of the projected frames on `asr` transcripts
    vocab_size: int = 0  # filled from the tokenizer

    @property
    def frame_spec(self) -> FrameSpec:
        return FrameSpec(n_mels=self.n_mels, stack=self.stack)


def build_lm(cfg: SpeechLMConfig, tok: PreTrainedTokenizerFast) -> nn.Module:
    """The causal LM: `from_pretrained(cfg.lm)` when set, else a fresh Llama/Qwen2 from config."""
    ids = TokenIds(tok)
    if cfg.lm:
        try:
            lm = AutoModelForCausalLM.from_pretrained(cfg.lm)
        except (OSError, ValueError) as exc:
            raise JstipError(f"cannot load LM {cfg.lm!r}: {exc}; give a local model directory or lm='' "
                             "to build one from config") from exc
        if lm.get_input_embeddings().num_embeddings < len(tok):
            lm.resize_token_embeddings(len(tok))
        return lm
    common = dict(vocab_size=len(tok), hidden_size=cfg.lm_hidden, num_hidden_layers=cfg.lm_layers,
                  num_attention_heads=cfg.lm_heads, num_key_value_heads=cfg.lm_heads,
                  intermediate_size=cfg.lm_intermediate, max_position_embeddings=cfg.max_positions,
                  pad_token_id=ids.pad, bos_token_id=ids.bos, eos_token_id=ids.eos, tie_word_embeddings=True,
                  attention_dropout=cfg.dropout)
    if cfg.lm_type == "llama":
        lm_cfg = LlamaConfig(**common)
    elif cfg.lm_type == "qwen2":
        lm_cfg = Qwen2Config(**common)
    else:
        raise JstipError(f"lm_type {cfg.lm_type!r} is unknown; use 'llama' or 'qwen2'")
    return AutoModelForCausalLM.from_config(lm_cfg)


class SpeechEncoder(nn.Module):
    """Conv subsampling ×2 and a few pre-norm transformer layers over log-mel."""

    def __init__(self, cfg: SpeechLMConfig) -> None:
        super().__init__()
        self.spec = cfg.frame_spec
        self.conv = nn.Sequential(
            nn.Conv1d(cfg.n_mels, cfg.enc_dim, 3, padding=1), nn.GELU(),
            nn.Conv1d(cfg.enc_dim, cfg.enc_dim, 3, stride=self.spec.subsample, padding=1), nn.GELU(),
        )
        layer = nn.TransformerEncoderLayer(cfg.enc_dim, cfg.enc_heads, 4 * cfg.enc_dim, cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, cfg.enc_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.enc_dim)

    def forward(self, mel: torch.Tensor, mel_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`[A, T, n_mels]` log-mel → `([A, T', enc_dim], lengths)`, T' = `subsampled_frames(T)`."""
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


class Projector(nn.Module):
    """Stack k consecutive encoder frames and map them to the LM width with a 2-layer MLP."""

    def __init__(self, in_dim: int, stack: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.stack = stack
        self.mlp = nn.Sequential(nn.Linear(in_dim * stack, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, t, d = x.shape
        t = t // self.stack
        return self.mlp(x[:, : t * self.stack].reshape(a, t, d * self.stack))


class SpeechLM(nn.Module):
    """Encoder + projector + causal LM; speech frames enter as `inputs_embeds`."""

    def __init__(self, cfg: SpeechLMConfig, tok: PreTrainedTokenizerFast, lm: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.spec = cfg.frame_spec
        self.ids = TokenIds(tok)
        self.lm = lm if lm is not None else build_lm(cfg, tok)
        self.cfg.vocab_size = self.lm.get_input_embeddings().num_embeddings
        self.encoder = SpeechEncoder(cfg)
        self.projector = Projector(cfg.enc_dim, cfg.stack, cfg.proj_hidden, self.lm.config.hidden_size)
        self.ctc_head = nn.Linear(self.lm.config.hidden_size, cfg.vocab_size) if cfg.ctc_weight > 0 else None

    def encode(self, mel: torch.Tensor, mel_lens: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        """Projected speech frames `[A, F, H]` and each utterance's valid frame count."""
        hidden, _ = self.encoder(mel, mel_lens)
        frames = self.projector(hidden)
        n_frames = [encoded_frames(int(n), self.spec) for n in mel_lens]
        if frames.shape[1] != max(n_frames, default=0):
            raise JstipError(f"encoder produced {frames.shape[1]} frames but features.encoded_frames expects "
                             f"{max(n_frames)}; FrameSpec and the encoder disagree")
        return frames, n_frames

    def embed(self, batch: dict[str, Any]) -> torch.Tensor:
        """Token embeddings with each `<|audio|>` position replaced by its speech frame."""
        return self._embed(batch)[0]

    def _embed(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None, list[int]]:
        input_ids = batch["input_ids"]
        embeds = self.lm.get_input_embeddings()(input_ids)
        placeholder = input_ids == self.ids.audio
        n_place = int(placeholder.sum())
        mel = batch.get("mel")
        if mel is None or mel.shape[0] == 0:
            if n_place:
                raise JstipError(f"batch has {n_place} <|audio|> placeholders but no audio features")
            return embeds, None, []
        frames, n_frames = self.encode(mel.to(embeds.dtype), batch["mel_lens"])
        pieces = []
        for a, start, end in zip(batch["span_audio"].tolist(), batch["span_start"].tolist(), batch["span_end"].tolist()):
            first, last = span_frames(start, end, self.spec, n_frames[a])
            pieces.append(frames[a, first:last])
        speech = torch.cat(pieces) if pieces else frames.new_zeros(0, frames.shape[-1])
        if speech.shape[0] != n_place:
            raise JstipError(f"{n_place} <|audio|> placeholders but {speech.shape[0]} speech frames sliced; "
                             "the collator and model use different FrameSpecs")
        return embeds.masked_scatter(placeholder.unsqueeze(-1), speech.to(embeds.dtype)), frames, n_frames

    def forward(self, batch: dict[str, Any]) -> Any:
        """LM output for a collated batch; with labels, `.loss` (LM loss + ctc_weight × CTC loss),
        `lm_loss` and `ctc_loss` (None without a CTC head or `asr` samples)."""
        embeds, frames, n_frames = self._embed(batch)
        out = self.lm(inputs_embeds=embeds, attention_mask=batch["attention_mask"], labels=batch.get("labels"))
        if out.loss is None:
            return out
        out["lm_loss"], out["ctc_loss"] = out.loss.detach(), None
        if self.ctc_head is not None and frames is not None and "ctc_audio" in batch:
            rows = batch["ctc_audio"]
            logp = self.ctc_head(frames[rows.to(frames.device)]).float().log_softmax(-1).transpose(0, 1)
            ctc = nn.functional.ctc_loss(logp, batch["ctc_targets"], torch.tensor([n_frames[a] for a in rows.tolist()]),
                                         batch["ctc_target_lens"], blank=self.ids.pad, zero_infinity=True)
            out["ctc_loss"] = ctc.detach()
            out.loss = out.loss + self.cfg.ctc_weight * ctc
        return out

    @torch.no_grad()
    def generate(self, batch: dict[str, Any], max_new_tokens: int = 64) -> torch.Tensor:
        """Greedy continuation of a left-padded prompt batch; returns only the new token ids."""
        embeds = self.embed(batch)
        return self.lm.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"], do_sample=False,
                                max_new_tokens=max_new_tokens, pad_token_id=self.ids.pad,
                                eos_token_id=self.ids.eos, bos_token_id=self.ids.bos)


def count_parameters(model: nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def save_checkpoint(model: SpeechLM, tok: PreTrainedTokenizerFast, directory: str | Path) -> Path:
    """Write weights, both configs and the tokenizer to `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_model(model, str(directory / WEIGHTS_FILE))
    (directory / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(model.cfg), indent=2) + "\n")
    (directory / LM_CONFIG_FILE).write_text(json.dumps(model.lm.config.to_dict(), indent=2) + "\n")
    tok.save_pretrained(str(directory))
    return directory


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> tuple[SpeechLM, PreTrainedTokenizerFast]:
    """Rebuild a `SpeechLM` and its tokenizer from `save_checkpoint` output (eval mode)."""
    directory = Path(directory)
    missing = [f for f in (WEIGHTS_FILE, CONFIG_FILE, LM_CONFIG_FILE) if not (directory / f).exists()]
    if missing:
        raise JstipError(f"checkpoint {directory} lacks {missing}; run the train stage first")
    cfg = SpeechLMConfig(**json.loads((directory / CONFIG_FILE).read_text()))
    tok = load_tokenizer(directory)
    lm_dict = json.loads((directory / LM_CONFIG_FILE).read_text())
    lm_cfg = AutoConfig.for_model(lm_dict.pop("model_type"), **lm_dict)
    lm = AutoModelForCausalLM.from_config(lm_cfg)
    model = SpeechLM(cfg, tok, lm=lm)
    missing_keys, unexpected = load_model(model, str(directory / WEIGHTS_FILE), strict=False)
    if unexpected or [k for k in missing_keys if not k.endswith("lm_head.weight")]:
        raise JstipError(f"checkpoint {directory} does not match its config: missing {missing_keys}, "
                         f"unexpected {unexpected}")
    return model.to(device).eval(), tok
