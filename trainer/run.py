"""One call from a training config to a trained run: tokenizer, model, data, the two-stage loop,
checkpoint, and the run's metrics and report.

Start-up reads footers and one columnar pass over this rank's row groups (sizes per kind, the
`</s>` check), never the corpus as Python objects; rank 0 builds the tokenizer from a bounded
sample of the samples' text (or takes the pretrained LM's, or reloads the resumed state's) and
saves it, the other ranks load that copy. Then the model, the schedule of `schedule.py` and
`loop.train`. Rank 0 writes `checkpoints/` (final model, `state/step-*` training states,
`train_log.jsonl`; with `export_lm` the LM alone as a Hugging Face model in `checkpoints/lm`) and
the plot CSVs as the run goes. On CPU the OpenMP threads wait passively (`OMP_WAIT_POLICY=PASSIVE`,
set before torch loads) so a busy neighbour process does not stall every step.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from manifests import storage
from manifests.errors import JstipError
from manifests.io import write_text_atomic

from .config import PLOTS, TrainConfig

LOG_FILE = "train_log.jsonl"


def _subset(cfg: TrainConfig, target: type):
    """`target` built from the stage options of the same names (the rest keep its defaults)."""
    names = {f.name for f in dataclasses.fields(cfg)}
    return target(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(target) if f.name in names})


def set_cpu_threads(threads: int = 0) -> int:
    """OpenMP waits passively (only effective before torch loads) and torch uses `threads` (0: our cores / local ranks).

    With the default active wait, OpenMP threads spin for a descheduled sibling and a second busy
    process on the cores made every step several times slower; passive waiting yields the core.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    if threads <= 0:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    torch.set_num_threads(threads)
    return threads


def _tokenizer(cfg: TrainConfig, dist, source) -> object:
    """Rank 0 builds (or, resuming, reloads) the tokenizer and saves it; the other ranks load that copy."""
    from .checkpoint import latest_state, load_tokenizer_from, save_tokenizer
    from .shards import text_sample
    from .tokenizer import build_tokenizer, extend_tokenizer, load_pretrained_tokenizer

    ckpt = cfg.checkpoints
    state = latest_state(ckpt) if cfg.resume == "auto" else (cfg.resume or None)
    if dist.main:
        if state is not None:
            tok = load_tokenizer_from(state)
        elif cfg.lm:  # a pretrained LM keeps its own tokenizer, extended with the formats' tokens
            tok = extend_tokenizer(load_pretrained_tokenizer(cfg.lm))
        else:
            tok = build_tokenizer(text_sample(source, cfg.tokenizer_chars, cfg.seed), cfg.vocab_size)
        save_tokenizer(tok, ckpt)
    dist.barrier()
    return tok if dist.main else load_tokenizer_from(ckpt)


@contextmanager
def _log_file(checkpoints: str, main: bool) -> Iterator[Path]:
    """Where the loop appends `train_log.jsonl`: in the checkpoint directory, or, when that is a URL,
    a local file fetched from it first (a resumed run keeps its records) and put back at the end
    (the loop also puts it with each training state)."""
    if not storage.is_url(checkpoints):
        yield Path(checkpoints) / LOG_FILE
        return
    url = storage.join(checkpoints, LOG_FILE)
    with tempfile.TemporaryDirectory(prefix="jstip-log-") as folder:
        local = Path(folder) / LOG_FILE
        if main and storage.is_file(url):
            storage.download(url, local)
        try:
            yield local
        finally:
            if main and local.exists():
                storage.upload(local, url)


def write_plots(records: list[dict], directory: str | Path) -> None:
    """The DVC plot CSVs (step + columns) from the log records."""
    fmt = lambda v: "" if v is None else (f"{v:.8g}" if isinstance(v, float) else str(v))  # noqa: E731
    for name, columns in PLOTS.values():
        rows = ["step," + ",".join(columns)] + [
            f"{r['step']}," + ",".join(fmt(r.get("mean_loss") if c == "loss" else r.get(c)) for c in columns)
            for r in records]
        write_text_atomic("\n".join(rows) + "\n", storage.join(str(directory), name))


def _examples(skipped: dict[str, str], per_category: int = 5) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for sample_id, reason in skipped.items():
        category, _, detail = reason.partition(":")
        if len(out.setdefault(category, [])) < per_category:
            out[category].append(f"{sample_id}:{detail}")
    return out


