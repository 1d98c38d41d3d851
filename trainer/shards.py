"""Where training samples come from: row groups of sample shards (or an in-memory list), read lazily.

The unit of reading is a row group: ranks take disjoint row groups (round-robin; rows when there
are fewer groups than ranks), loader workers take disjoint pools of them, and a pool's samples
are turned into Python objects only when its batches are planned (`batching.py`). Start-up reads
footers only (`row_groups`), then `scan` reads the `kind` column of every row group and the span
columns of a bounded sample of them (pyarrow compute, a row group at a time) for the sizes the
schedule needs, checking those samples end with `</s>`; memory and time stay flat in the corpus
size (the kind column aside). Embedded FLAC bytes are read from
their row group when a batch needs them. Everything goes through `manifests.io` and
`manifests.schema.from_row`.
"""
from __future__ import annotations

import random
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifests import formats
from manifests.errors import JstipError
from manifests.io import manifest_files, read_row_group, row_group_sizes
from manifests.schema import ADDED_COLUMNS, SPEECH, TEXT, TOKEN, Sample, audio_bytes, from_row, schema_of

from .features import FrameSpec

AUDIO = "audio"
_EPS = 1e-6


@dataclass(frozen=True)
class RowGroup:
    """One row group of one shard, which of its rows this rank takes (None: all), and optionally
    a slice [start, stop) of those rows (a chunk: the unit a pool is made of)."""

    file: str
    index: int
    rows: int
    take: tuple[int, ...] | None = None
    start: int = 0
    stop: int | None = None

    @property
    def taken(self) -> int:
        return self.rows if self.take is None else len(self.take)

    @property
    def n(self) -> int:
        return (self.taken if self.stop is None else self.stop) - self.start

    @property
    def physical(self) -> tuple[str, int, tuple[int, ...] | None]:
        return self.file, self.index, self.take


def chunked(groups: list[RowGroup], chunk_rows: int) -> list[RowGroup]:
    """Row groups cut into slices of at most `chunk_rows` rows, so a pool need not hold a huge group."""
    out = []
    for g in groups:
        for a in range(0, g.taken, chunk_rows):
            out.append(RowGroup(g.file, g.index, g.rows, g.take, a, min(a + chunk_rows, g.taken)))
    return out


def row_groups(path: str | Path) -> list[RowGroup]:
    """Every row group of a sample manifest (a file or a directory of `part-*.parquet`), in order."""
    out = []
    for file in manifest_files(path):
        sizes = row_group_sizes(file, Sample, optional=ADDED_COLUMNS[Sample])  # older shards lack the audio column
        out += [RowGroup(str(file), i, rows) for i, rows in enumerate(sizes)]
    return out


def split_for_rank(groups: list[RowGroup], rank: int, world_size: int) -> list[RowGroup]:
    """This rank's share: whole row groups round-robin, or rows round-robin when groups are too few."""
    groups = [g for g in groups if g.rows]
    if world_size == 1:
        return groups
    if len(groups) >= world_size:
        return groups[rank::world_size]
    out, k = [], 0
    for g in groups:
        take = tuple(r for i, r in enumerate(range(g.rows), start=k) if i % world_size == rank)
        k += g.rows
        if take:
            out.append(RowGroup(g.file, g.index, g.rows, take))
    return out


def _read(group: RowGroup, columns: list[str], whole: bool = False) -> pa.Table:
    table = read_row_group(group.file, group.index, columns, optional=ADDED_COLUMNS[Sample])
    table = table.take(list(group.take)) if group.take is not None else table
    return table if whole or (group.start == 0 and group.stop is None) else table.slice(group.start, group.n)


def read_metadata(group: RowGroup) -> list[Sample]:
    """The samples of a row group without their audio bytes (`audio=None`)."""
    columns = [n for n in schema_of(Sample).names if n != AUDIO]
    return [from_row({**row, AUDIO: None}, Sample) for row in _read(group, columns).to_pylist()]


