"""The training loop: the two stages of `schedule.py`, AdamW, accumulation, clipping, bf16, DDP/FSDP, exact resume.

One optimizer step = `grad_accum` micro-batches whose text cross-entropies are summed and divided
by their total label count (so accumulating equals one big batch). CUDA runs under bf16
autocast; CPU in fp32 (the tested path). Under `torchrun` the model is wrapped in DDP (again at
the stage switch, when the trained parts change) or sharded once with FSDP2 (`parallel.py`), and
only rank 0 writes. The loss is normalised by the label count of the global batch (all ranks), so
N ranks train exactly as one process accumulating their N micro-batches. Every `save_every`
steps, at the end, and on Ctrl-C, the full training state is saved (`checkpoint.save_state`);
`resume` continues from one, in either stage or across the boundary, and reproduces the
uninterrupted run's losses exactly on CPU: weights, the stage's AdamW moments and scheduler,
every RNG and each stream's data cursor are restored, and the loader never draws from the global
RNG. A first Ctrl-C (SIGINT) finishes the current step on every rank, saves a state and returns
with `interrupted`; a second one stops at once. Log records (every `log_every` steps) carry
stage, loss, lr, tokens/s, audio seconds/s, padding share and MFU (on GPU); `on_record` sees
them as they come (the stage writes its plots from it).
"""
from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from manifests import storage
from manifests.errors import JstipError
from manifests.io import write_text_atomic

from .batching import TrainData
from .checkpoint import latest_state, load_optimizer, load_state, save_state
from .data import to_device
from .dist import init_distributed
from .model import SpeechLM
from .parallel import choose_parallel, full_value, is_sharded, shard_model
from .schedule import StagePlan, lr_factor, make_optimizer, plan_stages, size_warning
from .throughput import lm_flops_per_token, peak_flops, speech_flops_per_frame

__all__ = ["LoopConfig", "LoopResult", "autocast_for", "lr_factor", "make_optimizer", "pick_device", "train"]


@dataclass
class LoopConfig:
    """Optimisation settings of one run (the paper's schedule by default; see `schedule.py`)."""

    steps: int = 1200
    epochs: float = 0.0
    grad_accum: int = 1
    lr: float = 4e-5
    stage1_share: float = 0.1
    stage1_lr: float = 1e-4
    stage1_kinds: str = "asr,tts_pair"
    stage1_train: str = "projector"
    lr_schedule: str = "linear"
    min_lr_ratio: float = 0.0
    warmup_steps: int = 60
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 10
    device: str = "auto"
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU), bf16 or fp32
    compile: bool = False
    num_workers: int = 0
    save_every: int = 0  # 0: training states only at the end and on Ctrl-C
    keep_states: int = 2
    resume: str = ""  # "" start fresh, "auto" newest state if any, or a state/step-* directory
    peak_tflops: float = 0.0
    parallel: str = "auto"  # auto | ddp | fsdp (parallel.py); with one process neither
    reshard_after_forward: bool = True  # fsdp: free each unit's gathered weights after its forward
    cpu_offload: bool = False  # fsdp on CUDA: shards and AdamW state in host memory
    ddp_fits: bool | None = None  # the memory plan's verdict for a replica per device (auto picks fsdp if False)


# settings a resumed run must share with the run it continues (they decide the data order);
# the batching fields (seed, batch size, context, ...) are checked with them
DATA_KEYS = ("grad_accum", "num_workers", "stage1_kinds")
# settings a resumed run may change (e.g. more steps), at the price of no longer matching an
# uninterrupted run: the learning-rate schedule is rebuilt from the new values
SCHEDULE_KEYS = ("steps", "epochs", "warmup_steps", "lr", "stage1_lr", "stage1_share", "lr_schedule", "min_lr_ratio",
                 "weight_decay")


