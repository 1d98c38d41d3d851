"""The training loop: AdamW, linear warm-up + cosine decay, gradient clipping, seeded.

Step-based (not epoch-based) so that tiny demo corpora and large ones share one schedule.
Runs on CUDA with bf16 autocast when available, else on CPU (the tested path). The loop
returns its history and counters; writing files is the stage's job.
"""
from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from manifests.errors import JstipError

from .data import BucketBatchSampler, Collator, SampleDataset, estimated_length, skip_counts, to_device
from .model import SpeechLM


@dataclass
class LoopConfig:
    """Optimisation settings of one run."""

    steps: int = 1200
    batch_size: int = 16
    lr: float = 2e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 60
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 10
    device: str = "auto"


@dataclass
class LoopResult:
    """What a run did: per-step history and throughput counters."""

    history: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    wall_seconds: float = 0.0
    audio_seconds: float = 0.0
    tokens: int = 0
    pad_tokens: int = 0
    kinds: Counter = field(default_factory=Counter)
    empty_batches: int = 0


def pick_device(name: str = "auto") -> torch.device:
    """`auto` → CUDA when available, else CPU; anything else is passed to `torch.device`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise JstipError(f"device {name!r} is not a torch device; use 'auto', 'cpu' or 'cuda'") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise JstipError(f"device {name!r} was asked for but CUDA is not available; use device='cpu' or 'auto'")
    return device


def lr_factor(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the peak learning rate at `step` (0-based): linear warm-up then cosine decay."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with no decay on biases, norms and embeddings."""
    decay, no_decay = [], []
    seen = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (no_decay if p.ndim < 2 or "embed" in name or "norm" in name else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98))


def train(model: SpeechLM, dataset: SampleDataset, collator: Collator, cfg: LoopConfig,
          log_path: str | Path | None = None, on_log: Callable[[dict[str, float]], None] | None = None,
          progress: bool = True) -> LoopResult:
    """Train `model` in place for `cfg.steps` optimizer steps; returns history and counters."""
    if cfg.steps < 1:
        raise JstipError(f"steps must be at least 1, got {cfg.steps}")
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    model.to(device).train()
    lengths = [estimated_length(s, dataset.spec) for s in dataset.samples]
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=BucketBatchSampler(lengths, cfg.batch_size, cfg.seed),
                                         collate_fn=collator, num_workers=0)
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    log_file = open(log_path, "w") if log_path else None
    result, window, start = LoopResult(), [], time.perf_counter()
    batches = iter(loader)
    bar = tqdm(total=cfg.steps, desc="train", disable=not progress, unit="step")
    try:
        while result.steps < cfg.steps:
            batch = next(batches)
            if batch is None:  # every sample of this batch was skipped (counted by dataset/collator)
                result.empty_batches += 1
                if result.empty_batches > 10 * cfg.steps:
                    raise JstipError("no batch could be built: every sample's audio is unreadable or too long; "
                                     f"skipped: {dict(skip_counts(dataset.skipped, collator.skipped))}")
                continue
            with autocast:
                out = model(to_device(batch, device))
            loss = out.loss
            if not torch.isfinite(loss):
                raise JstipError(f"loss became {loss.item()} at step {result.steps}; lower lr (now {cfg.lr})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            sched.step()
            result.steps += 1
            result.audio_seconds += batch["audio_seconds"]
            result.tokens += batch["n_tokens"]
            result.pad_tokens += batch["n_pad"]
            result.kinds.update(batch["kinds"])
            # "loss" is the LM's text cross-entropy (comparable with and without CTC); total adds CTC
            entry = {"step": result.steps, "loss": float(out["lm_loss"]), "lr": lr, "total_loss": float(loss.item())}
            if out["ctc_loss"] is not None:
                entry["ctc_loss"] = float(out["ctc_loss"])
            result.history.append(entry)
            window.append(entry["loss"])
            bar.update(1)
            if result.steps % cfg.log_every == 0 or result.steps == cfg.steps:
                mean = sum(window) / len(window)
                window = []
                bar.set_postfix(loss=f"{mean:.3f}", lr=f"{lr:.2e}")
                record = {**entry, "mean_loss": mean, "elapsed_s": time.perf_counter() - start}
                if log_file:
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
                if on_log:
                    on_log(record)
    finally:
        bar.close()
        if log_file:
            log_file.close()
    result.wall_seconds = time.perf_counter() - start
    model.eval()
    return result
