"""Training speed of the speech-LLM: steps/s, tokens/s, padding share and (on GPU) MFU.

CPU mode (default): the demo config (params.yaml `train:` defaults: conv encoder, 3-layer Llama
192 wide, batch 16) on a synthetic demo-shaped corpus (2.5–5 s clips at ~2.7 words/s; asr,
word- and segment-interleaved and text samples like the interleave stage makes), so regressions
show. `--pools 4,32` compares the padding of bucketing pools (4 was the old sampler's).

GPU mode (`--gpu`): a Qwen2-0.5B-shaped LM (896 wide, 24 layers, 14 heads / 2 KV heads, MLP 4864,
vocab 151936, tied) built from a config with fresh weights, a small conv encoder, bf16 autocast,
token-budget batches; prints tokens/s and MFU of the LM part (see trainer/throughput.py).
`--tiny` shrinks that model so the same code path can be checked on CPU.

    PYTHONPATH=. python bench/train_speed.py                      # CPU, demo config
    PYTHONPATH=. python bench/train_speed.py --gpu --compile      # GPU, ~0.5B LM
    PYTHONPATH=. python bench/train_speed.py --gpu --tiny --device cpu --steps 3
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manifests.schema import SPEECH, TEXT, Sample, Span  # noqa: E402
from trainer.batching import planned_from_samples  # noqa: E402
from trainer.loop import LoopConfig, train  # noqa: E402
from trainer.model import SpeechLM, SpeechLMConfig, count_parameters  # noqa: E402
from trainer.tokenizer import build_tokenizer  # noqa: E402

SR = 16000
VOCAB = ("the patient takes daily dose of aspirin we will meet at station biopsy was ordered heart rate blood "
         "pressure normal after surgery doctor said rest two weeks insulin metformin new york city park walk").split()


def corpus(n_utts: int, seed: int = 0, embed: bool = True) -> list[Sample]:
    """Demo-shaped samples with synthetic audio (embedded FLAC, so no files are needed)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_utts):
        dur = float(rng.uniform(2.5, 5.0))
        n = max(3, int(round(dur * 2.7)))
        words = [VOCAB[j] for j in rng.integers(0, len(VOCAB), n)]
        times = np.linspace(0.1, dur - 0.1, n + 1)
        t = np.arange(int(dur * SR)) / SR
        wave = 0.1 * np.sin(2 * np.pi * (150 + 40 * (i % 20)) * t) + 0.02 * rng.standard_normal(t.size)
        buf = io.BytesIO()
        sf.write(buf, wave.astype(np.float32), SR, format="FLAC")
        audio = buf.getvalue() if embed else None
        text = " ".join(words)
        mk = lambda kind, spans: Sample(f"u{i}:{kind}", kind, f"u{i}", "", 0.0, dur, spans, n, n, audio)  # noqa: E731
        out.append(mk("asr", (Span(SPEECH, text, 0.0, dur), Span(TEXT, text))))
        spans, k, speech = [], 0, True
        while k < n:  # word-level switch layout: runs of 1-4 words alternate, speech first
            m = int(rng.integers(1, 5))
            chunk = words[k:k + m]
            spans.append(Span(SPEECH, " ".join(chunk), times[k], times[min(k + m, n)]) if speech
                         else Span(TEXT, " ".join(chunk)))
            k, speech = k + m, not speech
        out.append(mk("interleave_word", tuple(spans)))
        half = n // 2
        out.append(mk("interleave_segment", (Span(SPEECH, " ".join(words[:half]), 0.0, times[half]),
                                             Span(TEXT, " ".join(words[half:])))))
    for i in range(n_utts):  # text share ~ 0.25 like interleave.text_ratio
        n = int(rng.integers(8, 16))
        text = " ".join(VOCAB[j] for j in rng.integers(0, len(VOCAB), n))
        out.append(Sample(f"t{i}", "text", f"t{i}", "", 0.0, 0.0, (Span(TEXT, text),), 0, n))
    return out


def gpu_model_config(tiny: bool) -> tuple[SpeechLMConfig, str]:
    """The speech-LLM config with a Qwen2-0.5B-shaped LM config file written to a temp dir."""
    from transformers import Qwen2Config

    shape = dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 intermediate_size=4864, vocab_size=151936, max_position_embeddings=4096, tie_word_embeddings=True)
    if tiny:
        shape.update(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                     intermediate_size=128, vocab_size=2000)
    path = tempfile.mkdtemp(prefix="qwen2-shape-")
    Qwen2Config(**shape).save_pretrained(path)
    enc = dict(enc_dim=256, enc_layers=4, enc_heads=4, proj_hidden=1024) if not tiny else dict(enc_dim=32, enc_layers=1,
                                                                                              enc_heads=2, proj_hidden=64)
    return SpeechLMConfig(lm_config=path, dropout=0.0, ctc_weight=0.0, **enc), path


