"""The worker side of `jstip interleave`: a task reads its own slice of the inputs, then measures
it (pass 1) or builds, embeds and writes its shard (pass 2). Module-level functions for `run_shards`.

Pass 1 returns each kind's measure per hash bucket (a few KB). Pass 2 keeps the candidates under
the thresholds the stage computed from all of pass 1, builds them (`interleave.batch`), orders
them by source row, optionally embeds each sample's audio as FLAC bytes, and writes one zstd
Parquet shard whose row groups are bounded in bytes, with the shard's counts as JSON in its
metadata: a rerun whose fingerprint matches keeps the shard and reads the counts back. Everything
depends only on the task, so 1 and N workers write identical bytes.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from interleave.batch import (BuildSettings, Facts, UtteranceBatch, build_utterances, histograms, needs_text,
                              utterance_measures)
from interleave.text_batch import TextBatch, build_texts, text_measures
from interleave.samples import Built
from interleave.units import TokenCache
from manifests import storage
from manifests.errors import JstipError
from manifests.io import file_metadata, shard_fingerprint, shard_path, write_records, write_table, write_text_atomic
from manifests.schema import SPEECH, Alignment, audio_cell

from .execution import one_thread_per_process

from interleave.inputs import Task, read_text_task, read_utterance_task
from synthetic.tts import TTS_DIR, recorded, synthesizer
from corpora.textnorm import normalize

STATS_KEY = "interleave_stats"  # Parquet metadata: the shard's counts as JSON, read back when it is reused
# min/max statistics only where readers filter (kind, ids, lengths): on span texts they cost a third
# of the write time and serve no reader
STATISTICS = ["sample_id", "kind", "source_id", "duration", "n_speech_words", "n_text_words"]
EMPTY_DIR = "_empty"  # tasks that give no sample write no shard (readers choke on 0-row files), only their counts
_TOKENS = TokenCache()  # distinct raw tokens and their normalised words, per worker process


@dataclass
class Job:
    """One task of one pass, with everything a worker needs (small and picklable)."""

    task: Task
    settings: BuildSettings
    thresholds: dict[str, int] = field(default_factory=dict)
    fingerprint: str = ""
    out: str = ""
    embed_audio: bool = False
    row_group_mb: float = 32.0
    tts: dict[str, Any] = field(default_factory=dict)


def _cache() -> TokenCache:
    return _TOKENS


def one_thread() -> None:
    """The executor's one-thread initializer, and a mark that interleave's own thread counts read."""
    os.environ["JSTIP_INTERLEAVE_THREADS"] = "1"
    one_thread_per_process()


def _one_thread_in_workers() -> None:
    """The same in a dask worker (which runs no initializer)."""
    if os.environ.get("JSTIP_INTERLEAVE_THREADS") == "1":
        return
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return
    one_thread()


def measure(job: Job) -> dict[str, Any]:
    """Pass 1: each kind's measure per (repeat, bucket) over the task's candidates."""
    _one_thread_in_workers()
    task, s = job.task, job.settings
    if task.source == "utterances":
        columns = ["utt_id", "split", "duration"] + (["text"] if needs_text(s) else []) + \
            (["norm_text"] if s.transcripts_as_text else [])
        table, _, _ = read_utterance_task(task, columns)
        measures = utterance_measures(UtteranceBatch.from_table(table), s, normalize, _cache()) if table.num_rows else {}
    else:
        measures = text_measures(TextBatch.from_table(read_text_task(task)), s, task.roles)
    return {"hists": histograms(measures, s), "candidates": {k: len(ids) for k, (ids, _) in measures.items()}}


def empty_path(out: str, index: int) -> str:
    return storage.join(str(out), EMPTY_DIR, Path(shard_path("", index)).with_suffix(".json").name)


def tts_alignment_path(out: str, index: int) -> str:
    return storage.join(str(out), TTS_DIR, "alignments", Path(shard_path("", index)).name)


def finished_stats(job: Job) -> dict[str, Any] | None:
    """The stored counts of a shard written earlier with the same fingerprint (then kept), else None."""
    path = shard_path(job.out, job.task.index)
    if not job.fingerprint:
        return None
    empty = empty_path(job.out, job.task.index)
    if storage.is_file(empty) and not storage.exists(path):
        try:
            with storage.open_binary(empty) as f:
                stored = json.loads(f.read())
        except ValueError:
            return None
        return stored["stats"] if stored.get("fingerprint") == job.fingerprint else None
    if shard_fingerprint(path) != job.fingerprint:
        return None
    if _has_tts(job) and shard_fingerprint(tts_alignment_path(job.out, job.task.index)) != job.fingerprint:
        return None
    stored = file_metadata(path, STATS_KEY)
    try:
        return json.loads(stored) if stored else None
    except ValueError:
        return None


def _has_tts(job: Job) -> bool:
    return "tts" in job.task.roles and any(k in job.settings.kinds for k in ("tts_pair", "tts_interleave"))


def build(job: Job) -> dict[str, Any]:
    """Pass 2: build, embed and write the task's shard; returns its counts."""
    _one_thread_in_workers()
    reused = finished_stats(job)
    if reused is not None:
        return {**reused, "reused": 1}
    task, s = job.task, job.settings
    join: dict[str, int] = {}
    join_examples: dict[str, list[str]] = {}
    tts_alignments: list[Alignment] = []
    tts_files: list[str] = []
    if task.source == "utterances":
        table, join, join_examples = read_utterance_task(task)
        built, facts = (build_utterances(UtteranceBatch.from_table(table), s, job.thresholds, normalize, _cache())
                        if table.num_rows else (Built.empty(), Facts()))
    else:
        speaker = recorded if job.tts.get("tts_recordings") else synthesizer
        speak = speaker({**job.tts, "seed": s.seed, "out": job.out}, tts_alignments) if _has_tts(job) else None
        built, facts, results = build_texts(TextBatch.from_table(read_text_task(task)), s, task.roles, job.thresholds,
                                            normalize, speak, _cache())
        tts_files = [] if job.tts.get("tts_recordings") else sorted(storage.name(r[0]) for r in results if not isinstance(r, str))
    order = np.lexsort((built.rank, built.row))
    samples = built.table.take(pa.array(order))
    _check_unique(samples.column("sample_id"))
    seconds, tokens = built.speech_seconds[order], built.tokens[order]
    failed: Counter = Counter()
    examples: dict[str, list[str]] = {}
    if job.embed_audio:
        samples = _embed(samples, failed, examples)
    stats = {"by_kind": kind_stats(samples, seconds, tokens), "facts": asdict(facts), "join": join,
             "join_examples": join_examples, "dropped_final_unit": built.dropped, "variants_too_short": built.skipped,
             "failed": dict(failed), "failed_examples": examples, "tts_files": tts_files}
    path, empty = shard_path(job.out, task.index), empty_path(job.out, task.index)
    if samples.num_rows:
        k = row_group_rows(_row_bytes(samples), int(job.row_group_mb * 2**20))
        write_table(samples, path, job.fingerprint, {STATS_KEY: json.dumps(stats, sort_keys=True)}, row_group_size=k,
                    write_statistics=STATISTICS)
        storage.unlink(empty)
    else:
        write_text_atomic(json.dumps({"fingerprint": job.fingerprint, "stats": stats}, sort_keys=True), empty)
        storage.unlink(path)
    if _has_tts(job):
        write_records(tts_alignments, Alignment, tts_alignment_path(job.out, task.index), job.fingerprint)
    return json.loads(json.dumps(stats))  # what a reuse reads back, so a rerun reports the same