class ShardSource:
    """This rank's row groups of a sample manifest, in chunks of at most `chunk_rows` rows; samples read
    per chunk, audio per row when needed (a row group's audio column kept for the last few groups)."""

    def __init__(self, path: str | Path, rank: int = 0, world_size: int = 1, cache_groups: int = 4,
                 chunk_rows: int = 4096) -> None:
        self.path = str(path)
        physical = split_for_rank(row_groups(path), rank, world_size)
        if not physical:
            raise JstipError(f"{path} holds no samples for rank {rank} of {world_size}; run the interleave stage first")
        self.physical = physical
        self.groups = chunked(physical, chunk_rows)
        self.cache_groups = cache_groups
        self._chunk_kinds: list[Counter] | None = None
        self._audio: OrderedDict[tuple, list[bytes | None]] = OrderedDict()

    def read(self, g: int, start: int = 0, stop: int | None = None) -> list[Sample]:
        """Chunk g's samples (rows [start, stop) of it), without audio."""
        group = self.groups[g]
        if start or stop is not None:
            stop = group.n if stop is None else stop
            group = RowGroup(group.file, group.index, group.rows, group.take, group.start + start, group.start + stop)
        return read_metadata(group)

    def audio(self, g: int, row: int) -> bytes | None:
        group = self.groups[g]
        key = group.physical
        if key not in self._audio:
            cells = _read(group, [AUDIO], whole=True).column(AUDIO).to_pylist()  # None where shards lack audio
            self._audio[key] = [audio_bytes(c) for c in cells]
            while len(self._audio) > self.cache_groups:
                self._audio.popitem(last=False)
        self._audio.move_to_end(key)
        return self._audio[key][group.start + row]

    def table(self, g: int, columns: list[str]) -> pa.Table:
        return _read(self.groups[g], columns)

    def spread(self, columns: list[str], seed: int = 0) -> Iterator[pa.Table]:
        """Whole row groups (this rank's rows of them) in a seeded order that samples the corpus evenly."""
        for i in _spread(len(self.physical), seed):
            yield _read(self.physical[i], columns)

    def kinds(self) -> Counter:
        """Samples per kind."""
        return sum(self.chunk_kinds(), Counter())

    def chunk_kinds(self) -> list[Counter]:
        """Samples per kind of each chunk, reading the `kind` column of each row group once (kept)."""
        if self._chunk_kinds is None:
            columns: dict[tuple, pa.Array] = {}
            out = []
            for group in self.groups:
                if group.physical not in columns:
                    columns = {group.physical: _read(group, ["kind"], whole=True).column("kind").combine_chunks()}
                values = columns[group.physical].slice(group.start, group.n)
                out.append(Counter({i["values"]: i["counts"] for i in pc.value_counts(values).to_pylist()}))
            self._chunk_kinds = out
        return self._chunk_kinds


@dataclass(frozen=True)
class _Range:
    start: int
    stop: int

    @property
    def n(self) -> int:
        return self.stop - self.start


class MemorySource:
    """Samples held in memory (tests, benchmarks), in groups of `group_size` standing in for row groups."""

    def __init__(self, samples: Sequence[Sample], group_size: int = 1024) -> None:
        if not samples:
            raise JstipError("no samples to train on")
        self.samples = list(samples)
        self.groups = [_Range(i, min(i + group_size, len(samples))) for i in range(0, len(samples), group_size)]

    def read(self, g: int, start: int = 0, stop: int | None = None) -> list[Sample]:
        r = self.groups[g]
        return self.samples[r.start + start:r.stop if stop is None else r.start + stop]

    def audio(self, g: int, row: int) -> bytes | None:
        return self.samples[self.groups[g].start + row].audio

    def table(self, g: int, columns: list[str]) -> pa.Table:
        from manifests.schema import to_table

        return to_table(self.read(g), Sample).select(columns)

    def spread(self, columns: list[str], seed: int = 0) -> Iterator[pa.Table]:
        for g in _spread(len(self.groups), seed):
            yield self.table(g, columns)

    def kinds(self) -> Counter:
        return Counter(s.kind for s in self.samples)

    def chunk_kinds(self) -> list[Counter]:
        return [Counter(s.kind for s in self.read(g)) for g in range(len(self.groups))]


@dataclass
class CorpusStats:
    """What one columnar pass over a rank's samples tells the schedule (token counts are estimates:
    speech positions exact from span times, text tokens from characters / `chars_per_token`)."""

    rows: int = 0
    rows_by_kind: Counter = field(default_factory=Counter)
    tokens_by_kind: Counter = field(default_factory=Counter)  # estimated sequence positions
    chars_per_token: float = 4.0

    @property
    def tokens(self) -> float:
        return float(sum(self.tokens_by_kind.values()))

    def mean_length(self, kinds: Sequence[str] | None = None) -> float:
        rows = sum(n for k, n in self.rows_by_kind.items() if kinds is None or k in kinds)
        toks = sum(n for k, n in self.tokens_by_kind.items() if kinds is None or k in kinds)
        return toks / rows if rows else 0.0


