"""Run a stage's shards inline or on dask.distributed, with the same results either way.

A stage cuts its input into shard tasks and hands a module-level function to `run_shards`.
With one worker and no scheduler the tasks run here, in order, with no dask at all (easy to
debug, nothing to start). Local `--workers N` run on a pool of N spawned single-threaded
processes (`concurrent.futures`); an existing dask cluster is reached by its scheduler address.
Either way a task that raised or whose worker died is retried (dask does it on a cluster; here a
dead worker's pool is replaced and the unfinished tasks run again). Why a plain pool and not a dask
`LocalCluster` on one machine: measured on 2 cores, a LocalCluster's worker spent ~40% more CPU per
task than the task itself (its event loop, heartbeats and the sampling profiler beside the task
thread), so 2 workers gave prepare's audio verification 1.35x and interleave 1.14x; a pool has no
such neighbours (docs/performance.md). Heavy models are loaded once per worker process through
`worker_cached`.
Outputs must not depend on which worker ran a task: the stages seed by record id, never by
process, and tests compare 1 and 2 workers.
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
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


def one_thread_per_process() -> None:
    """A pool initializer: in a worker process Arrow, polars, BLAS and torch use one thread each; the
    process is the unit of parallelism, and more threads per worker only contend for the same cores."""
    for var in ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # read when those libraries are first imported
    import pyarrow as pa

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


@contextmanager
def executor(*, workers: int = 1, scheduler: str = "", retries: int = 2,
             initializer: Callable[[], None] = one_thread_per_process) -> Iterator[Mapper]:
    """A `map(fn, tasks, done=None) -> results in task order` that a stage may call many times
    (a streaming stage hands it one window of tasks at a time), inline, on one local process pool
    or on one dask cluster, kept for the whole block. `done(task)` is called as each task finishes;
    `map.workers` says how many workers it has (those of an existing cluster when there are more
    than `workers`). `initializer` runs once in each local worker process."""
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
    if not scheduler:
        with _LocalPool(workers, retries, initializer) as pool:
            def on_pool(fn, tasks, done=None):
                return pool.map(fn, list(tasks), done)

            on_pool.workers = workers
            yield on_pool
        return
    client = _connect(scheduler)
    try:
        def on_dask(fn, tasks, done=None):
            return _map_on_dask(client, fn, list(tasks), retries, done)

        on_dask.workers = max(workers, len(client.scheduler_info().get("workers", {})))
        yield on_dask
    finally:
        client.close()


class _LocalPool:
    """N spawned worker processes kept for a whole stage. A task that raises is run again up to
    `retries` times; a worker that dies (killed, out of memory) breaks the pool, so the pool is
    replaced and every unfinished task is submitted again, as dask does for a lost worker."""

    def __init__(self, workers: int, retries: int, initializer: Callable[[], None]) -> None:
        self.workers, self.retries, self.initializer = workers, retries, initializer
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "_LocalPool":
        self._pool = self._start()
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=self.initializer)

    def _submit(self, pending: dict, fn, task, i: int) -> None:
        try:
            pending[self._pool.submit(fn, task)] = i
        except BrokenProcessPool:
            pass  # left unfinished: run again on the next pool

    def map(self, fn, tasks: list, done=None) -> list:
        results: dict[int, Any] = {}
        failures = [0] * len(tasks)
        broken = 0
        while len(results) < len(tasks):
            pending: dict = {}
            for i, task in enumerate(tasks):
                if i not in results:
                    self._submit(pending, fn, task, i)
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    i = pending.pop(future)
                    try:
                        results[i] = future.result()
                    except BrokenProcessPool:
                        continue  # every pending task of a broken pool lands here: run them again below
                    except Exception as exc:
                        failures[i] += 1
                        if failures[i] > self.retries:
                            for other in pending:
                                other.cancel()
                            raise JstipError(f"shard task {i} failed after {self.retries} retries: {exc!r}") from exc
                        self._submit(pending, fn, tasks[i], i)
                        continue
                    if done is not None:
                        done(tasks[i])
            if len(results) < len(tasks):  # the pool broke: a worker process died
                broken += 1
                if broken > self.retries:
                    raise JstipError(f"a worker process died {broken} times ({len(tasks) - len(results)} tasks "
                                     "unfinished; out of memory?): see the log above")
                logging.getLogger(__name__).warning("a worker process died; restarting the pool and running "
                                                    "%d unfinished tasks again", len(tasks) - len(results))
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = self._start()
        return [results[i] for i in range(len(tasks))]


def _connect(scheduler: str):
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise JstipError("cluster runs need dask.distributed: pip install 'dask[distributed]'") from exc
    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise JstipError(f"cannot reach the dask scheduler {scheduler}: {exc}; check the address "
                         "(tcp://HOST:8786) and that `dask scheduler` is running") from exc


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