def memory_plans(cfg: TrainConfig, world_size: int = 0) -> list:
    """The memory plans of this configuration for ddp and fsdp over `world_size` processes (see memory_plan.py)."""
    import torch

    from .memory_plan import GiB, count_model, plan_memory

    world = world_size or cfg.plan_world_size or int(os.environ.get("WORLD_SIZE", "1"))
    cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    device = cfg.device_memory_gb * GiB or (torch.cuda.get_device_properties(0).total_memory if cuda else None)
    counts = count_model(cfg)
    return [plan_memory(counts, cfg, mode, world, cuda, device) for mode in ("ddp", "fsdp")]


def plan_text(cfg: TrainConfig) -> str:
    """`jstip train --plan`: the plan table and the verdict."""
    from .memory_plan import advice, format_plan

    ddp, fsdp = memory_plans(cfg)
    lines = [f"memory plan: {ddp.world_size} process(es), context {cfg.context}, batch_size {cfg.batch_size}, "
             f"gradient_checkpointing {cfg.gradient_checkpointing}", format_plan([ddp, fsdp])]
    if ddp.fits is not None:
        pick = "ddp" if ddp.fits else "fsdp" if fsdp.fits else None
        lines.append(f"parallel auto → {pick}" if pick else f"neither fits; change: {advice(fsdp)}")
    return "\n".join(lines)


def _check_plan(cfg: TrainConfig, world: int) -> bool | None:
    """Refuse a run whose plan does not fit the device; returns whether a ddp replica fits (None: unknown)."""
    from .memory_plan import GiB, advice

    ddp, fsdp = memory_plans(cfg, world)
    if ddp.fits is None:
        return None
    mode = cfg.parallel if cfg.parallel != "auto" else ("ddp" if ddp.fits or world == 1 else "fsdp")
    chosen, other = (ddp, fsdp) if mode == "ddp" or world == 1 else (fsdp, ddp)
    if not chosen.fits:
        raise JstipError(f"the run needs about {chosen.total / GiB:.1f} GiB per device ({mode}, {world} process(es)) "
                         f"but the device has {chosen.device_bytes / GiB:.1f} GiB; change: "
                         f"{advice(chosen, other if world > 1 else None)} (jstip train --plan shows the table)")
    return ddp.fits


