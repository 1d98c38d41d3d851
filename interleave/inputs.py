"""The interleave stage's inputs, cut into shard tasks that each read their own slice on the worker.

A task is a range of rows of the utterance manifest (global row numbers over its files and row
groups) with the alignment files that cover them, or a range of rows of a text manifest. The
alignment stage writes shard k from consecutive utterance rows, in manifest order, and stores
the range in the file's metadata (`utt_rows` = "start:stop"); tasks are whole groups of such files.
Alignments without that key (older or imported ones) are placed by a streaming merge join on
`utt_id` that relies on the same order: it reads ids only, holds a bounded window of them, and
stops with an error naming the record when the order does not match. A worker joins its utterance
rows with its alignment records by id, vectorised, and never sees another task's rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifests import storage
from manifests.errors import JstipError
from manifests.io import (Group, file_metadata, manifest_files, manifest_groups, read_row_group, read_rows, row_group_sizes,
                          shard_fingerprint)
from manifests.schema import ALIGNMENT_SCHEMA, TEXT_SCHEMA, UTTERANCE_SCHEMA, Alignment, Text, Utterance

UTT_COLUMNS = ["utt_id", "audio_path", "offset", "duration", "sample_rate", "text", "norm_text", "split"]
ALIGN_COLUMNS = ["utt_id", "status", "words"]
TEXT_COLUMNS = ["text_id", "text", "norm_text"]
MERGE_WINDOW = 200_000  # utterance rows the merge join looks ahead for one alignment record


@dataclass(frozen=True)
class Task:
    """One shard's inputs: rows [start, stop) of a manifest (and, for utterances, alignment files)."""

    index: int
    source: str  # "utterances" or "texts"
    start: int
    stop: int
    groups: tuple[Group, ...]
    alignments: tuple[tuple[str, int, int], ...] = ()  # alignment files and their record rows [lo, hi)
    roles: tuple[str, ...] = ()  # texts: "domain" (text), "tts" (tts kinds)
    stamp: tuple = field(default=(), compare=False)  # what the inputs are, for the shard fingerprint

    @property
    def rows(self) -> int:
        return self.stop - self.start


def file_stamp(path: str | Path) -> tuple:
    """A file's identity for fingerprints: the fingerprint it was written with, else size and mtime."""
    stored = shard_fingerprint(path)
    if stored:
        return (storage.name(str(path)), stored)
    return (storage.name(str(path)), *storage.stamp(path))


def _ids(groups: Sequence[Group], chunk: int = 65536) -> Iterator[tuple[int, list[str]]]:
    for file, g, first, n, _ in groups:
        ids = read_row_group(file, g, ["utt_id"]).column(0)
        for lo in range(0, n, chunk):
            yield first + lo, ids.slice(lo, chunk).to_pylist()


Piece = tuple[str, int, int, int, int]  # alignment file, its rows [lo, hi) (hi -1: all), the utterance rows [lo, hi)


def _rows(file: str) -> int:
    return sum(row_group_sizes(file))


def alignment_pieces(files: Sequence[str], utt_groups: Sequence[Group], max_rows: int) -> list[Piece]:
    """Alignment files cut into pieces of about `max_rows` records, each with the utterance rows it
    covers: from the files' `utt_rows` metadata, else by a streaming merge join on `utt_id` (see the
    module doc). A file of more than twice `max_rows` records is placed record by record (its ids only)."""
    total = sum(g[3] for g in utt_groups)
    stored = [file_metadata(f, "utt_rows") for f in files]
    pieces: list[Piece] = []
    if all(stored):
        for f, value in zip(files, stored):
            try:
                a, b = (int(x) for x in str(value).split(":"))
            except ValueError:
                raise JstipError(f"{f}: metadata utt_rows={value!r} is not 'start:stop'; rerun `jstip align`") from None
            n = _rows(f) if b - a > 2 * max_rows else b - a  # a file of `jstip align` holds a record per row
            if n <= 2 * max_rows or not 0 <= a <= b <= total:  # whole files up to twice a task's rows
                pieces.append((f, 0, -1, a, b))
            else:
                pieces += _cut(f, _positions_within(f, utt_groups, a, b), max_rows)
    else:
        for f, positions in _merge_join(files, utt_groups):
            size = max_rows if len(positions) > 2 * max_rows else max(len(positions), 1)
            pieces += _cut(f, positions, size) if len(positions) else [(f, 0, 0, -1, -1)]
    previous = 0
    for f, _, _, a, b in pieces:
        if a < 0:
            continue
        if not previous <= a <= b <= total:
            raise JstipError(f"{f} covers utterance rows {a}:{b}, which overlap the previous alignment file or lie "
                             f"beyond the {total} rows of the utterance manifest; the alignments were made from another "
                             "manifest: rerun `jstip align`")
        previous = b
    return pieces


