"""Shard execution: inline, a local process pool and dask give the same ordered results; a dead worker
loses no task; fingerprints mark finished shards."""
from __future__ import annotations

import os

import pytest

from manifests.errors import JstipError
from manifests.io import shard_fingerprint, write_records
from manifests.schema import Rejected
from pipeline.execution import fingerprint, run_shards, worker_cached


def test_fingerprint_is_stable_and_sensitive():
    assert fingerprint({"a": 1, "b": [1, 2]}, "x") == fingerprint({"b": [1, 2], "a": 1}, "x")
    assert fingerprint({"a": 1}, "x") != fingerprint({"a": 2}, "x")


def test_inline_runs_in_order_and_counts_sizes():
    tasks = [["u1", "u2"], ["u3"], []]
    assert run_shards(len, tasks, desc="t", size=len) == [2, 1, 0]


def test_worker_cached_builds_once():
    built = []
    first = worker_cached(("test", 1), lambda: built.append(1) or object())
    assert worker_cached(("test", 1), lambda: built.append(1) or object()) is first
    assert built == [1]


def test_pool_and_dask_match_inline():
    from distributed import LocalCluster

    tasks = [{"shard": i, "ids": [f"u{j}" for j in range(i)]} for i in range(6)]
    inline = run_shards(fingerprint, tasks)
    assert run_shards(fingerprint, tasks, workers=2, retries=0) == inline
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        assert run_shards(fingerprint, tasks, scheduler=cluster.scheduler_address, retries=0) == inline


def test_failure_names_the_shard():
    with pytest.raises(JstipError, match="shard task 1 failed"):
        run_shards(int, ["1", "not a number"], workers=2, retries=0)


def _die_once(task):
    """Kill this worker process the first time any task runs (a marker file says it happened)."""
    marker, value = task
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return value * 2


def _always_die(task):
    os._exit(1)


def test_a_dead_worker_loses_no_task(tmp_path):
    marker = str(tmp_path / "died")
    tasks = [(marker, v) for v in range(8)]
    assert run_shards(_die_once, tasks, workers=2, retries=1) == [2 * v for v in range(8)]
    assert os.path.exists(marker)
    with pytest.raises(JstipError, match="worker process died 2 times"):
        run_shards(_always_die, [1, 2], workers=2, retries=1)


def test_bad_worker_count_and_unreachable_scheduler(monkeypatch):
    monkeypatch.setattr("pipeline.execution.CONNECT_TIMEOUT", "1s")
    with pytest.raises(JstipError, match="--workers"):
        run_shards(len, [[]], workers=0)
    with pytest.raises(JstipError, match="scheduler"):
        run_shards(len, [[]], scheduler="tcp://127.0.0.1:9")


def test_shard_fingerprint_round_trip(tmp_path):
    path = tmp_path / "part-00000.parquet"
    write_records([Rejected("align", "u1", "why")], Rejected, path, fingerprint="abc123")
    assert shard_fingerprint(path) == "abc123"
    write_records([Rejected("align", "u1", "why")], Rejected, path)
    assert shard_fingerprint(path) is None
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    assert shard_fingerprint(tmp_path / "broken.parquet") is None
    assert shard_fingerprint(tmp_path / "missing.parquet") is None
