"""`jstip train`: sample shards → tokenizer + trained speech-LLM checkpoint, loss curve, metrics.

Thin wrapper: reads the manifests, builds the tokenizer from the corpus text (test-split
utterances excluded so nothing about held-out transcripts leaks), builds the model from
config, runs `trainer.loop.train`, and writes `checkpoints/`, `plots/train_loss.csv` and
`metrics/train.json`. torch is imported only when the stage runs.
"""
from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from manifests.errors import JstipError
from manifests.io import iter_records, write_metrics, write_text_atomic
from manifests.schema import Sample, Text, Utterance


@dataclass
class TrainConfig:
    samples: str = field(default="data/samples", metadata={"help": "directory of Sample shards (part-*.parquet)"})
    utterances: str = field(default="data/utterances.parquet", metadata={"help": "utterance manifest (tokenizer text)"})
    texts: str = field(default="data/texts.parquet", metadata={"help": "domain text manifest (tokenizer text); may be absent"})
    checkpoints: str = field(default="checkpoints", metadata={"help": "output directory: weights, configs, tokenizer, log"})
    plot: str = field(default="plots/train_loss.csv", metadata={"help": "loss curve CSV (step,loss,lr); loss = LM text cross-entropy"})
    metrics: str = field(default="metrics/train.json", metadata={"help": "where to write the run's figures"})
    vocab_size: int = field(default=1000, metadata={"help": "BPE vocabulary size, special tokens included"})
    lm: str = field(default="", metadata={"help": "local path of a pretrained causal LM (its tokenizer is used); "
                                                  "empty builds LM and tokenizer from scratch"})
    lm_type: str = field(default="llama", metadata={"help": "config family when building from scratch: llama or qwen2"})
    lm_hidden: int = field(default=192, metadata={"help": "LM hidden size"})
    lm_layers: int = field(default=3, metadata={"help": "LM decoder layers"})
    lm_heads: int = field(default=4, metadata={"help": "LM attention heads"})
    lm_intermediate: int = field(default=512, metadata={"help": "LM MLP width"})
    enc_dim: int = field(default=144, metadata={"help": "speech encoder width"})
    enc_layers: int = field(default=2, metadata={"help": "speech encoder transformer layers"})
    enc_heads: int = field(default=4, metadata={"help": "speech encoder attention heads"})
    stack: int = field(default=2, metadata={"help": "encoder frames stacked per LM position (2 → 40 ms)"})
    proj_hidden: int = field(default=384, metadata={"help": "projector MLP hidden size"})
    dropout: float = field(default=0.1, metadata={"help": "dropout in encoder and LM attention"})
    ctc_weight: float = field(default=1.0, metadata={"help": "weight of an auxiliary CTC loss of the speech frames on "
                                                           "asr transcripts (0 disables); speeds up learning to listen"})
    steps: int = field(default=1200, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=16, metadata={"help": "samples per step"})
    lr: float = field(default=2e-3, metadata={"help": "peak learning rate (AdamW)"})
    warmup_steps: int = field(default=60, metadata={"help": "linear warm-up steps before cosine decay"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (not on norms/embeddings)"})
    grad_clip: float = field(default=1.0, metadata={"help": "max gradient norm; 0 disables clipping"})
    max_tokens: int = field(default=1024, metadata={"help": "longer sequences are skipped and counted"})
    seed: int = field(default=0, metadata={"help": "random seed (init, batching, dropout)"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA if present, else CPU), cpu or cuda"})
    log_every: int = field(default=10, metadata={"help": "steps between log lines"})
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


def run(cfg: TrainConfig) -> dict:
    """Train and write checkpoint, loss CSV and metrics; returns the metrics."""
    import torch

    from trainer.data import Collator, SampleDataset, check_sample, skip_counts
    from trainer.loop import LoopConfig, pick_device, train
    from trainer.model import SpeechLM, SpeechLMConfig, count_parameters, save_checkpoint
    from trainer.tokenizer import build_tokenizer, extend_tokenizer, load_pretrained_tokenizer

    started = time.perf_counter()
    samples = list(iter_records(cfg.samples, Sample))
    if not samples:
        raise JstipError(f"{cfg.samples} holds no samples; run the interleave stage first")
    for sample in samples:
        check_sample(sample)
    torch.manual_seed(cfg.seed)
    if cfg.lm:  # a pretrained LM keeps its own tokenizer, extended with the modality tags
        tok = extend_tokenizer(load_pretrained_tokenizer(cfg.lm))
    else:
        tok = build_tokenizer(tokenizer_texts(cfg, samples), cfg.vocab_size)
    model = SpeechLM(_subset(cfg, SpeechLMConfig), tok)
    dataset = SampleDataset(samples, model.spec)
    collator = Collator(tok, model.spec, max_tokens=cfg.max_tokens)
    loop_cfg = _subset(cfg, LoopConfig)
    ckpt = Path(cfg.checkpoints)
    ckpt.mkdir(parents=True, exist_ok=True)
    result = train(model, dataset, collator, loop_cfg, log_path=ckpt / "train_log.jsonl", progress=cfg.progress)
    save_checkpoint(model.cpu(), tok, ckpt)

    losses = [h["loss"] for h in result.history]
    n = max(1, min(cfg.loss_window, len(losses) // 2 or 1))
    csv = "step,loss,lr\n" + "".join(f"{h['step']},{h['loss']:.6f},{h['lr']:.8g}\n" for h in result.history)
    write_text_atomic(csv, cfg.plot)
    wall = result.wall_seconds
    skipped = skip_counts(dataset.skipped, collator.skipped)
    metrics = {
        "steps": result.steps,
        "loss_first": sum(losses[:n]) / n,
        "loss_last": sum(losses[-n:]) / n,
        "loss_window": n,
        "train_seconds": round(wall, 3),
        "stage_seconds": round(time.perf_counter() - started, 3),
        "steps_per_second": result.steps / wall if wall else None,
        "audio_seconds_per_second": result.audio_seconds / wall if wall else None,
        "tokens_per_second": result.tokens / wall if wall else None,
        "n_parameters": count_parameters(model),
        "padding_share": result.pad_tokens / (result.tokens + result.pad_tokens) if result.tokens else None,
        "n_samples": len(samples),
        "n_samples_by_kind": dict(Counter(s.kind for s in samples)),
        "samples_seen_by_kind": dict(result.kinds),
        "skipped": sum(skipped.values()),
        "skipped_by_reason": dict(skipped),
        "skipped_examples": dict(list({**dataset.skipped, **collator.skipped}.items())[:5]),
        "vocab_size": len(tok),
        "frame_ms": model.spec.frame_duration * 1000,
        "device": str(pick_device(cfg.device)),
    }
    write_metrics(metrics, cfg.metrics)
    return metrics