def _cut(file: str, positions: np.ndarray, max_rows: int) -> list[Piece]:
    return [(file, lo, min(lo + max_rows, len(positions)), int(positions[lo]),
             int(positions[min(lo + max_rows, len(positions)) - 1]) + 1) for lo in range(0, len(positions), max_rows)]


def _positions_within(file: str, utt_groups: Sequence[Group], a: int, b: int) -> np.ndarray:
    """Utterance rows of a file's records, which must lie in [a, b) in order."""
    ids = read_rows(manifest_groups(file, Alignment), 0, _rows(file), ["utt_id"], ALIGNMENT_SCHEMA).column(0)
    rows = read_rows(utt_groups, a, b, ["utt_id"], UTTERANCE_SCHEMA).column(0)
    where = pc.index_in(ids, value_set=rows)
    if where.null_count or (len(where) > 1 and (np.diff(np.asarray(where)) <= 0).any()):
        raise JstipError(f"{file}: its records are not the utterances of rows {a}:{b} (its `utt_rows`) in manifest "
                         "order; rerun `jstip align`")
    return a + np.asarray(where, np.int64)


def _merge_join(files: Sequence[str], utt_groups: Sequence[Group]) -> Iterator[tuple[str, np.ndarray]]:
    """(file, utterance row of each of its records), reading ids only and holding a bounded window."""
    chunks = _ids(utt_groups)
    window: dict[str, int] = {}
    loaded: list[tuple[int, list[str]]] = []
    end, cursor = 0, 0
    for f in files:
        ids = pa.concat_arrays([read_row_group(f, g, ["utt_id"]).column(0).combine_chunks()
                                for g in range(len(row_group_sizes(f)))] or [pa.array([], pa.string())]).to_pylist()
        positions = np.empty(len(ids), np.int64)
        for k, uid in enumerate(ids):
            pos = window.get(uid)
            while pos is None or pos < cursor:
                if pos is not None:
                    raise JstipError(f"{f}: the alignment of {uid!r} (utterance row {pos}) comes after that of row "
                                     f"{cursor - 1}: the alignments are not in the utterance manifest's order. Rerun "
                                     "`jstip align`, or write the files in manifest order")
                if end - cursor > MERGE_WINDOW:
                    raise JstipError(f"{f}: no utterance {uid!r} within {MERGE_WINDOW} rows after row {cursor} of the "
                                     "utterance manifest: the alignments are not in the utterance manifest's order, "
                                     "or name an utterance it lacks. Rerun `jstip align` on this manifest")
                got = next(chunks, None)
                if got is None:
                    raise JstipError(f"{f}: the alignment of {uid!r} names no utterance at or after row {cursor} of "
                                     "the utterance manifest: the alignments are not in the utterance manifest's order, "
                                     "or name an utterance it lacks. Rerun `jstip align` on this manifest")
                start, chunk = got
                window.update((u, start + i) for i, u in enumerate(chunk))
                loaded.append(got)
                end = start + len(chunk)
                pos = window.get(uid)
            positions[k] = pos
            cursor = pos + 1
            while loaded and loaded[0][0] + len(loaded[0][1]) <= cursor:
                for u in loaded.pop(0)[1]:
                    if window.get(u, cursor) < cursor:
                        del window[u]
        yield f, positions


