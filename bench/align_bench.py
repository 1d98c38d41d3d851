"""Aligner accuracy and speed (on demand, not a test): prints figures and ratios.

    python bench/align_bench.py [--utterances 200] [--aligner pocketsphinx]

1. Accuracy on synthetic ground truth: an espeak-ng demo corpus is generated (true word
   times from espeak's events), aligned by `jstip align`, scored as Aligner-SUPERB does, and on
   word starts alone as the MFA 3 paper's Table 4 does; with `--phones`, phones too, against
   espeak's phoneme events.
2. Agreement with MFA on real speech: `../shared/data/mfa-sample` (skipped when absent), per
   recording and overall, with the real-time factor including retries and the decoding passes;
   with `--phones`, phones against MFA's phone tier.
0. The time convention: pocketsphinx's frames read as starting at 10i ms and as centred, against
   espeak's phoneme-event truth (mean error and signed bias at word starts and ends).
3. Throughput of 2 workers over 1 on the same shards (dask LocalCluster vs inline), two ways:
   the align step's wall time (cluster start-up and model loading included), and the span
   from the first shard's start to the last shard's end (excluded). The CPU each worker got
   per second of aligning shows when other processes on the machine starved the workers.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aligners import get_aligner  # noqa: E402
from aligners.quality import boundary_report, error_summary, matched_phone_errors, matched_word_errors  # noqa: E402
from aligners.textgrid import read_textgrid  # noqa: E402
from manifests.audio import load_audio  # noqa: E402
from manifests.schema import WordSpan  # noqa: E402
from pipeline.stage_align import AlignConfig, run as align  # noqa: E402
from pipeline.stage_demo_corpus import DemoCorpusConfig, run as demo_corpus  # noqa: E402
from pipeline.stage_prepare import PrepareConfig, run as prepare  # noqa: E402
from corpora.textnorm import normalize  # noqa: E402

# the team's real-speech sample: `shared/` beside the checkout (or inside it, or beside a worktree's parent)
SAMPLE = next((p / "shared/data/mfa-sample" for p in Path(__file__).resolve().parents[1:4]
               if (p / "shared/data/mfa-sample").is_dir()), Path("shared/data/mfa-sample"))


def demo_and_throughput(n: int, aligner: str, shards: int, unexplained: float = 1.0, phones: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        demo_corpus(DemoCorpusConfig(out=str(t / "demo"), n_utterances=n, n_domain_texts=1, metrics=str(t / "m.json")))
        prepare(PrepareConfig(corpus=str(t / "demo/corpus"), utterances=str(t / "u.parquet"), texts=str(t / "t.parquet"),
                              rejected=str(t / "r.parquet"), metrics=str(t / "p.json")))
        runs = {}
        for workers in (1, 2):
            cfg = AlignConfig(utterances=str(t / "u.parquet"), out=str(t / f"a{workers}"), aligner=aligner,
                              min_shards=shards, workers=workers, reference=str(t / "demo/reference.parquet"),
                              unexplained_speech=unexplained, phones=phones,
                              metrics=str(t / f"a{workers}.json"), report=str(t / f"r{workers}.json"))
            runs[workers] = align(cfg)
        details = json.loads((t / "r1.json").read_text())
        same = [p.read_bytes() for p in sorted((t / "a1").glob("*.parquet"))] == \
               [p.read_bytes() for p in sorted((t / "a2").glob("*.parquet"))]
    one, two = runs[1], runs[2]
    print(f"\n== demo ground truth ({aligner}, {one['utterances']} espeak utterances, {round(one['audio_hours'] * 3600, 1)} s)")
    print(f"aligned {one['aligned']}/{one['utterances']}  failed {one['failed_by_reason']}")
    print(f"boundary error mean {one.get('boundary_error_mean_ms')} ms, median {one.get('boundary_error_median_ms')} ms, "
          f"within 10/25/50/100 ms {one.get('within_10ms')}/{one.get('within_25ms')}/{one.get('within_50ms')}/{one.get('within_100ms')}")
    print(f"onsets (word starts, as the MFA 3 paper's Table 4): mean {one.get('onset_error_mean_ms')} ms, median "
          f"{one.get('onset_error_median_ms')} ms, within 10/25/50/100 ms "
          + "/".join(str(one.get(f'onset_within_{k}ms')) for k in (10, 25, 50, 100)))
    if "phones" in details:
        print(f"phones (against espeak's phoneme events): {details['phones']}")
    print(f"RTF per core (aligner time / audio, retries included): {one['real_time_factor']} "
          f"= {1 / max(one['real_time_factor'], 1e-9):.1f} audio hours per core-hour")
    print(f"\n== throughput, {one['shards']} shards, outputs of 1 and 2 workers identical: {same}")
    for label, key in (("align step wall (start-up included)", "wall_seconds"),
                       ("first shard start to last shard end (start-up excluded)", "shards_wall_seconds")):
        print(f"{label}: 1 worker {one[key]} s, 2 workers {two[key]} s: "
              f"ratio {one[key] / max(two[key], 1e-9):.2f}x")
    print(f"CPU per second of aligning: 1 worker {one['cpu_per_align_second']}, 2 workers {two['cpu_per_align_second']} "
          "(below ~0.95 means other processes took the cores)")
    if two["cpu_per_align_second"] < 0.95:
        # an estimate, not a measurement: the start-up-excluded ratio had each worker had a core to itself
        share = one["cpu_per_align_second"] / max(two["cpu_per_align_second"], 1e-9)
        print(f"estimate with a free core per worker (start-up excluded ratio x {share:.2f} CPU share): "
              f"{one['shards_wall_seconds'] / max(two['shards_wall_seconds'], 1e-9) * share:.2f}x")


def conventions(n: int) -> None:
    """pocketsphinx's frames read as starting at 10i ms (before) and as centred (now), on espeak truth."""
    import random

    import librosa
    import numpy as np

    from aligners.espeak import espeak
    from synthetic import demo_text
    from synthetic.tts import tts_words

    voices = "en-us,en-us+f3,en-us+m3,en-us+f2,en,en-gb-x-rp+m2,en-gb-scotland,en-029".split(",")
    rng, engine, aligner = random.Random(0), espeak(), get_aligner("pocketsphinx")
    errors: dict[str, list] = {"frame starts": [], "frame centres": []}
    signed: dict[str, list] = {k: [] for k in errors}
    for i in range(n):
        _, sentence = demo_text.speech_sentence(rng, 0.5, 0.1)
        audio, spoken = engine.synthesize(sentence, voice=voices[i % len(voices)], rate=rng.randint(140, 190), seed=i)
        truth = tts_words(spoken)
        hyp = aligner.align(librosa.resample(audio, orig_sr=engine.sample_rate, target_sr=16000),
                            normalize(sentence).split())
        for name, shift in (("frame starts", -aligner.frame_offset), ("frame centres", 0.0)):
            moved = [WordSpan(w.word, w.start + shift, w.end + shift) for w in hyp]
            errors[name] += [e[0] for e in matched_word_errors(moved, truth)]
            signed[name] += [(h.start - t.start, h.end - t.end) for h, t in zip(moved, truth)
                             if h.word == t.word and abs(h.start - t.start) < 0.05 and abs(h.end - t.end) < 0.05]
    print(f"\n== time convention ({n} espeak utterances, truth from espeak's phoneme events)")
    for name in errors:
        e, d = np.array(errors[name]) * 1000, np.array(signed[name]) * 1000
        print(f"{name}: mean {e.mean():.2f} ms, median {np.median(e):.2f} ms; signed (words within 50 ms) "
              f"start {d[:, 0].mean():+.2f} ms, end {d[:, 1].mean():+.2f} ms")


