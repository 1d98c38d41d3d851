"""Sort rows by a string key out of core, keeping the first row of each key: an external merge sort.

Tables arrive in read order. Every `run_rows` rows are sorted (by key, then arrival) with Arrow and
spilled to an Arrow IPC file in `directory`; `merged()` then streams the runs back a chunk at a time
and merges them (`heapq.merge`, ties going to the earlier run), so memory holds one chunk per run
and one output batch, whatever the number of rows. A key met again is a duplicate: the later rows
come back apart, so the caller can say why they were dropped. The result depends only on the rows
and their order, never on how they were batched on the way in.

Arrow and the standard library do the work (Arrow sorts each run in C++; polars' streaming sort
was not used because its memory use under a sort is not bounded on every version we support).
"""
from __future__ import annotations

import heapq
import itertools
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc

RUN_ROWS = 200_000  # rows sorted in memory before a run is spilled
CHUNK_ROWS = 8192  # rows per IPC batch: what the merge holds of each run
ARRIVAL = "_arrival"  # the column recording read order (ties between equal keys)


class ExternalSorter:
    """Collects tables, then yields (kept, duplicates) batches sorted by `key`."""

    def __init__(self, key: str, directory: str | Path | None = None, run_rows: int = RUN_ROWS,
                 chunk_rows: int = CHUNK_ROWS) -> None:
        self.key = key
        self.run_rows = run_rows
        self.chunk_rows = chunk_rows
        self._owned = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="jstip-sort-") if directory is None else directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._arrived = 0
        self.runs: list[Path] = []
        self.schema: pa.Schema | None = None

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            self.schema = self.schema or table.schema
            return
        self.schema = self.schema or table.schema
        arrival = pa.array(range(self._arrived, self._arrived + table.num_rows), pa.int64())
        self._arrived += table.num_rows
        self._pending.append(table.append_column(ARRIVAL, arrival))
        self._pending_rows += table.num_rows
        if self._pending_rows >= self.run_rows:
            self._spill()

    def _spill(self) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        self._pending, self._pending_rows = [], 0
        table = table.take(pc.sort_indices(table, [(self.key, "ascending"), (ARRIVAL, "ascending")]))
        path = self.directory / f"run-{len(self.runs):05d}.arrow"
        options = pa.ipc.IpcWriteOptions(compression="lz4")
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema, options=options) as writer:
            for batch in table.to_batches(max_chunksize=self.chunk_rows):
                writer.write_batch(batch)
        self.runs.append(path)

    def merged(self, batch_rows: int = 65536) -> Iterator[tuple[pa.Table, pa.Table]]:
        """(kept rows, duplicate rows) in key order, `batch_rows` kept rows at a time; the
        arrival column is dropped. Yields nothing when no row was added."""
        self._spill()
        streams = [self._stream(r, path) for r, path in enumerate(self.runs)]
        kept: list[tuple[pa.Table, int]] = []
        dups: list[tuple[pa.Table, int]] = []
        previous = None
        for key, _run, _pos, chunk, i in heapq.merge(*streams):
            (dups if key == previous else kept).append((chunk, i))
            previous = key
            if len(kept) >= batch_rows:
                yield self._gather(kept), self._gather(dups)
                kept, dups = [], []
        if kept or dups:
            yield self._gather(kept), self._gather(dups)

    def _stream(self, run: int, path: Path) -> Iterator[tuple]:
        position = itertools.count()
        with pa.OSFile(str(path), "rb") as source:
            reader = pa.ipc.open_file(source)
            for b in range(reader.num_record_batches):
                chunk = pa.Table.from_batches([reader.get_batch(b)])
                for i, key in enumerate(chunk.column(self.key).to_pylist()):
                    yield key, run, next(position), chunk, i

    def _gather(self, rows: list[tuple[pa.Table, int]]) -> pa.Table:
        """The rows named by (chunk, index) pairs, in that order, as one table without the arrival column."""
        if not rows:
            return self.schema.empty_table() if self.schema is not None else pa.table({})
        offsets: dict[int, int] = {}
        chunks: list[pa.Table] = []
        indices = []
        total = 0
        for chunk, i in rows:
            start = offsets.get(id(chunk))
            if start is None:
                start = offsets[id(chunk)] = total
                total += chunk.num_rows
                chunks.append(chunk)
            indices.append(start + i)
        table = pa.concat_tables(chunks).take(pa.array(indices, pa.int64()))
        return table.drop_columns([ARRIVAL]).combine_chunks()

    def close(self) -> None:
        self._pending = []
        for path in self.runs:
            path.unlink(missing_ok=True)
        self.runs = []
        if self._owned:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "ExternalSorter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
