"""Building the samples of one shard task and writing them: the worker side of `jstip interleave`.

A task is a list of chosen candidates (kind, source record, repeat) plus the settings; it
builds each sample (utterance kinds from the alignment, `text` from a text record, `tts_pair`
by synthesis), optionally embeds the source audio as FLAC bytes, and writes one zstd Parquet
shard whose row groups are bounded in bytes, with the shard's counts as JSON in its metadata
(a rerun that reuses the shard reads them back instead of the rows, failures included). A
sample that cannot be built is counted with its reason, never dropped silently and never
fatal to the run. Everything depends only on
the task, so 1 and N workers write identical bytes.
"""
from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from interleave.builders import (asr_sample, interleaved_sample, segment_runs, text_sample, transcript_text_sample,
                                 tts_pair_sample, word_runs)
from interleave.recipes import sample_tokens
from interleave.sampling import SamplerParams, parse_range, rng_for, speech_mask
from interleave.spans import (clause_ends, every_n_spans, punctuation_spans, segment_spans,
                              split_at_longest_pause)
from manifests.errors import JstipError
from manifests.io import file_metadata, shard_fingerprint, shard_path, write_records, write_table
from manifests.schema import SPEECH, Alignment, Sample, Text, Utterance, WordSpan, to_table

from .interleave_tts import synthesize_pairs
from .textnorm import normalize

FLAC_BYTES_PER_SECOND = 20000.0  # 16 kHz 16-bit speech compresses to about 60 %: a shard-size estimate only
TTS_DIR = "tts"
STATS_KEY = "interleave_stats"  # Parquet metadata: the shard's counts as JSON, read back when it is reused
TRANSCRIPT_TEXT = "transcript_text"  # the id part of a `text` sample made from a training transcript


@dataclass(frozen=True)
class Item:
    """One chosen candidate with its source record(s)."""

    kind: str
    repeat: int
    utterance: Utterance | None = None
    alignment: Alignment | None = None
    text: Text | None = None


@dataclass
class Task:
    """One output shard: its index, items and the settings (a plain dict, picklable)."""

    index: int
    items: list[Item]
    settings: dict[str, Any]
    fingerprint: str = ""
    has_tts: bool = field(default=False)


def sample_id(source_id: str, kind: str, repeat: int, level: str = "") -> str:
    """`utt:kind`, `utt:interleave_mixed:word`, with `#r` for the r-th repeat (r > 0)."""
    base = f"{source_id}:{kind}" + (f":{level}" if level else "")
    return base + (f"#{repeat}" if repeat else "")


def base_sample_id(item: Item) -> str:
    """The id of the item's sample, without the `:word`/`:segment` level of `interleave_mixed`."""
    if item.utterance is not None:
        kind = TRANSCRIPT_TEXT if item.kind == "text" else item.kind
        return sample_id(item.utterance.utt_id, kind, item.repeat)
    assert item.text is not None
    return sample_id(item.text.text_id, item.kind, item.repeat)


def sampler_params(s: dict[str, Any]) -> SamplerParams:
    return SamplerParams(lam=s["poisson_lambda"], eta=s["speech_fraction"], p=s["random_p"],
                         speech_range=parse_range(s["spirit_speech_words"], "spirit_speech_words"),
                         text_range=parse_range(s["spirit_text_words"], "spirit_text_words"))


def segments_of(utt: Utterance, words: Sequence[WordSpan], s: dict[str, Any], notes: Counter) -> list[list[WordSpan]]:
    """Segment spans of an utterance by the configured segmenter (falls back to pauses, counted)."""
    if s["segmenter"] == "every_n":
        segments = every_n_spans(words, s["segment_words"])
    elif s["segmenter"] == "punctuation":
        ends = clause_ends(utt.text, normalize)
        try:
            segments = punctuation_spans(words, ends or [], s["min_words"], s["max_segment_duration"])
        except ValueError:
            notes["punctuation: transcript and alignment differ, split at pauses"] += 1
            segments = segment_spans(words, s["max_pause"], s["min_words"], s["max_segment_duration"])
    else:
        segments = segment_spans(words, s["max_pause"], s["min_words"], s["max_segment_duration"])
    return segments if len(segments) >= 2 else split_at_longest_pause(words)


def utterance_sample(item: Item, s: dict[str, Any], notes: Counter) -> Sample:
    """An `asr` or interleaved sample of an aligned utterance."""
    utt, kind = item.utterance, item.kind
    assert utt is not None and item.alignment is not None
    if kind == "asr":
        return asr_sample(utt, s["asr_prompt"], sample_id(utt.utt_id, kind, item.repeat))
    if kind == "text":
        return transcript_text_sample(utt, sample_id(utt.utt_id, TRANSCRIPT_TEXT, item.repeat))
    words = list(item.alignment.words)
    rng = rng_for(s["seed"], sample_id(utt.utt_id, kind, item.repeat))
    level = kind.removeprefix("interleave_")
    if kind == "interleave_mixed":
        level = "word" if rng.random() < s["word_probability"] else "segment"
    params = sampler_params(s)
    sid = sample_id(utt.utt_id, kind, item.repeat, level if kind == "interleave_mixed" else "")
    if level == "word":
        mask = speech_mask(s["word_sampler"], len(words), params, rng)
        return interleaved_sample(utt, kind, word_runs(words, mask), s["layout"], sid)
    segments = segments_of(utt, words, s, notes)
    mask = speech_mask(s["segment_sampler"], len(segments), params, rng)
    return interleaved_sample(utt, kind, segment_runs(segments, mask), s["layout"], sid)


