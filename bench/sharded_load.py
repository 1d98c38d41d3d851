"""Peak host memory per rank while an FSDP run loads its pretrained LM, 2 gloo processes on CPU:
`from_pretrained` on every rank then `shard_model` (the plain build) against the meta-device loader
(`trainer/sharded_load.py`: each rank reads only its rows of the safetensors files).

The bench saves a Llama of `--lm-hidden` × `--lm-layers` (random weights, fp32) with
`save_pretrained(max_shard_size=...)`, so its weights span several files and an index, then each
mode builds the speech-LLM on it (the demo's conv encoder and adapter) in fresh processes under
torchrun. Memory: each rank's peak resident set (VmHWM, reset once imports and the process group
are done) minus its resident set at that point. Prints one JSON line per rank and mode, then each
mode's largest per-rank peak against the LM's fp32 bytes.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/sharded_load.py
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
    import accelerate, peft, safetensors, transformers.models.llama.modeling_llama  # loaded before the baseline
    from trainer.model import SpeechLM, SpeechLMConfig
    from trainer.parallel import shard_model
    from trainer.sharded_load import build_sharded_model
    from trainer.tokenizer import load_tokenizer

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    lm_dir, mode = sys.argv[1], sys.argv[2]
    tdist.init_process_group("gloo")
    tok = load_tokenizer(lm_dir)
    cfg = SpeechLMConfig(lm=lm_dir, dropout=0.0)
    open("/proc/self/clear_refs", "w").write("5")
    base = status("VmRSS")
    t0 = time.perf_counter()
    torch.manual_seed(0)
    if mode == "plain":
        model = shard_model(SpeechLM(cfg, tok), torch.device("cpu"))
    else:
        model, _ = build_sharded_model(cfg, tok, torch.device("cpu"), log=False)
    seconds = time.perf_counter() - t0
    tdist.barrier()
    shards = sum(p.to_local().numel() * p.element_size() for p in model.parameters())
    lm = sum(p.numel() * 4 for n, p in model.named_parameters() if n.startswith("lm."))
    print("RESULT " + json.dumps({"mode": mode, "rank": tdist.get_rank(), "seconds": round(seconds, 2),
                                  "peak_mb": round((status("VmHWM") - base) / 1e6, 1),
                                  "shards_mb": round(shards / 1e6, 1), "lm_fp32_mb": round(lm / 1e6, 1)}), flush=True)
''')


def save_lm(directory: Path, hidden: int, layers: int, intermediate: int, shard: str) -> int:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from trainer.tokenizer import build_tokenizer

    tok = build_tokenizer([f"w{i} x{i % 7} y{i % 13} z{i % 29}" for i in range(3000)], vocab_size=1000)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=8,
                      num_key_value_heads=8, intermediate_size=intermediate, tie_word_embeddings=False)
    torch.manual_seed(0)
    lm = AutoModelForCausalLM.from_config(cfg)
    lm.save_pretrained(directory, max_shard_size=shard)
    tok.save_pretrained(directory)
    return sum(p.numel() for p in lm.parameters())


def run(script: Path, lm_dir: Path, mode: str) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "MALLOC_MMAP_THRESHOLD_": "65536"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(lm_dir), mode], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=1800)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return [json.loads(m) for m in re.findall(r"RESULT (\{[^}]*\})", proc.stdout)]  # ranks share stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lm-hidden", type=int, default=1024)
    ap.add_argument("--lm-layers", type=int, default=8)
    ap.add_argument("--lm-intermediate", type=int, default=2816)
    ap.add_argument("--max-shard-size", default="100MB", help="save_pretrained's file size limit")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lm_dir = Path(tmp) / "lm"
        n = save_lm(lm_dir, args.lm_hidden, args.lm_layers, args.lm_intermediate, args.max_shard_size)
        files = len(list(lm_dir.glob("*.safetensors")))
        script = Path(tmp) / "child.py"
        script.write_text(CHILD)
        results = {mode: run(script, lm_dir, mode) for mode in ("plain", "meta")}
    for rows in results.values():
        for r in rows:
            print(json.dumps(r))
    lm_mb = results["meta"][0]["lm_fp32_mb"]
    peak = {m: max(r["peak_mb"] for r in rows) for m, rows in results.items()}
    print(json.dumps({"lm_parameters": n, "safetensors_files": files, "lm_fp32_mb": lm_mb,
                      "plain_peak_mb_per_rank": peak["plain"], "meta_peak_mb_per_rank": peak["meta"],
                      "plain_over_lm": round(peak["plain"] / lm_mb, 3), "meta_over_lm": round(peak["meta"] / lm_mb, 3)}))


if __name__ == "__main__":
    main()
