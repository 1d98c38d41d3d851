"""The only Parquet readers and writers: streaming, sharded, atomic.

Writers go through a temporary file and a rename, so a crashed stage never leaves a
half-written manifest that a rerun would mistake for a finished one.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Collection, Iterable, Iterator, Sequence, Type, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import ManifestError
from .schema import ADDED_COLUMNS, from_table, schema_of, to_table
from . import storage
from .storage import is_url, upload

T = TypeVar("T")
SHARD_PATTERN = "part-{:05d}.parquet"
METADATA_PREFIX = b"jstip."  # our keys in a Parquet file's metadata


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` only if the block succeeds.

    The temporary name keeps the suffix, so writers that pick a format by suffix still work.
    The file ends with the permissions an ordinary write would give it (0666 less the umask),
    not `mkstemp`'s private 0600.
    """
    if is_url(path):  # object storage: write locally, then one put (an object appears whole or not at all)
        with tempfile.TemporaryDirectory(prefix="jstip-put-") as folder:
            tmp = Path(folder) / f"part{Path(str(path)).suffix}"
            yield tmp
            if tmp.exists():
                upload(tmp, str(path))
        return
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=final.suffix, dir=final.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if Path(tmp).is_file():
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, final)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _umask() -> int:
    """The process umask (read by setting and restoring it: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_table(table: pa.Table, path: str | Path, fingerprint: str = "", metadata: dict[str, str] | None = None,
                **parquet_options: Any) -> Path:
    """Write one Arrow table as zstd Parquet, atomically.

    `fingerprint` (a hash of the inputs and settings that made the table) is stored in the
    file's metadata so that a rerun can tell a finished shard from a stale one; `metadata`
    adds other small strings (read back with `file_metadata`). `parquet_options` go to
    `pyarrow.parquet.write_table` (e.g. `row_group_size`).
    """
    extra = {**(metadata or {}), **({"fingerprint": fingerprint} if fingerprint else {})}
    if extra:
        stored = {**(table.schema.metadata or {}), **{METADATA_PREFIX + k.encode(): v.encode() for k, v in extra.items()}}
        table = table.replace_schema_metadata(stored)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", **parquet_options)
    return Path(path)


ROW_GROUP_ROWS = 65536  # rows per row group: the unit a sharded reader (an align task) fetches alone


def write_records(records: Iterable[Any], record_type: type, path: str | Path, fingerprint: str = "") -> int:
    """Write records of one type to a single Parquet file; returns how many were written.

    Row groups hold at most `ROW_GROUP_ROWS` rows (pyarrow's default of a million would make
    every reader of a slice read nearly the whole manifest).
    """
    table = to_table(list(records), record_type)
    write_table(table, path, fingerprint, row_group_size=ROW_GROUP_ROWS)
    return table.num_rows


class RecordSink:
    """Appends rows of one record type to an open Parquet file, in row groups of exactly
    `ROW_GROUP_ROWS` rows (the file is the one `write_records` would write from the same rows)."""

    def __init__(self, writer: pq.ParquetWriter, record_type: type) -> None:
        self.writer = writer
        self.record_type = record_type
        self.schema = schema_of(record_type)
        self.rows = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def write(self, records: Iterable[Any]) -> None:
        self.write_table(to_table(list(records), self.record_type))

    def write_table(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self._pending.append(table.select(self.schema.names).cast(self.schema))
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        whole = table.num_rows if final else table.num_rows - table.num_rows % ROW_GROUP_ROWS
        if whole:
            self.writer.write_table(table.slice(0, whole), row_group_size=ROW_GROUP_ROWS)
        rest = table.slice(whole)
        self._pending, self._pending_rows = ([rest], rest.num_rows) if rest.num_rows else ([], 0)


@contextmanager
def record_sink(path: str | Path, record_type: type) -> Iterator[RecordSink]:
    """A `RecordSink` writing `path` atomically: the file appears when the block ends without error."""
    with atomic_path(path) as tmp:
        writer = pq.ParquetWriter(tmp, schema_of(record_type), compression="zstd")
        sink = RecordSink(writer, record_type)
        try:
            yield sink
            sink._flush(final=True)
            if sink.rows == 0:
                writer.write_table(schema_of(record_type).empty_table())
        finally:
            writer.close()


def file_metadata(path: str | Path, key: str) -> str | None:
    """A string stored with `write_table(..., metadata={key: ...})`; None if absent or unreadable.

    Reads the file footer only, never the rows.
    """
    try:
        metadata = (_open(path).schema_arrow.metadata if is_url(path) else pq.read_schema(path).metadata) or {}
    except (OSError, pa.ArrowInvalid, ManifestError):
        return None
    value = metadata.get(METADATA_PREFIX + key.encode())
    return value.decode() if value is not None else None


def shard_fingerprint(path: str | Path) -> str | None:
    """The fingerprint a finished file was written with; None if absent, unreadable or unmarked."""
    return file_metadata(path, "fingerprint")


def shard_path(directory: str | Path, index: int) -> Path | str:
    """Where shard `index` of a sharded manifest lives (a URL string when `directory` is one)."""
    if is_url(directory):
        return storage.join(str(directory), SHARD_PATTERN.format(index))
    return Path(directory) / SHARD_PATTERN.format(index)


def write_shards(records: Iterable[Any], record_type: type, directory: str | Path, shard_size: int) -> list[Path]:
    """Write records as `part-00000.parquet`, … of at most `shard_size` rows each.

    Shards left from an earlier run with a higher index are removed so that the directory
    holds exactly this run's output.
    """
    if shard_size < 1:
        raise ManifestError(f"shard_size must be at least 1, got {shard_size}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    batch: list[Any] = []
    for record in records:
        batch.append(record)
        if len(batch) == shard_size:
            paths.append(Path(write_table(to_table(batch, record_type), shard_path(directory, len(paths)))))
            batch = []
    if batch or not paths:
        paths.append(Path(write_table(to_table(batch, record_type), shard_path(directory, len(paths)))))
    for stale in sorted(directory.glob("part-*.parquet")):
        if stale not in paths:
            stale.unlink()
    return paths


def manifest_files(path: str | Path) -> list[Path]:
    """The Parquet files of a manifest: the file itself, or a directory's `part-*.parquet`
    (URL strings for a manifest in object storage)."""
    if is_url(path):
        if storage.is_dir(str(path)):
            files = storage.glob(str(path), "part-*.parquet")
            if not files:
                raise ManifestError(f"{path} holds no part-*.parquet shards; run the stage that writes it first")
            return files
        if not storage.exists(str(path)):
            raise ManifestError(f"manifest {path} does not exist; run the stage that writes it first")
        return [path]
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("part-*.parquet"))
        if not files:
            raise ManifestError(f"{path} holds no part-*.parquet shards; run the stage that writes it first")
        return files
    if not path.exists():
        raise ManifestError(f"manifest {path} does not exist; run the stage that writes it first")
    return [path]


def _open(file: str | Path, record_type: type | None = None, optional: Collection[str] = ()) -> pq.ParquetFile:
    """An open Parquet file holding `record_type`'s columns (but `optional`), or a ManifestError."""
    try:
        parquet = pq.ParquetFile(_remote_file(str(file)) if is_url(file) else file)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ManifestError(f"cannot read {file}: {exc}") from exc
    if record_type is not None:
        missing = set(schema_of(record_type).names) - set(optional) - set(parquet.schema_arrow.names)
        if missing:
            raise ManifestError(
                f"{file} is not a {record_type.__name__} manifest: missing columns {sorted(missing)}"
            )
    return parquet


