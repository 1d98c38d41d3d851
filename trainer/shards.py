"""Sample shards as row groups: the unit a DDP rank (and a loader worker) reads.

The trainer plans batches from the samples' metadata (spans, durations: small) and reads the
embedded FLAC bytes (`Sample.audio`, large) only when a batch is built, one row group at a time.
Row groups are dealt to ranks round-robin, so ranks read disjoint parts of the data; when there
are fewer row groups than ranks, rows are dealt instead. Row groups are read through
`manifests.io` (which checks the columns) and turned into `Sample`s by `manifests.schema.from_row`.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from manifests.io import manifest_files, read_row_group, row_group_sizes
from manifests.schema import ADDED_COLUMNS, Sample, audio_bytes, from_row, schema_of

AUDIO = "audio"


@dataclass(frozen=True)
class RowGroup:
    """One row group of one shard, and which of its rows this rank takes (None: all)."""

    file: str
    index: int
    rows: int
    take: tuple[int, ...] | None = None


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


def _read(group: RowGroup, columns: list[str]) -> pa.Table:
    table = read_row_group(group.file, group.index, columns, optional=ADDED_COLUMNS[Sample])
    return table.take(list(group.take)) if group.take is not None else table


def read_metadata(group: RowGroup) -> list[Sample]:
    """The samples of a row group without their audio bytes (`audio=None`)."""
    columns = [n for n in schema_of(Sample).names if n != AUDIO]
    return [from_row({**row, AUDIO: None}, Sample) for row in _read(group, columns).to_pylist()]


class AudioReader:
    """Embedded audio bytes of a row group's rows, keeping the last few row groups' columns in memory."""

    def __init__(self, cache_groups: int = 4) -> None:
        self.cache: OrderedDict[RowGroup, list[bytes | None]] = OrderedDict()
        self.cache_groups = cache_groups

    def __call__(self, group: RowGroup, row: int) -> bytes | None:
        if group not in self.cache:
            cells = _read(group, [AUDIO]).column(AUDIO).to_pylist()  # None where shards lack audio
            self.cache[group] = [audio_bytes(c) for c in cells]
            while len(self.cache) > self.cache_groups:
                self.cache.popitem(last=False)
        self.cache.move_to_end(group)
        return self.cache[group][row]


class EmbeddedAudio:
    """`Sample -> bytes | None` for `data.Features`: the sample's FLAC bytes, read from its row group."""

    def __init__(self, refs: dict[str, tuple[RowGroup, int]], cache_groups: int = 4) -> None:
        self.refs, self.reader = refs, AudioReader(cache_groups)

    def __call__(self, sample: Sample) -> bytes | None:
        if sample.audio is not None:
            return sample.audio
        ref = self.refs.get(sample.sample_id)
        return self.reader(*ref) if ref is not None else None
