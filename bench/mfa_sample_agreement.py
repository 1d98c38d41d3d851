"""Agreement of an aligner with Montreal Forced Aligner on real speech (on demand, not a test).

    .venv/bin/python bench/mfa_sample_agreement.py [SAMPLE_DIR] [--aligner pocketsphinx]

SAMPLE_DIR holds `NAME.wav` + `NAME.lab` + `NAME.mfa.TextGrid` (MFA's output, tier `words`);
the default is the team's `../shared/data/mfa-sample`. MFA is itself an aligner, so this
reports agreement, not accuracy: per recording the word boundary error against MFA, the
real-time factor, or the reason the aligner failed.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aligners import AlignmentFailed, get_aligner  # noqa: E402
from aligners.quality import boundary_report  # noqa: E402
from aligners.textgrid import read_textgrid  # noqa: E402
from manifests.audio import load_audio  # noqa: E402
from corpora.textnorm import normalize  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = next((p / "shared/data/mfa-sample" for p in Path(__file__).resolve().parents[1:4]
                    if (p / "shared/data/mfa-sample").is_dir()), Path("shared/data/mfa-sample"))
    parser.add_argument("sample_dir", nargs="?", default=str(default))
    parser.add_argument("--aligner", default="pocketsphinx")
    args = parser.parse_args()
    grids = sorted(Path(args.sample_dir).glob("*.mfa.TextGrid"))
    if not grids:
        print(f"no *.mfa.TextGrid in {args.sample_dir}", file=sys.stderr)
        return 2
    aligner = get_aligner(args.aligner)
    for grid in grids:
        name = grid.name.removesuffix(".mfa.TextGrid")
        # `<VOCNOISE>`, `[adif]`: the normaliser drops bracketed annotations, so these stay unmatched
        reference = read_textgrid(grid)[0]
        audio = load_audio(grid.with_name(name + ".wav"), sample_rate=aligner.sample_rate)
        words = normalize(grid.with_name(name + ".lab").read_text()).split()
        seconds = len(audio) / aligner.sample_rate
        started = time.perf_counter()
        try:
            spans = aligner.align(audio, words)
        except AlignmentFailed as exc:
            print(f"{name}: {seconds:.1f}s FAILED: {exc}")
            continue
        rtf = (time.perf_counter() - started) / seconds
        report = boundary_report([(spans, reference)])
        print(f"{name}: {seconds:.1f}s rtf {rtf:.4f} "
              + " ".join(f"{k}={v}" for k, v in report.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