def _remote_file(url: str):
    """A seekable Arrow file over an object (pyarrow reads the footer and row groups it needs)."""
    try:
        return pa.PythonFile(storage.open_ranges(url), mode="r")
    except FileNotFoundError as exc:
        raise ManifestError(f"manifest {url} does not exist") from exc


def iter_records(path: str | Path, record_type: Type[T], batch_size: int = 1024) -> Iterator[T]:
    """Stream records of one type from a Parquet file or shard directory, checking the schema.

    A column added to the record type later (`schema.ADDED_COLUMNS`, e.g. `Alignment.phones`)
    may be absent: older manifests read back with the field's default.
    """
    expected = schema_of(record_type)
    for file in manifest_files(path):
        parquet = _open(file, record_type, optional=ADDED_COLUMNS.get(record_type, frozenset()))
        present = [n for n in expected.names if n in parquet.schema_arrow.names]
        for batch in parquet.iter_batches(batch_size=batch_size, columns=present):
            table = pa.Table.from_batches([batch])
            for name in expected.names:
                if name not in present:
                    table = table.append_column(expected.field(name), pa.nulls(table.num_rows, expected.field(name).type))
            yield from from_table(table, record_type)


def row_group_sizes(file: str | Path, record_type: type | None = None, optional: Collection[str] = ()) -> list[int]:
    """Rows in each row group of one Parquet file, in order (the unit readers can fetch alone).

    With `record_type`, the file must hold that type's columns except those in `optional`
    (as `iter_records` checks); a ManifestError names the missing ones.
    """
    parquet = _open(file, record_type, optional)
    return [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]


