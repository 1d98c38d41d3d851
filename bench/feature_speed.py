"""Feature extraction speed per encoder input (`trainer/features.py`): log-mel (conv, Whisper), raw waveform
rows (wav2vec2, HuBERT, wav2vec2-conformer) and w2v-BERT's stacked fbank (transformers'
SeamlessM4TFeatureExtractor, numpy). One process, one torch thread; reports ms per 10 s of audio,
times real time and the ratio to log-mel, so a run can size `num_workers` for its encoder.

    OMP_NUM_THREADS=1 python bench/feature_speed.py
    OMP_NUM_THREADS=1 python bench/feature_speed.py --seconds 30 --repeats 10
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.features import FrameSpec, feature_extractor  # noqa: E402

SPECS = {
    "logmel": FrameSpec(),
    "waveform": FrameSpec(n_mels=320, hop_length=320, subsample=1, features="waveform"),
    "fbank": FrameSpec(n_mels=160, hop_length=320, subsample=1, features="fbank"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the synthetic clip")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per feature kind (after one warm-up)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    wave = (0.1 * np.random.default_rng(0).standard_normal(int(16000 * args.seconds))).astype(np.float32)
    times = {}
    for kind, spec in SPECS.items():
        extract = feature_extractor(spec)
        extract(wave)
        start = time.perf_counter()
        for _ in range(args.repeats):
            rows = extract(wave)
        times[kind] = (time.perf_counter() - start) / args.repeats
        print(f"{kind:9s} {tuple(rows.shape)!s:12s} {1000 * times[kind] * 10 / args.seconds:7.1f} ms per 10 s  "
              f"{args.seconds / times[kind]:6.0f}x real time  {times[kind] / times['logmel']:5.2f}x log-mel's time")


if __name__ == "__main__":
    main()
