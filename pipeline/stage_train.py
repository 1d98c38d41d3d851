"""`jstip train`: sample shards → tokenizer + trained speech-LLM checkpoint, log, plot, metrics.

Thin wrapper: reads this rank's row groups of the sample shards (metadata now, embedded audio
when a batch needs it), builds the tokenizer from the corpus text (test-split utterances
excluded so nothing about held-out transcripts leaks) or takes the pretrained LM's, builds the
model, plans length-bucketed batches and runs `trainer.loop.train`. Rank 0 writes
`checkpoints/` (final model + `state/step-*` training states + `train_log.jsonl`),
`plots/train_loss.csv` and `metrics/train.json`. Runs under `torchrun` for DDP.
torch is imported only when the stage runs.
"""
from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from manifests.io import iter_records, write_metrics, write_text_atomic
from manifests.schema import Sample, Text, Utterance

PLOT_COLUMNS = ("step", "loss", "lr", "tokens_per_s", "audio_s_per_s", "padding_share", "mfu")


@dataclass
class TrainConfig:
    samples: str = field(default="data/samples", metadata={"help": "directory of Sample shards (part-*.parquet)"})
    utterances: str = field(default="data/utterances.parquet", metadata={"help": "utterance manifest (tokenizer text)"})
    texts: str = field(default="data/texts.parquet", metadata={"help": "domain text manifest (tokenizer text); may be absent"})
    checkpoints: str = field(default="checkpoints", metadata={"help": "output directory: weights, configs, tokenizer, "
                                                                      "log, state/step-* training states"})
    plot: str = field(default="plots/train_loss.csv", metadata={"help": "CSV per log record: " + ",".join(PLOT_COLUMNS)})
    metrics: str = field(default="metrics/train.json", metadata={"help": "where to write the run's figures"})
    vocab_size: int = field(default=1000, metadata={"help": "BPE vocabulary size, special tokens included"})
    encoder: str = field(default="conv", metadata={"help": "speech encoder: conv (from scratch) or whisper"})
    encoder_path: str = field(default="", metadata={"help": "whisper: local model directory or name"})
    lm: str = field(default="", metadata={"help": "pretrained causal LM (path or name; its tokenizer is used); "
                                                  "empty builds LM and tokenizer from scratch"})
    lm_config: str = field(default="", metadata={"help": "config.json or model directory: build that LM with fresh "
                                                         "weights (corpus tokenizer)"})
    lm_type: str = field(default="llama", metadata={"help": "config family when building from sizes: llama or qwen2"})
    lm_hidden: int = field(default=192, metadata={"help": "LM hidden size"})
    lm_layers: int = field(default=3, metadata={"help": "LM decoder layers"})
    lm_heads: int = field(default=4, metadata={"help": "LM attention heads"})
    lm_intermediate: int = field(default=512, metadata={"help": "LM MLP width"})
    enc_dim: int = field(default=144, metadata={"help": "conv speech encoder width"})
    enc_layers: int = field(default=2, metadata={"help": "conv speech encoder transformer layers"})
    enc_heads: int = field(default=4, metadata={"help": "conv speech encoder attention heads"})
    stack: int = field(default=2, metadata={"help": "encoder frames stacked per LM position (2 → 40 ms)"})
    proj_hidden: int = field(default=384, metadata={"help": "projector MLP hidden size"})
    dropout: float = field(default=0.1, metadata={"help": "dropout in encoder and LM attention"})
    ctc_weight: float = field(default=1.0, metadata={"help": "weight of an auxiliary CTC loss of the speech frames on "
                                                           "asr transcripts (0 disables); speeds up learning to listen"})
    lora_r: int = field(default=0, metadata={"help": "LoRA rank on the LM (peft); 0 trains the LM fully"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_targets: str = field(default="all-linear", metadata={"help": "LoRA target modules (all-linear or names)"})
    freeze: str = field(default="auto", metadata={"help": "parts to freeze: encoder,projector,lm; auto = a whisper encoder"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute LM activations in backward"})
    steps: int = field(default=1200, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=16, metadata={"help": "samples per micro-batch (when batch_tokens is 0)"})
    batch_tokens: int = field(default=0, metadata={"help": "padded tokens per micro-batch (rows × longest); 0: batch_size"})
    pool: int = field(default=32, metadata={"help": "batches' worth of samples sorted together (more: less padding)"})
    length_jitter: float = field(default=0.1, metadata={"help": "sort by length x (1 ± this) per epoch so batches vary (0: exact sort, least padding)"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    lr: float = field(default=2e-3, metadata={"help": "peak learning rate (AdamW)"})
    min_lr_ratio: float = field(default=0.05, metadata={"help": "final learning rate as a share of the peak"})
    warmup_steps: int = field(default=60, metadata={"help": "linear warm-up steps before cosine decay"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (not on norms/embeddings)"})
    grad_clip: float = field(default=1.0, metadata={"help": "max gradient norm; 0 disables clipping"})
    max_tokens: int = field(default=1024, metadata={"help": "longer sequences are skipped and counted"})
    seed: int = field(default=0, metadata={"help": "random seed (init, batching, dropout)"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA if present, else CPU), cpu or cuda"})
    precision: str = field(default="auto", metadata={"help": "auto (bf16 autocast on CUDA, fp32 on CPU), bf16 or fp32"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the LM"})
    num_workers: int = field(default=0, metadata={"help": "data loader worker processes (0: load in the main process)"})
    save_every: int = field(default=0, metadata={"help": "steps between training states for resume (0: none)"})
    keep_states: int = field(default=2, metadata={"help": "training states kept (newest)"})
    resume: str = field(default="", metadata={"help": "'' fresh, auto (newest state in checkpoints/state), or a state dir"})
    peak_tflops: float = field(default=0.0, metadata={"help": "GPU bf16 peak for MFU when the device is not in the table"})
    log_every: int = field(default=10, metadata={"help": "steps between log records (JSONL, plot rows)"})
    loss_window: int = field(default=20, metadata={"help": "steps averaged for first/last loss in metrics"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


def tokenizer_texts(cfg: TrainConfig, samples: list[Sample]) -> list[str]:
    """Text the tokenizer learns from: train utterances, domain text and sample text spans."""
    texts = [s.text for sample in samples for s in sample.spans if s.text]
    if Path(cfg.utterances).exists():
        texts += [u.norm_text for u in iter_records(cfg.utterances, Utterance) if u.split != "test"]
    if cfg.texts and Path(cfg.texts).exists():
        texts += [t.norm_text for t in iter_records(cfg.texts, Text)]
    return texts


def _subset(cfg: TrainConfig, target: type):
    """`target` built from the stage options of the same names (the rest keep its defaults)."""
    names = {f.name for f in dataclasses.fields(cfg)}
    return target(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(target) if f.name in names})


def _tokenizer(cfg: TrainConfig, dist, all_groups) -> object:
    """Rank 0 builds (or, resuming, reloads) the tokenizer and saves it; the other ranks load that copy."""
    from trainer.checkpoint import latest_state
    from trainer.shards import read_metadata
    from trainer.tokenizer import build_tokenizer, extend_tokenizer, load_pretrained_tokenizer, load_tokenizer

    ckpt = Path(cfg.checkpoints)
    state = latest_state(ckpt) if cfg.resume == "auto" else (Path(cfg.resume) if cfg.resume else None)
    if dist.main:
        if state is not None:
            tok = load_tokenizer(state)
        elif cfg.lm:  # a pretrained LM keeps its own tokenizer, extended with the modality tags
            tok = extend_tokenizer(load_pretrained_tokenizer(cfg.lm))
        else:
            samples = [s for g in all_groups for s in read_metadata(g)]
            tok = build_tokenizer(tokenizer_texts(cfg, samples), cfg.vocab_size)
        tok.save_pretrained(str(ckpt))
    dist.barrier()
    return tok if dist.main else load_tokenizer(ckpt)


def run(cfg: TrainConfig) -> dict:
    """Train and write checkpoint, log, plot and metrics (rank 0); returns the metrics."""
    import json

    import torch

    from trainer.batching import planned_from_shards
    from trainer.checkpoint import save_checkpoint
    from trainer.data import Collator, skip_counts
    from trainer.dist import init_distributed
    from trainer.loop import LoopConfig, pick_device, train
    from trainer.model import SpeechLM, SpeechLMConfig, count_parameters
    from trainer.shards import row_groups

    started = time.perf_counter()
    dist = init_distributed(pick_device(cfg.device).type)
    all_groups = row_groups(cfg.samples)
    ckpt = Path(cfg.checkpoints)
    ckpt.mkdir(parents=True, exist_ok=True)
    tok = _tokenizer(cfg, dist, all_groups)
    torch.manual_seed(cfg.seed)
    model = SpeechLM(_subset(cfg, SpeechLMConfig), tok)
    collator = Collator(tok, model.spec, max_tokens=cfg.max_tokens)
    data, too_long = planned_from_shards(cfg.samples, tok, collator, model.spec, dist.rank, dist.world_size,
                                         cfg.batch_size, cfg.batch_tokens, cfg.pool, cfg.seed, max(1, cfg.num_workers),
                                         cfg.max_tokens, cfg.length_jitter)
    samples = data.samples
    loop_cfg = _subset(cfg, LoopConfig)
    result = train(model, data, loop_cfg, out_dir=ckpt, tok=tok, log_path=ckpt / "train_log.jsonl",
                   progress=cfg.progress)
    skipped_all = dist.gather({**too_long, **result.skipped})
    if not dist.main:
        return {"rank": dist.rank, "steps": result.steps}
    save_checkpoint(model.cpu(), tok, ckpt)
    records = [json.loads(line) for line in (ckpt / "train_log.jsonl").read_text().splitlines() if line]
    fmt = lambda v: "" if v is None else (f"{v:.8g}" if isinstance(v, float) else str(v))  # noqa: E731
    csv = ",".join(PLOT_COLUMNS) + "\n" + "".join(
        ",".join(fmt(r.get("mean_loss") if c == "loss" else r.get(c)) for c in PLOT_COLUMNS) + "\n" for r in records)
    write_text_atomic(csv, cfg.plot)
    losses = [h["loss"] for h in result.history]
    n = max(1, min(cfg.loss_window, len(losses) // 2 or 1))
    wall = result.wall_seconds
    merged = {k: v for d in skipped_all for k, v in d.items()}
    skipped = skip_counts(merged)
    ran = result.steps - result.start_step
    metrics = {
        "steps": result.steps,
        "resumed_from_step": result.start_step,
        "loss_first": sum(losses[:n]) / n if losses else None,
        "loss_last": sum(losses[-n:]) / n if losses else None,
        "loss_window": n,
        "train_seconds": round(wall, 3),
        "stage_seconds": round(time.perf_counter() - started, 3),
        "steps_per_second": ran / wall if wall else None,
        "audio_seconds_per_second": result.audio_seconds * dist.world_size / wall if wall else None,
        "tokens_per_second": result.tokens * dist.world_size / wall if wall else None,
        "mfu": result.mfu,
        "n_parameters": count_parameters(model),
        "n_trainable_parameters": count_parameters(model, trainable=True),
        "padding_share": result.pad_tokens / (result.tokens + result.pad_tokens) if result.tokens else None,
        "world_size": dist.world_size,
        "n_samples": sum(g.rows for g in all_groups),
        "n_samples_by_kind": dict(Counter(s.kind for s in samples)) if dist.world_size == 1 else None,
        "samples_seen_by_kind": dict(result.kinds),
        "skipped": sum(skipped.values()),
        "skipped_by_reason": dict(skipped),
        "skipped_examples": dict(list(merged.items())[:5]),
        "vocab_size": len(tok),
        "frame_ms": model.spec.frame_duration * 1000,
        "device": str(pick_device(cfg.device)),
    }
    write_metrics(metrics, cfg.metrics)
    return metrics
