"""`jstip align`: word alignments for every utterance, as sharded Parquet.

Shards follow the utterance manifest: shard k holds the alignments of consecutive manifest
rows, in order, and stores that row range in its metadata (`utt_rows` = "start:stop", read
with `manifests.io.file_metadata`). A shard is cut by audio duration (`plan_shards`):
`--shard-hours` of audio each (4 h: ~9.5k shards for 38k hours, a few minutes of pocketsphinx
per task), but a corpus smaller than `--min-shards` such shards is cut into `--min-shards`
equal ones so that several workers have work; `--shard-size` optionally caps utterances per
shard. The cut depends on the manifest and these settings only, never on `--workers`.

One task per shard, run by `pipeline.execution.run_shards` (inline with one worker, else on
dask); a task reads its own rows of the utterance manifest (row groups, not the whole file),
the aligner is built once per worker process. Each shard is written atomically with a
fingerprint of its utterances and the settings that change results (not speed options:
`--jobs`, `--batch-size`, `--device`), plus the size and mtime of every file of a `--source`
and of a local `--model`, so a rerun skips finished shards. A failure whose cause may pass
(audio that could not be read, a crashed backend: `aligners.base.TRANSIENT`) is not kept: a
rerun aligns those utterances again and rewrites their shard. Metrics (counts, failures by
category, boundary error against a `--reference`, speed) go to `metrics/align.json`, examples
per category to `reports/align.json`; both are built by streaming the shards' columns.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aligners import BACKENDS, check_aligner, get_aligner
from aligners.base import is_transient
from aligners.quality import REPORT_COLUMNS, QualityReport, format_report, load_references
from manifests.errors import JstipError
from manifests import storage
from manifests.io import (file_metadata, iter_records, manifest_files, manifest_groups, read_records, read_row_group,
                          read_rows, row_group_sizes, shard_fingerprint, shard_path, write_stage_metrics, write_table)
from manifests.schema import Alignment, Utterance, from_table, schema_of, to_table
from pipeline.execution import fingerprint, run_shards, worker_cached

ALIGN_VERSION = 5  # bump when a backend's output changes for the same input, so old shards rerun

# What `metrics/align.json` holds (`dvc exp show` compares these); every other figure is in the report.
ALIGN_METRICS = ("utterances", "aligned_share", "failed", "failed_by_reason", "partial", "audio_hours",
                 "boundary_error_mean_ms", "boundary_error_median_ms", "within_10ms", "within_25ms", "within_50ms",
                 "within_100ms", "real_time_factor")


@dataclass
class AlignConfig:
    utterances: str = field(default="data/utterances.parquet", metadata={"help": "utterance manifest to align"})
    out: str = field(default="data/alignments", metadata={"help": "output directory of alignment shards"})
    aligner: str = field(default="pocketsphinx", metadata={"help": f"backend: {', '.join(BACKENDS)}"})
    shard_hours: float = field(default=4.0, metadata={"help": "hours of audio per shard (one task each): 4 h gives "
                                                                "~9.5k shards for 38k hours"})
    min_shards: int = field(default=16, metadata={"help": "a corpus under min_shards x shard_hours is cut into this "
                                                          "many shards of equal audio, so that workers have work"})
    shard_size: int = field(default=0, metadata={"help": "at most this many utterances per shard (0: no limit)"})
    workers: int = field(default=1, metadata={"help": "worker processes (1 runs inline; more start a local process pool)"})
    scheduler: str = field(default="", metadata={"help": "address of a running dask scheduler (tcp://HOST:8786) to use instead"})
    retries: int = field(default=2, metadata={"help": "times dask retries a shard whose worker died"})
    reference: str = field(default="", metadata={"help": "reference to score against: alignment Parquet, TextGrid directory or CTM file"})
    metrics: str = field(default="metrics/align.json", metadata={"help": "where to write the numeric metrics"})
    report: str = field(default="reports/align.json", metadata={"help": "where to write the report: failures by "
                                                                         "category with examples, speed details"})
    source: str = field(default="", metadata={"help": "import: directory of TextGrids or a CTM file with existing alignments"})
    model: str = field(default="", metadata={"help": "ctc: model path or name; mfa: acoustic model (default english_us_arpa)"})
    dictionary: str = field(default="", metadata={"help": "mfa: pronunciation dictionary (default english_us_arpa)"})
    device: str = field(default="auto", metadata={"help": "ctc: cpu, cuda or auto"})
    batch_size: int = field(default=8, metadata={"help": "ctc: utterances per batch"})
    jobs: int = field(default=1, metadata={"help": "mfa: -j per shard"})
    beam: float = field(default=0.0, metadata={"help": "mfa: --beam (0 keeps MFA's default)"})
    retry_beam: float = field(default=0.0, metadata={"help": "mfa: --retry_beam (0 keeps MFA's default)"})
    single_speaker: bool = field(default=False, metadata={"help": "mfa: --single_speaker"})
    unexplained_speech: float = field(default=1.0, metadata={
        "help": "pocketsphinx: seconds of speech (silero-vad) that no word covers which make a record partial "
                "(a transcript missing words); 0 turns the check off"})
    phones: bool = field(default=False, metadata={
        "help": "pocketsphinx: also place phones (ARPAbet), from a second, state-level pass: about 2x the "
                "aligner's time; scored against a reference's phones in the report"})


# options that change how fast a backend runs, never what it writes: kept out of the fingerprint
SPEED_OPTIONS = {"mfa": ("jobs",), "ctc": ("batch_size", "device")}


def aligner_options(cfg: AlignConfig) -> dict[str, Any]:
    """The keyword options the chosen backend is built with."""
    if cfg.aligner == "import":
        return {"source": cfg.source}
    if cfg.aligner == "mfa":
        return {"model": cfg.model, "dictionary": cfg.dictionary, "jobs": cfg.jobs, "beam": cfg.beam,
                "retry_beam": cfg.retry_beam, "single_speaker": cfg.single_speaker}
    if cfg.aligner == "ctc":
        return {"model": cfg.model, "device": cfg.device, "batch_size": cfg.batch_size}
    options: dict[str, Any] = {"unexplained_speech": cfg.unexplained_speech}
    if cfg.phones:  # only when asked: shards aligned without phones keep their fingerprint
        options["phones"] = True
    return options


def files_stamp(path: str) -> list[tuple[str, int, int]] | None:
    """(relative name, size, mtime in ns) of a local file or of every file under a directory, sorted;
    None when `path` is not on this machine (a hub model name)."""
    p = Path(path).expanduser() if path else None
    if p is None or not p.exists():
        return None
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    return [(str(f.relative_to(p)) if f != p else f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]


def settings_fingerprint(cfg: AlignConfig, options: dict[str, Any]) -> str:
    """What decides a backend's output: its result-changing options and the files they point at."""
    speed = SPEED_OPTIONS.get(cfg.aligner, ())
    settings = {k: v for k, v in options.items() if k not in speed}
    files = {k: files_stamp(options[k]) for k in ("source", "model", "dictionary") if options.get(k)}
    return fingerprint(ALIGN_VERSION, cfg.aligner, settings, files)


