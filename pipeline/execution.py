"""Run a stage's shards inline or on dask.distributed, with the same results either way.

A stage cuts its input into shard tasks and hands a module-level function to `run_shards`.
With one worker and no scheduler the tasks run here, in order, with no dask at all (easy to
debug, nothing to start). Otherwise they run on a `LocalCluster` of single-threaded worker
processes, or on an existing cluster given by its scheduler address; dask retries a task whose
worker died. Heavy models are loaded once per worker process through `worker_cached`.
Outputs must not depend on which worker ran a task: the stages seed by record id, never by
process, and tests compare 1 and 2 workers.
"""
from __future__ import annotations

import hashlib
import json
import logging
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence, TypeVar

from tqdm import tqdm

from manifests.errors import JstipError

T = TypeVar("T")
R = TypeVar("R")

_CACHE: dict[Any, Any] = {}
CONNECT_TIMEOUT = "20s"  # how long to wait for an existing scheduler


def worker_cached(key: Any, factory: Callable[[], T]) -> T:
    """The object `factory()` built once in this process for `key` (an aligner, a model)."""
    if key not in _CACHE:
        _CACHE[key] = factory()
    return _CACHE[key]


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-able parts (settings, input ids) that identifies a shard's work."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def run_shards(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    *,
    workers: int = 1,
    scheduler: str = "",
    desc: str = "",
    unit: str = "shard",
    retries: int = 2,
    size: Callable[[T], int] | None = None,
) -> list[R]:
    """`[fn(task) for task in tasks]`, inline or on dask; results come back in task order.

    `size(task)` advances the progress bar by that many units (e.g. utterances) per task.
    A task that still fails after `retries` raises a JstipError naming it.
    """
    tasks = list(tasks)
    total = sum(size(t) for t in tasks) if size else len(tasks)
    with tqdm(total=total, desc=desc, unit=unit) as progress, \
            executor(workers=workers, scheduler=scheduler, retries=retries) as run_all:
        return run_all(fn, tasks, lambda task: progress.update(size(task) if size else 1))


Mapper = Callable[..., list]


@contextmanager
def executor(*, workers: int = 1, scheduler: str = "", retries: int = 2) -> Iterator[Mapper]:
    """A `map(fn, tasks, done=None) -> results in task order` that a stage may call many times
    (a streaming stage hands it one window of tasks at a time), inline or on one dask cluster
    kept for the whole block. `done(task)` is called as each task finishes; `map.workers` says
    how many workers it has (those of an existing cluster when there are more than `workers`)."""
    if workers < 1:
        raise JstipError(f"--workers must be at least 1, got {workers}")
    if workers == 1 and not scheduler:
        def inline(fn, tasks, done=None):
            results = []
            for task in tasks:
                results.append(fn(task))
                if done is not None:
                    done(task)
            return results

        inline.workers = 1
        yield inline
        return
    client, cluster = _connect(workers, scheduler)
    try:
        def on_dask(fn, tasks, done=None):
            return _map_on_dask(client, fn, list(tasks), retries, done)

        on_dask.workers = max(workers, len(client.scheduler_info().get("workers", {})))
        yield on_dask
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _connect(workers: int, scheduler: str):
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise JstipError("parallel runs need dask.distributed: pip install 'dask[distributed]'") from exc
    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster)
    except OSError as exc:
        raise JstipError(f"cannot reach the dask scheduler {scheduler or '(local cluster)'}: {exc}; "
                         "check the address (tcp://HOST:8786) and that `dask scheduler` is running") from exc
    return client, cluster


def _map_on_dask(client, fn, tasks, retries, done) -> list:
    from distributed import as_completed

    futures = client.map(fn, tasks, retries=retries, pure=False)
    index = {f.key: i for i, f in enumerate(futures)}
    for future in as_completed(futures):
        if future.status == "error":
            i = index[future.key]
            raise JstipError(f"shard task {i} failed after {retries} retries: {future.exception()!r}")
        if done is not None:
            done(tasks[index[future.key]])
    return client.gather(futures)