def measure(model: SpeechLM, samples: list[Sample], tok, loop: LoopConfig, warmup: int) -> dict:
    """Run `warmup` steps (compile, caches), then `loop.steps` timed steps; figures of the timed part."""
    data = planned_from_samples(samples, tok, model.spec, loop.batch_size, loop.batch_tokens, loop.pool, loop.seed,
                                max_tokens=4096, streams=max(1, loop.num_workers), jitter=loop.length_jitter)
    if warmup:
        train(model, data, LoopConfig(**{**loop.__dict__, "steps": warmup, "log_every": warmup}), progress=False)
        model.train()
    t0 = time.perf_counter()
    res = train(model, data, loop, progress=False)
    wall = time.perf_counter() - t0
    mfu = [r["mfu"] for r in res.records if r["mfu"] is not None]
    return {"steps": res.steps, "wall_s": round(wall, 2), "steps_per_s": round(res.steps / wall, 3),
            "tokens_per_s": round(res.tokens / wall, 1), "audio_s_per_s": round(res.audio_seconds / wall, 1),
            "padding_share": round(res.pad_tokens / max(1, res.tokens + res.pad_tokens), 4),
            "mfu": round(sum(mfu) / len(mfu), 4) if mfu else None,
            "loss_first": round(res.history[0]["loss"], 3), "loss_last": round(res.history[-1]["loss"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", action="store_true", help="the ~0.5B-parameter LM config, bf16 (GPU mode)")
    ap.add_argument("--tiny", action="store_true", help="GPU mode with a tiny LM (checks the path on CPU)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: 100 CPU, 50 GPU)")
    ap.add_argument("--warmup", type=int, default=-1, help="untimed steps first (default: 5 CPU, 10 GPU)")
    ap.add_argument("--utts", type=int, default=180, help="synthetic utterances (4 samples each)")
    ap.add_argument("--pools", default="32", help="bucketing pools to compare, e.g. 4,32")
    ap.add_argument("--batch-tokens", type=int, default=16384, help="GPU mode: padded tokens per micro-batch")
    ap.add_argument("--compile", action="store_true", help="torch.compile the LM")
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--workers", type=int, default=-1, help="loader workers (default: 4 GPU, 0 CPU)")
    args = ap.parse_args()
    torch.manual_seed(0)
    samples = corpus(args.utts)
    tok = build_tokenizer([s.text for x in samples for s in x.spans if s.text], vocab_size=1000)
    if args.gpu:
        cfg, _ = gpu_model_config(args.tiny)
        cfg.gradient_checkpointing = args.gradient_checkpointing
        steps, warmup = args.steps or 50, args.warmup if args.warmup >= 0 else 10
        base = LoopConfig(steps=steps, batch_size=0, batch_tokens=args.batch_tokens, pool=64, lr=3e-4, warmup_steps=5,
                          log_every=max(1, steps // 5), device=args.device, compile=args.compile,
                          num_workers=args.workers if args.workers >= 0 else 4)
    else:
        cfg = SpeechLMConfig(ctc_weight=1.0)  # the demo config (params.yaml train: section)
        steps, warmup = args.steps or 100, args.warmup if args.warmup >= 0 else 5
        base = LoopConfig(steps=steps, batch_size=16, lr=2e-3, warmup_steps=60, log_every=10, device=args.device,
                          num_workers=max(0, args.workers))
    print(json.dumps({"mode": "gpu" if args.gpu else "cpu", "tiny": args.tiny, "samples": len(samples),
                      "torch_threads": torch.get_num_threads(),
                      "device": torch.cuda.get_device_name() if torch.cuda.is_available() and args.device != "cpu"
                      else "cpu"}))
    for pool in [int(p) for p in args.pools.split(",")]:
        torch.manual_seed(0)
        model = SpeechLM(SpeechLMConfig(**cfg.__dict__), tok)
        lm_params = count_parameters(model.base_lm())
        loop = LoopConfig(**{**base.__dict__, "pool": pool})
        figures = measure(model, samples, tok, loop, warmup)
        print(json.dumps({"pool": pool, "lm_parameters": lm_params, "parameters": count_parameters(model), **figures}))


if __name__ == "__main__":
    main()