def read_row_group(file: str | Path, index: int, columns: Sequence[str], optional: Collection[str] = ()) -> pa.Table:
    """Columns of row group `index` of one Parquet file.

    A column named in `optional` that the file lacks (older files) comes back as nulls;
    any other missing column, or an unreadable file or group, is a ManifestError.
    """
    parquet = _open(file)
    names = set(parquet.schema_arrow.names)
    missing = [c for c in columns if c not in names and c not in optional]
    if missing:
        raise ManifestError(f"{file} lacks columns {missing}; it was not written as this kind of manifest")
    try:
        table = parquet.read_row_group(index, columns=[c for c in columns if c in names])
    except (OSError, pa.ArrowInvalid) as exc:
        raise ManifestError(f"cannot read row group {index} of {file}: {exc}") from exc
    for i, name in enumerate(columns):
        if name not in names:
            table = table.add_column(i, name, pa.nulls(table.num_rows))
    return table


Group = tuple[str, int, int, int, int]  # file, row group, first global row, rows, first row in its file


def manifest_groups(path: str, record_type: type) -> list[Group]:
    """Every row group of a manifest (a file or a shard directory) with its first global row."""
    groups, row = [], 0
    optional = ADDED_COLUMNS.get(record_type, frozenset())
    for file in manifest_files(path):
        in_file = 0
        for g, n in enumerate(row_group_sizes(file, record_type, optional)):
            groups.append((str(file), g, row, n, in_file))
            row += n
            in_file += n
    return groups


def read_rows(groups: Sequence[Group], start: int, stop: int, columns: list[str], schema: pa.Schema) -> pa.Table:
    """Columns of rows [start, stop) of a manifest. Whole row groups inside the range are read as
    they are; a range that cuts a row group (a manifest written with huge row groups, as
    `pq.write_table`'s default of 1Mi rows gives) is read with polars' slice, which skips the
    pages before it instead of decoding the whole group."""
    parts = []
    for file, g, first, n, in_file in groups:
        if first + n <= start or first >= stop:
            continue
        lo, hi = max(start, first) - first, min(stop, first + n) - first
        if lo == 0 and hi == n:
            parts.append(read_row_group(file, g, columns))
        else:
            parts.append(_polars_slice(file, in_file + lo, hi - lo, columns, schema))
    if not parts:
        raise ManifestError(f"rows {start}:{stop} lie beyond the manifest ({sum(g[3] for g in groups)} rows)")
    return pa.concat_tables(parts).combine_chunks()