def row_group_rows(row_bytes: Sequence[int], max_bytes: int) -> int:
    """The largest uniform row-group size whose every group stays within `max_bytes` (at least 1)."""
    n = len(row_bytes)
    if n == 0:
        return 1
    prefix = np.concatenate([[0], np.cumsum(row_bytes)])
    k = max(1, min(n, int(max_bytes // max(1.0, float(np.mean(row_bytes))))))
    while k > 1 and any(prefix[min(i + k, n)] - prefix[i] > max_bytes for i in range(0, n, k)):
        k -= 1
    return k


def row_bytes(sample: Sample) -> int:
    """Approximate in-memory size of a sample row (what bounds a row group)."""
    return 64 + len(sample.audio or b"") + sum(len(sp.text) + 40 for sp in sample.spans) + len(sample.sample_id) * 2


def finished_stats(task: Task, out: str) -> dict[str, Any] | None:
    """The stored counts of a shard written earlier with the same fingerprint (and its synthesized
    audio), which is then kept; None if it must be built. Reads the file footer only."""
    path = shard_path(out, task.index)
    if not task.fingerprint or shard_fingerprint(path) != task.fingerprint:
        return None
    if task.has_tts and shard_fingerprint(Path(out) / TTS_DIR / "alignments" / path.name) != task.fingerprint:
        return None
    stored = file_metadata(path, STATS_KEY)
    try:
        return json.loads(stored) if stored else None
    except ValueError:
        return None


def build_shard(task: Task) -> dict[str, Any]:
    """Build, embed and write one shard; returns its counts (module-level, for `run_shards`)."""
    s, out = task.settings, task.settings["out"]
    reused = finished_stats(task, out)
    if reused is not None:
        return {**reused, "reused": 1}
    samples: list[Sample] = []
    notes: Counter = Counter()
    examples: dict[str, list[str]] = {}
    tts_alignments: list[Alignment] = []
    audio_cache: dict[str, bytes] = {}
    tts = iter(synthesize_pairs([(x.text, x.repeat) for x in task.items if x.kind == "tts_pair"], s)
               if task.has_tts else [])
    for item in task.items:
        source = item.utterance.utt_id if item.utterance else item.text.text_id  # type: ignore[union-attr]
        try:
            if item.kind == "tts_pair":
                result = next(tts)
                if isinstance(result, str):
                    raise JstipError(result)
                sample, alignment, audio = result
                tts_alignments.append(alignment)
            elif item.utterance is not None:
                sample, audio = utterance_sample(item, s, notes), None
                if s["embed_audio"] and item.kind != "text":
                    audio = audio_cache.get(source) or embedded_audio(item.utterance)
                    audio_cache = {source: audio}
            else:
                sample, audio = text_sample(item.text, sample_id(source, "text", item.repeat)), None  # type: ignore[arg-type]
            if audio is not None and s["embed_audio"]:
                sample = dataclasses.replace(sample, audio=audio)
            samples.append(sample)
        except JstipError as exc:
            reason = f"{item.kind}: {type(exc).__name__}"
            notes[reason] += 1
            examples.setdefault(reason, []).append(f"{source}: {exc}")
    stats = shard_stats(samples, notes, s)
    stats["failed_examples"] = {r: v[:3] for r, v in examples.items()}
    table = to_table(samples, Sample)
    k = row_group_rows([row_bytes(x) for x in samples], int(s["row_group_mb"] * 2**20))
    write_table(table, shard_path(out, task.index), task.fingerprint, {STATS_KEY: json.dumps(stats, sort_keys=True)},
                row_group_size=k)
    if task.has_tts:
        write_records(tts_alignments, Alignment, Path(out) / TTS_DIR / "alignments" / shard_path("", task.index).name,
                      task.fingerprint)
    return json.loads(json.dumps(stats))  # what a reuse reads back, so a rerun reports the same


def embedded_audio(utt: Utterance) -> bytes:
    """FLAC bytes of the utterance's stretch of its audio file, at the file's own rate."""
    from manifests.audio import encode_flac, load_audio

    samples = load_audio(utt.audio_path, utt.offset, utt.duration, utt.sample_rate)
    return encode_flac(samples, utt.sample_rate)


def shard_stats(samples: Sequence[Sample], notes: Counter, s: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per-kind counts of a shard: samples, speech seconds, words and estimated tokens."""
    sps = (s or {}).get("speech_tokens_per_second", 25.0)
    tpw = (s or {}).get("tokens_per_word", 1.5)
    by_kind: dict[str, dict[str, float]] = {}
    for x in samples:
        k = by_kind.setdefault(x.kind, {"samples": 0, "speech_seconds": 0.0, "speech_words": 0, "text_words": 0,
                                        "tokens": 0.0, "audio_bytes": 0})
        k["samples"] += 1
        k["speech_seconds"] += sum(sp.end - sp.start for sp in x.spans if sp.modality == SPEECH)
        k["speech_words"] += x.n_speech_words
        k["text_words"] += x.n_text_words
        k["tokens"] += sample_tokens(x, sps, tpw)
        k["audio_bytes"] += len(x.audio or b"")
    return {"by_kind": by_kind, "notes": dict(notes)}
