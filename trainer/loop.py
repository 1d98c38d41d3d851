"""The training loop: AdamW, warm-up + cosine, accumulation, clipping, bf16, DDP, exact resume.

Step-based (not epoch-based) so that tiny demo corpora and large ones share one schedule. One
optimizer step = `grad_accum` micro-batches whose text cross-entropies are summed and divided by
their total label count (so accumulating equals one big batch). CUDA runs under bf16 autocast;
CPU in fp32 (the tested path). Under `torchrun` the model is wrapped in DDP and only rank 0
writes. Every `save_every` steps (and at the end) the full training state is saved
(`checkpoint.save_state`); `resume` continues from one and reproduces the uninterrupted run's
losses exactly on CPU: weights, AdamW moments, scheduler, every RNG and the data cursor are
restored, and the loader never draws from the global RNG. Log records (JSONL, every `log_every`
steps) carry loss, lr, tokens/s, audio seconds/s, padding share and MFU (on GPU).
"""
from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from manifests.errors import JstipError
from manifests.io import write_text_atomic

from .batching import CursorSampler, PlannedBatches
from .checkpoint import latest_state, load_state, save_state
from .data import to_device
from .dist import init_distributed
from .model import SpeechLM
from .throughput import lm_flops_per_token, peak_flops


@dataclass
class LoopConfig:
    """Optimisation settings of one run."""

    steps: int = 1200
    batch_size: int = 16
    batch_tokens: int = 0
    pool: int = 32
    length_jitter: float = 0.1
    grad_accum: int = 1
    lr: float = 2e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 60
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 10
    device: str = "auto"
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU), bf16 or fp32
    compile: bool = False
    num_workers: int = 0
    save_every: int = 0  # 0: no training states (only the final model)
    keep_states: int = 2
    resume: str = ""  # "" start fresh, "auto" newest state if any, or a state/step-* directory
    peak_tflops: float = 0.0


# settings a resumed run must share with the run it continues (they decide the data order)
DATA_KEYS = ("seed", "batch_size", "batch_tokens", "pool", "length_jitter", "grad_accum", "num_workers")
# settings a resumed run may change (e.g. more steps), at the price of no longer matching an
# uninterrupted run: the learning-rate schedule is rebuilt from the new values
SCHEDULE_KEYS = ("steps", "warmup_steps", "lr", "min_lr_ratio", "weight_decay")


@dataclass
class LoopResult:
    """What a run did: per-step history (this run's steps), log records and throughput counters."""

    history: list[dict[str, float]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    start_step: int = 0
    wall_seconds: float = 0.0
    audio_seconds: float = 0.0
    tokens: int = 0
    pad_tokens: int = 0
    kinds: Counter = field(default_factory=Counter)
    empty_batches: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    world_size: int = 1
    mfu: float | None = None


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """`auto` → CUDA when available, else CPU; anything else is passed to `torch.device`."""
    if name == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise JstipError(f"device {name!r} is not a torch device; use 'auto', 'cpu' or 'cuda'") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise JstipError(f"device {name!r} was asked for but CUDA is not available; use device='cpu' or 'auto'")
    return torch.device("cuda", local_rank) if device.type == "cuda" and device.index is None else device


def autocast_for(device: torch.device, precision: str = "auto") -> Any:
    """bf16 autocast on CUDA (auto) or when asked; otherwise a disabled autocast."""
    if precision not in ("auto", "bf16", "fp32"):
        raise JstipError(f"precision {precision!r} is unknown; use auto, bf16 or fp32")
    on = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=on)


