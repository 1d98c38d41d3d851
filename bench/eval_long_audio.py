"""Peak memory and time of decoding one long recording, in pieces (`chunk_seconds`) or whole.

Issue 13 measured a 10-minute test utterance asking for 14 GB in one allocation (the conv
encoder's attention over the whole recording). This builds a demo-sized model with fresh
weights (params.yaml's train sizes), a recording of espeak-ng speech with pauses tiled to the
requested length, and runs `trainer.decode.transcribe` on it.

    python bench/eval_long_audio.py --compare        # each case in its own process under /usr/bin/time -v
    python bench/eval_long_audio.py --minutes 10 --chunk-seconds 30   # one case (the recording made in-process)

`--compare` runs 2 minutes whole vs in 30 s pieces (the ratio), then 10 and 60 minutes in
pieces, and prints peak resident memory and wall time of each.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SR = 16000


def recording(path: Path, minutes: float) -> float:
    """espeak-ng sentences with 0.3-1.2 s pauses, tiled to `minutes`; returns the duration."""
    import random

    import librosa
    import numpy as np

    from aligners.espeak import espeak
    from manifests.audio import write_audio
    from synthetic import demo_text

    rng, engine, parts = random.Random(0), espeak(), []
    for _ in range(30):
        wave, _ = engine.synthesize(demo_text.speech_sentence(rng, 0.5, 0.2)[1], rate=rng.randint(140, 190))
        parts += [librosa.resample(wave, orig_sr=engine.sample_rate, target_sr=SR),
                  np.zeros(int(SR * rng.uniform(0.3, 1.2)), np.float32)]
    block = np.concatenate(parts)
    n = int(minutes * 60 * SR)
    wave = np.tile(block, n // block.size + 1)[:n]
    write_audio(wave, path, SR)
    return n / SR


def one(audio: str, chunk_seconds: float, max_new_tokens: int) -> None:
    import torch
    import yaml

    from manifests.schema import Utterance
    from trainer.decode import transcribe
    from trainer.model import SpeechLM, SpeechLMConfig
    from trainer.tokenizer import build_tokenizer

    torch.set_num_threads(1)
    train = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["train"]
    sizes = {k: train[k] for k in ("enc_dim", "enc_layers", "enc_heads", "stack", "proj_hidden", "lm_hidden",
                                   "lm_layers", "lm_heads", "lm_intermediate")}
    tok = build_tokenizer(["the patient was prescribed metformin for diabetes"] * 5, vocab_size=120)
    torch.manual_seed(0)
    model = SpeechLM(SpeechLMConfig(**sizes), tok).eval()
    from manifests.audio import audio_info

    duration = audio_info(audio)[1]
    utt = Utterance("long", audio, 0.0, duration, SR, "s", "x", "x", "bench", "test")
    start = time.perf_counter()
    out = transcribe(model, tok, [utt], batch_size=4, max_new_tokens=max_new_tokens, progress=False,
                     chunk_seconds=chunk_seconds)
    wall = time.perf_counter() - start
    print(f"RESULT minutes={duration / 60:.1f} chunk_seconds={chunk_seconds} decoded={len(out.hypotheses)} "
          f"pieces={out.pieces.get('long', 1)} skipped={dict(out.skipped)} decode_s={wall:.1f}")


def compare(max_new_tokens: int) -> None:
    cases = [(2, 1e9), (2, 30), (10, 30), (60, 30)]
    rows = []
    tmp = tempfile.TemporaryDirectory()
    files = {m: Path(tmp.name) / f"{m}min.wav" for m in sorted({m for m, _ in cases})}
    for minutes, path in files.items():  # made here, so the measured processes only decode
        recording(path, minutes)
    for minutes, chunk in cases:
        cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--audio", str(files[minutes]), "--chunk-seconds",
               str(chunk), "--max-new-tokens", str(max_new_tokens)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        result = re.search(r"RESULT .*", proc.stdout)
        rows.append((minutes, chunk, int(rss.group(1)) / 2**20 if rss else None,
                     result.group(0) if result else f"failed: {proc.stderr.strip().splitlines()[-1:]}"))
    print(f"{'minutes':>8} {'chunk_s':>8} {'peak_GiB':>9}  result")
    for minutes, chunk, gib, result in rows:
        print(f"{minutes:>8} {'whole' if chunk > 1e8 else chunk:>8} {gib if gib is None else round(gib, 2):>9}  {result}")
    if rows[0][2] and rows[1][2]:
        print(f"2-minute recording: whole / in pieces peak memory = {rows[0][2] / rows[1][2]:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", action="store_true", help="run the standard cases, each in its own process")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the recording made for one case")
    parser.add_argument("--audio", default="", help="decode this recording instead of making one")
    parser.add_argument("--chunk-seconds", type=float, default=30.0, help="1e9: decode the recording whole")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    args = parser.parse_args()
    if args.compare:
        compare(args.max_new_tokens)
    elif args.audio:
        one(args.audio, args.chunk_seconds, args.max_new_tokens)
    else:
        with tempfile.TemporaryDirectory() as d:
            recording(Path(d) / "long.wav", args.minutes)
            one(str(Path(d) / "long.wav"), args.chunk_seconds, args.max_new_tokens)


if __name__ == "__main__":
    main()
