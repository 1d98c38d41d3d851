"""Prepare at any size: rows checked in slices (on any executor), sorted and de-duplicated out of core.

The reader's rows are cut into slices of `SLICE_ROWS`; each slice is a task (`check_slice`: text,
audio and stretch checks) that an executor runs inline or on dask workers, a window of tasks at a
time, so only a window of rows is in flight. Checked rows go to an external merge sort by id
(`manifests.external_sort`), which hands them back sorted, with the later rows of a repeated id
apart (rejected as `duplicate_id`: the first usable row is kept, as `checks.build_utterances`
does). Rejections stream to their file in read order, then the duplicates in id order. Memory
holds a window of slices, one sort run and one output batch, whatever the corpus size; results
come back in task order, so the files are byte-identical for 1 or N workers.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifests.external_sort import RUN_ROWS, ExternalSorter
from manifests.schema import UTTERANCE_SCHEMA, Rejected

from .base import RawUtterance
from .checks import END_TOLERANCE, AudioChecker, CheckNotes, check_row, duplicate_reason, reason_category

SLICE_ROWS = 4096  # rows per task: big enough that dask's per-task cost is small beside the checks
VERIFY_SLICE_ROWS = 32  # rows per task when every file is decoded: small, so the last tasks leave no worker idle long
WINDOW_ROWS_PER_WORKER = 4 * SLICE_ROWS  # rows handed to each worker per window (the window ends in a barrier)
AUDIO_CACHE_FILES = 4096  # audio files whose check a worker remembers (segments of one file share it)
EXAMPLES_PER_REASON = 5


@dataclass(frozen=True)
class CheckSettings:
    corpus: str
    test_fraction: float
    scripts: str = "latin"
    verify_audio: bool = True
    end_tolerance: float = END_TOLERANCE


@dataclass
class RowSlice:
    """One task: consecutive rows of the corpus."""

    settings: CheckSettings
    raws: list[RawUtterance]


@dataclass
class SliceResult:
    kept: pa.Table  # Utterance columns, in read order
    rejected: list[Rejected]
    notes: CheckNotes


class _BoundedAudioChecker(AudioChecker):
    """An AudioChecker remembering the last `AUDIO_CACHE_FILES` files only (memory stays flat)."""

    def __init__(self, verify: bool) -> None:
        super().__init__(verify)
        self.cache: OrderedDict[str, tuple[int, float] | str] = OrderedDict()

    def __call__(self, path: str) -> tuple[int, float]:
        if path in self.cache:
            self.cache.move_to_end(path)
        elif len(self.cache) >= AUDIO_CACHE_FILES:
            self.cache.popitem(last=False)
        return super().__call__(path)


_CHECKERS: dict[bool, _BoundedAudioChecker] = {}


def check_slice(task: RowSlice) -> SliceResult:
    """A slice's checks (all but the duplicate id): its utterances as a table, its rejections."""
    s = task.settings
    checker = _CHECKERS.setdefault(s.verify_audio, _BoundedAudioChecker(s.verify_audio))
    notes = CheckNotes()
    columns: dict[str, list] = {name: [] for name in UTTERANCE_SCHEMA.names}
    rejected = []
    for raw in task.raws:
        checked = check_row(raw, s.corpus, s.test_fraction, s.scripts, checker, s.end_tolerance, notes)
        if isinstance(checked, Rejected):
            rejected.append(checked)
            continue
        for name, values in columns.items():
            values.append(getattr(checked, name))
    return SliceResult(pa.table(columns, schema=UTTERANCE_SCHEMA), rejected, notes)


def rows_per_task(settings: CheckSettings) -> int:
    """Rows per task for these settings (read at call time, so tests may shrink them)."""
    return min(SLICE_ROWS, VERIFY_SLICE_ROWS) if settings.verify_audio else SLICE_ROWS