def plan_tasks(utterances: str, alignments: str, texts: dict[str, tuple[str, ...]], rows_per_task: int,
               text_rows_per_task: int) -> list[Task]:
    """Utterance tasks (whole alignment files, about `rows_per_task` rows each), then text tasks."""
    tasks: list[Task] = []
    if utterances:
        groups = manifest_groups(utterances, Utterance)
        total = sum(g[3] for g in groups)
        files = [str(f) for f in manifest_files(alignments)] if alignments else []
        pieces = alignment_pieces(files, groups, rows_per_task) if files else []
        utt_stamp = tuple(file_stamp(f) for f in dict.fromkeys(g[0] for g in groups))
        stamps = {f: file_stamp(f) for f in files}
        spans: list[tuple[int, int, list]] = []  # [lo, hi) and the alignment pieces inside
        lo, members = 0, []
        for f, a_lo, a_hi, _, b in pieces:
            if a_hi > a_lo or a_hi < 0:
                members.append((f, a_lo, a_hi))
            if b - lo >= rows_per_task:
                spans.append((lo, b, members))
                lo, members = b, []
        if members:
            spans.append((lo, total, members))
        else:  # rows after the last alignment file (or no alignments at all): plain row ranges
            spans += [(a, min(total, a + rows_per_task), []) for a in range(lo, total, rows_per_task)]
        for lo, hi, members in spans:
            mine = tuple(g for g in groups if g[2] < hi and g[2] + g[3] > lo)
            stamp = (utt_stamp, lo, hi, tuple((stamps[f], a, b) for f, a, b in members))
            tasks.append(Task(len(tasks), "utterances", lo, hi, mine, tuple(members), (), stamp))
    for path, roles in texts.items():
        groups = manifest_groups(path, Text)
        total = sum(g[3] for g in groups)
        stamp = tuple(file_stamp(f) for f in dict.fromkeys(g[0] for g in groups))
        for lo in range(0, total, text_rows_per_task):
            hi = min(total, lo + text_rows_per_task)
            mine = tuple(g for g in groups if g[2] < hi and g[2] + g[3] > lo)
            tasks.append(Task(len(tasks), "texts", lo, hi, mine, (), roles, (stamp, lo, hi, roles)))
    return tasks


def read_utterance_task(task: Task, columns: Sequence[str] = UTT_COLUMNS) -> tuple[pa.Table, dict[str, int], dict[str, list[str]]]:
    """The task's utterance rows (`columns` of them) joined with their alignment records (`status`,
    `words`), plus counts of alignment records that could not be joined (duplicates, foreign ids)."""
    utts = read_rows(task.groups, task.start, task.stop, list(columns), UTTERANCE_SCHEMA) if task.rows else None
    if utts is None or utts.num_rows == 0:
        return pa.table({c: [] for c in columns}), {}, {}
    parts = [_read_alignments(f, lo, hi) for f, lo, hi in task.alignments]
    words_type = pa.list_(pa.struct([("word", pa.string()), ("start", pa.float64()), ("end", pa.float64()),
                                     ("score", pa.float64())]))
    counts, examples = {}, {}
    if parts:
        align = pa.concat_tables(parts).combine_chunks()
        where = pc.index_in(utts.column("utt_id"), value_set=align.column("utt_id"))
        status = align.column("status").take(where)
        words = align.column("words").take(where).cast(words_type)
        matched = pc.is_in(align.column("utt_id"), value_set=utts.column("utt_id"))
        n_unmatched = int(len(matched) - pc.sum(matched).as_py()) if len(matched) else 0
        n_dupes = int(align.num_rows - n_unmatched - pc.count_distinct(align.column("utt_id").filter(matched)).as_py())
        if n_unmatched:
            counts["alignment_of_unknown_utterance"] = n_unmatched
            examples["alignment_of_unknown_utterance"] = align.column("utt_id").filter(pc.invert(matched)).slice(0, 3).to_pylist()
        if n_dupes:
            counts["duplicate_alignment"] = n_dupes
    else:
        status = pa.nulls(utts.num_rows, pa.string())
        words = pa.nulls(utts.num_rows, words_type)
    return utts.append_column("status", status).append_column("words", words), counts, examples


def _read_alignments(file: str, lo: int, hi: int) -> pa.Table:
    """Records [lo, hi) of an alignment file (hi < 0: all of it)."""
    groups = manifest_groups(file, Alignment)
    return read_rows(groups, lo, hi if hi >= 0 else sum(g[3] for g in groups), ALIGN_COLUMNS, ALIGNMENT_SCHEMA)


def read_text_task(task: Task) -> pa.Table:
    return read_rows(task.groups, task.start, task.stop, TEXT_COLUMNS, TEXT_SCHEMA) if task.rows else \
        pa.table({c: pa.array([], pa.string()) for c in TEXT_COLUMNS})
