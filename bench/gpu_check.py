"""One-GPU check of the trainer at the paper's row length (issue 17, deliverable 7; `bench/gpu_check.sh`).

A TinyLlama-1.1B-shaped LM (2048 wide, 22 layers, 32 heads / 4 KV heads, MLP 5632, vocabulary 32000;
built from its config with random weights, nothing downloaded) behind a 768-wide 12-layer conv
speech encoder at 80 ms per position, trained on packed rows of 8192 tokens (demo-shaped speech
and text samples in the token formats, packed by the trainer's own batching) in bf16:
- `fsdp`: FSDP2 over one device (`trainer.parallel.shard_model`: bf16 parameters in compute, fp32
  gradient reduction, a one-rank process group);
- `ddp`: torch DDP over one device, fp32 weights under bf16 autocast (the loop's DDP path).
Attention is flash-attention's varlen kernel when `flash_attn` imports, else the trainer's
`sdpa_varlen` (causal SDPA per sample); the line says which. Each mode runs in a fresh process:
`--warmup` untimed steps, then `--steps` timed ones (AdamW, clipping, the loop's loss), on a few
batches built once before timing (the data loader is not measured). Prints one JSON line per mode:
tokens/s (per device), MFU of the LM and of the whole model (trainer/throughput.py: 6·N per trained
token, attention FLOPs, the encoder's per frame; the device's dense bf16 peak by name, or
`--peak-tflops`) and peak memory (CUDA: `max_memory_allocated`; CPU: peak resident set).

Without CUDA it refuses (exit status 2) unless `--cpu-tiny`: a tiny model on CPU (gloo, fp32,
nominal 1 TFLOP/s peak) runs the same code and prints the same fields, to check the path.

    bench/gpu_check.sh                          # on a CUDA machine: under 8 minutes
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/gpu_check.py --cpu-tiny --steps 2 --warmup 1
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

LLAMA_1B = dict(hidden_size=2048, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4,
                intermediate_size=5632, vocab_size=32000, max_position_embeddings=8192, tie_word_embeddings=False)
ENCODER_1B = dict(enc_dim=768, enc_layers=12, enc_heads=12, proj_hidden=2048, stack=4)
LLAMA_TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=128, vocab_size=2000, max_position_embeddings=2048, tie_word_embeddings=False)
ENCODER_TINY = dict(enc_dim=32, enc_layers=1, enc_heads=2, proj_hidden=64, stack=4)
NO_CUDA = 2  # exit status without a GPU


def peak_memory_gb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024 / 2**30
    return float("nan")


def batches(model, tok, context: int, rows: int, n: int, utts: int) -> list[dict]:
    """`n` packed batches of `rows` × `context` tokens from demo-shaped samples (the trainer's batching)."""
    from train_speed import corpus

    from trainer.batching import Batching, Stage, data_from_samples

    data = data_from_samples(corpus(utts), tok, model.spec, Batching(batching="packed", batch_size=rows,
                                                                      context=context, pool=n + 1), group_size=4096)
    out, it = [], data.loader(Stage())
    while len(out) < n:
        batch = next(it)
        if not batch.get("empty"):
            out.append(batch)
    return out


def child(mode: str, spec: dict) -> dict:
    """One mode's measurement in this process."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from trainer.data import to_device
    from trainer.loop import autocast_for
    from trainer.model import SpeechLM, SpeechLMConfig, attention_implementation, count_parameters
    from trainer.parallel import ensure_process_group, full_value, shard_model
    from trainer.schedule import make_optimizer
    from trainer.throughput import lm_flops_per_token, peak_flops, speech_flops_per_frame
    from trainer.tokenizer import build_tokenizer
    from train_speed import VOCAB

    tiny = spec["cpu_tiny"]
    device = torch.device("cpu") if tiny else torch.device("cuda", 0)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    ensure_process_group(device)
    torch.manual_seed(0)
    tok = build_tokenizer([" ".join(VOCAB)] * 50, vocab_size=200)
    attn = attention_implementation("auto")
    with torch.device(device):  # random weights made where they train
        lm = AutoModelForCausalLM.from_config(LlamaConfig(**(LLAMA_TINY if tiny else LLAMA_1B)), attn_implementation=attn)
    cfg = SpeechLMConfig(dropout=0.0, ctc_weight=0.0, gradient_checkpointing=spec["checkpointing"],
                         **(ENCODER_TINY if tiny else ENCODER_1B))
    model = SpeechLM(cfg, tok, lm=lm).to(device).train()
    flops0 = lm_flops_per_token(model.base_lm(), 0)
    flops_per_pos = lm_flops_per_token(model.base_lm(), 1) - flops0
    speech_flops = speech_flops_per_frame(model)
    params, lm_params = count_parameters(model), count_parameters(model.base_lm())
    data = [to_device(b, device) for b in batches(model, tok, spec["context"], spec["rows"], spec["batches"],
                                                  spec["utts"])]
    if mode == "fsdp":
        net = shard_model(model, device, bf16=device.type == "cuda")
    else:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[0] if device.type == "cuda" else None,
                                                        find_unused_parameters=True)
    optimizer = make_optimizer(model, 1e-4, 0.01, fused=device.type == "cuda")
    autocast = autocast_for(device, "auto")
    trained = [p for p in model.parameters() if p.requires_grad]
    losses = []

    def step(batch: dict) -> None:
        optimizer.zero_grad(set_to_none=True)
        n_items = int((batch["labels"][:, 1:] != -100).sum())
        with autocast:
            out = net(batch, num_items=max(n_items, 1))
        out.loss.backward()
        for p in trained:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        full_value(torch.nn.utils.clip_grad_norm_(trained, 1.0))
        optimizer.step()
        losses.append(float(out.loss.detach()))

    for i in range(spec["warmup"]):
        step(data[i % len(data)])
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    tokens = flops = speech = 0.0
    t0 = time.perf_counter()
    for i in range(spec["steps"]):
        b = data[i % len(data)]
        step(b)
        tokens += b["n_tokens"]
        flops += b["n_tokens"] * flops0 + flops_per_pos * b["attn_positions"]
        speech += speech_flops * b["n_mel"] / 2
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    peak = peak_flops(torch.cuda.get_device_name(device), spec["peak_tflops"]) if device.type == "cuda" else \
        (spec["peak_tflops"] or 1.0) * 1e12
    return {"mode": mode, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "attention": model.base_lm().config._attn_implementation, "lm_parameters": lm_params,
            "parameters": params, "context": spec["context"], "rows": spec["rows"], "steps": spec["steps"],
            "precision": "bf16" if device.type == "cuda" else "fp32",
            "tokens_per_step": round(tokens / spec["steps"], 1), "s_per_step": round(wall / spec["steps"], 4),
            "tokens_per_s": round(tokens / wall, 1), "tokens_per_s_per_device": round(tokens / wall, 1),
            "mfu": round(flops / wall / peak, 4) if peak else None,
            "mfu_model": round((flops + speech) / wall / peak, 4) if peak else None,
            "peak_tflops": peak / 1e12 if peak else None, "peak_memory_gb": round(peak_memory_gb(device), 2),
            "loss_first": round(losses[0], 3), "loss_last": round(losses[-1], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-tiny", action="store_true", help="a tiny model on CPU: checks the path without a GPU")
    ap.add_argument("--modes", default="fsdp,ddp")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per mode")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--context", type=int, default=0, help="tokens per packed row (default 8192; --cpu-tiny 256)")
    ap.add_argument("--rows", type=int, default=1, help="packed rows per step")
    ap.add_argument("--batches", type=int, default=4, help="distinct batches built before timing (cycled)")
    ap.add_argument("--checkpointing", action="store_true", help="recompute each LM layer in backward")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="the device's dense bf16 peak, if not in the table")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    context = args.context or (256 if args.cpu_tiny else 8192)
    spec = dict(cpu_tiny=args.cpu_tiny, steps=args.steps, warmup=args.warmup, context=context, rows=args.rows,
                batches=args.batches, checkpointing=args.checkpointing, peak_tflops=args.peak_tflops,
                utts=max(40, args.batches * args.rows * context // 100))
    if args.child:
        print("RESULT " + json.dumps(child(args.child, json.loads(os.environ["GPU_CHECK_SPEC"]))), flush=True)
        return
    import torch

    if not args.cpu_tiny and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False, torch "
              f"{torch.__version__}); run it on a machine with a GPU and a CUDA build of torch, or pass --cpu-tiny "
              "to check the code path on CPU", file=sys.stderr)
        raise SystemExit(NO_CUDA)
    results = []
    for mode in args.modes.split(","):
        env = {**os.environ, "GPU_CHECK_SPEC": json.dumps(spec), "PYTHONPATH": str(REPO)}
        proc = subprocess.run([sys.executable, __file__, "--child", mode], env=env, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"gpu_check: {mode} failed:\n{proc.stderr[-3000:]}")
        results.append(json.loads(proc.stdout.split("RESULT ", 1)[1]))
        print(json.dumps(results[-1]), flush=True)
    for r in results:
        mfu = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
        print(f"{r['mode']:>4}: {r['tokens_per_s_per_device']:,.0f} tokens/s per device, MFU LM {mfu(r['mfu'])}, "
              f"whole model {mfu(r['mfu_model'])}, peak memory {r['peak_memory_gb']:.1f} GiB "
              f"({r['device']}, {r['attention']}, {r['precision']}, {r['lm_parameters'] / 1e9:.2f}B LM, "
              f"{r['rows']} × {r['context']} tokens)")


if __name__ == "__main__":
    main()
