"""`jstip align`: word alignments for every utterance, as sharded Parquet.

One task per shard of utterances, run by `pipeline.execution.run_shards`: inline with one
worker, else on a dask LocalCluster of `--workers` processes or the cluster at `--scheduler`;
the aligner is built once per worker process. Each shard is written atomically with a
fingerprint of its utterances and the aligner settings that change results (not speed
options: `--jobs`, `--batch-size`, `--device`), plus the size and mtime of every file of an
`--source` and of a local `--model` directory, so a rerun skips shards already finished with
the same inputs and redoes them when re-exported TextGrids or a retrained model replace the old
ones at the same path. An utterance the aligner cannot place becomes a `failed`
record with its reason. The quality report (counts by reason, real-time factor, and, given a
`--reference` alignment manifest or TextGrid directory, the word boundary error) goes to
`metrics/align.json` and is printed as a table.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aligners import BACKENDS, check_aligner, get_aligner
from aligners.quality import format_report, quality_report
from manifests.errors import JstipError
from manifests.io import read_records, shard_fingerprint, shard_path, write_metrics, write_records
from manifests.schema import Alignment, Utterance
from pipeline.execution import fingerprint, run_shards, worker_cached

ALIGN_VERSION = 3  # bump when a backend's output changes for the same input, so old shards rerun


@dataclass
class AlignConfig:
    utterances: str = field(default="data/utterances.parquet", metadata={"help": "utterance manifest to align"})
    out: str = field(default="data/alignments", metadata={"help": "output directory of alignment shards"})
    aligner: str = field(default="pocketsphinx", metadata={"help": f"backend: {', '.join(BACKENDS)}"})
    shard_size: int = field(default=64, metadata={"help": "utterances per shard (one task each)"})
    workers: int = field(default=1, metadata={"help": "worker processes (1 runs inline; more start a dask LocalCluster)"})
    scheduler: str = field(default="", metadata={"help": "address of a running dask scheduler (tcp://HOST:8786) to use instead"})
    retries: int = field(default=2, metadata={"help": "times dask retries a shard whose worker died"})
    reference: str = field(default="", metadata={"help": "reference to score against: alignment Parquet, TextGrid directory or CTM file"})
    metrics: str = field(default="metrics/align.json", metadata={"help": "where to write the quality report"})
    source: str = field(default="", metadata={"help": "import: directory of TextGrids or a CTM file with existing alignments"})
    model: str = field(default="", metadata={"help": "ctc: model path or name; mfa: acoustic model (default english_us_arpa)"})
    dictionary: str = field(default="", metadata={"help": "mfa: pronunciation dictionary (default english_us_arpa)"})
    device: str = field(default="auto", metadata={"help": "ctc: cpu, cuda or auto"})
    batch_size: int = field(default=8, metadata={"help": "ctc: utterances per batch"})
    jobs: int = field(default=1, metadata={"help": "mfa: -j per shard"})
    beam: float = field(default=0.0, metadata={"help": "mfa: --beam (0 keeps MFA's default)"})
    retry_beam: float = field(default=0.0, metadata={"help": "mfa: --retry_beam (0 keeps MFA's default)"})
    single_speaker: bool = field(default=False, metadata={"help": "mfa: --single_speaker"})


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
    return {}


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


def _align_shard(task: tuple[str, dict, str, list[Utterance], str, str]) -> dict:
    """Align one shard and write it; module-level so dask can ship it to a worker."""
    name, options, settings_fp, utterances, path, fp = task
    # the settings fingerprint in the key: edited source files at the same path mean a fresh aligner
    key = ("aligner", name, settings_fp, tuple(sorted(options.items())))
    aligner = worker_cached(key, lambda: get_aligner(name, **options))
    started, cpu, began = time.perf_counter(), time.process_time(), time.time()
    alignments = aligner.align_utterances(utterances)
    seconds = time.perf_counter() - started
    write_records(alignments, Alignment, path, fingerprint=fp)
    # wall-clock start/end (comparable across worker processes) let a benchmark measure
    # throughput without cluster start-up and model loading; cpu/wall shows CPU starvation
    return {"path": path, "align_seconds": seconds, "cpu_seconds": time.process_time() - cpu,
            "audio_seconds": sum(u.duration for u in utterances), "began": began, "ended": time.time()}


def run(cfg: AlignConfig) -> dict:
    if cfg.shard_size < 1 or cfg.workers < 1:
        raise JstipError(f"--shard-size and --workers must be at least 1 (got {cfg.shard_size}, {cfg.workers})")
    options = aligner_options(cfg)
    check_aligner(cfg.aligner, **options)  # before anything is read or removed (e.g. mfa not installed)
    settings_fp = settings_fingerprint(cfg, options)
    utterances = read_records(cfg.utterances, Utterance)
    out = Path(cfg.out)
    tasks, skipped = [], 0
    n_shards = (len(utterances) + cfg.shard_size - 1) // cfg.shard_size
    for n in range(n_shards):
        shard = utterances[n * cfg.shard_size : (n + 1) * cfg.shard_size]
        path = shard_path(out, n)
        fp = fingerprint(settings_fp, [dataclasses.asdict(u) for u in shard])
        if shard_fingerprint(path) == fp:
            skipped += 1
            continue
        tasks.append((cfg.aligner, options, settings_fp, shard, str(path), fp))
    for stale in out.glob("part-*.parquet"):
        if int(stale.stem.split("-")[1]) >= n_shards:
            stale.unlink()
    started = time.perf_counter()
    done = run_shards(_align_shard, tasks, workers=cfg.workers, scheduler=cfg.scheduler, retries=cfg.retries,
                      desc=f"align ({cfg.aligner})", unit="utt", size=lambda t: len(t[3]))
    wall = time.perf_counter() - started
    alignments = read_records(out, Alignment) if n_shards else []
    reference = _load_reference(cfg.reference, utterances) if cfg.reference else None
    metrics = quality_report(utterances, alignments, reference)
    metrics.update({
        "aligner": cfg.aligner, "workers": cfg.workers, "shards": n_shards, "shards_skipped": skipped,
        "wall_seconds": round(wall, 2),
        "audio_seconds_aligned_now": round(sum(d["audio_seconds"] for d in done), 2),
        **_speed(done, wall),
    })
    if cfg.reference:
        metrics["reference"] = cfg.reference
    write_metrics(metrics, cfg.metrics)
    print(format_report(metrics), file=sys.stderr)
    return metrics


def _speed(done: list[dict], wall: float) -> dict[str, float | None]:
    """Real-time factors of the shards aligned in this run; None when none was (all skipped, or
    no audio), since a 0.0 would read like a measurement."""
    audio = sum(d["audio_seconds"] for d in done)
    align = sum(d["align_seconds"] for d in done)
    if not done or audio <= 0:
        return {"real_time_factor": None, "wall_real_time_factor": None, "shards_wall_seconds": None,
                "cpu_per_align_second": None}
    return {
        # per core: the aligner's own time over the audio it aligned (retries included)
        "real_time_factor": round(align / audio, 4),
        "wall_real_time_factor": round(wall / audio, 4),
        # from the first shard's start to the last shard's end: no cluster start-up, no model loading
        "shards_wall_seconds": round(max(d["ended"] for d in done) - min(d["began"] for d in done), 2),
        "cpu_per_align_second": round(sum(d["cpu_seconds"] for d in done) / max(align, 1e-9), 3),
    }


def _load_reference(path: str, utterances: list[Utterance]) -> dict[str, Alignment]:
    """Reference word spans by utterance id, from an alignment manifest, TextGrids or a CTM file."""
    p = Path(path)
    if p.suffix == ".parquet" or (p.is_dir() and any(p.glob("part-*.parquet"))):
        return {a.utt_id: a for a in read_records(p, Alignment)}
    from aligners.imported import ImportedAligner

    imported = ImportedAligner(source=path).align_utterances(utterances)
    return {a.utt_id: a for a in imported if a.status == "ok"}
