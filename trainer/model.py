"""The speech-LLM: speech encoder → stacking + MLP projector → any causal LM.

SLAM-ASR style: log-mel is encoded once per utterance, k consecutive encoder frames are stacked
and mapped by a 2-layer MLP into the LM's embedding space, and each speech span's frames (sliced
from its word times with `features.span_frames`) replace the `<|audio|>` placeholder embeddings.
- encoder: `conv` (small, from scratch) or `whisper` (transformers WhisperEncoder from a path or a
  name; frozen by default; run on the batch length, see `encoders.py`);
- LM: `from_pretrained(lm)` (a path or a name), or built from `lm_config` (a config file or model
  directory) or from the Llama/Qwen2 sizes below; LoRA through peft when `lora_r > 0`;
- `freeze`: any of encoder, projector, lm (comma-separated); `auto` freezes a Whisper encoder.
The loss is the sum of the text-token cross-entropies divided by `num_items` (the label count of
the whole accumulated step, so gradient accumulation equals one big batch), plus CTC on `asr`
samples. Saving/loading the weights lives in `checkpoint.py`.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerBase, Qwen2Config

from manifests.errors import JstipError

from .encoders import ConvEncoder, WhisperSpeechEncoder, load_whisper_encoder
from .features import FrameSpec, encoded_frames, span_frames
from .tokenizer import TokenIds

PARTS = ("encoder", "projector", "lm")


@dataclass
class SpeechLMConfig:
    """Every size and choice of the speech-LLM (saved with checkpoints, so loading needs no paths)."""

    n_mels: int = 80
    stack: int = 2
    encoder: str = "conv"  # conv | whisper
    encoder_path: str = ""  # whisper: a local model directory or a name
    encoder_config: dict = field(default_factory=dict)  # whisper: its config, filled on first load
    enc_dim: int = 144
    enc_layers: int = 2
    enc_heads: int = 4
    proj_hidden: int = 384
    lm: str = ""  # from_pretrained path or name
    lm_config: str = ""  # a config.json (or a directory holding one): build that LM with fresh weights
    lm_type: str = "llama"
    lm_hidden: int = 192
    lm_layers: int = 3
    lm_heads: int = 4
    lm_intermediate: int = 512
    max_positions: int = 2048
    dropout: float = 0.1
    ctc_weight: float = 0.0  # > 0 adds a CTC loss of the projected frames on `asr` transcripts
    lora_r: int = 0  # > 0 wraps the LM with LoRA adapters of this rank (peft)
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: str = "all-linear"  # peft target_modules: all-linear or comma-separated module names
    freeze: str = "auto"  # comma-separated parts among encoder, projector, lm; auto: a whisper encoder
    gradient_checkpointing: bool = False
    vocab_size: int = 0  # filled from the LM

    @property
    def frame_spec(self) -> FrameSpec:
        return FrameSpec(n_mels=self.n_mels, stack=self.stack)

    def frozen_parts(self) -> set[str]:
        if self.freeze == "auto":
            return {"encoder"} if self.encoder == "whisper" else set()
        parts = {p.strip() for p in self.freeze.split(",") if p.strip()}
        if parts - set(PARTS):
            raise JstipError(f"freeze={self.freeze!r} names unknown parts {sorted(parts - set(PARTS))}; use any of "
                             f"{', '.join(PARTS)} (comma-separated), '' or 'auto'")
        if "lm" in parts and self.lora_r > 0:
            raise JstipError("freeze includes 'lm' but lora_r > 0 trains LoRA adapters of the LM; drop one of them")
        return parts


def build_lm(cfg: SpeechLMConfig, tok: PreTrainedTokenizerBase, pretrained: bool = True) -> nn.Module:
    """The causal LM: `from_pretrained(cfg.lm)`, else built from `cfg.lm_config` or the Llama/Qwen2 sizes."""
    ids = TokenIds(tok)
    if cfg.lm and pretrained:
        try:
            lm = AutoModelForCausalLM.from_pretrained(cfg.lm)
        except (OSError, ValueError) as exc:
            raise JstipError(f"cannot load LM {cfg.lm!r}: {exc}; give a local model directory, a name in the local "
                             "cache, or lm='' to build one from config") from exc
    elif cfg.lm or cfg.lm_config:
        source = cfg.lm_config or cfg.lm
        try:
            lm_cfg = AutoConfig.from_pretrained(source)
        except (OSError, ValueError) as exc:
            raise JstipError(f"cannot read the LM config {source!r}: {exc}; give a config.json or a model "
                             "directory") from exc
        lm_cfg.vocab_size = max(lm_cfg.vocab_size, len(tok))
        lm = AutoModelForCausalLM.from_config(lm_cfg)
    else:
        common = dict(vocab_size=len(tok), hidden_size=cfg.lm_hidden, num_hidden_layers=cfg.lm_layers,
                      num_attention_heads=cfg.lm_heads, num_key_value_heads=cfg.lm_heads,
                      intermediate_size=cfg.lm_intermediate, max_position_embeddings=cfg.max_positions,
                      pad_token_id=ids.pad, bos_token_id=ids.bos, eos_token_id=ids.eos, tie_word_embeddings=True,
                      attention_dropout=cfg.dropout)
        if cfg.lm_type not in ("llama", "qwen2"):
            raise JstipError(f"lm_type {cfg.lm_type!r} is unknown; use 'llama' or 'qwen2' (or lm_config for others)")
        lm = AutoModelForCausalLM.from_config((LlamaConfig if cfg.lm_type == "llama" else Qwen2Config)(**common))
    if lm.get_input_embeddings().num_embeddings < len(tok):
        lm.resize_token_embeddings(len(tok))
    return lm


def _checkpoint_activations(module: nn.Module) -> None:
    """Recompute a transformers model's layer activations in backward (non-reentrant)."""
    if hasattr(module, "activation_checkpointing_enable"):  # transformers >= 5.x name
        module.activation_checkpointing_enable({"use_reentrant": False})
    else:
        module.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def wrap_lora(lm: nn.Module, cfg: SpeechLMConfig, ids: TokenIds) -> nn.Module:
    """LoRA adapters on the LM (base weights frozen); the modality tags' embeddings stay trainable."""
    from peft import LoraConfig, get_peft_model

    targets: str | list[str] = cfg.lora_targets
    if targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=targets,
                      task_type="CAUSAL_LM", trainable_token_indices=[ids.speech_open, ids.speech_close])
    return get_peft_model(lm, lora)


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