def plan_shards(durations: np.ndarray, shard_seconds: float, min_shards: int = 1,
                max_rows: int = 0) -> list[tuple[int, int]]:
    """Row ranges [start, stop) of consecutive utterances, each holding about `shard_seconds` of audio.

    Utterance i goes to shard floor(audio before it / target): shards hold about `target` seconds
    each, and appending utterances to the manifest leaves the earlier shards as they were. A
    corpus shorter than `min_shards * shard_seconds` gets the target total / `min_shards` (so a
    few hundred utterances still make several tasks). A range over `max_rows` utterances (0: no
    cap) is split into pieces of `max_rows` or fewer. Durations that are not finite and positive count as 0 (such
    utterances fail on their own; they do not distort the cut). Vectorised: 14M rows in ~1 s.
    """
    n = len(durations)
    if n == 0:
        return []
    d = np.where(np.isfinite(durations) & (durations > 0), durations, 0.0)
    total = float(d.sum())
    target = min(shard_seconds, total / max(min_shards, 1))
    if target <= 0:
        keys = np.zeros(n, np.int64)
    else:
        keys = np.floor((np.cumsum(d) - d) / target).astype(np.int64)
    cuts = np.flatnonzero(np.diff(keys)) + 1
    edges = np.concatenate([[0], cuts, [n]])
    bounds = []
    for start, stop in zip(edges[:-1].tolist(), edges[1:].tolist()):
        pieces = -(-(stop - start) // max_rows) if max_rows else 1
        step = -(-(stop - start) // pieces)
        bounds += [(a, min(a + step, stop)) for a in range(start, stop, step)]
    return bounds


def manifest_durations(path: str) -> np.ndarray:
    """The `duration` column of the utterance manifest, read row group by row group (no records built)."""
    parts = []
    for file in manifest_files(path):
        for i in range(len(row_group_sizes(file, Utterance))):
            column = read_row_group(file, i, ["duration"])["duration"]
            parts.append(column.to_numpy(zero_copy_only=False).astype(np.float64))
    return np.concatenate(parts) if parts else np.zeros(0)


def utterance_rows(path: str, start: int, stop: int) -> list[Utterance]:
    """Rows [start, stop) of the utterance manifest, reading only the row groups (or pages) that hold them."""
    table = read_rows(manifest_groups(path, Utterance), start, stop, schema_of(Utterance).names, schema_of(Utterance))
    return list(from_table(table, Utterance))


def _align_shard(task: tuple) -> dict:
    """Align one shard (or only its transient failures, `retry`) and write it; module-level for dask."""
    name, options, settings_fp, utterances_path, start, stop, path, fp, retry = task
    # the settings fingerprint in the key: edited source files at the same path mean a fresh aligner
    key = ("aligner", name, settings_fp, tuple(sorted(options.items())))
    aligner = worker_cached(key, lambda: get_aligner(name, **options))
    utterances = utterance_rows(utterances_path, start, stop)
    began, started, cpu = time.time(), time.perf_counter(), time.process_time()
    if retry:
        alignments = read_records(path, Alignment)
        redo = [i for i, a in enumerate(alignments) if a.status != "ok" and is_transient(a.reason)]
        for i, again in zip(redo, aligner.align_utterances([utterances[i] for i in redo])):
            alignments[i] = again
        todo = [utterances[i] for i in redo]
    else:
        alignments, todo = aligner.align_utterances(utterances), utterances
    seconds = time.perf_counter() - started
    transient = sum(a.status != "ok" and is_transient(a.reason) for a in alignments)
    write_table(to_table(alignments, Alignment), path, fingerprint=fp,
                metadata={"utt_rows": f"{start}:{stop}", "transient_failures": str(transient)})
    # wall-clock start/end (comparable across worker processes) let a benchmark measure
    # throughput without cluster start-up and model loading; cpu/wall shows CPU starvation
    audio = sum(u.duration for u in todo if isinstance(u.duration, (int, float)) and 0 < u.duration < math.inf)
    return {"path": path, "align_seconds": seconds, "cpu_seconds": time.process_time() - cpu,
            "audio_seconds": audio, "began": began, "ended": time.time()}


def _needs_retry(path: Path) -> bool:
    """Whether a finished shard holds failures that a rerun should try again (footer only)."""
    return (file_metadata(path, "transient_failures") or "0") != "0"


def _check(cfg: AlignConfig) -> None:
    if not (cfg.shard_hours > 0 and math.isfinite(cfg.shard_hours)) or cfg.min_shards < 1 or cfg.shard_size < 0:
        raise JstipError(f"--shard-hours must be > 0, --min-shards >= 1 and --shard-size >= 0 (got {cfg.shard_hours}, "
                         f"{cfg.min_shards}, {cfg.shard_size})")
    if cfg.workers < 1:
        raise JstipError(f"--workers must be at least 1 (got {cfg.workers})")


def run(cfg: AlignConfig) -> dict:
    _check(cfg)
    options = aligner_options(cfg)
    check_aligner(cfg.aligner, **options)  # before anything is read or removed (e.g. mfa not installed)
    settings_fp = settings_fingerprint(cfg, options)
    durations = manifest_durations(cfg.utterances)
    bounds = plan_shards(durations, cfg.shard_hours * 3600, cfg.min_shards, cfg.shard_size)
    out = cfg.out
    tasks, skipped, retried = [], 0, 0
    rows = iter_records(cfg.utterances, Utterance)  # streamed: one shard's records at a time
    for n, (start, stop) in enumerate(bounds):
        shard = [next(rows) for _ in range(stop - start)]
        path = shard_path(out, n)
        fp = fingerprint(settings_fp, start, [dataclasses.asdict(u) for u in shard])
        retry = False
        if shard_fingerprint(path) == fp:
            if not _needs_retry(path):
                skipped += 1
                continue
            retry, retried = True, retried + 1
        tasks.append((cfg.aligner, options, settings_fp, cfg.utterances, start, stop, str(path), fp, retry))
    for stale in storage.glob(cfg.out, "part-*.parquet") if storage.is_dir(cfg.out) else []:
        if int(storage.name(stale).split("-")[1].split(".")[0]) >= len(bounds):
            storage.remove(stale) if storage.is_url(stale) else Path(stale).unlink()
    started = time.perf_counter()
    done = run_shards(_align_shard, tasks, workers=cfg.workers, scheduler=cfg.scheduler, retries=cfg.retries,
                      desc=f"align ({cfg.aligner})", unit="shard")
    wall = time.perf_counter() - started
    quality = QualityReport(*(load_references(cfg.reference) if cfg.reference else (None, None)))
    for n in range(len(bounds)):
        for file in manifest_files(shard_path(out, n)):
            for i in range(len(row_group_sizes(file, Alignment))):
                quality.add(read_row_group(file, i, list(REPORT_COLUMNS), optional=("phones",)))
    finite = durations[np.isfinite(durations) & (durations > 0)]
    speed = _speed(done, wall)
    metrics = {**quality.metrics(), "audio_hours": round(float(finite.sum()) / 3600, 4), "shards": len(bounds),
               "shards_skipped": skipped, "shards_retried": retried, "workers": cfg.workers,
               "real_time_factor": speed.pop("real_time_factor"), "wall_seconds": round(wall, 2)}
    report = {"aligner": cfg.aligner, "reference": cfg.reference, "utterances": cfg.utterances, "out": cfg.out,
              **quality.details(), "speed": speed, "shard_rows": [f"{a}:{b}" for a, b in bounds[:20]]}
    write_stage_metrics(metrics, cfg.metrics, report, cfg.report, keep=ALIGN_METRICS)
    print(format_report({**metrics, "aligner": cfg.aligner}), file=sys.stderr)
    return {**metrics, **speed}


def _speed(done: list[dict], wall: float) -> dict[str, float | None]:
    """Real-time factors of the shards aligned in this run; None when none was (all skipped, or
    no audio), since a 0.0 would read like a measurement."""
    audio = sum(d["audio_seconds"] for d in done)
    align = sum(d["align_seconds"] for d in done)
    if not done or audio <= 0:
        return {"real_time_factor": None, "wall_real_time_factor": None, "shards_wall_seconds": None,
                "cpu_per_align_second": None, "audio_seconds_aligned_now": round(audio, 2)}
    return {
        # per core: the aligner's own time over the audio it aligned (retries included)
        "real_time_factor": round(align / audio, 4),
        "wall_real_time_factor": round(wall / audio, 4),
        # from the first shard's start to the last shard's end: no cluster start-up, no model loading
        "shards_wall_seconds": round(max(d["ended"] for d in done) - min(d["began"] for d in done), 2),
        "cpu_per_align_second": round(sum(d["cpu_seconds"] for d in done) / max(align, 1e-9), 3),
        "audio_seconds_aligned_now": round(audio, 2),
    }
