"""`jstip train`: sample shards → tokenizer + trained speech-LLM checkpoint, log, plots, metrics, report.

Thin wrapper. Start-up reads footers and one columnar pass over this rank's row groups (sizes
per kind, the `</s>` check), never the corpus as Python objects; rank 0 builds the tokenizer from
a bounded sample of the samples' text (or takes the pretrained LM's, or reloads the resumed
state's) and saves it, the other ranks load that copy. Then the model, the two-stage schedule
of `trainer/schedule.py`, and `trainer.loop.train`. Rank 0 writes `checkpoints/` (final model,
`state/step-*` training states, `train_log.jsonl`; with `export_lm` the LM alone as a Hugging
Face model in `checkpoints/lm`), the plot CSVs as the run goes, `metrics/train.json` (a handful
of numbers) and `reports/train.json` (the rest). Ctrl-C saves a training state and exits 130.
On CPU the OpenMP threads wait passively (`OMP_WAIT_POLICY=PASSIVE`, set before torch loads) so
a busy neighbour process does not stall every step. Runs under `torchrun` for DDP.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from manifests.io import write_stage_metrics, write_text_atomic

# each plot file: (file name, columns after `step`)
PLOTS = {"loss": ("train_loss.csv", ("loss",)), "lr": ("train_lr.csv", ("lr",)),
         "padding": ("train_padding.csv", ("padding_share",)),
         "throughput": ("train_throughput.csv", ("tokens_per_s", "audio_s_per_s", "mfu"))}


@dataclass
class TrainConfig:
    samples: str = field(default="data/samples", metadata={"help": "directory of Sample shards (part-*.parquet)"})
    checkpoints: str = field(default="checkpoints", metadata={"help": "output directory: weights, configs, tokenizer, "
                                                                      "log, state/step-* training states"})
    plots: str = field(default="plots", metadata={"help": "directory of the plot CSVs, written as the run goes: "
                                                          + ", ".join(f for f, _ in PLOTS.values())})
    metrics: str = field(default="metrics/train.json", metadata={"help": "the run's numeric metrics (dvc metrics)"})
    report: str = field(default="reports/train.json", metadata={"help": "the run's report: skipped samples by reason "
                                                                        "with examples, stages, sizes, settings"})
    vocab_size: int = field(default=1000, metadata={"help": "BPE vocabulary size, special tokens included"})
    tokenizer_chars: int = field(default=2_000_000, metadata={"help": "characters of sample text (from row groups "
                                                                      "spread over the corpus) the tokenizer is trained on"})
    encoder: str = field(default="conv", metadata={"help": "speech encoder: conv (from scratch) or whisper"})
    encoder_path: str = field(default="", metadata={"help": "whisper: local model directory or name"})
    lm: str = field(default="", metadata={"help": "pretrained causal LM (path or name; its tokenizer is used), e.g. "
                                                  "checkpoints/lm of a text-only run; empty builds LM and tokenizer"})
    init_from: str = field(default="", metadata={"help": "a checkpoint directory of an earlier jstip train run whose "
                                                         "weights start this run's init_parts (e.g. a speech encoder "
                                                         "pretrained once and shared by every run); '' for none"})
    init_parts: str = field(default="encoder,projector", metadata={"help": "parts init_from starts: any of encoder, "
                                                                           "projector (with its CTC head), lm"})
    lm_config: str = field(default="", metadata={"help": "config.json or model directory: build that LM with fresh "
                                                         "weights (corpus tokenizer)"})
    lm_type: str = field(default="llama", metadata={"help": "config family when building from sizes: llama or qwen2"})
    lm_hidden: int = field(default=192, metadata={"help": "LM hidden size"})
    lm_layers: int = field(default=3, metadata={"help": "LM decoder layers"})
    lm_heads: int = field(default=4, metadata={"help": "LM attention heads"})
    lm_intermediate: int = field(default=512, metadata={"help": "LM MLP width"})
    attn_implementation: str = field(default="auto", metadata={"help": "LM attention: auto (flash_attention_2 when "
                                                                       "flash-attn and CUDA are there, else sdpa), sdpa, eager"})
    enc_dim: int = field(default=144, metadata={"help": "conv speech encoder width"})
    enc_layers: int = field(default=2, metadata={"help": "conv speech encoder transformer layers"})
    enc_heads: int = field(default=4, metadata={"help": "conv speech encoder attention heads"})
    stack: int = field(default=2, metadata={"help": "encoder frames (20 ms) stacked per LM position: 2 → 40 ms, "
                                                    "4 → 80 ms (the paper's 12.5 Hz)"})
    proj_hidden: int = field(default=384, metadata={"help": "projector (adapter) MLP hidden size"})
    span_encoding: str = field(default="concat", metadata={"help": "concat: a sample's speech spans concatenated and "
                                                                   "encoded once (the paper); slice: the whole utterance "
                                                                   "encoded, spans sliced (their frames hear the text words too)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout in the speech encoder"})
    lm_dropout: float = field(default=0.0, metadata={"help": "attention dropout of an LM built from sizes (pretrained "
                                                             "LMs keep theirs; Llama/Qwen2 use 0); on CPU it makes "
                                                             "attention memory quadratic in the row length"})
    ctc_weight: float = field(default=1.0, metadata={"help": "weight of an auxiliary CTC loss of the speech frames on "
                                                           "asr-format transcripts (0 disables); makes small models listen"})
    ctc_units: str = field(default="tokens", metadata={"help": "CTC targets: tokens (the transcript's tokens) or chars "
                                                              "(its letters and word boundaries: generalises across "
                                                              "words when there is little speech)"})
    lora_r: int = field(default=0, metadata={"help": "LoRA rank on the LM (peft); 0 trains the LM fully"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_targets: str = field(default="all-linear", metadata={"help": "LoRA target modules (all-linear or names)"})
    freeze: str = field(default="auto", metadata={"help": "parts never trained: encoder,projector,lm; auto = a whisper encoder"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute LM activations in backward"})
    batching: str = field(default="packed", metadata={"help": "packed: samples packed into rows of context tokens, "
                                                              "attention reset per sample (the paper); padded: one per row"})
    context: int = field(default=1024, metadata={"help": "tokens per packed row (the paper: 8192); longer samples are "
                                                         "skipped and counted (both batchings)"})
    batch_size: int = field(default=2, metadata={"help": "packed: rows per micro-batch; padded: samples per micro-batch"})
    batch_tokens: int = field(default=0, metadata={"help": "padded: padded tokens per micro-batch (rows × longest) "
                                                           "instead of batch_size"})
    pool: int = field(default=32, metadata={"help": "batches' worth of samples planned together (sorted or packed)"})
    length_jitter: float = field(default=0.1, metadata={"help": "padded: sort by length x (1 ± this) per epoch so "
                                                                "batches vary (0: exact sort, least padding)"})
    steps: int = field(default=500, metadata={"help": "optimizer steps of stage 2 (ignored when epochs > 0)"})
    epochs: float = field(default=0.0, metadata={"help": "> 0: stage 2 runs this many passes over the samples "
                                                         "(steps derived from the estimated tokens)"})
    stage1_share: float = field(default=0.1, metadata={"help": "stage 1 (adapter only, ASR data) runs for this share "
                                                               "of the ASR tokens (the paper: 0.1); 0 skips it"})
    stage1_lr: float = field(default=1e-3, metadata={"help": "stage 1 peak learning rate (the paper: 1e-4)"})
    stage1_kinds: str = field(default="asr,tts_pair", metadata={"help": "sample kinds stage 1 trains on"})
    stage1_train: str = field(default="projector", metadata={"help": "parts stage 1 trains (the adapter; with "
                                                                     "ctc_weight > 0 also the CTC head)"})
    lr: float = field(default=2e-3, metadata={"help": "stage 2 peak learning rate (the paper: 4e-5 for a pretrained "
                                                      "7B LM; a small LM from scratch needs far more)"})
    lr_schedule: str = field(default="linear", metadata={"help": "decay after warm-up in each stage: linear (the "
                                                                 "paper) or cosine"})
    min_lr_ratio: float = field(default=0.0, metadata={"help": "final learning rate as a share of the peak"})
    warmup_steps: int = field(default=60, metadata={"help": "linear warm-up steps of each stage (at most half of it)"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (not on norms/embeddings)"})
    grad_clip: float = field(default=1.0, metadata={"help": "max gradient norm; 0 disables clipping"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    seed: int = field(default=0, metadata={"help": "random seed (init, batching, dropout)"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA if present, else CPU), cpu or cuda"})
    precision: str = field(default="auto", metadata={"help": "auto (bf16 autocast on CUDA, fp32 on CPU), bf16 or fp32"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the LM"})
    num_workers: int = field(default=0, metadata={"help": "data loader worker processes, one stream of row groups each "
                                                          "(0: load in the main process)"})
    threads: int = field(default=0, metadata={"help": "CPU threads of torch per process; 0: the cores this process may "
                                                      "use divided by the processes on the node"})
    save_every: int = field(default=0, metadata={"help": "steps between training states (0: only at the end and on Ctrl-C)"})
    keep_states: int = field(default=2, metadata={"help": "training states kept (newest)"})
    resume: str = field(default="", metadata={"help": "'' fresh, auto (newest state in checkpoints/state), or a state dir"})
    export_lm: bool = field(default=False, metadata={"help": "also write the LM and tokenizer as a Hugging Face model "
                                                             "to checkpoints/lm (train.lm of a later run)"})
    peak_tflops: float = field(default=0.0, metadata={"help": "GPU bf16 peak for MFU when the device is not in the table"})
    log_every: int = field(default=10, metadata={"help": "steps between log records (JSONL, plot rows)"})
    loss_window: int = field(default=20, metadata={"help": "steps averaged for first/last loss in metrics"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


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
    from trainer.checkpoint import latest_state
    from trainer.shards import text_sample
    from trainer.tokenizer import build_tokenizer, extend_tokenizer, load_pretrained_tokenizer, load_tokenizer

    ckpt = Path(cfg.checkpoints)
    state = latest_state(ckpt) if cfg.resume == "auto" else (Path(cfg.resume) if cfg.resume else None)
    if dist.main:
        if state is not None:
            tok = load_tokenizer(state)
        elif cfg.lm:  # a pretrained LM keeps its own tokenizer, extended with the formats' tokens
            tok = extend_tokenizer(load_pretrained_tokenizer(cfg.lm))
        else:
            tok = build_tokenizer(text_sample(source, cfg.tokenizer_chars, cfg.seed), cfg.vocab_size)
        tok.save_pretrained(str(ckpt))
    dist.barrier()
    return tok if dist.main else load_tokenizer(ckpt)


def write_plots(records: list[dict], directory: str | Path) -> None:
    """The DVC plot CSVs (step + columns) from the log records."""
    fmt = lambda v: "" if v is None else (f"{v:.8g}" if isinstance(v, float) else str(v))  # noqa: E731
    for name, columns in PLOTS.values():
        rows = ["step," + ",".join(columns)] + [
            f"{r['step']}," + ",".join(fmt(r.get("mean_loss") if c == "loss" else r.get(c)) for c in columns)
            for r in records]
        write_text_atomic("\n".join(rows) + "\n", Path(directory) / name)


def _examples(skipped: dict[str, str], per_category: int = 5) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for sample_id, reason in skipped.items():
        category, _, detail = reason.partition(":")
        if len(out.setdefault(category, [])) < per_category:
            out[category].append(f"{sample_id}:{detail}")
    return out


def run(cfg: TrainConfig) -> dict:
    """Train and write checkpoint, log, plots, metrics and report (rank 0); returns the metrics."""
    started = time.perf_counter()
    threads = set_cpu_threads(cfg.threads)
    from trainer.batching import Batching, data_from_source
    from trainer.checkpoint import export_lm, init_parts, save_checkpoint
    from trainer.dist import init_distributed
    from trainer.loop import LoopConfig, pick_device, train
    from trainer.model import SpeechLM, SpeechLMConfig, count_parameters
    from trainer.shards import ShardSource

    import torch

    dist = init_distributed(pick_device(cfg.device).type)
    ckpt = Path(cfg.checkpoints)
    ckpt.mkdir(parents=True, exist_ok=True)
    source = ShardSource(cfg.samples, dist.rank, dist.world_size)
    tok = _tokenizer(cfg, dist, source)
    torch.manual_seed(cfg.seed)
    model = SpeechLM(_subset(cfg, SpeechLMConfig), tok)
    initialised = init_parts(model, cfg.init_from, cfg.init_parts) if cfg.init_from else {}
    batching = _subset(cfg, Batching)
    data = data_from_source(source, tok, model.spec, batching, cfg.span_encoding, max(1, cfg.num_workers),
                            ctc_units=cfg.ctc_units)
    startup = time.perf_counter() - started
    try:
        result = train(model, data, _subset(cfg, LoopConfig), out_dir=ckpt, tok=tok, log_path=ckpt / "train_log.jsonl",
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
    if not dist.main:
        return {"rank": dist.rank, "steps": result.steps}
    save_checkpoint(model.cpu(), tok, ckpt)
    if cfg.export_lm:
        export_lm(model, tok, ckpt / "lm")
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
        "mfu": result.mfu,
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
        "span_encoding": cfg.span_encoding, "context": cfg.context, **initialised,
    }
    write_stage_metrics(metrics, cfg.metrics, report, cfg.report)
    return metrics