def train_run(cfg: TrainConfig) -> tuple[dict, dict] | None:
    """Train and write checkpoint, log and plots; (metrics, report) on rank 0, None on other ranks.

    Ctrl-C saves a training state and exits 130."""
    started = time.perf_counter()
    threads = set_cpu_threads(cfg.threads)
    from .batching import Batching, data_from_source
    from .checkpoint import consolidated, export_lm, init_parts, save_checkpoint
    from .dist import init_distributed
    from .loop import LoopConfig, pick_device, train
    from .model import SpeechLM, SpeechLMConfig, count_parameters
    from .parallel import choose_parallel
    from .shards import ShardSource
    from .sharded_load import build_sharded_model

    import torch

    dist = init_distributed(pick_device(cfg.device).type)
    # the plan needs the device's memory: on CPU only when device_memory_gb is given
    ddp_fits = _check_plan(cfg, dist.world_size) if cfg.device_memory_gb or \
        pick_device(cfg.device).type == "cuda" else None
    ckpt = cfg.checkpoints
    if not storage.is_url(ckpt):
        Path(ckpt).mkdir(parents=True, exist_ok=True)
    source = ShardSource(cfg.samples, dist.rank, dist.world_size)
    tok = _tokenizer(cfg, dist, source)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device, dist.local_rank)
    if choose_parallel(cfg.parallel, dist.world_size, ddp_fits).mode == "fsdp":
        # the LM on the meta device, sharded, each rank reading its rows of the weights (sharded_load.py)
        model, loaded = build_sharded_model(
            _subset(cfg, SpeechLMConfig), tok, device, seed=cfg.seed, init_from=cfg.init_from,
            init_parts=cfg.init_parts, bf16=device.type == "cuda" and cfg.precision != "fp32",
            reshard_after_forward=cfg.reshard_after_forward, cpu_offload=cfg.cpu_offload, log=dist.main)
        initialised = {**loaded.pop("init", {}), "sharded_load": {k: v for k, v in loaded.items() if k != "fresh"}
                       | {"fresh": len(loaded["fresh"])}}
    else:
        model = SpeechLM(_subset(cfg, SpeechLMConfig), tok)
        initialised = init_parts(model, cfg.init_from, cfg.init_parts) if cfg.init_from else {}
    batching = _subset(cfg, Batching)
    data = data_from_source(source, tok, model.spec, batching, cfg.span_encoding, max(1, cfg.num_workers),
                            ctc_units=cfg.ctc_units)
    startup = time.perf_counter() - started
    try:
        loop_cfg = dataclasses.replace(_subset(cfg, LoopConfig), ddp_fits=ddp_fits)
        with _log_file(ckpt, dist.main) as log_path:
            result = train(model, data, loop_cfg, out_dir=ckpt, tok=tok, log_path=log_path,
                           progress=cfg.progress, on_record=lambda records: write_plots(records, cfg.plots))
    except KeyboardInterrupt:
        print("jstip train: stopped at once by a second Ctrl-C; no training state was saved", file=sys.stderr)
        raise SystemExit(130) from None
    if result.interrupted:
        if dist.main:
            print(f"jstip train: interrupted at step {result.steps}; training state saved to {result.state}; "
                  "continue with --resume auto", file=sys.stderr)
        raise SystemExit(130)
    skipped_all = dist.gather(result.skipped)
    kinds_all = dist.gather(dict(data.stats.rows_by_kind))
    if result.parallel == "fsdp":  # every rank sends its shards; rank 0 writes one consolidated checkpoint
        model = consolidated(model, tok, dist.rank)
    if not dist.main:
        return None
    save_checkpoint(model.cpu(), tok, ckpt)
    if cfg.export_lm:
        export_lm(model, tok, storage.join(ckpt, "lm"))
    write_plots(result.records, cfg.plots)
    losses = result.losses
    n = max(1, min(cfg.loss_window, len(losses) // 2 or 1))
    wall = result.wall_seconds
    merged = {k: v for d in skipped_all for k, v in d.items()}
    skipped = Counter(reason.split(":")[0] for reason in merged.values())
    ran = result.steps - result.start_step
    by_kind = sum((Counter(k) for k in kinds_all), Counter())
    plans = {p.name: p for p in result.plans}
    metrics = {
        "steps": result.steps,
        "stage1_steps": plans["stage1"].steps if "stage1" in plans else 0,
        "loss_first": sum(losses[:n]) / n if losses else None,
        "loss_last": sum(losses[-n:]) / n if losses else None,
        "tokens": result.tokens * dist.world_size,
        "tokens_per_second": result.tokens * dist.world_size / wall if wall else None,
        "steps_per_second": ran / wall if wall else None,
        "audio_seconds_per_second": result.audio_seconds * dist.world_size / wall if wall else None,
        "padding_share": result.pad_tokens / (result.tokens + result.pad_tokens) if result.tokens else None,
        "mfu": result.mfu, "mfu_model": result.mfu_model,
        "tokens_per_second_per_device": result.tokens / wall if wall else None,
        "first_step_seconds": round(result.first_step_at - started, 3) if result.first_step_at else None,
        "epochs": round(plans["stage2"].epochs, 4),
        "samples": sum(by_kind.values()),
        "skipped": sum(skipped.values()),
    }
    report = {
        "skipped_by_reason": dict(skipped), "skipped_examples": _examples(merged),
        "samples_by_kind": dict(by_kind), "samples_seen_by_kind": dict(result.kinds),
        "stages": [{"name": p.name, "steps": p.steps, "lr": p.lr, "warmup_steps": p.warmup, "parts": sorted(p.parts),
                    "kinds": list(p.data.kinds) if p.data.kinds else "all", "data_share": round(p.epochs, 6)}
                   for p in result.plans],
        "estimated_tokens_by_kind": {k: round(v) for k, v in data.stats.tokens_by_kind.items()},
        "resumed_from_step": result.start_step, "loss_window": n, "empty_batches": result.empty_batches,
        "startup_seconds": round(startup, 3), "train_seconds": round(wall, 3),
        "stage_seconds": round(time.perf_counter() - started, 3),
        "n_parameters": count_parameters(model), "n_trainable_parameters": count_parameters(model, trainable=True),
        "vocab_size": len(tok), "frame_ms": model.spec.frame_duration * 1000, "world_size": dist.world_size,
        "device": str(pick_device(cfg.device)), "threads": threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""), "batching": cfg.batching,
        "span_encoding": cfg.span_encoding, "context": cfg.context, "parallel": result.parallel, **initialised,
        **({"spike_pooling": dict(model.pooler.stats)} if getattr(model, "pooler", None) is not None else {}),
    }
    return metrics, report
