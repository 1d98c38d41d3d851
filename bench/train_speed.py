"""Training speed: packed vs padded batches, and steps/s on a quiet vs a busy CPU; on GPU, tokens/s and MFU.

CPU mode (default) runs the demo config (params.yaml `train:` sizes: conv encoder, 3-layer Llama 192
wide) on a synthetic demo-shaped corpus in the token formats (2.5–5 s clips at ~2.7 words/s;
asr, word- and segment-level interleaved and text samples like the interleave stage makes).
Every measurement runs in a fresh process (OpenMP reads its settings when torch loads), in two
parts printed as JSON lines:
- `batching`: padded batches (batch_size 16, length-sorted pools with jitter: the previous
  default) against packed rows (context 1024, 2 rows: the current default): tokens/s, padding
  share, and the ratio (target ≥ 1.3×, padding < 2%);
- `busy`: steps/s with OMP_WAIT_POLICY ACTIVE and PASSIVE × 1 and 2 torch threads, each on the
  quiet machine and with one other busy process (a Python spin loop) on the cores; the ratio
  busy/quiet is the figure of merit (target ≥ 0.4).
GPU mode (`--gpu`): a Qwen2-0.5B-shaped LM (896 wide, 24 layers, 14 heads / 2 KV heads, MLP 4864,
vocab 151936, tied) built from a config with fresh weights, a small conv encoder, bf16 autocast,
packed rows of `--context` tokens (8192, the paper's) with flash-attention when installed;
prints tokens/s, MFU of the LM part (see trainer/throughput.py) and peak GPU memory.
`--tiny` shrinks that model so the same code path can be checked on CPU.

    PYTHONPATH=. python bench/train_speed.py                       # CPU: batching, then busy
    PYTHONPATH=. python bench/train_speed.py --parts batching --steps 40
    PYTHONPATH=. python bench/train_speed.py --gpu --compile       # GPU, ~0.5B LM
    PYTHONPATH=. python bench/train_speed.py --gpu --tiny --device cpu --steps 3 --context 1024
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SR = 16000
VOCAB = ("The patient takes a daily dose of Aspirin, we will meet at the station. A biopsy was ordered; heart "
         "rate, blood pressure normal after surgery! Doctor said rest two weeks. Insulin and Metformin in New "
         "York City park walk?").split()
PADDED = dict(batching="padded", batch_size=16, pool=32, length_jitter=0.1)  # the previous default
PACKED = dict(batching="packed", batch_size=2, context=1024, pool=32)  # the current default


def corpus(n_utts: int, seed: int = 0) -> list:
    """Demo-shaped samples in the token formats with synthetic audio (embedded FLAC)."""
    import io

    import soundfile as sf

    from manifests.formats import ASR, BOS, EOS, SEGMENT, token
    from manifests.schema import SPEECH, TEXT, Sample, Span

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_utts):
        dur = float(rng.uniform(2.5, 5.0))
        n = max(3, int(round(dur * 2.7)))
        words = [str(VOCAB[j]) for j in rng.integers(0, len(VOCAB), n)]
        times = np.linspace(0.1, dur - 0.1, n + 1)
        t = np.arange(int(dur * SR)) / SR
        wave = 0.1 * np.sin(2 * np.pi * (150 + 40 * (i % 20)) * t) + 0.02 * rng.standard_normal(t.size)
        buf = io.BytesIO()
        sf.write(buf, wave.astype(np.float32), SR, format="FLAC")
        audio, text = buf.getvalue(), " ".join(words)
        mk = lambda kind, spans: Sample(f"u{i}:{kind}", kind, f"u{i}", "", 0.0, dur, tuple(spans), n, n, audio)  # noqa: E731
        out.append(mk("asr", (token(BOS), Span(SPEECH, text, 0.0, dur), token(ASR), Span(TEXT, text), token(EOS))))
        spans, k, speech = [token(BOS)], 0, True
        while k < n:  # word-level: runs of 1-4 words alternate, speech first, nothing between them
            m = int(rng.integers(1, 5))
            chunk = " ".join(words[k:k + m])
            spans.append(Span(SPEECH, chunk, times[k], times[min(k + m, n)]) if speech else Span(TEXT, chunk))
            k, speech = k + m, not speech
        if speech is False:  # ends with text
            spans.append(Span(TEXT, words[-1]))
        out.append(mk("interleave_word", spans + [token(EOS)]))
        half = n // 2
        out.append(mk("interleave_segment", (token(BOS), Span(SPEECH, " ".join(words[:half]), 0.0, times[half]),
                                             token(SEGMENT), Span(TEXT, " ".join(words[half:])), token(EOS))))
    for i in range(n_utts):  # text share ~ 0.25 like interleave.text_ratio
        spans = [token(BOS)]
        for _ in range(2):
            spans += [Span(TEXT, " ".join(str(VOCAB[j]) for j in rng.integers(0, len(VOCAB), int(rng.integers(6, 12))))),
                      token(EOS)]
        out.append(Sample(f"t{i}", "text", f"t{i}", "", 0.0, 0.0, tuple(spans), 0, 16))
    return out


def gpu_model_config(tiny: bool):
    """The speech-LLM config with a Qwen2-0.5B-shaped LM config file written to a temp dir."""
    from transformers import Qwen2Config

    from trainer.model import SpeechLMConfig

    shape = dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 intermediate_size=4864, vocab_size=151936, max_position_embeddings=32768, tie_word_embeddings=True)
    if tiny:
        shape.update(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                     intermediate_size=128, vocab_size=2000)
    path = tempfile.mkdtemp(prefix="qwen2-shape-")
    Qwen2Config(**shape).save_pretrained(path)
    enc = dict(enc_dim=256, enc_layers=4, enc_heads=4, proj_hidden=1024) if not tiny else \
        dict(enc_dim=32, enc_layers=1, enc_heads=2, proj_hidden=64)
    return SpeechLMConfig(lm_config=path, dropout=0.0, ctc_weight=0.0, **enc)


def measure(spec: dict) -> dict:
    """One measurement in this process: `spec` = batching options, steps, warmup, device, gpu, tiny."""
    import torch

    from trainer.batching import Batching, data_from_samples
    from trainer.loop import LoopConfig, train
    from trainer.model import SpeechLM, SpeechLMConfig, count_parameters
    from trainer.tokenizer import build_tokenizer

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    samples = corpus(spec["utts"])
    tok = build_tokenizer([s.text for x in samples for s in x.spans if s.modality == "text"], vocab_size=1000)
    torch.manual_seed(0)
    cfg = gpu_model_config(spec["tiny"]) if spec["gpu"] else SpeechLMConfig(ctc_weight=1.0)
    cfg.gradient_checkpointing = spec.get("gradient_checkpointing", False)
    model = SpeechLM(cfg, tok)
    batching = Batching(**spec["batching"])
    data = data_from_samples(samples, tok, model.spec, batching, spec.get("span_encoding", "concat"),
                             streams=max(1, spec["workers"]), group_size=256)
    loop = dict(lr=spec["lr"], warmup_steps=5, device=spec["device"], stage1_share=0.0, compile=spec["compile"],
                num_workers=spec["workers"])
    if spec["warmup"]:
        train(model, data, LoopConfig(steps=spec["warmup"], log_every=spec["warmup"], **loop), progress=False)
        model.train()
    if torch.cuda.is_available() and spec["device"] != "cpu":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    res = train(model, data, LoopConfig(steps=spec["steps"], log_every=max(1, spec["steps"] // 5), **loop),
                progress=False)
    wall = time.perf_counter() - t0
    mfu = [r["mfu"] for r in res.records if r.get("mfu") is not None]
    out = {"steps": res.steps, "wall_s": round(wall, 2), "steps_per_s": round(res.steps / wall, 3),
           "tokens_per_s": round(res.tokens / wall, 1), "audio_s_per_s": round(res.audio_seconds / wall, 1),
           "padding_share": round(res.pad_tokens / max(1, res.tokens + res.pad_tokens), 4),
           "tokens_per_step": round(res.tokens / max(res.steps, 1), 1), "mfu": round(float(np.mean(mfu)), 4) if mfu else None,
           "loss_first": round(res.history[0]["loss"], 3), "loss_last": round(res.history[-1]["loss"], 3),
           "lm_parameters": count_parameters(model.base_lm()), "parameters": count_parameters(model),
           "threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}
    if torch.cuda.is_available() and spec["device"] != "cpu":
        out.update(device=torch.cuda.get_device_name(), peak_memory_gb=round(torch.cuda.max_memory_allocated() / 2**30, 2),
                   attn=model.base_lm().config._attn_implementation)
    return out


def in_child(spec: dict, env: dict[str, str], busy: bool = False) -> dict:
    """`measure(spec)` in a fresh process with `env`; with `busy`, one spinning process runs meanwhile."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), **env})
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    if proc.returncode:
        raise SystemExit(f"measurement failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", action="store_true", help="the ~0.5B-parameter LM config, bf16, packed (GPU mode)")
    ap.add_argument("--tiny", action="store_true", help="GPU mode with a tiny LM (checks the path on CPU)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--parts", default="batching,busy", help="CPU mode: which comparisons to run")
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: 30 CPU, 50 GPU)")
    ap.add_argument("--warmup", type=int, default=-1, help="untimed steps first (default: 3 CPU, 10 GPU)")
    ap.add_argument("--utts", type=int, default=180, help="synthetic utterances (4 samples each; GPU default 2000)")
    ap.add_argument("--context", type=int, default=8192, help="GPU mode: tokens per packed row")
    ap.add_argument("--rows", type=int, default=4, help="GPU mode: packed rows per micro-batch")
    ap.add_argument("--compile", action="store_true", help="torch.compile the LM")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--workers", type=int, default=-1, help="loader workers (default: 4 GPU, 0 CPU)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(json.loads(args.child))))
        return
    base = dict(gpu=args.gpu, tiny=args.tiny, device=args.device, compile=args.compile,
                gradient_checkpointing=args.gradient_checkpointing)
    print(json.dumps({"machine": f"{os.cpu_count()} cores", "load_avg": [round(x, 2) for x in os.getloadavg()]}))
    if args.gpu:
        spec = dict(base, utts=args.utts if args.utts != 180 else 2000, steps=args.steps or 50,
                    warmup=args.warmup if args.warmup >= 0 else 10, lr=3e-4,
                    workers=args.workers if args.workers >= 0 else 4,
                    batching=dict(batching="packed", batch_size=args.rows, context=args.context, pool=16))
        print(json.dumps({"part": "gpu", **spec["batching"], **measure(spec)}))
        return
    spec = dict(base, utts=args.utts, steps=args.steps or 30, warmup=args.warmup if args.warmup >= 0 else 3, lr=2e-3,
                workers=max(0, args.workers))
    parts = args.parts.split(",")
    if "batching" in parts:
        figures = {}
        for name, batching in (("padded", PADDED), ("packed", PACKED)):
            figures[name] = in_child({**spec, "batching": batching}, {"OMP_WAIT_POLICY": "PASSIVE"})
            print(json.dumps({"part": "batching", "batching": name, **batching, **figures[name]}))
        print(json.dumps({"part": "batching", "packed_over_padded_tokens_per_s":
                          round(figures["packed"]["tokens_per_s"] / figures["padded"]["tokens_per_s"], 2)}))
    if "busy" in parts:
        for policy in ("ACTIVE", "PASSIVE"):
            for threads in (1, 2):
                run = {**spec, "batching": PACKED, "threads": threads}
                quiet = in_child(run, {"OMP_WAIT_POLICY": policy})
                busy = in_child(run, {"OMP_WAIT_POLICY": policy}, busy=True)
                print(json.dumps({"part": "busy", "omp_wait_policy": policy, "threads": threads,
                                  "quiet_steps_per_s": quiet["steps_per_s"], "busy_steps_per_s": busy["steps_per_s"],
                                  "busy_over_quiet": round(busy["steps_per_s"] / quiet["steps_per_s"], 2)}))


if __name__ == "__main__":
    main()