def window_tasks(settings: CheckSettings, workers: int) -> int:
    """Tasks per window: `WINDOW_ROWS_PER_WORKER` rows per worker, whatever the task size. Every window
    ends when its slowest task does: with 64-row verification tasks, windows of 4 tasks per worker
    left a worker idle for half a task in every 4 (2 workers 1.36-1.55x one, 1.79x with these windows)."""
    return max(1, workers * WINDOW_ROWS_PER_WORKER // rows_per_task(settings))


def slices(raws: Iterable[RawUtterance], settings: CheckSettings, rows: int = SLICE_ROWS) -> Iterator[RowSlice]:
    iterator = iter(raws)
    while batch := list(itertools.islice(iterator, rows)):
        yield RowSlice(settings, batch)


class ReasonsTable:
    """Counts of rejections by category, with a few examples each (what `checks.reasons_table` gives)."""

    def __init__(self) -> None:
        self.table: dict[str, dict] = {}
        self.total = 0

    def add(self, rejected: Iterable[Rejected]) -> None:
        for r in rejected:
            entry = self.table.setdefault(reason_category(r.reason), {"count": 0, "examples": []})
            entry["count"] += 1
            self.total += 1
            if len(entry["examples"]) < EXAMPLES_PER_REASON:
                entry["examples"].append({"id": r.record_id, "reason": r.reason})

    def counts(self) -> dict[str, int]:
        return {k: v["count"] for k, v in self.table.items()}

    def sorted(self) -> dict[str, dict]:
        return dict(sorted(self.table.items(), key=lambda kv: -kv[1]["count"]))


@dataclass
class PrepareSummary:
    utterances: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    speakers: int = 0
    rows: int = 0
    rejected: ReasonsTable = field(default_factory=ReasonsTable)
    notes: CheckNotes = field(default_factory=CheckNotes)


class _DistinctCounter:
    """Distinct strings counted by 64-bit hash (polars' hash), memory 8 bytes per distinct value.
    A collision needs ~4e9 distinct values to become likely; a corpus has far fewer speakers."""

    def __init__(self) -> None:
        self.unique = np.empty(0, np.uint64)
        self.pending: list[np.ndarray] = []
        self.pending_rows = 0

    def add(self, values: pa.Array) -> None:
        import polars as pl

        self.pending.append(np.unique(pl.Series(values).hash(seed=0).to_numpy()))
        self.pending_rows += len(self.pending[-1])
        if self.pending_rows > 1_000_000:
            self._fold()

    def _fold(self) -> None:
        self.unique = np.unique(np.concatenate([self.unique, *self.pending]))
        self.pending, self.pending_rows = [], 0

    def count(self) -> int:
        self._fold()
        return int(self.unique.size)


def check_corpus(raws: Iterable[RawUtterance], settings: CheckSettings, run: Callable[..., list],
                 write_utterances: Callable[[pa.Table], None], write_rejected: Callable[[list[Rejected]], None],
                 *, window: int | None = None, slice_rows: int | None = None, run_rows: int | None = None,
                 spill_dir: str | None = None, on_rows: Callable[[int], None] | None = None) -> PrepareSummary:
    """Check every row and write the utterances sorted by id (through `write_utterances`, a table
    at a time) and the rejections (`write_rejected`); `run(fn, tasks, done)` is the executor's map
    (`done(task)` as each task finishes moves `on_rows` while a window runs)."""
    summary = PrepareSummary()
    speakers = _DistinctCounter()
    tasks = slices(raws, settings, slice_rows or rows_per_task(settings))
    window = window or window_tasks(settings, getattr(run, "workers", 1))
    done = (lambda task: on_rows(len(task.raws))) if on_rows is not None else None
    with ExternalSorter("utt_id", spill_dir, run_rows=run_rows or RUN_ROWS) as sorter:
        while chunk := list(itertools.islice(tasks, window)):
            for task, result in zip(chunk, run(check_slice, chunk, done)):
                summary.rows += len(task.raws)
                sorter.add(result.kept)
                write_rejected(result.rejected)
                summary.rejected.add(result.rejected)
                summary.notes.merge(result.notes)
        for kept, duplicates in sorter.merged():
            write_utterances(kept)
            summary.utterances += kept.num_rows
            summary.seconds += (pc.sum(kept.column("duration")).as_py() or 0.0) if kept.num_rows else 0.0
            for split, count in zip(*_value_counts(kept.column("split"))):
                summary.splits[split] = summary.splits.get(split, 0) + count
            if kept.num_rows:
                speakers.add(kept.column("speaker"))
            dups = [Rejected("prepare", i, duplicate_reason(i)) for i in duplicates.column("utt_id").to_pylist()] \
                if duplicates.num_rows else []
            write_rejected(dups)
            summary.rejected.add(dups)
    summary.speakers = speakers.count()
    return summary


def _value_counts(column: pa.ChunkedArray) -> tuple[list, list]:
    if len(column) == 0:
        return [], []
    counts = pc.value_counts(column.combine_chunks())
    return counts.field("values").to_pylist(), counts.field("counts").to_pylist()
