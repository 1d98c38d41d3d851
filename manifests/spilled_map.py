"""A str -> str map that moves to an SQLite file on disk once it holds more than `limit` keys.

The exports remember one key per audio file (its recording id) or per source (a NeMo pair
already written): at the paper's 38k hours that is ~14M keys, ~3 GB as a Python dict. Below
`limit` the map is a dict (fast, the usual case); above it the keys go to a temporary SQLite
database (Python's own `sqlite3`: an on-disk B-tree with a bounded page cache, no dependency),
so memory stays flat whatever the corpus. Lookups give the same answers either way.
"""
from __future__ import annotations

import os
import sqlite3
import tempfile

SPILL_KEYS = 1_000_000  # ~250 MB of dict; beyond it the map lives on disk
CACHE_KB = 64 * 1024  # SQLite's page cache once spilled


class SpilledMap:
    """`first(key, value)`: the value stored for `key`, storing `value` when it is new."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = SPILL_KEYS if limit is None else limit
        self.memory: dict[str, str] | None = {}
        self.db: sqlite3.Connection | None = None
        self.path = ""

    def first(self, key: str, value: str) -> str:
        if self.memory is not None:
            got = self.memory.setdefault(key, value)
            if len(self.memory) > self.limit:
                self._spill()
            return got
        assert self.db is not None
        row = self.db.execute("SELECT v FROM m WHERE k = ?", (key,)).fetchone()
        if row is not None:
            return row[0]
        self.db.execute("INSERT INTO m VALUES (?, ?)", (key, value))
        return value

    def __len__(self) -> int:
        if self.memory is not None:
            return len(self.memory)
        assert self.db is not None
        return self.db.execute("SELECT count(*) FROM m").fetchone()[0]

    @property
    def spilled(self) -> bool:
        return self.db is not None

    def _spill(self) -> None:
        fd, self.path = tempfile.mkstemp(prefix="jstip-keys-", suffix=".sqlite")
        os.close(fd)
        self.db = sqlite3.connect(self.path, isolation_level=None)  # autocommit: no transaction grows in memory
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute(f"PRAGMA cache_size=-{CACHE_KB}")
        self.db.execute("CREATE TABLE m (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID")
        assert self.memory is not None
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO m VALUES (?, ?)", self.memory.items())
        self.db.execute("COMMIT")
        self.memory = None

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
            os.unlink(self.path)
        self.memory = {}

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the temporary file goes with the directory's cleanup
            pass
