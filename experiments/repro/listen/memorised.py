"""How many of a run's test hypotheses are verbatim ASR training sentences (the LM writing what it memorised
instead of what it hears; no test sentence is a training sentence, by the world's design):

    python memorised.py data/world/asr_train.jsonl runs/E6_easy_enc700_s500 [RUN …]   # in W

Sentences compared lower-cased, punctuation dropped.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import polars as pl


def words(text: str | None) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", (text or "").lower()).split())


def main(argv: list[str]) -> int:
    train = {words(json.loads(line)["text"]) for line in Path(argv[0]).read_text().splitlines() if line.strip()}
    for run in argv[1:]:
        hyp = pl.read_parquet(Path(run) / "hyp.parquet")
        seen = sum(words(h) in train for h in hyp["hypothesis"])
        refs = sum(words(r) in train for r in hyp["reference"])
        print(f"{run}: {seen}/{hyp.height} hypotheses are training sentences ({seen / hyp.height:.0%}; references: {refs})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