def _check_unique(ids: pa.ChunkedArray) -> None:
    """Two samples with one id would be two rows no reader can tell apart: a JstipError naming it."""
    counts = pc.value_counts(ids.combine_chunks()) if len(ids) else None
    if counts is not None and len(counts) < len(ids):
        twice = counts.filter(pc.greater(counts.field("counts"), 1))[0]["values"].as_py()
        raise JstipError(f"two samples would have the id {twice!r}: its source id appears twice in its manifest "
                         "(ids must be unique; fix or drop the duplicate)")


def kind_stats(samples: pa.Table, seconds: np.ndarray, tokens: np.ndarray) -> dict[str, dict[str, float]]:
    """Per kind: samples, speech seconds, speech and text words, tokens, embedded audio bytes."""
    out: dict[str, dict[str, float]] = {}
    if not samples.num_rows:
        return out
    kinds = pc.dictionary_encode(samples.column("kind").combine_chunks())
    code = np.asarray(kinds.indices)
    audio = samples.column("audio").combine_chunks()
    audio_bytes = np.asarray(pc.binary_length(pc.struct_field(audio, "bytes")).fill_null(0), np.int64) if audio.null_count < len(audio) \
        else np.zeros(len(code), np.int64)
    sw = np.asarray(samples.column("n_speech_words"), np.int64)
    tw = np.asarray(samples.column("n_text_words"), np.int64)
    for i, kind in enumerate(kinds.dictionary.to_pylist()):
        m = code == i
        out[kind] = {"samples": int(m.sum()), "speech_seconds": float(seconds[m].sum()), "speech_words": int(sw[m].sum()),
                     "text_words": int(tw[m].sum()), "tokens": float(tokens[m].sum()), "audio_bytes": int(audio_bytes[m].sum())}
    return out


def _embed(samples: pa.Table, failed: Counter, examples: dict[str, list[str]]) -> pa.Table:
    """The `audio` column filled with FLAC bytes of each speech sample's stretch of its audio file."""
    from manifests.audio import audio_info, encode_flac, load_audio

    rates: dict[str, int] = {}
    cells: list[Any] = []
    last: tuple = ()
    data = b""
    ids = samples.column("sample_id").to_pylist()
    for sid, path, offset, duration, spans in zip(ids, samples.column("audio_path").to_pylist(),
                                                  samples.column("offset").to_pylist(),
                                                  samples.column("duration").to_pylist(),
                                                  samples.column("spans").to_pylist()):
        if not path or not any(sp["modality"] == SPEECH for sp in spans):
            cells.append(None)
            continue
        key = (path, offset, duration)
        try:
            if key != last:
                rate = rates.get(path) or rates.setdefault(path, audio_info(path)[0])
                data, last = encode_flac(load_audio(path, offset, duration, rate), rate), key
            cells.append(audio_cell(data, sid))
        except JstipError as exc:
            failed["audio_unreadable"] += 1
            examples.setdefault("audio_unreadable", []).append(f"{sid}: {exc}")
            cells.append(None)
    column = pa.array(cells, samples.schema.field("audio").type)
    return samples.set_column(samples.schema.get_field_index("audio"), samples.schema.field("audio"), column)


def _row_bytes(samples: pa.Table) -> list[int]:
    """Approximate in-memory size of each row (what bounds a row group)."""
    n = samples.num_rows
    if not n:
        return []
    base = (samples.drop_columns(["audio"]).nbytes // n) + 64
    audio = samples.column("audio").combine_chunks()
    if audio.null_count == len(audio):
        return [int(base)] * n
    lengths = np.asarray(pc.binary_length(pc.struct_field(audio, "bytes")).fill_null(0), np.int64)
    return (lengths + base).tolist()


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
