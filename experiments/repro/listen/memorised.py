"""How many of a run's test hypotheses are verbatim ASR training sentences (the LM writing what it memorised
instead of what it hears; no test sentence is a training sentence, by the world's design):

    python memorised.py data/world/asr_train.jsonl runs/E6_easy_enc700_s500 [RUN …]   # in W

Sentences compared lower-cased, punctuation dropped. Also the WER (jiwer, on the same normalised words)
of the test's general sentences (no entity: `data/world/test_entities.jsonl`; their templates are shared
with the training speech) apart from its medical ones (held-out dictation templates), and which kind of
training sentence each kind of test sentence recalls (medical = names an entity of `entities.jsonl` or a dose).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import jiwer
import polars as pl


def words(text: str | None) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", (text or "").lower()).split())


def main(argv: list[str]) -> int:
    train = {words(json.loads(line)["text"]) for line in Path(argv[0]).read_text().splitlines() if line.strip()}
    ents = Path(argv[0]).with_name("test_entities.jsonl")
    general = {r["utt_id"] for r in map(json.loads, ents.read_text().splitlines()) if not r["entities"]}
    names = [json.loads(line)["name"].lower() for line in ents.with_name("entities.jsonl").read_text().splitlines()
             if line.strip()]
    medical = {t for t in train if "milligrams" in t or any(re.search(rf"\b{re.escape(n)}\b", t) for n in names)}
    for run in argv[1:]:
        hyp = pl.read_parquet(Path(run) / "hyp.parquet")
        seen = sum(words(h) in train for h in hyp["hypothesis"])
        refs = sum(words(r) in train for r in hyp["reference"])
        print(f"{run}: {seen}/{hyp.height} hypotheses are training sentences ({seen / hyp.height:.0%}; references: {refs})")
        for name, part in (("general", hyp.filter(pl.col("utt_id").is_in(general))),
                           ("medical", hyp.filter(~pl.col("utt_id").is_in(general)))):
            wer = jiwer.wer([words(r) for r in part["reference"]], [words(h) or "<empty>" for h in part["hypothesis"]])
            print(f"    {name} test sentences: {part.height}, WER {wer:.3f}")
            recalled = [words(h) for h in part["hypothesis"]]
            print(f"        hypotheses that are a medical training sentence {sum(h in medical for h in recalled)}, "
                  f"a general one {sum(h in train and h not in medical for h in recalled)}, "
                  f"none {sum(h not in train for h in recalled)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