@dataclass
class SpeechLMOutput:
    """`loss` = text CE sum / num_items + ctc_weight × CTC; `lm_loss` is the batch's mean text CE."""

    loss: torch.Tensor | None
    logits: torch.Tensor
    lm_loss: torch.Tensor | None = None
    ctc_loss: torch.Tensor | None = None
    n_labels: int = 0


class SpeechLM(nn.Module):
    """Encoder + projector + causal LM; speech frames enter as `inputs_embeds`.

    `pretrained=False` builds every part from the configs alone (what `load_checkpoint` does).
    """

    def __init__(self, cfg: SpeechLMConfig, tok: PreTrainedTokenizerBase, lm: nn.Module | None = None,
                 pretrained: bool = True) -> None:
        super().__init__()
        self.cfg, self.ids = cfg, TokenIds(tok)
        frozen = cfg.frozen_parts()
        if cfg.encoder == "whisper":
            whisper = load_whisper_encoder(cfg.encoder_path if pretrained or not cfg.encoder_config else "",
                                           cfg.encoder_config)
            cfg.encoder_config = {k: v for k, v in whisper.config.to_dict().items() if not k.startswith("_")}
            cfg.n_mels = whisper.config.num_mel_bins
            self.spec = cfg.frame_spec
            self.encoder: nn.Module = WhisperSpeechEncoder(whisper, self.spec)
        elif cfg.encoder == "conv":
            self.spec = cfg.frame_spec
            self.encoder = ConvEncoder(cfg.n_mels, cfg.enc_dim, cfg.enc_layers, cfg.enc_heads, cfg.dropout, self.spec)
        else:
            raise JstipError(f"encoder {cfg.encoder!r} is unknown; use 'conv' or 'whisper'")
        lm = lm if lm is not None else build_lm(cfg, tok, pretrained)
        if cfg.gradient_checkpointing:
            _checkpoint_activations(lm)
            lm.config.use_cache = False
            if cfg.encoder == "whisper" and "encoder" not in frozen:
                _checkpoint_activations(self.encoder.whisper)
        hidden = lm.get_input_embeddings().embedding_dim
        self.cfg.vocab_size = lm.get_input_embeddings().num_embeddings
        self.lm = wrap_lora(lm, cfg, self.ids) if cfg.lora_r > 0 else lm
        self.projector = Projector(self.encoder.dim, cfg.stack, cfg.proj_hidden, hidden)
        self.ctc_head = nn.Linear(hidden, cfg.vocab_size) if cfg.ctc_weight > 0 else None
        for part in frozen:
            getattr(self, part).requires_grad_(False)
        self.frozen = frozen
        self._keep_logits = "logits_to_keep" in inspect.signature(self.base_lm().forward).parameters

    def base_lm(self) -> nn.Module:
        """The transformers model under any LoRA wrapping."""
        return self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm

    def train(self, mode: bool = True) -> "SpeechLM":
        super().train(mode)
        for part in self.frozen:  # frozen parts never run dropout
            getattr(self, part).eval()
        return self

    def encode(self, mel: torch.Tensor, mel_lens: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        """Projected speech frames `[A, F, H]` and each utterance's valid frame count."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and "encoder" not in self.frozen):
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
        frames, n_frames = self.encode(mel, batch["mel_lens"])
        pieces = []
        for a, start, end in zip(batch["span_audio"].tolist(), batch["span_start"].tolist(), batch["span_end"].tolist()):
            first, last = span_frames(start, end, self.spec, n_frames[a])
            pieces.append(frames[a, first:last])
        speech = torch.cat(pieces) if pieces else frames.new_zeros(0, frames.shape[-1])
        if speech.shape[0] != n_place:
            raise JstipError(f"{n_place} <|audio|> placeholders but {speech.shape[0]} speech frames sliced; "
                             "the collator and model use different FrameSpecs")
        return embeds.masked_scatter(placeholder.unsqueeze(-1), speech.to(embeds.dtype)), frames, n_frames

    def forward(self, batch: dict[str, Any], num_items: int | None = None) -> SpeechLMOutput:
        """LM logits for a collated batch; with labels, the losses (see `SpeechLMOutput`).

        With labels, logits are computed only at positions that predict a label (text tokens),
        which saves the vocabulary projection of every speech frame.
        """
        embeds, frames, n_frames = self._embed(batch)
        labels = batch.get("labels")
        kwargs: dict[str, Any] = {}
        keep = None
        if labels is not None and self._keep_logits:
            keep = (labels[:, 1:] != -100).any(0).nonzero().squeeze(1)
            kwargs["logits_to_keep"] = keep
        logits = self.lm(inputs_embeds=embeds, attention_mask=batch["attention_mask"], use_cache=False, **kwargs).logits
        if labels is None:
            return SpeechLMOutput(None, logits)
        targets = labels[:, 1:] if keep is None else labels[:, 1:][:, keep]
        logits_used = logits[:, :-1] if keep is None else logits
        n_labels = int((targets != -100).sum())
        ce = nn.functional.cross_entropy(logits_used.float().reshape(-1, logits_used.shape[-1]), targets.reshape(-1),
                                         ignore_index=-100, reduction="sum")
        loss = ce / (num_items if num_items else max(n_labels, 1))
        out = SpeechLMOutput(loss, logits, lm_loss=(ce / max(n_labels, 1)).detach(), n_labels=n_labels)
        if self.ctc_head is not None and frames is not None and "ctc_audio" in batch:
            rows = batch["ctc_audio"]
            logp = self.ctc_head(frames[rows.to(frames.device)]).float().log_softmax(-1).transpose(0, 1)
            ctc = nn.functional.ctc_loss(logp, batch["ctc_targets"], torch.tensor([n_frames[a] for a in rows.tolist()]),
                                         batch["ctc_target_lens"], blank=self.ids.pad, zero_infinity=True)
            out.ctc_loss = ctc.detach()
            out.loss = out.loss + self.cfg.ctc_weight * ctc * batch.get("ctc_share", 1.0)
        return out

    @torch.no_grad()
    def generate(self, batch: dict[str, Any], max_new_tokens: int = 64, num_beams: int = 1) -> torch.Tensor:
        """Greedy (num_beams=1) or beam-search continuation of a left-padded prompt batch; new ids only."""
        embeds = self.embed(batch)
        return self.lm.generate(inputs_embeds=embeds, attention_mask=batch["attention_mask"], do_sample=False,
                                num_beams=num_beams, max_new_tokens=max_new_tokens, pad_token_id=self.ids.pad,
                                eos_token_id=self.ids.eos, bos_token_id=self.ids.bos, use_cache=True)


def count_parameters(model: nn.Module, trainable: bool = False) -> int:
    """Number of distinct parameters (tied weights counted once), optionally only trainable ones."""
    params = {id(p): p for p in model.parameters() if p.requires_grad or not trainable}
    return sum(p.numel() for p in params.values())
