"""DDP against FSDP2 at 2 processes on CPU (gloo): time per step and peak memory per rank.

The demo model (params.yaml `train:` sizes: conv encoder 144 wide × 2, Llama 192 wide × 3, vocab
1000) or `--lm-hidden/--lm-layers` for a bigger one, trained on fixed packed text rows (`--context`
tokens × `--rows`, one label per position) with AdamW, through the trainer's own wrapping
(`trainer.parallel.shard_model`, torch DDP as the loop does it). Each mode runs in fresh
processes under torchrun; a single process (no wrapping) gives the memory per rank to compare.
Memory: the peak resident set of each rank during the timed steps minus its resident set before the
model was built (VmHWM reset once the model is wrapped). Prints one JSON line per mode, then the
ratios: FSDP time per step / DDP's (target ≤ 1.5 on the demo model: the cost of sharding where it
is not needed) and memory per rank against one process.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/train_parallel.py
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/train_parallel.py --lm-hidden 768 --lm-layers 6
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent('''
    import json, os, sys, time
    import torch, torch.distributed as tdist
    from trainer.model import SpeechLM, SpeechLMConfig
    from trainer.parallel import shard_model
    from trainer.schedule import make_optimizer
    from trainer.tokenizer import build_tokenizer

    def rss(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    spec = json.loads(sys.argv[1])
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        tdist.init_process_group("gloo")
    rank = tdist.get_rank() if world > 1 else 0
    torch.manual_seed(0)
    tok = build_tokenizer([f"w{i} x{i % 7} y{i % 13} z{i % 29}" for i in range(3000)], vocab_size=1000)
    n = spec["context"]
    ids = torch.randint(10, len(tok), (spec["rows"], n))
    batch = {"input_ids": ids, "labels": ids.clone(), "position_ids": torch.arange(n).repeat(spec["rows"], 1),
             "example_ids": torch.zeros(spec["rows"], n, dtype=torch.long), "packed": True}
    base = rss("VmRSS")
    model = SpeechLM(SpeechLMConfig(lm_hidden=spec["lm_hidden"], lm_layers=spec["lm_layers"], lm_heads=4,
                                    lm_intermediate=spec["lm_intermediate"], dropout=0.0), tok)
    if spec["mode"] == "fsdp":
        net = shard_model(model, torch.device("cpu"))
    elif spec["mode"] == "ddp":
        net = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    else:
        net = model
    opt = make_optimizer(model, 1e-4, 0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        net(batch).loss.backward()
        for p in model.parameters():
            if p.grad is None and p.requires_grad:
                p.grad = torch.zeros_like(p)
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()

    for _ in range(spec["warmup"]):
        step()
    open("/proc/self/clear_refs", "w").write("5")
    if world > 1:
        tdist.barrier()
    t0 = time.perf_counter()
    for _ in range(spec["steps"]):
        step()
    if world > 1:
        tdist.barrier()
    dt = (time.perf_counter() - t0) / spec["steps"]
    out = {"mode": spec["mode"], "rank": rank, "world": world, "s_per_step": dt,
           "peak_mb": (rss("VmHWM") - base) / 1e6, "params": sum(p.numel() for p in model.parameters())}
    print("RESULT " + json.dumps(out), flush=True)
''')


def run(mode: str, spec: dict) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "child.py"
        script.write_text(CHILD)
        head = [sys.executable] if mode == "single" else [sys.executable, "-m", "torch.distributed.run",
                                                          "--standalone", "--nproc_per_node", "2"]
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
               "MALLOC_MMAP_THRESHOLD_": "65536"}
        proc = subprocess.run(head + [str(script), json.dumps({**spec, "mode": mode})], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=1800)
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        # the ranks share stdout: their lines may run together
        return [json.loads(m) for m in re.findall(r"RESULT (\{[^}]*\})", proc.stdout)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lm-hidden", type=int, default=192)
    ap.add_argument("--lm-layers", type=int, default=3)
    ap.add_argument("--lm-intermediate", type=int, default=512)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--rows", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    spec = {k: getattr(args, k) for k in ("lm_hidden", "lm_layers", "lm_intermediate", "context", "rows", "steps",
                                          "warmup")}
    results = {mode: run(mode, spec) for mode in ("single", "ddp", "fsdp")}
    for rows in results.values():
        for r in rows:
            print(json.dumps(r))
    step = {m: max(r["s_per_step"] for r in rows) for m, rows in results.items()}
    peak = {m: max(r["peak_mb"] for r in rows) for m, rows in results.items()}
    print(json.dumps({"fsdp_over_ddp_time": step["fsdp"] / step["ddp"], "ddp_peak_mb_per_rank": peak["ddp"],
                      "fsdp_peak_mb_per_rank": peak["fsdp"], "single_process_peak_mb": peak["single"],
                      "fsdp_over_single_memory": peak["fsdp"] / peak["single"]}))


if __name__ == "__main__":
    main()
