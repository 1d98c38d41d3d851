"""`jstip interleave`: aligned utterances + domain text -> interleaved training samples (shards).

Each aligned training utterance yields an `asr` sample and one interleaved sample: word
level with probability `word_probability`, else segment level (JSTIP's "mixed"); domain
texts yield `text` samples, `text_ratio` of them per speech sample. Held-out utterances and
failed alignments yield nothing, and are counted in the metrics with why.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

from interleave.builders import asr_sample, interleaved_sample, segment_runs, text_sample, word_runs
from interleave.sampling import poisson_speech_mask, rng_for
from interleave.spans import segment_spans, split_at_longest_pause
from manifests.errors import JstipError
from manifests.io import iter_records, read_records, write_metrics, write_shards
from manifests.schema import ALIGN_OK, SAMPLE_KINDS, SPEECH, Alignment, Sample, Text, Utterance


@dataclass
class InterleaveConfig:
    utterances: str = field(default="data/utterances.parquet", metadata={"help": "utterance manifest"})
    alignments: str = field(default="data/alignments", metadata={"help": "alignment shards from `align`"})
    texts: str = field(default="data/texts.parquet", metadata={"help": "domain text manifest ('' for none)"})
    out: str = field(default="data/samples", metadata={"help": "output directory of sample shards"})
    split: str = field(default="train", metadata={"help": "which utterance split becomes samples"})
    kinds: str = field(default=",".join(SAMPLE_KINDS), metadata={"help": f"comma-separated kinds among {', '.join(SAMPLE_KINDS)}"})
    word_probability: float = field(default=0.5, metadata={"help": "chance an interleaved sample is word level (else segment)"})
    poisson_lambda: float = field(default=3.0, metadata={"help": "mean length in words of a word-level speech span (λ)"})
    speech_fraction: float = field(default=0.5, metadata={"help": "target share of words given as speech (η)"})
    max_pause: float = field(default=0.4, metadata={"help": "a pause at least this long (s) ends a segment"})
    min_words: int = field(default=2, metadata={"help": "fewest words in a segment"})
    max_segment_duration: float = field(default=10.0, metadata={"help": "longest segment in seconds"})
    text_ratio: float = field(default=0.25, metadata={"help": "text samples per speech sample (capped by the texts at hand)"})
    seed: int = field(default=0, metadata={"help": "global seed; each sample's draws depend on it and its id only"})
    shard_size: int = field(default=256, metadata={"help": "samples per Parquet shard"})
    metrics: str = field(default="metrics/interleave.json", metadata={"help": "where to write the counts"})


def parse_kinds(kinds: str) -> list[str]:
    chosen = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = [k for k in chosen if k not in SAMPLE_KINDS]
    if unknown or not chosen:
        raise JstipError(f"unknown sample kinds {unknown or kinds!r}; choose among {', '.join(SAMPLE_KINDS)}")
    return chosen


def utterance_samples(utt: Utterance, alignment: Alignment, kinds: list[str], cfg: InterleaveConfig) -> Iterator[Sample]:
    """The samples one aligned utterance yields under `cfg`."""
    if "asr" in kinds:
        yield asr_sample(utt)
    words = list(alignment.words)
    levels = [k for k in ("interleave_word", "interleave_segment") if k in kinds]
    if not levels or len(words) < 2:
        return
    rng = rng_for(cfg.seed, utt.utt_id)
    level = levels[0] if len(levels) == 1 else ("interleave_word" if rng.random() < cfg.word_probability else "interleave_segment")
    if level == "interleave_word":
        mask = poisson_speech_mask(len(words), cfg.poisson_lambda, cfg.speech_fraction, rng)
        yield interleaved_sample(utt, level, word_runs(words, mask))
    else:
        segments = segment_spans(words, cfg.max_pause, cfg.min_words, cfg.max_segment_duration)
        if len(segments) < 2:
            segments = split_at_longest_pause(words)
        yield interleaved_sample(utt, level, segment_runs(segments))


def build_samples(
    utterances: list[Utterance], alignments: dict[str, Alignment], texts: list[Text], cfg: InterleaveConfig, skipped: Counter
) -> Iterator[Sample]:
    """All samples, speech-derived first then text; `skipped` counts what yields nothing, by reason."""
    kinds = parse_kinds(cfg.kinds)
    n_speech = 0
    for utt in utterances:
        if utt.split != cfg.split:
            skipped[f"split {utt.split}"] += 1
            continue
        alignment = alignments.get(utt.utt_id)
        if alignment is None:
            skipped["no alignment record"] += 1
            continue
        if alignment.status != ALIGN_OK:
            skipped["alignment failed"] += 1
            continue
        for sample in utterance_samples(utt, alignment, kinds, cfg):
            n_speech += 1
            yield sample
    if "text" in kinds:
        n_text = min(len(texts), round(n_speech * cfg.text_ratio)) if n_speech else len(texts)
        for text in texts[:n_text]:
            yield text_sample(text)
        if len(texts) > n_text:
            skipped["text beyond text_ratio"] += len(texts) - n_text


def run(cfg: InterleaveConfig) -> dict:
    if not 0.0 < cfg.speech_fraction < 1.0:
        raise JstipError(f"--speech-fraction must lie strictly between 0 and 1, got {cfg.speech_fraction}")
    if cfg.poisson_lambda <= 0:
        raise JstipError(f"--poisson-lambda must be positive, got {cfg.poisson_lambda}")
    started = time.perf_counter()
    utterances = read_records(cfg.utterances, Utterance)
    alignments = {a.utt_id: a for a in iter_records(cfg.alignments, Alignment)}
    texts = read_records(cfg.texts, Text) if cfg.texts else []
    skipped: Counter = Counter()
    samples = list(build_samples(utterances, alignments, texts, cfg, skipped))
    if not samples:
        raise JstipError(f"no samples were built ({dict(skipped)}); check the alignments and --split {cfg.split!r}")
    write_shards(samples, Sample, cfg.out, cfg.shard_size)
    metrics = _report(samples, skipped, time.perf_counter() - started)
    write_metrics(metrics, cfg.metrics)
    return metrics


def _report(samples: list[Sample], skipped: Counter, wall: float) -> dict:
    speech_words = sum(s.n_speech_words for s in samples)
    text_words = sum(s.n_text_words for s in samples)
    speech_seconds = sum(sp.end - sp.start for s in samples for sp in s.spans if sp.modality == SPEECH)
    return {
        "samples": len(samples),
        "samples_by_kind": dict(sorted(Counter(s.kind for s in samples).items())),
        "speech_hours": round(speech_seconds / 3600, 4),
        "speech_words": speech_words,
        "text_words": text_words,
        "speech_text_word_ratio": round(speech_words / max(text_words, 1), 4),
        "skipped": dict(sorted(skipped.items())),
        "wall_seconds": round(wall, 2),
    }
