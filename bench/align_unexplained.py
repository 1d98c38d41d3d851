"""Transcripts that miss spoken words (on demand, not a test): detection, false flags, cost.

    python bench/align_unexplained.py [--recordings 100] [--seed 0]

Each recording has three sentences in three espeak-ng voices at 150-200 wpm, with pauses of
0.3-1.0 s between them and a faint noise floor. Each is aligned twice: against its complete
transcript, where a flag is false, and against the transcript with one sentence left out (first,
middle or last in turn), where a flag is a detection. The check's cost is the time of
`PocketsphinxAligner` with the coverage check on over its time with the check off
(`CoverageSettings(min_seconds=0)`), on the same complete transcripts in the same run.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from aligners.coverage import CoverageSettings  # noqa: E402
from aligners.pocketsphinx import PocketsphinxAligner  # noqa: E402
from corpora.textnorm import normalize  # noqa: E402
from tests.align_speech import FIRST_WORDS, RESTS, VOICES, speak  # noqa: E402

MORE = ("The patient was given atorvastatin for hypertension yesterday.", "She reported mild dizziness after the second dose.",
        "Her blood pressure improved within two weeks of treatment.", "The physician recommended a follow up visit next month.",
        "Nobody answered the phone at the clinic on saturday.")


def recording(py: random.Random, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Three sentences with pauses; the audio and each sentence's transcript."""
    pool = list(MORE) + [f"{py.choice(FIRST_WORDS)} {r}." for r in RESTS]
    sentences = py.sample(pool, 3)
    parts = [np.zeros(int(py.uniform(0.1, 0.3) * 16000), np.float32)]
    for k, sentence in enumerate(sentences):
        audio, _ = speak(sentence, py.choice(VOICES), py.randint(150, 200), seed=k)
        parts += [audio, np.zeros(int(py.uniform(0.3, 1.0) * 16000), np.float32)]
    audio = np.concatenate(parts)
    return audio + py.choice((0.001, 0.002, 0.004)) * rng.standard_normal(len(audio)).astype(np.float32), sentences


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recordings", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-v", action="store_true", help="print each false flag")
    args = parser.parse_args()
    py, rng = random.Random(args.seed), np.random.default_rng(args.seed)
    on, off = PocketsphinxAligner(), PocketsphinxAligner(coverage=CoverageSettings(min_seconds=0))
    false_flags = detected = failed = 0
    t_on = t_off = seconds = 0.0
    for n in range(args.recordings):
        audio, sentences = recording(py, rng)
        complete = " ".join(normalize(s) for s in sentences).split()
        started = time.perf_counter()
        off.align(audio, complete)
        t_off += time.perf_counter() - started
        started = time.perf_counter()
        on.align(audio, complete)
        t_on += time.perf_counter() - started
        seconds += len(audio) / 16000
        false_flags += bool(on.notes)
        if on.notes and args.v:
            print("false flag:", complete, on.notes)
        missing = " ".join(normalize(s) for k, s in enumerate(sentences) if k != n % 3).split()
        try:
            on.align(audio, missing)
            detected += any(c == "unexplained_speech" for c, _ in on.notes)
        except Exception:  # noqa: BLE001 - a failed record is not an ok one: counted as caught
            failed += 1
    n = args.recordings
    print(f"{n} recordings, {seconds / n:.1f} s each")
    print(f"complete transcripts flagged (false flags): {false_flags}/{n} = {false_flags / n:.1%}")
    print(f"one sentence missing: flagged {detected}/{n}, failed {failed}/{n}; caught {(detected + failed) / n:.1%}")
    print(f"cost: aligner time with the check / without = {t_on / t_off:.2f}x "
          f"(real-time factor {t_on / seconds:.4f} vs {t_off / seconds:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