def lr_factor(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the peak learning rate at `step` (0-based): linear warm-up then cosine decay."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


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


def _identity(batch: Any) -> Any:
    return batch


def _n_labels(batch: dict[str, Any]) -> int:
    return int((batch["labels"][:, 1:] != -100).sum())


def train(model: SpeechLM, data: PlannedBatches, cfg: LoopConfig, out_dir: str | Path | None = None,
          tok: Any = None, log_path: str | Path | None = None, progress: bool = True) -> LoopResult:
    """Train `model` in place up to `cfg.steps` optimizer steps; returns history and counters.

    `out_dir` (with `tok`) receives the training states when `save_every > 0`; `log_path` the JSONL log.
    """
    if cfg.steps < 1 or cfg.grad_accum < 1:
        raise JstipError(f"steps ({cfg.steps}) and grad_accum ({cfg.grad_accum}) must be at least 1")
    if cfg.save_every > 0 and (out_dir is None or tok is None):
        raise JstipError("save_every > 0 needs out_dir and tok to write training states")
    device = pick_device(cfg.device)
    dist = init_distributed(device.type)
    device = pick_device(cfg.device, dist.local_rank)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(cfg.seed + dist.rank)
    model.to(device).train()
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, fused=device.type == "cuda")
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg.warmup_steps, cfg.steps,
                                                                            cfg.min_lr_ratio))
    data_settings = {k: getattr(cfg, k) for k in DATA_KEYS}
    step, cursor = 0, (0, 0)
    state_path = latest_state(out_dir) if cfg.resume == "auto" and out_dir else (Path(cfg.resume) if cfg.resume and cfg.resume != "auto" else None)
    if state_path is not None:
        meta = load_state(state_path, model, optimizer, sched, dist.rank)
        changed = {k: (meta["data"].get(k), v) for k, v in data_settings.items() if meta["data"].get(k) != v}
        if meta["world_size"] != dist.world_size:
            changed["world_size"] = (meta["world_size"], dist.world_size)
        if changed:
            raise JstipError(f"cannot resume from {state_path}: settings changed (saved, now): {changed}; "
                             "use the saved settings or resume=''")
        step, cursor = meta["step"], tuple(meta["cursors"][dist.rank])
        schedule = {k: (meta.get("loop", {}).get(k), getattr(cfg, k)) for k in SCHEDULE_KEYS
                    if meta.get("loop", {}).get(k) != getattr(cfg, k)}
        if schedule and dist.main:
            print(f"train: resuming from {state_path} with a changed schedule (saved, now): {schedule}; "
                  "training continues on the new schedule, so it will not equal an uninterrupted run",
                  file=sys.stderr)
    if cfg.compile:
        model.base_lm().compile(dynamic=True)
    net: torch.nn.Module = model
    if dist.enabled:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                                        find_unused_parameters=True)
    loader = torch.utils.data.DataLoader(data, sampler=CursorSampler(data, cursor), batch_size=None,
                                         collate_fn=_identity, num_workers=cfg.num_workers,
                                         generator=torch.Generator().manual_seed(cfg.seed),
                                         persistent_workers=cfg.num_workers > 0,
                                         pin_memory=device.type == "cuda")
    autocast = autocast_for(device, cfg.precision)
    peak = peak_flops(torch.cuda.get_device_name(device), cfg.peak_tflops) if device.type == "cuda" else None
    main = dist.main
    log_file = None
    if log_path and main:
        kept = []
        if step and Path(log_path).exists():  # keep the records of the steps this run continues
            kept = [line for line in Path(log_path).read_text().splitlines() if line and json.loads(line)["step"] <= step]
        write_text_atomic("".join(line + "\n" for line in kept), log_path)  # never half-rewritten
        log_file = open(log_path, "a")
    result = LoopResult(start_step=step, world_size=dist.world_size)
    win = Counter()
    flops0 = lm_flops_per_token(model.base_lm(), 0)
    flops_per_pos = lm_flops_per_token(model.base_lm(), 1) - flops0
    batches = iter(loader)
    bar = tqdm(total=cfg.steps, initial=step, desc="train", disable=not (progress and main), unit="step")
    started = tick = time.perf_counter()
    paused = 0.0

    def next_batch() -> dict[str, Any]:
        nonlocal cursor
        for _ in range(10 * cfg.steps * cfg.grad_accum + 100):
            batch = next(batches)
            cursor = batch["cursor"]
            result.skipped.update(batch["skipped"])
            if not batch.get("empty"):
                return batch
            result.empty_batches += 1
        raise JstipError(f"no batch could be built: every sample's audio is unreadable or too long; skipped e.g. "
                         f"{dict(list(result.skipped.items())[:3])}")

    try:
        while step < cfg.steps:
            micro = [next_batch() for _ in range(cfg.grad_accum)]
            n_items = sum(_n_labels(b) for b in micro)
            n_asr = sum(len(b["ctc_audio"]) for b in micro if "ctc_audio" in b)
            optimizer.zero_grad(set_to_none=True)
            ce_sum, ctc_sum, ctc_n, total = 0.0, 0.0, 0, 0.0
            for i, batch in enumerate(micro):
                if "ctc_audio" in batch:
                    batch["ctc_share"] = len(batch["ctc_audio"]) / n_asr
                sync = contextlib.nullcontext() if not dist.enabled or i == len(micro) - 1 else net.no_sync()
                with sync:
                    with autocast:
                        out = net(to_device(batch, device), num_items=max(n_items, 1))
                    if not dist.enabled and not torch.isfinite(out.loss):
                        raise JstipError(f"loss became {out.loss.item()} at step {step}; lower lr (now {cfg.lr})")
                    out.loss.backward()
                total += float(out.loss.detach())
                ce_sum += float(out.lm_loss) * out.n_labels
                if out.ctc_loss is not None:
                    ctc_sum, ctc_n = ctc_sum + float(out.ctc_loss), ctc_n + 1
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
            if not torch.isfinite(norm):  # identical on every rank after DDP's all-reduce
                raise JstipError(f"gradient norm became {float(norm)} at step {step}; lower lr (now {cfg.lr})")
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            sched.step()
            step += 1
            entry = {"step": step, "loss": ce_sum / max(n_items, 1), "lr": lr, "total_loss": total,
                     "grad_norm": float(norm)}
            if ctc_n:
                entry["ctc_loss"] = ctc_sum / ctc_n
            result.history.append(entry)
            for b in micro:
                result.kinds.update(b["kinds"])
                win.update(tokens=b["n_tokens"], pad=b["n_pad"], audio=b["audio_seconds"],
                           flops=b["n_tokens"] * (flops0 + flops_per_pos * b["input_ids"].shape[1]))
            win.update(loss=entry["loss"], n=1)
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps:
                now = time.perf_counter()
                tokens, pad, audio, flops, loss_sum, n = dist.sum([win["tokens"], win["pad"], win["audio"],
                                                                   win["flops"], win["loss"], win["n"]])
                dt = max(now - tick - paused, 1e-9)
                record = {**entry, "mean_loss": loss_sum / n, "tokens_per_s": tokens / dt, "audio_s_per_s": audio / dt,
                          "padding_share": pad / max(tokens + pad, 1), "epoch": cursor[0],
                          "mfu": flops / dt / (peak * dist.world_size) if peak else None,
                          "elapsed_s": now - started}
                result.records.append(record)
                result.tokens += int(win["tokens"])
                result.pad_tokens += int(win["pad"])
                result.audio_seconds += win["audio"]
                win, tick, paused = Counter(), now, 0.0
                bar.set_postfix(loss=f"{record['mean_loss']:.3f}", lr=f"{lr:.2e}", tok_s=f"{record['tokens_per_s']:.0f}",
                                pad=f"{record['padding_share']:.1%}")
                if log_file:
                    log_file.write(json.dumps(record) + "\n")
                    log_file.flush()
            if cfg.save_every > 0 and (step % cfg.save_every == 0 or step == cfg.steps):
                t0 = time.perf_counter()
                save_state(out_dir, step, model, tok, optimizer, sched,
                           {"cursors": dist.gather(list(cursor)), "data": data_settings, "loop": asdict(cfg)},
                           dist.rank, dist.world_size, dist.barrier if dist.enabled else None, cfg.keep_states)
                paused += time.perf_counter() - t0
    finally:
        bar.close()
        if log_file:
            log_file.close()
    result.steps = step
    result.wall_seconds = time.perf_counter() - started
    mfus = [r["mfu"] for r in result.records if r["mfu"] is not None]
    result.mfu = sum(mfus) / len(mfus) if mfus else None
    model.eval()
    return result
