"""The speech-LLM: speech encoder → stacking + MLP projector (the adapter) → any causal LM.

SLAM-ASR style: log-mel is encoded, k consecutive encoder frames are stacked and mapped by a
2-layer MLP into the LM's embedding space, and each speech span's frames (the encoder row and
output-frame range the collator put in the batch, see `data.py`) replace the `<|audio|>`
placeholder embeddings in order.
- encoder: `conv` (small, from scratch), `whisper` (transformers WhisperEncoder from a path or a
  name; frozen by default; run on the batch length, see `encoders.py`) or `hf` (a local wav2vec2,
  HuBERT, wav2vec2-conformer or w2v-BERT model through `AutoModel`, on its own input features and
  frame rate; frozen by default; `hf_encoders.py`);
- LM: `from_pretrained(lm)` (a path or a name), or built from `lm_config` (a config file or model
  directory) or from the Llama/Qwen2 sizes below; LoRA through peft when `lora_r > 0`;
- attention: `flash_attention_2` when flash-attn is installed and CUDA is there, else
  `sdpa_varlen` (attention.py). Packed rows (several samples per row) pass position ids that
  restart at each sample and no attention mask: the flash path runs the varlen kernel on one
  flattened row (cu_seqlens from the position ids), sdpa_varlen runs causal SDPA per sample,
  and plain `sdpa`/`eager` mask the rows block-diagonally (full row × row cost);
- `freeze`: any of encoder, projector, lm (comma-separated); `auto` freezes a Whisper encoder;
  `set_trainable` narrows the trained parts further (stage 1 of the schedule: the adapter only).
The loss is the sum of the text-token cross-entropies divided by `num_items` (the label count of
the whole accumulated step, so gradient accumulation equals one big batch), plus CTC on samples
in the asr format. The vocabulary projection runs only at positions that predict a label.
Saving/loading the weights lives in `checkpoint.py`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerBase, Qwen2Config

from manifests.errors import JstipError

from .attention import NAME as VARLEN
from .encoders import ConvEncoder, WhisperSpeechEncoder, load_whisper_encoder
from .features import FrameSpec, encoded_frames, subsampled_frames
from .speech_pooling import POSITIONS, SpikePooler
from .tokenizer import TokenIds

PARTS = ("encoder", "projector", "lm")
PRETRAINED_ENCODERS = ("whisper", "hf")  # frozen by freeze: auto


@dataclass
class SpeechLMConfig:
    """Every size and choice of the speech-LLM (saved with checkpoints, so loading needs no paths)."""

    n_mels: int = 80
    stack: int = 2
    encoder: str = "conv"  # conv | whisper | hf
    encoder_path: str = ""  # whisper: a local model directory or a name; hf: a local model directory
    encoder_config: dict = field(default_factory=dict)  # whisper, hf: its config, filled on first load
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
    dropout: float = 0.1  # speech encoder
    lm_dropout: float = 0.0  # attention dropout of an LM built from sizes (pretrained LMs keep their own)
    ctc_weight: float = 0.0  # > 0 adds a CTC loss of the speech frames on `asr` transcripts
    # tokens: CTC of the transcript's tokens on the projected frames (one per LM position); chars: of its
    # letters on the encoder's own 20 ms frames (at 40-80 ms per position letters outnumber frames)
    ctc_units: str = "tokens"
    # frames: one LM position per `stack` encoder frames (the paper); ctc_spikes: the letter CTC head's spikes
    # fill each span's positions from the left (speech_pooling.py); speech_pool_input: what a spike holds
    speech_positions: str = "frames"
    speech_pool_input: str = "both"
    lora_r: int = 0  # > 0 wraps the LM with LoRA adapters of this rank (peft)
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: str = "all-linear"  # peft target_modules: all-linear or comma-separated module names
    freeze: str = "auto"  # comma-separated parts among encoder, projector, lm; auto: a whisper encoder
    gradient_checkpointing: bool = False
    attn_implementation: str = "auto"  # auto | sdpa | eager | flash_attention_2
    vocab_size: int = 0  # filled from the LM

    @property
    def frame_spec(self) -> FrameSpec:
        return FrameSpec(n_mels=self.n_mels, stack=self.stack)

    def frozen_parts(self) -> set[str]:
        if self.freeze == "auto":
            return {"encoder"} if self.encoder in PRETRAINED_ENCODERS else set()
        parts = {p.strip() for p in self.freeze.split(",") if p.strip()}
        if parts - set(PARTS):
            raise JstipError(f"freeze={self.freeze!r} names unknown parts {sorted(parts - set(PARTS))}; use any of "
                             f"{', '.join(PARTS)} (comma-separated), '' or 'auto'")
        if "lm" in parts and self.lora_r > 0:
            raise JstipError("freeze includes 'lm' but lora_r > 0 trains LoRA adapters of the LM; drop one of them")
        return parts


ATTENTION = ("auto", VARLEN, "sdpa", "eager", "flash_attention_2")


def attention_implementation(name: str = "auto") -> str:
    """`auto` → flash_attention_2 when the flash-attn package and CUDA are there, else sdpa_varlen."""
    if name not in ATTENTION:
        raise JstipError(f"attn_implementation {name!r} is unknown; use one of {', '.join(ATTENTION)}")
    if name != "auto":
        return name
    import importlib.util

    return "flash_attention_2" if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") else VARLEN


def build_lm(cfg: SpeechLMConfig, tok: PreTrainedTokenizerBase, pretrained: bool = True,
             lm_config: Any = None) -> nn.Module:
    """The causal LM: `from_pretrained(cfg.lm)`, else built from `lm_config` (a transformers config),
    `cfg.lm_config` or the Llama/Qwen2 sizes."""
    ids = TokenIds(tok)
    attn = attention_implementation(cfg.attn_implementation)
    if lm_config is not None:
        lm = AutoModelForCausalLM.from_config(lm_config, attn_implementation=attn)
    elif cfg.lm and pretrained:
        try:
            # fp32 master weights whatever the checkpoint's dtype (transformers 5 keeps a bf16/fp16 file's
            # dtype, and AdamW on half-precision weights loses its small updates); bf16 runs use autocast
            lm = AutoModelForCausalLM.from_pretrained(cfg.lm, attn_implementation=attn, dtype=torch.float32)
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
        lm = AutoModelForCausalLM.from_config(lm_cfg, attn_implementation=attn)
    else:
        common = dict(vocab_size=len(tok), hidden_size=cfg.lm_hidden, num_hidden_layers=cfg.lm_layers,
                      num_attention_heads=cfg.lm_heads, num_key_value_heads=cfg.lm_heads,
                      intermediate_size=cfg.lm_intermediate, max_position_embeddings=cfg.max_positions,
                      pad_token_id=ids.pad, bos_token_id=ids.bos, eos_token_id=ids.eos, tie_word_embeddings=True,
                      attention_dropout=cfg.lm_dropout)
        if cfg.lm_type not in ("llama", "qwen2"):
            raise JstipError(f"lm_type {cfg.lm_type!r} is unknown; use 'llama' or 'qwen2' (or lm_config for others)")
        lm = AutoModelForCausalLM.from_config((LlamaConfig if cfg.lm_type == "llama" else Qwen2Config)(**common),
                                              attn_implementation=attn)
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
    """LoRA adapters on the LM (base weights frozen); the added special tokens' embeddings stay trainable."""
    from peft import LoraConfig, get_peft_model

    targets: str | list[str] = cfg.lora_targets
    if targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    new = sorted({ids.segment, ids.asr, ids.speech_open, ids.speech_close})  # added tokens: their embeddings learn
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=targets,
                      task_type="CAUSAL_LM", trainable_token_indices=new)
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
    """`loss` = text CE sum / num_items + ctc_weight × CTC; `lm_loss` is the batch's mean text CE.

    Without labels, `logits` is `[R, W, V]` (the last position of a left-padded prompt row scores
    the next token); with labels, only the `[N, V]` logits of the N positions that predict a label.
    `example_loss`/`example_tokens`: each sample's CE sum and label count (by `example_ids`).
    """

    loss: torch.Tensor | None
    logits: torch.Tensor
    lm_loss: torch.Tensor | None = None
    ctc_loss: torch.Tensor | None = None
    n_labels: int = 0
    example_loss: torch.Tensor | None = None
    example_tokens: torch.Tensor | None = None


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
        elif cfg.encoder == "hf":
            from .hf_encoders import load_hf_encoder

            self.encoder, cfg.encoder_config = load_hf_encoder(cfg.encoder_path, cfg.encoder_config, cfg.stack,
                                                               pretrained)
            self.spec = self.encoder.spec
            cfg.n_mels = self.spec.n_mels
        elif cfg.encoder == "conv":
            self.spec = cfg.frame_spec
            self.encoder = ConvEncoder(cfg.n_mels, cfg.enc_dim, cfg.enc_layers, cfg.enc_heads, cfg.dropout, self.spec)
        else:
            raise JstipError(f"encoder {cfg.encoder!r} is unknown; use 'conv', 'whisper' or 'hf'")
        lm = lm if lm is not None else build_lm(cfg, tok, pretrained)
        if cfg.gradient_checkpointing:
            _checkpoint_activations(lm)
            lm.config.use_cache = False
            if cfg.encoder in PRETRAINED_ENCODERS and "encoder" not in frozen:
                _checkpoint_activations(self.encoder.whisper if cfg.encoder == "whisper" else self.encoder.model)
        hidden = lm.get_input_embeddings().embedding_dim
        self.cfg.vocab_size = lm.get_input_embeddings().num_embeddings
        self.lm = wrap_lora(lm, cfg, self.ids) if cfg.lora_r > 0 else lm
        self.projector = Projector(self.encoder.dim, cfg.stack, cfg.proj_hidden, hidden)
        ctc_dim = self.encoder.dim if cfg.ctc_units == "chars" else hidden
        self.ctc_head = nn.Linear(ctc_dim, cfg.vocab_size) if cfg.ctc_weight > 0 else None
        self.pooler = self._spike_pooler(cfg, tok, hidden)
        # what each part trains when it is trained (LoRA: the adapters, not the base LM), by name: FSDP
        # replaces the parameter objects with sharded ones
        self._trainable = {part: {f"{part}.{n}" for n, p in getattr(self, part).named_parameters(remove_duplicate=False)
                                  if p.requires_grad} for part in PARTS}
        for head in ("ctc_head", "pooler"):  # the CTC head and the spike pooler go with the adapter
            if getattr(self, head) is not None:
                self._trainable["projector"] |= {f"{head}.{n}" for n, _ in getattr(self, head).named_parameters()}
        # FSDP (parallel.py) sets these: every rank encodes once per batch, a silent stub when it has no speech
        self.encode_max_padding, self.always_encode = 0.1, False
        self.always_frozen = frozen
        self.frozen: set[str] = set()
        self.set_trainable(set(PARTS))
        attn = getattr(self.base_lm().config, "_attn_implementation", "")
        self._flatten, self._varlen = attn == "flash_attention_2", attn == VARLEN

    def _spike_pooler(self, cfg: SpeechLMConfig, tok: PreTrainedTokenizerBase, hidden: int) -> SpikePooler | None:
        """speech_positions ctc_spikes: the pooler and the letter classes it projects (needs the letter CTC head)."""
        if cfg.speech_positions not in POSITIONS:
            raise JstipError(f"speech_positions {cfg.speech_positions!r} is unknown; use one of {', '.join(POSITIONS)}")
        if cfg.speech_positions == "frames":
            return None
        if cfg.ctc_weight <= 0 or cfg.ctc_units != "chars":
            raise JstipError("speech_positions ctc_spikes pools at the letter CTC head's spikes: it needs ctc_weight > 0 "
                             "and ctc_units chars")
        from .data import char_ids

        self.register_buffer("letter_ids", torch.tensor(sorted(set(char_ids(tok).values()))), persistent=False)
        return SpikePooler(self.encoder.dim, cfg.proj_hidden, hidden, cfg.speech_pool_input)

    def _pooled_spans(self, batch: dict[str, Any], hidden: torch.Tensor, n_hidden: list[int]) -> list[torch.Tensor]:
        """Each speech span's slots filled at its CTC spikes (speech_pooling.py)."""
        stack = self.spec.stack
        letter_embeds = (self.lm.get_input_embeddings()(self.letter_ids)
                         if self.pooler.pool_input != "hidden" else None)
        pieces = []
        for a, first, last in zip(batch["span_audio"].tolist(), batch["span_first"].tolist(), batch["span_last"].tolist()):
            h = hidden[a, first * stack: min(last * stack, n_hidden[a])]
            pieces.append(self.pooler(h, self.ctc_head(h), last - first, self.ids.pad, self.letter_ids, letter_embeds))
        return pieces

    def base_lm(self) -> nn.Module:
        """The transformers model under any LoRA wrapping."""
        return self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm

    def set_trainable(self, parts: set[str]) -> None:
        """Train `parts` (minus the parts `freeze` always freezes); everything else gets no gradient."""
        if parts - set(PARTS):
            raise JstipError(f"unknown parts {sorted(parts - set(PARTS))}; use any of {', '.join(PARTS)}")
        self.frozen = (set(PARTS) - parts) | self.always_frozen
        params = dict(self.named_parameters(remove_duplicate=False))
        for part in PARTS:
            getattr(self, part).requires_grad_(False)
            for name in self._trainable[part] if part not in self.frozen else ():
                params[name].requires_grad_(True)
        for head in (self.ctc_head, self.pooler):
            if head is not None:
                head.requires_grad_("projector" not in self.frozen)
        if self.training:
            self.train()

    def train(self, mode: bool = True) -> "SpeechLM":
        super().train(mode)
        for part in self.frozen:  # frozen parts never run dropout
            getattr(self, part).eval()
        return self

    def encode(self, mel: torch.Tensor, mel_lens: torch.Tensor, max_padding: float | None = None) -> tuple[torch.Tensor, list[int]]:
        """Projected speech frames `[A, F, H]` and each row's valid frame count."""
        frames, n_frames, _, _ = self.encode_all(mel, mel_lens, max_padding)
        return frames, n_frames

    def encode_all(self, mel: torch.Tensor, mel_lens: torch.Tensor, max_padding: float | None = None
                   ) -> tuple[torch.Tensor, list[int], torch.Tensor, list[int]]:
        """Projected frames `[A, F, H]` and their counts, and the encoder's own frames `[A, T', d]` (20 ms,
        before stacking: what a `ctc_units: chars` head reads) and their counts.

        Rows are encoded in groups of similar length (each padded by at most `max_padding`): a
        packed batch mixes short word-level spans with whole utterances, and one padded encoder
        batch would spend a third of its work on padding. Each row's output does not depend on
        the others (the encoders mask their padding).
        """
        max_padding = self.encode_max_padding if max_padding is None else max_padding
        lens = [int(n) for n in mel_lens]
        n_frames = [encoded_frames(n, self.spec) for n in lens]
        order = sorted(range(len(lens)), key=lambda i: lens[i])
        groups, cur = [], []
        for i in order:
            if cur and 1 - (sum(lens[j] for j in cur) + lens[i]) / (lens[i] * (len(cur) + 1)) > max_padding:
                groups.append(cur)
                cur = []
            cur.append(i)
        if cur:
            groups.append(cur)
        pieces = []
        with torch.set_grad_enabled(torch.is_grad_enabled() and "encoder" not in self.frozen):
            for group in groups:
                width = max(lens[i] for i in group)
                hidden, _ = self.encoder(mel[group, :width], mel_lens[group])
                pieces.append(hidden)
        outs = [self.projector(h) for h in pieces]
        width = max(n_frames, default=0)
        if any(o.shape[1] != max(n_frames[i] for i in g) for o, g in zip(outs, groups)):
            raise JstipError("the encoder produced a different number of frames than features.encoded_frames "
                             "expects; FrameSpec and the encoder disagree")
        frames = outs[0].new_zeros(len(lens), width, outs[0].shape[-1]) if outs else mel.new_zeros(0, 0, 0)
        for o, g in zip(outs, groups):
            frames[g, : o.shape[1]] = o
        n_hidden = [subsampled_frames(n, self.spec) for n in lens]
        hidden = pieces[0].new_zeros(len(lens), max(n_hidden, default=0), pieces[0].shape[-1]) if pieces else frames
        for h, g in zip(pieces, groups):
            hidden[g, : h.shape[1]] = h
        return frames, n_frames, hidden, n_hidden

    def embed(self, batch: dict[str, Any]) -> torch.Tensor:
        """Token embeddings with each `<|audio|>` position replaced by its speech frame."""
        return self._embed(batch)[0]

    def embed_with_frames(self, batch: dict[str, Any]) -> tuple[torch.Tensor, tuple[torch.Tensor, list[int]] | None]:
        """`embed`'s embeddings and the frames the CTC head reads with their counts (joint decoding scores them)."""
        embeds, ctc_in, _ = self._embed(batch)
        return embeds, ctc_in

    def _embed(self, batch: dict[str, Any]) -> tuple[torch.Tensor, tuple[torch.Tensor, list[int]] | None, list[int]]:
        input_ids = batch["input_ids"]
        embeds = self.lm.get_input_embeddings()(input_ids)
        placeholder = input_ids == self.ids.audio
        n_place = int(placeholder.sum())
        mel = batch.get("mel")
        if mel is None or mel.shape[0] == 0:
            if n_place:
                raise JstipError(f"batch has {n_place} <|audio|> placeholders but no audio features")
            if self.always_encode:  # FSDP: run encoder and adapter like the other ranks; adds exactly 0
                stub = embeds.new_zeros(1, 2 * self.spec.stack, self.cfg.n_mels, dtype=torch.float32)
                frames = self.encode_all(stub, torch.tensor([stub.shape[1]], device=stub.device))[0]
                embeds = embeds + 0.0 * frames.sum().to(embeds.dtype)
            return embeds, None, []
        frames, n_frames, hidden, n_hidden = self.encode_all(mel, batch["mel_lens"])
        pieces = []
        for a, first, last in zip(batch["span_audio"].tolist(), batch["span_first"].tolist(), batch["span_last"].tolist()):
            if last > n_frames[a]:
                raise JstipError(f"a speech span asks for encoder frames {first}..{last} of a row with {n_frames[a]}; "
                                 "the collator and model use different FrameSpecs")
            pieces.append(frames[a, first:last])
        if self.pooler is not None:
            pieces = self._pooled_spans(batch, hidden, n_hidden)
        speech = torch.cat(pieces) if pieces else frames.new_zeros(0, frames.shape[-1])
        if speech.shape[0] != n_place:
            raise JstipError(f"{n_place} <|audio|> placeholders but {speech.shape[0]} speech frames; "
                             "the collator and model use different FrameSpecs")
        ctc_in = (hidden, n_hidden) if self.cfg.ctc_units == "chars" else (frames, n_frames)
        return embeds.masked_scatter(placeholder.unsqueeze(-1), speech.to(embeds.dtype)), ctc_in, n_frames

    def _lm_inputs(self, batch: dict[str, Any], embeds: torch.Tensor) -> tuple[dict[str, Any], torch.Tensor | None]:
        """LM keyword arguments for padded rows (mask) or packed rows (restarting position ids, no mask);
        with flash-attention, packed rows become one flattened row of real positions (returned mask)."""
        positions = batch.get("position_ids")
        if not batch.get("packed"):
            return {"inputs_embeds": embeds, "attention_mask": batch["attention_mask"], "position_ids": positions}, None
        if self._flatten:
            real = batch["example_ids"] >= 0
            return {"inputs_embeds": embeds[real][None], "position_ids": positions[real][None]}, real
        if self._varlen:  # attention.py: causal attention within each sample, Σ length² instead of row²
            return {"inputs_embeds": embeds, "position_ids": positions, "jstip_packed": True}, None
        return {"inputs_embeds": embeds, "position_ids": positions}, None

    def forward(self, batch: dict[str, Any], num_items: int | None = None) -> SpeechLMOutput:
        """LM logits for a collated batch; with labels, the losses (see `SpeechLMOutput`)."""
        embeds, ctc_in, _ = self._embed(batch)
        labels = batch.get("labels")
        kwargs, real = self._lm_inputs(batch, embeds)
        if labels is None:
            return SpeechLMOutput(None, self.lm(**kwargs, use_cache=False).logits)
        base = self.base_lm()
        hidden = base.get_decoder()(**kwargs, use_cache=False).last_hidden_state
        example_ids = batch["example_ids"]
        if real is not None:
            labels, example_ids = labels[real][None], example_ids[real][None]
        targets, owners = labels[:, 1:], example_ids[:, 1:]
        sel = targets != -100
        logits = base.get_output_embeddings()(hidden[:, :-1][sel])
        ce = nn.functional.cross_entropy(logits.float(), targets[sel], reduction="none")
        n_labels = int(sel.sum())
        n_examples = int(example_ids.max()) + 1 if example_ids.numel() else 0
        per_example = ce.new_zeros(n_examples).index_add(0, owners[sel], ce.detach())
        counts = torch.zeros(n_examples, dtype=torch.long, device=ce.device).index_add(
            0, owners[sel], torch.ones_like(owners[sel]))
        loss = ce.sum() / (num_items if num_items else max(n_labels, 1))
        out = SpeechLMOutput(loss, logits, lm_loss=(ce.detach().sum() / max(n_labels, 1)), n_labels=n_labels,
                             example_loss=per_example, example_tokens=counts)
        if self.ctc_head is not None and ctc_in is not None and "ctc_audio" in batch:
            rows, (frames, n_frames) = batch["ctc_audio"], ctc_in
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
