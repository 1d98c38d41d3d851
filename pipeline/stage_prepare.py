"""`jstip prepare`: corpus + domain text -> utterance and text manifests, with raw and normalised text.

Every pair found is checked (audio readable, stretch inside the file, transcript not
empty after normalisation, id unique); what fails becomes a `Rejected` record with its
reason instead of stopping the run. Splits are drawn from a hash of the utterance id, so
they never change when the corpus grows.
"""
from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from tqdm import tqdm

from manifests.audio import audio_info
from manifests.errors import AudioError, JstipError
from manifests.io import write_metrics, write_records
from manifests.schema import Rejected, Text, Utterance

from .importers import FORMATS, RawUtterance, iter_corpus, iter_text_lines
from .textnorm import normalize


@dataclass
class PrepareConfig:
    corpus: str = field(default="data/demo/corpus", metadata={"help": "corpus directory or CSV/JSONL list"})
    format: str = field(default="auto", metadata={"help": f"corpus layout: {', '.join(FORMATS)}"})
    corpus_name: str = field(default="", metadata={"help": "name stored in the `corpus` column (default: folder name)"})
    domain_text: str = field(default="", metadata={"help": "comma-separated text files, one sentence per line"})
    test_fraction: float = field(default=0.1, metadata={"help": "share of utterances held out as split `test`"})
    utterances: str = field(default="data/utterances.parquet", metadata={"help": "output utterance manifest"})
    texts: str = field(default="data/texts.parquet", metadata={"help": "output text manifest"})
    rejected: str = field(default="data/prepare_rejected.parquet", metadata={"help": "inputs that were not usable, with why"})
    metrics: str = field(default="metrics/prepare.json", metadata={"help": "where to write the counts"})


def split_of(utt_id: str, test_fraction: float) -> str:
    """`test` for a stable `test_fraction` share of ids, else `train`."""
    bucket = int(hashlib.sha1(utt_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test_fraction else "train"


def build_utterances(raws: Iterable[RawUtterance], corpus: str, test_fraction: float) -> Iterator[Utterance | Rejected]:
    """Checked utterances, or a `Rejected` record for each pair that cannot be used."""
    seen: set[str] = set()
    for raw in raws:
        problem = raw.problem or _problem(raw, seen)
        if problem:
            yield Rejected("prepare", raw.utt_id, problem)
            continue
        try:
            rate, length = audio_info(raw.audio_path)
        except AudioError as exc:
            yield Rejected("prepare", raw.utt_id, str(exc))
            continue
        duration = length - raw.offset if raw.duration is None else raw.duration
        if raw.offset < 0 or duration <= 0 or raw.offset + duration > length + 1e-3:
            yield Rejected(
                "prepare", raw.utt_id,
                f"stretch {raw.offset:.3f}s+{duration:.3f}s lies outside {raw.audio_path} ({length:.3f}s)",
            )
            continue
        seen.add(raw.utt_id)
        yield Utterance(
            raw.utt_id, raw.audio_path, float(raw.offset), float(duration), rate, raw.speaker, raw.text,
            normalize(raw.text), corpus, split_of(raw.utt_id, test_fraction),
        )


def _problem(raw: RawUtterance, seen: set[str]) -> str:
    if raw.utt_id in seen:
        return f"duplicate utt_id {raw.utt_id!r}: only the first is kept"
    if not raw.text.strip():
        return "empty transcript"
    if not normalize(raw.text):
        return f"transcript {raw.text!r} has no words after normalisation"
    return ""


def build_texts(paths: Iterable[str]) -> Iterator[Text | Rejected]:
    """Domain text records from text files; lines with no words left are rejected."""
    for path in paths:
        source = Path(path).name
        for text_id, line in iter_text_lines(path):
            norm = normalize(line)
            yield Text(text_id, line, norm, source) if norm else Rejected("prepare", text_id, "no words after normalisation")


def run(cfg: PrepareConfig) -> dict:
    if not 0.0 <= cfg.test_fraction < 1.0:
        raise JstipError(f"--test-fraction must lie in [0, 1), got {cfg.test_fraction}")
    started = time.perf_counter()
    corpus = cfg.corpus_name or Path(cfg.corpus).name
    raws = tqdm(iter_corpus(cfg.corpus, cfg.format), desc="prepare: checking audio", unit="utt")
    utterances, rejected = _partition(build_utterances(raws, corpus, cfg.test_fraction))
    if not utterances:
        raise JstipError(f"no usable utterance found in {cfg.corpus} ({len(rejected)} rejected, see {cfg.rejected})")
    domain_files = [p.strip() for p in cfg.domain_text.split(",") if p.strip()]
    texts, rejected_texts = _partition(build_texts(domain_files))
    write_records(utterances, Utterance, cfg.utterances)
    write_records(texts, Text, cfg.texts)
    write_records(rejected + rejected_texts, Rejected, cfg.rejected)
    splits = Counter(u.split for u in utterances)
    metrics = {
        "utterances": len(utterances),
        "train_utterances": splits.get("train", 0),
        "test_utterances": splits.get("test", 0),
        "audio_hours": round(sum(u.duration for u in utterances) / 3600, 4),
        "speakers": len({u.speaker for u in utterances}),
        "texts": len(texts),
        "rejected": len(rejected) + len(rejected_texts),
        "rejected_by_reason": dict(Counter(_reason_kind(r.reason) for r in rejected + rejected_texts)),
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    write_metrics(metrics, cfg.metrics)
    return metrics


def _partition(items: Iterable) -> tuple[list, list[Rejected]]:
    kept, rejected = [], []
    for item in items:
        (rejected if isinstance(item, Rejected) else kept).append(item)
    return kept, rejected


def _reason_kind(reason: str) -> str:
    """A short class of a reason for counting (the full reason stays in the rejected manifest)."""
    return " ".join(reason.split(":")[0].split()[:2])
