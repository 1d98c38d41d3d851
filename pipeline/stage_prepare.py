"""`jstip prepare`: corpus + domain text -> utterance and text manifests, with raw and normalised text.

Reads its params, runs the corpus reader (`corpora`), the checks (`corpora.checks`) and the domain
text reader, and writes the manifests. What fails becomes a `Rejected` record; counts go to
`metrics/prepare.json`, counts by category with examples to `reports/prepare.json`, and the
rejection file is written on every run. Utterances are sorted by id, so a reordered list gives
the same manifest.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from tqdm import tqdm

from corpora import FORMATS, iter_corpus
from corpora.base import check_encoding
from corpora.checks import SCRIPTS, reason_category, reasons_table
from corpora import streaming
from corpora.streaming import CheckSettings, check_corpus, window_tasks
from corpora.domain_text import build_texts, domain_text_files
from manifests import external_sort, storage
from manifests.errors import JstipError
from manifests.io import record_sink, write_records, write_stage_metrics, write_text_atomic
from manifests.schema import Rejected, Text, Utterance
from pipeline.execution import executor


@dataclass
class PrepareConfig:
    corpus: str = field(default="", metadata={"help": "the corpus: a directory (MFA or LibriSpeech layout, or Parquet "
                                                      "files of a Hugging Face dataset), a CSV/TSV/JSONL list, a NeMo "
                                                      "manifest, a Lhotse CutSet or supervision manifest"})
    format: str = field(default="auto", metadata={"help": f"corpus layout: {', '.join(FORMATS)}"})
    corpus_name: str = field(default="", metadata={"help": "name stored in the `corpus` column (default: folder name)"})
    domain_text: str = field(default="", metadata={"help": "domain text: a file (one sentence per line), a directory of "
                                                           ".txt files, or a comma-separated list of them"})
    test_fraction: float = field(default=0.1, metadata={"help": "share of utterances held out as split `test`"})
    encoding: str = field(default="utf-8", metadata={"help": "encoding of transcripts and lists: utf-8, or a codec "
                                                             "name such as latin-1 or cp1252; text that does not "
                                                             "decode is rejected with the reason, never guessed"})
    scripts: str = field(default="latin", metadata={"help": "latin: reject transcripts with words in other scripts "
                                                            "(the en-US aligners cannot place them); any: keep them"})
    verify_audio: bool = field(default=True, metadata={"help": "decode every audio file once (catches truncated or "
                                                               "corrupt files here rather than in align)"})
    end_tolerance: float = field(default=0.05, metadata={"help": "seconds a listed stretch may end past its audio "
                                                                 "file's end (durations rounded to 0.01 s, as NeMo "
                                                                 "writes them): it is clamped to the file and counted; "
                                                                 "a longer overrun is rejected (bad_stretch)"})
    workers: int = field(default=1, metadata={"help": "worker processes checking slices of rows (1 runs inline; more "
                                                      "start a local process pool)"})
    scheduler: str = field(default="", metadata={"help": "address of a running dask scheduler (tcp://HOST:8786) to "
                                                         "use instead"})
    retries: int = field(default=2, metadata={"help": "times dask retries a task whose worker died"})
    audio_dir: str = field(default="data/prepared_audio", metadata={"help": "where audio embedded in a Parquet dataset is "
                                                                            "written as files"})
    utterances: str = field(default="data/utterances.parquet", metadata={"help": "output utterance manifest"})
    texts: str = field(default="data/texts.parquet", metadata={"help": "output text manifest"})
    rejected: str = field(default="data/prepare_rejected.parquet", metadata={"help": "inputs that were not usable, with why"})
    metrics: str = field(default="metrics/prepare.json", metadata={"help": "where to write the counts"})
    report: str = field(default="reports/prepare.json", metadata={"help": "where to write rejections by reason, "
                                                                          "with examples"})


def check_config(cfg: PrepareConfig) -> None:
    if not cfg.corpus and not cfg.domain_text:
        raise JstipError("prepare needs a corpus: set prepare.corpus in params.yaml or pass --corpus PATH "
                         "(`jstip demo-corpus` makes a demo one), or only --domain-text for a text manifest")
    if not 0.0 <= cfg.end_tolerance < 10.0:
        raise JstipError(f"prepare.end_tolerance must be a small number of seconds >= 0, got {cfg.end_tolerance}")
    if not 0.0 <= cfg.test_fraction < 1.0:
        raise JstipError(f"prepare.test_fraction must lie in [0, 1), got {cfg.test_fraction}")
    if cfg.scripts not in SCRIPTS:
        raise JstipError(f"prepare.scripts must be one of {', '.join(SCRIPTS)}, got {cfg.scripts!r}")
    check_encoding(cfg.encoding)


def run(cfg: PrepareConfig) -> dict:
    check_config(cfg)
    started = time.perf_counter()
    corpus = cfg.corpus_name or storage.name(cfg.corpus.rstrip("/"))
    _describe_audio_dir(cfg.audio_dir)
    raws = iter_corpus(cfg.corpus, cfg.format, cfg.encoding, cfg.audio_dir) if cfg.corpus else iter(())
    settings = CheckSettings(corpus, cfg.test_fraction, cfg.scripts, cfg.verify_audio, cfg.end_tolerance)
    texts, rejected_texts = _partition(build_texts(domain_text_files(cfg.domain_text), cfg.encoding))
    with tqdm(desc="prepare: checking rows", unit="utt") as progress, \
            executor(workers=cfg.workers, scheduler=cfg.scheduler, retries=cfg.retries) as run_tasks, \
            record_sink(cfg.utterances, Utterance) as utterances, record_sink(cfg.rejected, Rejected) as rejected:
        summary = check_corpus(raws, settings, run_tasks, utterances.write_table, rejected.write,
                               window=window_tasks(settings, getattr(run_tasks, "workers", cfg.workers)),
                               slice_rows=streaming.rows_per_task(settings),
                               run_rows=external_sort.RUN_ROWS, on_rows=progress.update)
        rejected.write(rejected_texts)
    write_records(texts, Text, cfg.texts)
    rejected_by_reason = summary.rejected.counts()
    for category, count in Counter(reason_category(r.reason) for r in rejected_texts).items():
        rejected_by_reason[category] = rejected_by_reason.get(category, 0) + count
    wall = time.perf_counter() - started
    metrics = {
        "utterances": summary.utterances,
        "train_utterances": summary.splits.get("train", 0),
        "test_utterances": summary.splits.get("test", 0),
        "audio_hours": round(summary.seconds / 3600, 4),
        "speakers": summary.speakers,
        "texts": len(texts),
        "rejected": summary.rejected.total + len(rejected_texts),
        "rejected_by_reason": rejected_by_reason,
        "clamped_to_file_end": summary.notes.counts.get("clamped_to_file_end", 0),
    }
    report = {
        "corpus": cfg.corpus, "rejected_file": cfg.rejected,
        "rejected_utterances": summary.rejected.sorted(), "rejected_texts": reasons_table(rejected_texts),
        "notes": summary.notes.table(), "rows": summary.rows, "workers": cfg.workers,
        "wall_seconds": round(wall, 2), "rows_per_second": round(summary.rows / wall, 1) if wall > 0 else None,
    }
    write_stage_metrics(metrics, cfg.metrics, report, cfg.report)
    if cfg.corpus and not summary.utterances:
        raise JstipError(f"no usable utterance in {cfg.corpus}: {summary.rejected.total} rejected, reasons in "
                         f"{cfg.rejected} and {cfg.report}")
    return metrics


def _describe_audio_dir(directory: str) -> None:
    """A note in `audio_dir`, which DVC tracks as an output (and warns about while it is empty)."""
    if storage.is_url(directory):
        write_text_atomic("Audio embedded in the Parquet dataset of prepare.corpus (none for other corpora).\n",
                          storage.join(directory, "README.txt"))
        return
    note = Path(directory) / "README.txt"
    text = ("Audio embedded in the Parquet dataset of prepare.corpus, written here by `jstip prepare` "
            "(one file per utterance; nothing else for other corpora).\n")
    if not note.is_file() or note.read_text() != text:
        write_text_atomic(text, note)


def _partition(items: Iterable) -> tuple[list, list[Rejected]]:
    kept, rejected = [], []
    for item in items:
        (rejected if isinstance(item, Rejected) else kept).append(item)
    return kept, rejected
