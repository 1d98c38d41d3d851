"""`jstip align`: word alignments for every utterance, as sharded Parquet.

One task per shard of utterances; with `--workers N` the shards run in N processes, each
loading the aligner once. An utterance the aligner cannot place becomes a `failed`
record with its reason. Where a reference alignment exists (the demo's espeak word
times) the word boundary error is measured and written with the counts.
"""
from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from tqdm import tqdm

from aligners import BACKENDS, Aligner, AlignmentFailed, check_aligner_name, get_aligner
from aligners.quality import boundary_report
from manifests.audio import load_audio
from manifests.errors import AudioError, JstipError
from manifests.io import read_records, shard_path, write_metrics, write_records
from manifests.schema import ALIGN_FAILED, ALIGN_OK, Alignment, Utterance


@dataclass
class AlignConfig:
    utterances: str = field(default="data/utterances.parquet", metadata={"help": "utterance manifest to align"})
    out: str = field(default="data/alignments", metadata={"help": "output directory of alignment shards"})
    aligner: str = field(default="pocketsphinx", metadata={"help": f"backend: {', '.join(BACKENDS)}"})
    shard_size: int = field(default=64, metadata={"help": "utterances per shard (one task each)"})
    workers: int = field(default=1, metadata={"help": "worker processes (1 runs inline)"})
    reference: str = field(default="", metadata={"help": "alignment manifest to score against (e.g. data/demo/reference.parquet)"})
    metrics: str = field(default="metrics/align.json", metadata={"help": "where to write the quality report"})


def align_utterances(utterances: Iterable[Utterance], aligner: Aligner) -> Iterator[Alignment]:
    """One Alignment per utterance: `ok` with word spans, or `failed` with the reason."""
    for utt in utterances:
        try:
            audio = load_audio(utt.audio_path, utt.offset, utt.duration, aligner.sample_rate)
            words = aligner.align(audio, utt.norm_text.split())
            yield Alignment(utt.utt_id, aligner.name, ALIGN_OK, "", tuple(words))
        except (AlignmentFailed, AudioError) as exc:
            yield Alignment(utt.utt_id, aligner.name, ALIGN_FAILED, str(exc), ())


_WORKER_ALIGNER: Aligner | None = None


def _init_worker(name: str) -> None:
    global _WORKER_ALIGNER
    _WORKER_ALIGNER = get_aligner(name)


def _align_shard(task: tuple[list[Utterance], str]) -> int:
    utterances, path = task
    assert _WORKER_ALIGNER is not None
    return write_records(align_utterances(utterances, _WORKER_ALIGNER), Alignment, path)


def run(cfg: AlignConfig) -> dict:
    if cfg.shard_size < 1 or cfg.workers < 1:
        raise JstipError(f"--shard-size and --workers must be at least 1 (got {cfg.shard_size}, {cfg.workers})")
    check_aligner_name(cfg.aligner)  # before anything is read or removed
    utterances = read_records(cfg.utterances, Utterance)
    out = Path(cfg.out)
    for stale in out.glob("part-*.parquet"):
        stale.unlink()
    tasks = [
        (utterances[i : i + cfg.shard_size], str(shard_path(out, n)))
        for n, i in enumerate(range(0, len(utterances), cfg.shard_size))
    ]
    started = time.perf_counter()
    progress = tqdm(total=len(utterances), desc=f"align ({cfg.aligner})", unit="utt")
    if cfg.workers == 1:
        _init_worker(cfg.aligner)
        for task in tasks:
            progress.update(_align_shard(task))
    else:
        with ProcessPoolExecutor(cfg.workers, initializer=_init_worker, initargs=(cfg.aligner,)) as pool:
            for done in pool.map(_align_shard, tasks):
                progress.update(done)
    progress.close()
    wall = time.perf_counter() - started
    alignments = read_records(out, Alignment)
    metrics = _report(utterances, alignments, wall, cfg)
    write_metrics(metrics, cfg.metrics)
    return metrics


def _report(utterances: list[Utterance], alignments: list[Alignment], wall: float, cfg: AlignConfig) -> dict:
    audio_seconds = sum(u.duration for u in utterances)
    failed = [a for a in alignments if a.status == ALIGN_FAILED]
    metrics: dict = {
        "aligner": cfg.aligner,
        "utterances": len(alignments),
        "aligned": len(alignments) - len(failed),
        "failed": len(failed),
        "failed_by_reason": dict(Counter(a.reason.split(":")[0][:60] for a in failed)),
        "audio_seconds": round(audio_seconds, 2),
        "wall_seconds": round(wall, 2),
        "real_time_factor": round(wall / max(audio_seconds, 1e-9), 4),
        "workers": cfg.workers,
    }
    if cfg.reference:
        references = {a.utt_id: a for a in read_records(cfg.reference, Alignment)}
        pairs = [
            (a.words, references[a.utt_id].words)
            for a in alignments
            if a.status == ALIGN_OK and a.utt_id in references
        ]
        metrics["reference"] = cfg.reference
        metrics.update(boundary_report(pairs))
    return metrics