def _polars_slice(file: str, offset: int, length: int, columns: list[str], schema: pa.Schema) -> pa.Table:
    import polars as pl

    if is_url(file):  # polars' own object-store client does not read fsspec's settings: Arrow reads it
        table = pq.read_table(_remote_file(file), columns=columns).slice(offset, length)
        return table.cast(pa.schema([schema.field(name) for name in columns]))

    try:
        table = pl.scan_parquet(file, low_memory=True).select(columns).slice(offset, length).collect().to_arrow(
            compat_level=pl.CompatLevel.oldest())
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ManifestError(f"cannot read rows {offset}:{offset + length} of {file}: {exc}") from exc
    return table.cast(pa.schema([schema.field(name) for name in columns]))


def read_records(path: str | Path, record_type: Type[T]) -> list[T]:
    """All records of a manifest, in order."""
    return list(iter_records(path, record_type))


def write_metrics(metrics: dict[str, Any], path: str | Path) -> Path:
    """Write a stage's counts as indented JSON (what `dvc metrics show` reads), atomically.

    Superseded by `write_stage_metrics` (numeric metrics + a separate report); kept while
    stages move over. Non-finite floats are written as null (NaN is not JSON).
    """
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_finite(metrics), indent=2, sort_keys=True) + "\n")
    return Path(path)


_METRIC_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def _finite(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def check_metrics(metrics: dict[str, Any], prefix: str = "") -> None:
    """Metrics DVC can compare: nested dicts of numbers (or null) under short identifier keys.

    A ManifestError names the first key that is not an identifier (a path, a reason sentence)
    or whose value is not a number: such things belong in the stage's report.
    """
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if not isinstance(key, str) or not _METRIC_KEY.match(key):
            raise ManifestError(f"metric key {name!r} is not a short identifier; put it in the stage's report")
        if isinstance(value, dict):
            check_metrics(value, name + ".")
        elif value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ManifestError(f"metric {name} = {value!r} is not a number; put it in the stage's report")


def split_metrics(figures: dict[str, Any], keep: Iterable[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the figures named by `keep`, the others), nesting kept. A name is a key or a dotted path into
    nested dicts, `*` matching any key at its level: `eer_by_category.*.eer`."""
    keep = list(keep)
    kept: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in figures.items():
        inner = [k.split(".", 1)[1] for k in keep if "." in k and k.split(".", 1)[0] in (key, "*")]
        if key in keep:
            kept[key] = value
        elif inner and isinstance(value, dict):
            sub_kept, sub_rest = split_metrics(value, inner)
            if sub_kept:
                kept[key] = sub_kept
            if sub_rest:
                rest[key] = sub_rest
        else:
            rest[key] = value
    return kept, rest


def write_stage_metrics(metrics: dict[str, Any], path: str | Path, report: dict[str, Any] | None = None,
                        report_path: str | Path | None = None, keep: Iterable[str] | None = None) -> Path:
    """A stage's small numeric metrics (`metrics/<stage>.json`, what `dvc exp show` compares) and,
    apart, its report (`reports/<stage>.json`: reason tables, examples, strings), both atomically.

    With `keep` (names as `split_metrics` reads them), only those figures are metrics and the others
    go to the report under `figures`: a handful per stage to compare experiments, nothing lost.
    Metrics are checked by `check_metrics`; non-finite floats become null in both files.
    """
    if keep is not None:
        metrics, rest = split_metrics(metrics, keep)
        if report is None:
            raise ManifestError(f"the figures left out of {path} need a report")
        report = {**report, "figures": rest}
    metrics = _finite(metrics)
    check_metrics(metrics)
    if report is not None:
        if report_path is None:
            raise ManifestError(f"a report for {path} needs a report_path")
        with atomic_path(report_path) as tmp:
            tmp.write_text(json.dumps(_finite(report), indent=2, sort_keys=True, default=str) + "\n")
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return Path(path)


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write a small text file (a CSV plot, a word list) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
