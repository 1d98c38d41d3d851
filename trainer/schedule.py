"""The paper's two-stage schedule, learning-rate shapes, and run sizes derived from the data.

Stage 1 trains the adapter only (`stage1_train`, default the projector; with the auxiliary CTC
loss its head too) on ASR data (`stage1_kinds`: asr, tts_pair) for `stage1_share` of the ASR
tokens (the paper: 10%, AdamW lr 1e-4, linear decay). Stage 2 trains encoder, adapter and LM
(minus `freeze`) on all samples (the paper: lr 4e-5, linear decay) for `steps` optimizer steps,
or `epochs` passes over the data when that is set. Each stage has its own AdamW and its own
warm-up + decay; step counts derived from token shares are estimates from the columnar scan
(`shards.scan`), summed over ranks so every rank runs the same number of steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from manifests.errors import JstipError

from .batching import Stage, TrainData

LR_SCHEDULES = ("linear", "cosine")
STAGE1, STAGE2 = "stage1", "stage2"


def lr_factor(step: int, warmup: int, total: int, min_ratio: float = 0.0, shape: str = "linear") -> float:
    """Multiplier of the peak learning rate at `step` (0-based): linear warm-up, then linear or cosine decay."""
    if shape not in LR_SCHEDULES:
        raise JstipError(f"lr_schedule {shape!r} is unknown; use {' or '.join(LR_SCHEDULES)}")
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    decay = 1.0 - progress if shape == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_ratio + (1.0 - min_ratio) * decay


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, fused: bool = False) -> torch.optim.AdamW:
    """AdamW on trainable parameters, with no decay on biases, norms and embeddings."""
    decay, no_decay, seen = [], [], set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (no_decay if p.ndim < 2 or "embed" in name or "norm" in name else decay).append(p)
    if not decay and not no_decay:
        raise JstipError("no trainable parameters: freeze leaves nothing to train; freeze fewer parts or add LoRA")
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98),
                             **({"fused": True} if fused else {}))


@dataclass
class StagePlan:
    """One stage of the run: what it reads, what it trains, how long and how fast."""

    name: str
    data: Stage
    parts: set[str]
    steps: int
    lr: float
    warmup: int
    epochs: float = 0.0  # the share of this stage's data the steps cover (estimate)


def parse_parts(text: str) -> set[str]:
    from .model import PARTS

    parts = {p.strip() for p in text.split(",") if p.strip()}
    if not parts or parts - set(PARTS):
        raise JstipError(f"stage1_train={text!r} must name parts among {', '.join(PARTS)} (comma-separated)")
    return parts


def plan_stages(cfg: Any, data: TrainData, world_size: int, total_tokens: Callable[[Stage], float]) -> list[StagePlan]:
    """Stage 1 (when `stage1_share` > 0 and there are ASR samples) and stage 2, sized from the data.

    `total_tokens(stage)` is the estimated token count of a stage's samples summed over ranks
    (each rank scanned only its own row groups), so every rank plans the same step counts.
    """
    from .model import PARTS

    def per_step(stage: Stage) -> float:
        return max(data.tokens_per_batch(stage) * cfg.grad_accum * world_size, 1.0)

    if not 0 <= cfg.stage1_share <= 1:
        raise JstipError(f"stage1_share must be within 0..1 (a share of the ASR tokens), got {cfg.stage1_share}")
    plans = []
    if cfg.stage1_share > 0:
        s1 = Stage(STAGE1, tuple(k.strip() for k in cfg.stage1_kinds.split(",") if k.strip()))
        steps = math.ceil(cfg.stage1_share * total_tokens(s1) / per_step(s1))
        if steps > 0:
            plans.append(StagePlan(STAGE1, s1, parse_parts(cfg.stage1_train), steps, cfg.stage1_lr,
                                   min(cfg.warmup_steps, steps // 2), cfg.stage1_share))
    s2 = Stage(STAGE2)
    total = total_tokens(s2)
    steps = max(1, math.ceil(cfg.epochs * total / per_step(s2))) if cfg.epochs > 0 else cfg.steps
    if steps < 1:
        raise JstipError(f"steps ({cfg.steps}) must be at least 1, or set epochs > 0")
    plans.append(StagePlan(STAGE2, s2, set(PARTS), steps, cfg.lr, min(cfg.warmup_steps, steps // 2),
                           steps * per_step(s2) / max(total, 1.0)))
    return plans


def size_warning(plan: StagePlan, low: float = 0.1, high: float = 50.0) -> str | None:
    """A warning when stage 2 covers far less or far more than the data (`epochs` sizes it to the data)."""
    if plan.epochs < low:
        return (f"train: {plan.steps} steps cover about {plan.epochs:.3g} epochs of the data: most samples will "
                f"never be seen; set epochs (e.g. --epochs 1) or more steps")
    if plan.epochs > high:
        return (f"train: {plan.steps} steps cover about {plan.epochs:.3g} epochs of the data: the model will "
                f"likely overfit; set epochs or fewer steps")
    return None
