"""A development set for choosing decoding settings (E11): domain-text sentences spoken by training voices.

    python dev_set.py WORLD_DIR PARAMS OUT [--n 150] [--seed 18]

Why this set: the test set's sentences (held-out dictation templates) and voices (unseen) must not
choose anything. Domain-text sentences (`domain_text.txt`, the paper's PubMed) are medical sentences
that no ASR-only model sees, in other frames than the test's; the world's *training* voices speak them
(`respeak.py`: 130-200 wpm, half with noise, as the ASR training speech). It is a harder set than the
test (the abstract style's words are rarer in the ASR speech), so it ranks decoders, it does not
predict the test's WER. Writes OUT/dev_utterances.parquet (an Utterance manifest, split `train`, as
`prepare` labels a list corpus) beside respeak.py's OUT/audio and OUT/utterances.parquet.
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

import polars as pl  # noqa: E402

from corpora.textnorm import normalize  # noqa: E402
from manifests.io import write_records  # noqa: E402
from manifests.schema import Utterance  # noqa: E402

import respeak  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("world")
    ap.add_argument("params")
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--seed", type=int, default=18)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [line.strip() for line in open(Path(args.world) / "domain_text.txt") if line.strip()]
    random.Random(args.seed).shuffle(lines)
    pl.DataFrame({"utt_id": [f"dv-{i:04d}" for i in range(args.n)], "text": lines[: args.n],
                  "speaker": [""] * args.n}).write_parquet(out / "dev_src.parquet")
    respeak.main([str(out / "dev_src.parquet"), "--voices", f"train:{args.params}", "--n", "0", "--min-rate", "130",
                  "--max-rate", "200", "--noise-share", "0.5", "--seed", "7", "--out", str(out)])
    rows = pl.read_parquet(out / "utterances.parquet").iter_rows(named=True)
    records = [Utterance(r["utt_id"], r["audio_path"], 0.0, r["duration"], 16000, r["voice"], r["text"],
                         normalize(r["text"]), "dev", "train") for r in rows]
    write_records(records, Utterance, out / "dev_utterances.parquet")
    print(f"{len(records)} utterances -> {out / 'dev_utterances.parquet'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
