"""The memory a run needs per device, before it starts (`jstip train --plan`).

The model is built on the meta device (no memory, no weights read) to count parameters per part
and which of them stage 2 trains (`freeze`, LoRA). Per device, in bytes:
- parameters: fp32 master weights (all of them under ddp; 1/W under fsdp, plus the largest two
  gathered units in flight: the one running and the one prefetched, bf16 on CUDA);
- gradients: fp32, trained parameters only (ddp: the full set plus DDP's bucket copy of it; fsdp:
  1/W, plus one gathered unit's unsharded gradient);
- optimizer: AdamW's two fp32 moments of the trained parameters (ddp full, fsdp 1/W);
- activations: what backward keeps of one micro-batch (`batch_size` × `context` positions): per
  LM layer and position 6·h + 2·kv + 4·i values (norm inputs/outputs, q/k/v, attention output, the
  SwiGLU MLP's four i-wide tensors), the encoder layers' per frame likewise with their widths (and a
  wav2vec2-family conv front end's outputs, `hf_encoders.front_end_values`), and
  fp32 logits and their gradient at the labelled positions. With activation checkpointing an LM
  layer keeps only its input (h per position), and one layer's full set lives during recompute.
  Values are 2 bytes under bf16 (CUDA), 4 in fp32 (CPU).
Not counted: the CUDA context and allocator fragmentation (leave ~10%: a run is refused above 90%
of the device), data loader buffers, the evaluation copy. Checked on CPU against the measured
per-rank peak resident memory of small models in both modes (tests/test_trainer_plan.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from manifests.errors import JstipError

GiB = 1024 ** 3
USABLE = 0.9  # share of the device's memory a plan may fill


@dataclass
class Counts:
    """Parameters of the model by what they cost."""

    total: int
    trained: int
    largest_unit: int  # parameters of the largest FSDP unit (a decoder layer, an encoder block or the root)
    lm_layers: int
    hidden: int
    kv: int
    intermediate: int
    vocab: int
    enc_layers: int
    enc_dim: int
    enc_ffn: int
    enc_front: int = 0  # activation values per encoder frame of a waveform front end (wav2vec2's conv stack)


@dataclass
class Plan:
    mode: str
    world_size: int
    params: float
    grads: float
    optimizer: float
    activations: float
    activations_checkpointed: float
    checkpointing: bool
    device_bytes: float | None

    @property
    def total(self) -> float:
        return self.params + self.grads + self.optimizer + (
            self.activations_checkpointed if self.checkpointing else self.activations)

    @property
    def fits(self) -> bool | None:
        return None if not self.device_bytes else self.total <= USABLE * self.device_bytes

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total, "fits": self.fits}


def count_model(cfg: Any) -> Counts:
    """Parameter counts of the configured model, built on the meta device (nothing allocated)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, Qwen2Config

    from .encoders import ConvEncoder, load_whisper_encoder
    from .features import FrameSpec
    from .parallel import decoder_layers

    front = 0
    with torch.device("meta"):
        if cfg.lm or cfg.lm_config:
            lm_cfg = AutoConfig.from_pretrained(cfg.lm or cfg.lm_config)
        else:
            kind = LlamaConfig if cfg.lm_type == "llama" else Qwen2Config
            lm_cfg = kind(vocab_size=cfg.vocab_size, hidden_size=cfg.lm_hidden, num_hidden_layers=cfg.lm_layers,
                          num_attention_heads=cfg.lm_heads, num_key_value_heads=cfg.lm_heads,
                          intermediate_size=cfg.lm_intermediate, tie_word_embeddings=True)
        lm = AutoModelForCausalLM.from_config(lm_cfg)
        if cfg.encoder == "whisper":
            enc = load_whisper_encoder(cfg.encoder_path)
            enc_layers, enc_dim, enc_ffn = enc.config.encoder_layers, enc.config.d_model, enc.config.encoder_ffn_dim
            blocks = list(enc.layers)
        elif cfg.encoder == "hf":  # the config from encoder_path, the model on meta: no weights read
            from transformers import AutoModel

            from .hf_encoders import front_end_values, hf_config, hf_sizes

            enc_cfg = hf_config(cfg.encoder_path)
            enc = AutoModel.from_config(enc_cfg)
            enc_layers, enc_dim, enc_ffn = hf_sizes(enc_cfg)
            front = front_end_values(enc_cfg)
            blocks = list(enc.encoder.layers)
        else:
            enc = ConvEncoder(80, cfg.enc_dim, cfg.enc_layers, cfg.enc_heads, 0.0, FrameSpec(stack=cfg.stack))
            enc_layers, enc_dim, enc_ffn = cfg.enc_layers, cfg.enc_dim, 4 * cfg.enc_dim
            blocks = enc.blocks()
    n = lambda m: sum(p.numel() for p in {id(p): p for p in m.parameters()}.values())  # noqa: E731
    h = lm_cfg.hidden_size
    proj = enc_dim * cfg.stack * cfg.proj_hidden + cfg.proj_hidden + cfg.proj_hidden * h + h
    ctc = ((enc_dim if cfg.ctc_units == "chars" else h) + 1) * lm_cfg.vocab_size if cfg.ctc_weight > 0 else 0
    n_lm, n_enc = n(lm), n(enc)
    layers = decoder_layers(lm)
    frozen = _frozen(cfg)
    lora = 0
    if cfg.lora_r > 0:  # r × (in + out) per linear of each decoder layer
        lora = sum(cfg.lora_r * (m.in_features + m.out_features) for layer in layers for m in layer.modules()
                   if isinstance(m, torch.nn.Linear))
    trained = (0 if "encoder" in frozen else n_enc) + (0 if "projector" in frozen else proj + ctc) + (
        lora if cfg.lora_r > 0 else 0 if "lm" in frozen else n_lm)
    root = n_lm - sum(n(layer) for layer in layers) + n_enc - sum(n(b) for b in blocks) + proj + ctc
    heads = lm_cfg.num_attention_heads
    kv = getattr(lm_cfg, "num_key_value_heads", heads) * (getattr(lm_cfg, "head_dim", None) or h // heads)
    return Counts(n_lm + n_enc + proj + ctc + lora, trained, max([root] + [n(x) for x in layers + blocks]),
                  len(layers), h, kv, lm_cfg.intermediate_size, lm_cfg.vocab_size, enc_layers, enc_dim, enc_ffn, front)


def _frozen(cfg: Any) -> set[str]:
    if cfg.freeze == "auto":
        return {"encoder"} if cfg.encoder in ("whisper", "hf") else set()
    return {p.strip() for p in cfg.freeze.split(",") if p.strip()}


def plan_memory(c: Counts, cfg: Any, mode: str, world_size: int, cuda: bool, device_bytes: float | None = None,
                speech_share: float = 0.5) -> Plan:
    """Bytes per device of one configuration (see the module docstring); `speech_share`: the share of a
    row's positions that are speech (each runs `stack` encoder frames)."""
    if mode not in ("ddp", "fsdp", "none"):
        raise JstipError(f"plan mode {mode!r} is unknown; use ddp or fsdp")
    w = world_size if mode == "fsdp" else 1
    act_bytes = 2 if cuda else 4
    gathered = 2 * c.largest_unit * (2 if cuda else 4) if mode == "fsdp" else 0
    params = 4 * c.total / w + gathered
    grads = 4 * c.trained / w + (4 * c.largest_unit if mode == "fsdp" else 0) + (4 * c.trained if mode == "ddp" else 0)
    optimizer = 8 * c.trained / w
    positions = cfg.batch_size * cfg.context
    layer = (6 * c.hidden + 2 * c.kv + 4 * c.intermediate) * act_bytes
    frames = positions * speech_share * cfg.stack
    encoder = frames * (c.enc_layers * (8 * c.enc_dim + 2 * c.enc_ffn) + c.enc_front) * act_bytes
    logits = positions * c.vocab * 4 * 2
    full = positions * c.lm_layers * layer + encoder + logits
    checkpointed = positions * (c.lm_layers * c.hidden * act_bytes + layer) + encoder + logits
    return Plan(mode, world_size, params, grads, optimizer, full, checkpointed,
                bool(getattr(cfg, "gradient_checkpointing", False)), device_bytes)


def advice(plan: Plan, other: Plan | None = None) -> str:
    """What to change when a plan does not fit."""
    tips = []
    if other is not None and other.fits:
        tips.append(f"parallel: {other.mode} ({other.total / GiB:.1f} GiB per device)")
    if not plan.checkpointing and plan.activations > plan.activations_checkpointed:
        tips.append(f"gradient_checkpointing: true (activations {plan.activations / GiB:.1f} → "
                    f"{plan.activations_checkpointed / GiB:.1f} GiB)")
    tips.append("a smaller batch_size or context (activations scale with batch_size × context)")
    if plan.mode == "fsdp":
        tips.append("more processes (fsdp divides parameters, gradients and AdamW state by their number)")
    tips.append("freeze or LoRA (lora_r) for parts that need not train")
    return "; ".join(tips)


def format_plan(plans: list[Plan]) -> str:
    """A table of plans (one column per mode), GiB per device."""
    rows = [("parameters", "params"), ("gradients", "grads"), ("optimizer (AdamW)", "optimizer"),
            ("activations", "activations"), ("activations (checkpointed)", "activations_checkpointed")]
    head = "| per device (GiB) | " + " | ".join(f"{p.mode} × {p.world_size}" for p in plans) + " |"
    lines = [head, "| --- |" + " ---: |" * len(plans)]
    lines += [f"| {label} | " + " | ".join(f"{getattr(p, key) / GiB:.2f}" for p in plans) + " |" for label, key in rows]
    lines.append("| **total** | " + " | ".join(f"**{p.total / GiB:.2f}**" for p in plans) + " |")
    dev = plans[0].device_bytes
    if dev:
        lines.append(f"| fits {dev / GiB:.0f} GiB ({USABLE:.0%}) | " + " | ".join(
            "yes" if p.fits else "no" for p in plans) + " |")
    return "\n".join(lines)
