"""Short first words after leading silence (on demand, not a test): aligned share and boundary error.

    python bench/align_first_word.py [--utterances 200] [--seed 0] [--code DIR]

The utterances are `tests/align_speech.first_word_set`: a function word ("the", "a", "in", ...)
after 0.1-0.3 s of silence, 8 voices, 150-240 words per minute, a faint room-noise floor, and the
first word spoken faintly in 3 of 5 (gain 0.3, 0.1, 0.05). `--code DIR` aligns with the `aligners`
package found in DIR instead (e.g. an older commit's, from `git archive REV aligners | tar -x -C DIR`),
so the same utterances measure before and after. Printed: aligned, failures by reason, words noted
`doubtful`, word boundary error (mean, median, share within 10/25/50/100 ms), first-word error.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utterances", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--code", default="", help="directory holding the aligners package to measure")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.code:
        sys.path.insert(0, str(Path(args.code).resolve()))
    import numpy as np

    import aligners
    from aligners import get_aligner
    from aligners.quality import error_summary, matched_word_errors
    from tests.align_speech import first_word_set

    print(f"aligners from {Path(aligners.__file__).parent}")
    data = first_word_set(args.utterances, args.seed)
    aligner = get_aligner("pocketsphinx")
    failures, errors, first, doubtful, seconds = Counter(), [], [], 0, 0.0
    started = time.perf_counter()
    for item in data:
        try:
            spans = aligner.align(item.audio, item.text.split())
        except Exception as exc:  # noqa: BLE001 - counted and reported
            failures[str(exc).split(",")[0][:60]] += 1
            print(f"FAILED (first word gain {item.first_gain}, lead {item.lead}s): {item.text}: {exc}")
            continue
        doubtful += bool(getattr(aligner, "notes", []))
        errors += matched_word_errors(spans, item.truth)
        first.append(abs(spans[0].start - item.truth[0].start) * 1000)
        seconds += len(item.audio) / 16000
    took = time.perf_counter() - started
    summary = error_summary(errors)
    print(f"aligned {len(data) - sum(failures.values())}/{len(data)}; failures {dict(failures)}; noted doubtful {doubtful}")
    print(f"word boundary error: {summary}")
    print(f"first word onset error: mean {np.mean(first):.1f} ms, median {np.median(first):.1f} ms")
    print(f"time {took:.1f} s for {seconds:.0f} s of audio (real-time factor {took / max(seconds, 1e-9):.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