def _spread(n: int, seed: int) -> list[int]:
    """Indices 0..n-1 in a seeded order: reading a prefix samples the whole corpus evenly."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def _positions(t: pa.Table, spec: FrameSpec, chars_per_token: float, check_format: bool) -> np.ndarray:
    """Estimated sequence positions of each row of a (sample_id, spans) table; checks the final `</s>`."""
    spans = t.column("spans").combine_chunks()
    offsets = spans.offsets.to_numpy()
    values = spans.flatten()
    mod, text = values.field("modality"), values.field("text")
    is_speech = pc.equal(mod, SPEECH).to_numpy(zero_copy_only=False)
    is_text = pc.equal(mod, TEXT).to_numpy(zero_copy_only=False)
    is_token = pc.equal(mod, TOKEN).to_numpy(zero_copy_only=False)
    d = spec.frame_duration
    start = values.field("start").to_numpy(zero_copy_only=False)
    end = values.field("end").to_numpy(zero_copy_only=False)
    chars = pc.utf8_length(text).to_numpy(zero_copy_only=False).astype(np.float64)
    frames = np.maximum(np.ceil(end / d - _EPS) - np.floor(start / d + _EPS), 1.0)
    positions = np.where(is_speech, frames, 0.0) + np.where(is_text, chars / chars_per_token, 0.0) + is_token
    counts = np.diff(offsets)
    per_row = np.bincount(np.repeat(np.arange(t.num_rows), counts), weights=positions, minlength=t.num_rows)
    if check_format:
        last = np.maximum(offsets[1:] - offsets[0] - 1, 0)
        eos = pc.equal(text, formats.EOS).to_numpy(zero_copy_only=False)
        ok = (counts > 0) & is_token[last] & eos[last]
        if not ok.all():
            from .render import not_formatted

            raise not_formatted(t.column("sample_id")[int(np.argmin(ok))].as_py())
    return per_row


def scan(source: Any, spec: FrameSpec, chars_per_token: float = 4.0, check_format: bool = True,
         sample_rows: int = 100_000, seed: int = 0) -> CorpusStats:
    """Rows per kind (the `kind` column of every row group) and estimated positions per kind.

    Positions come from the span columns of row groups spread over the corpus (a seeded order),
    up to `sample_rows` rows, scaled to each kind's row count: the cost is bounded whatever the
    corpus size. With `check_format`, a sampled sample that does not end with `</s>` (a shard
    from before the token formats) is a JstipError naming it; planning checks every sample
    again when its pool is read. Arrow compute only: no Python object per sample or span.
    """
    stats = CorpusStats(chars_per_token=chars_per_token, rows_by_kind=source.kinds())
    stats.rows = sum(stats.rows_by_kind.values())
    seen_rows: Counter = Counter()
    seen_tokens: Counter = Counter()
    for t in source.spread(["sample_id", "kind", "spans"], seed):
        if sum(seen_rows.values()) >= sample_rows:
            break
        if t.num_rows == 0:
            continue
        per_row = _positions(t, spec, chars_per_token, check_format)
        kinds = pc.dictionary_encode(t.column("kind").combine_chunks())
        idx = kinds.indices.to_numpy(zero_copy_only=False)
        for k, name in enumerate(kinds.dictionary.to_pylist()):
            mine = idx == k
            seen_rows[name] += int(mine.sum())
            seen_tokens[name] += float(per_row[mine].sum())
    overall = sum(seen_tokens.values()) / max(sum(seen_rows.values()), 1)
    for name, rows in stats.rows_by_kind.items():
        mean = seen_tokens[name] / seen_rows[name] if seen_rows[name] else overall
        stats.tokens_by_kind[name] = rows * mean
    return stats


def text_sample(source: Any, max_chars: int, seed: int = 0) -> list[str]:
    """Text spans from row groups spread over the corpus (a seeded order), up to `max_chars` characters."""
    out, total = [], 0
    for t in source.spread(["spans"], seed):
        values = t.column("spans").combine_chunks().flatten()
        texts = pc.filter(values.field("text"), pc.equal(values.field("modality"), TEXT))
        for s in texts.to_pylist():
            if s:
                out.append(s)
                total += len(s)
                if total >= max_chars:
                    return out
    return out
