"""Records by id from corpus-sized manifests, a row group at a time, without holding them.

Each Parquet row group's min/max of the id column (footer statistics) says which groups may hold
an id; a group is read when first needed and the last few are kept, so a caller that walks ids
in about the manifest's order (samples follow their utterances, which prepare sorts by id) reads
each group about once and memory stays at a few groups. A group without statistics is searched
for every id. Where several manifests hold an id, the later manifest wins (as a dict update).
Used by the sharded exports for word alignments, speakers and splits.
"""
from __future__ import annotations

import bisect
from collections import OrderedDict
from pathlib import Path
from typing import Any, Generic, Type, TypeVar

import pyarrow as pa

from .errors import ManifestError
from .io import _open, manifest_files, read_row_group
from .schema import ADDED_COLUMNS, from_row, schema_of

T = TypeVar("T")
_LOWEST, _HIGHEST = "", "\U0010ffff"


class ById(Generic[T]):
    """`row(id)`: the row of that id (a dict of `columns`, default all), or None; `record(id)`: as
    the record type (when every column is read)."""

    def __init__(self, paths: list[str], record_type: Type[T], id_column: str, columns: list[str] | None = None,
                 keep: int = 4) -> None:
        self.record_type, self.id_column, self.keep = record_type, id_column, keep
        self.columns = columns or schema_of(record_type).names
        self.optional = ADDED_COLUMNS.get(record_type, frozenset())
        groups: list[tuple[str, str, str, int]] = []  # (lo, hi, file, row group), in manifest order
        for path in paths:
            if not path or not Path(path).exists():
                continue
            try:
                for file in manifest_files(path):
                    groups += _group_ranges(str(file), record_type, id_column, self.optional)
            except ManifestError:
                continue
        order = sorted(range(len(groups)), key=lambda i: groups[i][0])
        self.groups = [groups[i] for i in order]
        self.rank = order  # a group's place in manifest order: the later wins
        self.los = [g[0] for g in self.groups]
        self.max_hi: list[str] = []  # highest `hi` among the groups sorted before and at each position
        for g in self.groups:
            self.max_hi.append(max(self.max_hi[-1], g[1]) if self.max_hi else g[1])
        self.loaded: OrderedDict[int, tuple[pa.Table, dict[str, int]]] = OrderedDict()

    def record(self, key: str) -> T | None:
        values = self.row(key)
        return None if values is None else from_row(values, self.record_type)

    def row(self, key: str) -> dict[str, Any] | None:
        found = None
        k = bisect.bisect_right(self.los, key) - 1
        while k >= 0 and self.max_hi[k] >= key:
            if self.groups[k][1] >= key:
                table, index = self._load(k)
                row = index.get(key)
                if row is not None and (found is None or self.rank[k] > found[0]):
                    found = (self.rank[k], table, row)
            k -= 1
        if found is None:
            return None
        _, table, row = found
        return table.slice(row, 1).to_pylist()[0]

    def _load(self, k: int) -> tuple[pa.Table, dict[str, int]]:
        if k in self.loaded:
            self.loaded.move_to_end(k)
            return self.loaded[k]
        _, _, file, group = self.groups[k]
        table = read_row_group(file, group, self.columns, self.optional)
        index = {key: i for i, key in enumerate(table.column(self.id_column).to_pylist())}
        self.loaded[k] = (table, index)
        if len(self.loaded) > self.keep:
            self.loaded.popitem(last=False)
        return table, index


def _group_ranges(file: str, record_type: type, id_column: str, optional: Any) -> list[tuple[str, str, str, int]]:
    parquet = _open(file, record_type, optional)
    column = parquet.schema_arrow.names.index(id_column)
    ranges = []
    for g in range(parquet.num_row_groups):
        stats = parquet.metadata.row_group(g).column(column).statistics
        known = stats is not None and stats.has_min_max
        ranges.append((stats.min if known else _LOWEST, stats.max if known else _HIGHEST, file, g))
    return ranges

