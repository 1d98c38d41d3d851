"""Aligner accuracy and speed (on demand, not a test): prints figures and ratios.

    python bench/align_bench.py [--utterances 40] [--aligner pocketsphinx]

1. Accuracy on synthetic ground truth: a small espeak-ng demo corpus is generated (true word
   times from espeak's events), aligned by `jstip align`, scored as Aligner-SUPERB does.
2. Agreement with MFA on real speech: `../shared/data/mfa-sample` (skipped when absent).
3. Speed: the aligner's real-time factor per core, and the throughput of 2 workers over 1
   (same shards, dask LocalCluster; wall time of the align step, cluster start-up included).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aligners import get_aligner  # noqa: E402
from aligners.quality import boundary_report  # noqa: E402
from aligners.textgrid import read_textgrid  # noqa: E402
from manifests.audio import load_audio  # noqa: E402
from pipeline.stage_align import AlignConfig, run as align  # noqa: E402
from pipeline.stage_demo_corpus import DemoCorpusConfig, run as demo_corpus  # noqa: E402
from pipeline.stage_prepare import PrepareConfig, run as prepare  # noqa: E402
from pipeline.textnorm import normalize  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "shared/data/mfa-sample"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utterances", type=int, default=40)
    parser.add_argument("--aligner", default="pocketsphinx")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        demo_corpus(DemoCorpusConfig(out=str(t / "demo"), n_utterances=args.utterances, n_domain_texts=1,
                                     metrics=str(t / "m.json")))
        prepare(PrepareConfig(corpus=str(t / "demo/corpus"), utterances=str(t / "u.parquet"), texts=str(t / "t.parquet"),
                              rejected=str(t / "r.parquet"), metrics=str(t / "p.json")))
        runs = {}
        for workers in (1, 2):
            cfg = AlignConfig(utterances=str(t / "u.parquet"), out=str(t / f"a{workers}"), aligner=args.aligner,
                              shard_size=max(1, args.utterances // 8), workers=workers,
                              reference=str(t / "demo/reference.parquet"), metrics=str(t / f"a{workers}.json"))
            runs[workers] = align(cfg)
        same = [p.read_bytes() for p in sorted((t / "a1").glob("*.parquet"))] == \
               [p.read_bytes() for p in sorted((t / "a2").glob("*.parquet"))]
    one, two = runs[1], runs[2]
    print(f"\n== demo ground truth ({args.aligner}, {one['utterances']} espeak utterances, {one['audio_seconds']} s)")
    print(f"aligned {one['aligned']}/{one['utterances']}  failed {one['failed_by_reason']}")
    print(f"boundary error mean {one.get('boundary_error_mean_ms')} ms, median {one.get('boundary_error_median_ms')} ms, "
          f"within 20/50/100 ms {one.get('within_20ms')}/{one.get('within_50ms')}/{one.get('within_100ms')}")
    print(f"RTF per core (aligner time / audio, retries included): {one['real_time_factor']}")
    print(f"wall 1 worker {one['wall_seconds']} s, 2 workers {two['wall_seconds']} s: "
          f"throughput ratio {one['wall_seconds'] / max(two['wall_seconds'], 1e-9):.2f}x; outputs identical: {same}")
    if SAMPLE.is_dir():
        print(f"\n== agreement with MFA on real speech ({SAMPLE})")
        aligner = get_aligner(args.aligner)
        pairs, audio_s, align_s = [], 0.0, 0.0
        for grid in sorted(SAMPLE.glob("*.mfa.TextGrid")):
            name = grid.name.removesuffix(".mfa.TextGrid")
            reference, _ = read_textgrid(grid)
            audio = load_audio(grid.with_name(name + ".wav"), sample_rate=aligner.sample_rate)
            words = normalize(grid.with_name(name + ".lab").read_text()).split()
            started = time.perf_counter()
            try:
                spans = aligner.align(audio, words)
            except Exception as exc:  # noqa: BLE001 - a bench reports failures and goes on
                print(f"{name}: FAILED: {exc}")
                continue
            took = time.perf_counter() - started
            audio_s, align_s = audio_s + len(audio) / aligner.sample_rate, align_s + took
            rep = boundary_report([(spans, [type(s)(s.word.strip("[]<>"), s.start, s.end) for s in reference])])
            pairs.append((spans, [type(s)(s.word.strip("[]<>"), s.start, s.end) for s in reference]))
            print(f"{name}: {len(audio) / aligner.sample_rate:.1f} s, {len(spans)}/{len(words)} words, rtf {took / (len(audio) / aligner.sample_rate):.4f}, "
                  f"mean {rep['boundary_error_mean_ms']} ms, median {rep['boundary_error_median_ms']} ms")
        if pairs:
            rep = boundary_report(pairs)
            print(f"all: mean {rep['boundary_error_mean_ms']} ms, median {rep['boundary_error_median_ms']} ms, "
                  f"within 20/50/100 ms {rep['within_20ms']}/{rep['within_50ms']}/{rep['within_100ms']}, rtf {align_s / audio_s:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