def mfa_agreement(aligner_name: str, phones: bool = False) -> None:
    print(f"\n== agreement with MFA on real speech ({SAMPLE})")
    aligner = get_aligner(aligner_name, **({"phones": True} if phones else {}))
    pairs, audio_s, align_s, phone_errors, compared, both = [], 0.0, 0.0, [], 0, 0
    for grid in sorted(SAMPLE.glob("*.mfa.TextGrid")):
        name = grid.name.removesuffix(".mfa.TextGrid")
        reference, reference_phones = read_textgrid(grid)  # compared without case and brackets (`[adif]` is `adif`)
        audio = load_audio(grid.with_name(name + ".wav"), sample_rate=aligner.sample_rate)
        words = normalize(grid.with_name(name + ".lab").read_text()).split()
        passes = dict(getattr(aligner, "passes", {}))
        started = time.perf_counter()
        try:
            spans = aligner.align(audio, words)
        except Exception as exc:  # noqa: BLE001 - a bench reports failures and goes on
            print(f"{name}: FAILED: {exc}")
            continue
        took = time.perf_counter() - started
        seconds = len(audio) / aligner.sample_rate
        audio_s, align_s = audio_s + seconds, align_s + took
        pairs.append((spans, reference))
        if phones:
            e, c, b = matched_phone_errors(spans, aligner.placed_phones, reference, reference_phones)
            phone_errors, compared, both = phone_errors + e, compared + c, both + b
        rep = boundary_report([(spans, reference)])
        now = getattr(aligner, "passes", {})
        used = {k: now[k] - passes.get(k, 0) for k in now if now[k] != passes.get(k, 0)}
        print(f"{name}: {seconds:.1f} s, {len(spans)}/{len(words)} words, rtf {took / seconds:.4f}, "
              f"mean {rep['boundary_error_mean_ms']} ms, median {rep['boundary_error_median_ms']} ms, passes {used}")
    if pairs:
        rep = boundary_report(pairs)
        print(f"all: mean {rep['boundary_error_mean_ms']} ms, median {rep['boundary_error_median_ms']} ms, "
              f"within 10/25/50/100 ms {rep['within_10ms']}/{rep['within_25ms']}/{rep['within_50ms']}/{rep['within_100ms']}, rtf {align_s / audio_s:.4f}")
    if phones:
        print(f"phones against MFA's phone tier: {compared} of {both} words with phones on both sides compared; "
              f"{error_summary(phone_errors)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utterances", type=int, default=200, help="demo utterances (the throughput workload too)")
    parser.add_argument("--aligner", default="pocketsphinx")
    parser.add_argument("--shards", type=int, default=32,
                        help="about this many shards (tasks): more even out the workers' last tasks")
    parser.add_argument("--conventions", type=int, default=80, help="utterances for the time-convention check (0: skip)")
    parser.add_argument("--unexplained-speech", type=float, default=1.0,
                        help="the align stage's option (0: no voice-activity check, the speed before issue 20)")
    parser.add_argument("--phones", action="store_true", help="pocketsphinx: place phones too (score them against "
                        "espeak's phoneme events)")
    args = parser.parse_args()
    if args.conventions and args.aligner == "pocketsphinx":
        conventions(args.conventions)
    demo_and_throughput(args.utterances, args.aligner, args.shards, args.unexplained_speech, args.phones)
    if SAMPLE.is_dir():
        mfa_agreement(args.aligner, args.phones)
    return 0


if __name__ == "__main__":
    sys.exit(main())
