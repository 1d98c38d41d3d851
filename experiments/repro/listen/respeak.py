"""Speak the first N sentences of a manifest again with other voices, as a manifest for ctc_greedy.py:

    python respeak.py data/test_utterances.parquet --voices en-us+m1,en-us+f1 --out respoken/test_trainvoices

Why: greedy CTC is worse on the test speech (held-out sentences, unseen voices) than on the training
speech; the held-out sentences spoken by *training* voices tell which of the two the encoder fails on.
Clean speech (no noise), each voice in turn at `--rate` words per minute, 0.1 s of silence either side.
Writes OUT/audio/*.flac and OUT/utterances.parquet (audio_path, offset, duration, text).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import polars as pl  # noqa: E402

from manifests.audio import write_audio  # noqa: E402
from synthetic.world.speakers import Speaker  # noqa: E402
from synthetic.world.speech import SpeechItem, synthesize  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("manifest")
    ap.add_argument("--voices", required=True, help="espeak-ng voices, comma-separated (accent+variant)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--rate", type=int, default=160)
    ap.add_argument("--sample-rate", type=int, default=16000)
    args = ap.parse_args(argv)
    voices = [v.strip() for v in args.voices.split(",") if v.strip()]
    out = Path(args.out)
    rows = []
    for k, row in enumerate(pl.read_parquet(args.manifest).head(args.n).iter_rows(named=True)):
        voice = voices[k % len(voices)]
        item = SpeechItem(f"re-{k:04d}", row["text"], Speaker(voice.replace("+", "_"), voice, args.rate, "train"),
                          args.rate, 0.1, 0.1, None, k)
        audio, _ = synthesize(item, args.sample_rate, words=False)
        path = write_audio(audio, out / "audio" / f"{item.utt_id}.flac", args.sample_rate)
        rows.append({"audio_path": str(path), "offset": 0.0, "duration": len(audio) / args.sample_rate,
                     "text": row["text"], "voice": voice})
    pl.DataFrame(rows).write_parquet(out / "utterances.parquet")
    print(f"{len(rows)} utterances, voices {', '.join(voices)} -> {out / 'utterances.parquet'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
