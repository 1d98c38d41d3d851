"""Long-form alignment of hour-long recordings (on demand, not a test): words placed, accuracy, time, peak memory.

    python bench/longform_bench.py [--minutes 60 10] [--layouts sparse dense] [--old]

For each layout and length, an espeak-ng recording is synthesized into a temporary WAV with its
true word times (in a separate process, so that building it does not count), then one process
aligns it as `jstip align` does (`Aligner.align_one` on an utterance pointing at the file) under
`/usr/bin/time -v`, which gives its peak resident memory. Layouts: `sparse`, one sentence a
minute in faint noise (the issue's "speech once a minute": 14 of 584 words placed before);
`dense`, sentences 0.3-1.5 s apart (before: a sentence's first word now and then ~1.1 s early,
inside the pause). Reported: words placed, mean and median onset error against the truth,
sentences whose first word starts more than 0.3 s early, real-time factor, peak RSS. Comparing
the lengths shows whether memory is bounded. `--old` also runs the pre-VAD path (windows over
the whole array) on the shortest length, for the ratio.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SENTENCES = 40  # distinct sentences synthesized, then reused


def generate(path: Path, minutes: float, layout: str, seed: int = 0) -> None:
    """Write `path`.wav and `path`.json (words, true starts, each sentence's first word index)."""
    import librosa
    import numpy as np

    from aligners.espeak import espeak
    from manifests.audio import write_audio
    from synthetic import demo_text
    from corpora.textnorm import normalize

    rng, py = np.random.default_rng(seed), random.Random(seed)
    engine = espeak()
    pool = []
    for i in range(SENTENCES):
        _, sentence = demo_text.speech_sentence(py, 0.5, 0.1)
        audio, spoken = engine.synthesize(sentence, voice="en-us", rate=py.randint(140, 190), seed=i)
        pool.append((librosa.resample(audio, orig_sr=engine.sample_rate, target_sr=16000), spoken, sentence))
    parts, words, starts, firsts, t, total = [], [], [], [], 0.0, minutes * 60
    while True:
        audio, spoken, sentence = pool[py.randrange(len(pool))]
        gap = 60.0 - len(audio) / 16000 if layout == "sparse" else py.uniform(0.3, 1.5)
        if t + len(audio) / 16000 + gap > total:
            break
        normalised = [normalize(w.text).split() for w in spoken]
        if sum(map(len, normalised)) != len(normalize(sentence).split()):
            continue  # a token espeak spoke as several words: its time is an estimate, skip it
        firsts.append((len(words), t + spoken[0].start))
        for w, pieces in zip(spoken, normalised):
            words += pieces
            starts += [t + w.start] * len(pieces)
        pause = np.zeros(int(gap * 16000), np.float32)
        parts += [audio, pause]
        t += (len(audio) + len(pause)) / 16000  # whole samples: a float gap would drift the truth
    audio = np.concatenate(parts)
    audio += 0.002 * rng.standard_normal(len(audio)).astype(np.float32)
    write_audio(audio, path.with_suffix(".wav"), 16000)
    path.with_suffix(".json").write_text(json.dumps({"words": words, "starts": starts, "firsts": firsts,
                                                     "seconds": len(audio) / 16000}))


def align(path: Path, old: bool) -> None:
    """Align the recording as the stage does and print the figures as JSON."""
    import numpy as np

    from aligners import get_aligner
    from manifests.audio import load_audio
    from manifests.schema import Utterance, WordSpan

    truth = json.loads(path.with_suffix(".json").read_text())
    utt = Utterance("long", str(path.with_suffix(".wav")), 0.0, truth["seconds"], 16000, "s", "",
                    " ".join(truth["words"]), "bench", "train")
    aligner = get_aligner("pocketsphinx")
    started = time.perf_counter()
    if old:  # the path before the VAD: the whole array in memory, fixed windows
        audio = load_audio(utt.audio_path, 0.0, utt.duration)
        try:
            spans: list[WordSpan] = aligner._align_pieces(audio, aligner._checked(truth["words"], utt.duration))
            reason = ""
        except Exception as exc:  # noqa: BLE001 - reported
            spans, reason = [], str(exc)
    else:
        record = aligner.align_one(utt)
        spans, reason = list(record.words), record.reason
    seconds = time.perf_counter() - started
    out = {"words": len(truth["words"]), "placed": len(spans), "reason": reason[:200],
           "rtf": round(seconds / truth["seconds"], 4), "audio_minutes": round(truth["seconds"] / 60, 1)}
    if spans:
        onset = np.abs(np.array([s.start for s in spans]) - np.array(truth["starts"][: len(spans)])) * 1000
        out.update(onset_mean_ms=round(float(onset.mean()), 1), onset_median_ms=round(float(np.median(onset)), 1))
        early = [1 for i, start in truth["firsts"] if i < len(spans) and spans[i].start < start - 0.3]
        out.update(sentences=len(truth["firsts"]), first_word_early=len(early))
    print(json.dumps(out))


def measured(path: Path, old: bool) -> dict:
    """Run `align` in a fresh process under /usr/bin/time -v; its JSON plus peak RSS in MiB."""
    cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "_align", str(path)] + (["--old"] if old else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if proc.returncode != 0:
        raise SystemExit(f"align failed:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    result["peak_rss_mib"] = round(int(rss.group(1)) / 1024) if rss else None
    return result


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "_align":
        align(Path(sys.argv[2]), "--old" in sys.argv)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[60.0, 10.0])
    parser.add_argument("--layouts", nargs="+", default=["sparse", "dense"], choices=["sparse", "dense"])
    parser.add_argument("--old", action="store_true", help="also run the pre-VAD path on the shortest length")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for layout in args.layouts:
            for minutes in args.minutes:
                path = Path(tmp) / f"{layout}-{minutes:g}"
                subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                                f"import longform_bench as b; from pathlib import Path; "
                                f"b.generate(Path({str(path)!r}), {minutes}, {layout!r})"],
                               check=True, cwd=Path(__file__).resolve().parents[1])
                print(f"{layout} {minutes:g} min (VAD pieces):", json.dumps(measured(path, False)), flush=True)
                if args.old and minutes == min(args.minutes):
                    print(f"{layout} {minutes:g} min (old: windows over the whole array):",
                          json.dumps(measured(path, True)), flush=True)
                path.with_suffix(".wav").unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