@dataclass
class LoopResult:
    """What a run did. `history`: this process's steps; `losses`, `records`, `skipped`: the whole run
    (restored from the state on resume)."""

    history: list[dict[str, float]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    plans: list[StagePlan] = field(default_factory=list)
    steps: int = 0
    start_step: int = 0
    wall_seconds: float = 0.0
    first_step_at: float | None = None  # time.perf_counter() when the first step of this process ended
    audio_seconds: float = 0.0
    tokens: int = 0
    pad_tokens: int = 0
    kinds: Counter = field(default_factory=Counter)
    empty_batches: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    world_size: int = 1
    mfu: float | None = None
    mfu_model: float | None = None
    parallel: str = "none"
    interrupted: bool = False
    state: Path | str | None = None


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


def _n_labels(batch: dict[str, Any]) -> int:
    return int((batch["labels"][:, 1:] != -100).sum())


class _Interrupt:
    """SIGINT as a request: the first sets `requested` (the loop stops after the step), the second raises."""

    def __init__(self, main: bool) -> None:
        self.requested, self.main, self.old = False, main, None

    def __enter__(self) -> "_Interrupt":
        if threading.current_thread() is threading.main_thread():
            self.old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.main:
            print("\ntrain: interrupted; finishing this step and saving a training state (Ctrl-C again to stop "
                  "at once, without a state)", file=sys.stderr, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)


def _resume_path(cfg: LoopConfig, out_dir: str | Path | None) -> Path | str | None:
    if cfg.resume == "auto":
        return latest_state(out_dir) if out_dir else None
    return cfg.resume if storage.is_url(cfg.resume) else Path(cfg.resume) if cfg.resume else None


def train(model: SpeechLM, data: TrainData, cfg: LoopConfig, out_dir: str | Path | None = None,
          tok: Any = None, log_path: str | Path | None = None, progress: bool = True,
          on_record: Callable[[list[dict[str, Any]]], None] | None = None) -> LoopResult:
    """Train `model` in place through the stages of `schedule.plan_stages`; returns history and counters.

    `out_dir` (with `tok`) receives the training states (every `save_every` steps, at the end and
    on Ctrl-C); `log_path` the JSONL log.
    """
    if cfg.grad_accum < 1:
        raise JstipError(f"grad_accum must be at least 1, got {cfg.grad_accum}")
    device = pick_device(cfg.device)
    dist = init_distributed(device.type)
    device = pick_device(cfg.device, dist.local_rank)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(cfg.seed + dist.rank)
    parallel = choose_parallel(cfg.parallel, dist.world_size, cfg.ddp_fits)
    if not is_sharded(model):  # a model sharded already (sharded_load.py) lives where its shards do
        model.to(device)
    model.train()
    if parallel.mode == "fsdp" and not is_sharded(model):
        shard_model(model, device, bf16=device.type == "cuda" and cfg.precision != "fp32",
                    reshard_after_forward=cfg.reshard_after_forward, cpu_offload=cfg.cpu_offload)
    plans = plan_stages(cfg, data, dist.world_size, lambda stage: dist.sum([data.tokens(stage)])[0])
    settings = {**{k: getattr(cfg, k) for k in DATA_KEYS}, **asdict(data.batching)}
    state_path = _resume_path(cfg, out_dir)
    first, stage_step, cursors, next_stream, meta = 0, 0, None, 0, None
    result = LoopResult(world_size=dist.world_size, plans=plans, parallel=parallel.mode)
    if state_path is not None:
        meta = load_state(state_path, model, dist.rank)
        changed = {k: (meta["data"].get(k), v) for k, v in settings.items() if meta["data"].get(k) != v}
        if meta["world_size"] != dist.world_size:
            changed["world_size"] = (meta["world_size"], dist.world_size)
        if changed:
            raise JstipError(f"cannot resume from {state_path}: settings changed (saved, now): {changed}; "
                             "use the saved settings or resume=''")
        names = [p.name for p in plans]
        if meta["stage"] not in names:
            raise JstipError(f"cannot resume from {state_path}: it was saved in {meta['stage']}, which this "
                             f"schedule no longer has (stages now: {names}); use the saved stage1_share")
        first = names.index(meta["stage"])
        for p in plans[:first]:  # finished stages keep the length they had
            p.steps = meta["plans"][p.name]
        stage_step = meta["stage_step"]
        cursors, next_stream = meta["cursors"][dist.rank]
        result.losses, result.skipped = list(meta["losses"]), dict(meta["skipped"])
        schedule = {k: (meta["loop"].get(k), getattr(cfg, k)) for k in SCHEDULE_KEYS if meta["loop"].get(k) != getattr(cfg, k)}
        if meta["plans"].get(meta["stage"]) != plans[first].steps:
            schedule[f"{meta['stage']}_steps"] = (meta["plans"].get(meta["stage"]), plans[first].steps)
        if schedule and dist.main:
            print(f"train: resuming from {state_path} with a changed schedule (saved, now): {schedule}; "
                  "training continues on the new schedule, so it will not equal an uninterrupted run", file=sys.stderr)
    step = sum(p.steps for p in plans[:first]) + stage_step
    total_steps = sum(p.steps for p in plans)
    result.start_step = step
    if dist.main:
        if dist.enabled:
            print(f"train: parallel {parallel.mode} over {dist.world_size} processes ({parallel.reason})", file=sys.stderr)
        for p in plans:
            print(f"train: {p.name}: {p.steps} steps, lr {p.lr:g} ({cfg.lr_schedule} decay), trains "
                  f"{', '.join(sorted(p.parts - model.always_frozen))} on "
                  f"{', '.join(p.data.kinds) if p.data.kinds else 'all samples'}", file=sys.stderr)
        warning = size_warning(plans[-1])
        if warning:
            print(warning, file=sys.stderr)
    if cfg.compile:
        model.base_lm().get_decoder().compile(dynamic=True)
    main = dist.main
    log_file = None
    if log_path and main:
        kept = []
        if step and Path(log_path).exists():  # keep the records of the steps this run continues
            kept = [line for line in Path(log_path).read_text().splitlines() if line and json.loads(line)["step"] <= step]
        result.records = [json.loads(line) for line in kept]
        write_text_atomic("".join(line + "\n" for line in kept), log_path)  # never half-rewritten
        log_file = open(log_path, "a")
    kept_records = len(result.records)
    peak = peak_flops(torch.cuda.get_device_name(device), cfg.peak_tflops) if device.type == "cuda" else None
    bar = tqdm(total=total_steps, initial=step, desc="train", disable=not (progress and main), unit="step")
    started = tick = time.perf_counter()
    paused = 0.0
    win: Counter = Counter()

    def save(plan: StagePlan, optimizer: Any, sched: Any) -> Path | str:
        cur = dist.gather([[list(c) for c in cursors], next_stream])
        saved = save_state(out_dir, step, model, tok, optimizer, sched,
                           {"stage": plan.name, "stage_step": stage_step, "plans": {p.name: p.steps for p in plans},
                            "cursors": cur, "data": settings, "loop": asdict(cfg), "losses": result.losses,
                            "skipped": result.skipped},
                           dist.rank, dist.world_size, dist.barrier if dist.enabled else None, cfg.keep_states)
        if log_file and storage.is_url(out_dir):  # the log goes with each state to the store
            log_file.flush()
            storage.upload(log_path, storage.join(str(out_dir), Path(log_path).name))
        return saved

    try:
        with _Interrupt(main) as interrupt:
            for si in range(first, len(plans)):
                plan = plans[si]
                if stage_step >= plan.steps:  # saved at the end of this stage: go on with the next
                    stage_step, cursors, next_stream = 0, None, 0
                    continue
                model.set_trainable(plan.parts)
                optimizer = make_optimizer(model, plan.lr, cfg.weight_decay, fused=device.type == "cuda")
                sched = torch.optim.lr_scheduler.LambdaLR(
                    optimizer, lambda s, p=plan: lr_factor(s, p.warmup, p.steps, cfg.min_lr_ratio, cfg.lr_schedule))
                if meta is not None and si == first:
                    load_optimizer(state_path, model, optimizer, sched, meta)
                net: torch.nn.Module = model
                if parallel.mode == "ddp":
                    net = torch.nn.parallel.DistributedDataParallel(
                        model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)
                cursors = [tuple(c) for c in cursors] if cursors else [(0, 0, 0)] * data.streams
                batches = data.loader(plan.data, cursors, next_stream, cfg.num_workers, device.type == "cuda")
                flops0 = lm_flops_per_token(model.base_lm(), 0)
                flops_per_pos = lm_flops_per_token(model.base_lm(), 1) - flops0
                speech_flops = speech_flops_per_frame(model)  # per encoder frame (feature rows / subsample)
                autocast = autocast_for(device, cfg.precision)

                def next_batch() -> dict[str, Any]:
                    nonlocal next_stream
                    for _ in range(10 * plan.steps * cfg.grad_accum + 100):
                        batch = next(batches)
                        cursors[batch["stream"]] = tuple(batch["cursor"])
                        next_stream = (batch["stream"] + 1) % data.streams
                        result.skipped.update(batch["skipped"])
                        if not batch.get("empty"):
                            return batch
                        result.empty_batches += 1
                    raise JstipError(f"no batch could be built: every sample's audio is unreadable or too long; "
                                     f"skipped e.g. {dict(list(result.skipped.items())[:3])}")

                while stage_step < plan.steps:
                    micro = [next_batch() for _ in range(cfg.grad_accum)]
                    # the step's labels and ASR rows over all ranks: the gradient is that of the global batch
                    n_items, n_asr = dist.sum([sum(_n_labels(b) for b in micro),
                                               sum(len(b["ctc_audio"]) for b in micro if "ctc_audio" in b)])
                    n_items, n_asr = int(n_items), int(n_asr)
                    optimizer.zero_grad(set_to_none=True)
                    ce_sum, ctc_sum, ctc_n, total = 0.0, 0.0, 0, 0.0
                    for i, batch in enumerate(micro):
                        if "ctc_audio" in batch:  # x world size: DDP and FSDP average the ranks' gradients
                            batch["ctc_share"] = len(batch["ctc_audio"]) / n_asr * dist.world_size
                        last_micro = i == len(micro) - 1
                        sync = net.no_sync() if parallel.mode == "ddp" and not last_micro else contextlib.nullcontext()
                        if parallel.mode == "fsdp":
                            model.set_requires_gradient_sync(last_micro)
                        with sync:
                            with autocast:
                                out = net(to_device(batch, device), num_items=max(n_items, 1) / dist.world_size)
                            if not dist.enabled and not torch.isfinite(out.loss):
                                raise JstipError(f"loss became {out.loss.item()} at step {step}; lower lr (now {plan.lr})")
                            out.loss.backward()
                        total += float(out.loss.detach())
                        ce_sum += float(out.lm_loss) * out.n_labels
                        if out.ctc_loss is not None:
                            ctc_sum, ctc_n = ctc_sum + float(out.ctc_loss), ctc_n + 1
                    params = [p for p in model.parameters() if p.requires_grad]
                    for p in params:  # e.g. the CTC head in a step without ASR: a zero gradient, as FSDP reduces it
                        if p.grad is None:
                            p.grad = torch.zeros_like(p)
                    norm = full_value(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0
                                                                     else math.inf))
                    if not torch.isfinite(norm):  # identical on every rank after the gradients' reduction
                        raise JstipError(f"gradient norm became {float(norm)} at step {step}; lower lr (now {plan.lr})")
                    lr = optimizer.param_groups[0]["lr"]
                    optimizer.step()
                    sched.step()
                    step, stage_step = step + 1, stage_step + 1
                    if result.first_step_at is None:
                        result.first_step_at = time.perf_counter()
                    rank_loss = ce_sum / max(sum(_n_labels(b) for b in micro), 1)
                    if dist.enabled:  # the global batch's losses (each rank's `total` was scaled by the world size)
                        ce_sum, total = dist.sum([ce_sum, total / dist.world_size])
                    entry = {"step": step, "stage": plan.name, "loss": ce_sum / max(n_items, 1), "lr": lr,
                             "total_loss": total, "grad_norm": float(norm)}
                    if dist.enabled:
                        entry["rank_loss"] = rank_loss
                    if ctc_n:
                        entry["ctc_loss"] = ctc_sum / ctc_n
                    result.history.append(entry)
                    result.losses.append(entry["loss"])
                    for b in micro:
                        result.kinds.update(b["kinds"])
                        win.update(tokens=b["n_tokens"], pad=b["n_pad"], audio=b["audio_seconds"],
                                   flops=b["n_tokens"] * flops0 + flops_per_pos * b["attn_positions"],
                                   speech_flops=speech_flops * b["n_mel"] / model.spec.subsample)
                    win.update(loss=entry["loss"], n=1)
                    bar.update(1)
                    last = step == total_steps
                    if step % cfg.log_every == 0 or last or stage_step == plan.steps:
                        now = time.perf_counter()
                        tokens, pad, audio, flops, speech = dist.sum([win["tokens"], win["pad"], win["audio"], win["flops"],
                                                                      win["speech_flops"]])
                        loss_sum, n = win["loss"], win["n"]  # the step losses are the global batch's already
                        dt = max(now - tick - paused, 1e-9)
                        record = {**entry, "mean_loss": loss_sum / n, "tokens_per_s": tokens / dt,
                                  "audio_s_per_s": audio / dt, "padding_share": pad / max(tokens + pad, 1),
                                  "epoch": micro[-1]["epoch"], "mfu": flops / dt / (peak * dist.world_size) if peak else None,
                                  "mfu_model": (flops + speech) / dt / (peak * dist.world_size) if peak else None,
                                  "tokens_per_s_per_device": tokens / dt / dist.world_size,
                                  "elapsed_s": now - started}
                        result.records.append(record)
                        result.tokens += int(win["tokens"])
                        result.pad_tokens += int(win["pad"])
                        result.audio_seconds += win["audio"]
                        win, tick, paused = Counter(), now, 0.0
                        bar.set_postfix(stage=plan.name[-1], loss=f"{record['mean_loss']:.3f}", lr=f"{lr:.2e}",
                                        tok_s=f"{record['tokens_per_s']:.0f}", pad=f"{record['padding_share']:.1%}")
                        if log_file:
                            log_file.write(json.dumps(record) + "\n")
                            log_file.flush()
                        if on_record and main:
                            on_record(result.records)
                    stop = bool(dist.sum([float(interrupt.requested)])[0]) if dist.enabled else interrupt.requested
                    if out_dir is not None and tok is not None and (
                            stop or last or (cfg.save_every > 0 and step % cfg.save_every == 0)):
                        t0 = time.perf_counter()
                        result.state = save(plan, optimizer, sched)
                        paused += time.perf_counter() - t0
                    if stop:
                        result.interrupted = True
                        break
                del batches
                if result.interrupted:
                    break
                stage_step, cursors, next_stream = 0, None, 0
    finally:
        bar.close()
        if log_file:
            log_file.close()
    result.steps = step
    result.wall_seconds = time.perf_counter() - started
    mfus = [r["mfu"] for r in result.records[kept_records:] if r.get("mfu") is not None]
    result.mfu = sum(mfus) / len(mfus) if mfus else None
    mfus = [r["mfu_model"] for r in result.records[kept_records:] if r.get("mfu_model") is not None]
    result.mfu_model = sum(mfus) / len(mfus) if mfus else None
    model.eval()
    return result
