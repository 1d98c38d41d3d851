"""A real dask cluster (a `dask scheduler` and two `dask worker` processes started here) runs
prepare's checks, align's shards and both passes of interleave; one worker is killed while tasks
are in flight, and no utterance is lost: the manifests are the same bytes as a run in one process."""
import contextlib
import filecmp
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

import pipeline.execution as execution
from corpora import streaming
from manifests.audio import write_audio
from pipeline import stage_prepare
from pipeline.stage_align import AlignConfig, run as align
from pipeline.stage_prepare import PrepareConfig, run as prepare

DASK = str(Path(sys.executable).with_name("dask"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int) -> None:
    for _ in range(300):
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


@pytest.fixture
def cluster(tmp_path):
    """(scheduler address, worker processes): real processes, no nanny (a killed worker stays dead)."""
    port = _free_port()
    logs = open(tmp_path / "dask.log", "w")
    procs = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=logs, stderr=subprocess.STDOUT)]
    try:
        _wait_for_port(port)
        address = f"tcp://127.0.0.1:{port}"
        workers = [subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                     "--name", f"w{i}"], stdout=logs, stderr=subprocess.STDOUT,
                                    env={**os.environ, "OMP_NUM_THREADS": "1"}) for i in range(2)]
        procs += workers
        from distributed import Client

        with Client(address, timeout="20s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:  # a worker that ignores SIGTERM must not outlive the test
                p.kill()
                p.wait()
        logs.close()


def _killing_executor(victim, real=execution.executor, at_map=1):
    """The stages' executor, but `victim` is SIGKILLed as soon as the first task of the `at_map`-th
    map finishes (while the other tasks of that window are still queued or running on it)."""
    maps = []

    @contextlib.contextmanager
    def wrapped(**kw):
        with real(**kw) as run_all:
            def run_killing(fn, tasks, done=None):
                maps.append(fn)
                this = len(maps)

                def first_done(task):
                    if this == at_map and victim.poll() is None:
                        victim.send_signal(signal.SIGKILL)
                        victim.wait()
                    if done is not None:
                        done(task)
                return run_all(fn, tasks, first_done)
            run_killing.workers = run_all.workers
            yield run_killing
    return wrapped


@pytest.mark.slow
def test_prepare_and_align_on_a_real_cluster_lose_nothing_when_a_worker_dies(cluster, tmp_path, sine, spoken,
                                                                            monkeypatch):
    address, workers = cluster
    lines = ["audio,text,speaker"]
    for i in range(60):
        sf.write(tmp_path / f"a{i}.flac", sine(3.0 + i % 5), 16000)
        lines.append(f"a{i}.flac,tone number {i},s{i % 3}")
    for i, sentence in enumerate(["The nurse checked the chart before noon.", "He walked to the station in the rain.",
                                  "Take two tablets of aspirin after dinner."]):
        write_audio(spoken(sentence, voice="en-us")[0], tmp_path / f"speech{i}.wav", 16000)
        lines.append(f"speech{i}.wav,{sentence},s{i}")
    lines.append("missing.flac,a file that is not there,s0")
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(streaming, "SLICE_ROWS", 3)  # 22 tasks, 8 in flight at a time

    def cfg(out, **kw):
        return PrepareConfig(corpus=str(tmp_path / "list.csv"), domain_text="", test_fraction=0.2,
                             utterances=f"{out}/u.parquet", texts=f"{out}/t.parquet", rejected=f"{out}/r.parquet",
                             metrics=f"{out}/m.json", report=f"{out}/rep.json", audio_dir=f"{out}/audio", **kw)

    here = prepare(cfg(tmp_path / "one"))
    monkeypatch.setattr(stage_prepare, "executor", _killing_executor(workers[0]))
    there = prepare(cfg(tmp_path / "cluster", scheduler=address, workers=2))
    assert workers[0].poll() is not None  # the worker did die during the run
    assert there == here and here["utterances"] == 63 and here["rejected"] == 1
    for name in ("u.parquet", "r.parquet"):
        assert filecmp.cmp(tmp_path / "one" / name, tmp_path / "cluster" / name, shallow=False)

    # align: the speech only (the tones are not speech), 3 shards; the second worker dies mid-run
    speech = tmp_path / "speech"
    (tmp_path / "speech.csv").write_text("\n".join([lines[0], *lines[61:64]]) + "\n")
    prepare(PrepareConfig(**{**vars(cfg(speech)), "corpus": str(tmp_path / "speech.csv")}))
    extra = subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # so one survives the kill
    try:
        monkeypatch.setattr(execution, "executor", _killing_executor(workers[1], at_map=2))  # map 1 is the local run
        runs = {}
        for name, scheduler in (("local", ""), ("cluster", address)):
            runs[name] = align(AlignConfig(utterances=f"{speech}/u.parquet", out=str(tmp_path / name / "al"),
                                           aligner="pocketsphinx", reference="", shard_size=1, scheduler=scheduler,
                                           metrics=str(tmp_path / name / "a.json"),
                                           report=str(tmp_path / name / "ar.json")))
    finally:
        extra.terminate()
        extra.wait(timeout=15)
    assert workers[1].poll() is not None
    assert runs["cluster"]["aligned"] == runs["local"]["aligned"] == 3
    for n in range(3):
        part = f"al/part-{n:05d}.parquet"
        assert filecmp.cmp(tmp_path / "local" / part, tmp_path / "cluster" / part, shallow=False)


@pytest.mark.slow
def test_interleave_on_a_real_cluster_writes_the_local_bytes_when_a_worker_dies(cluster, tmp_path, monkeypatch):
    """Both passes of `jstip interleave --scheduler` on the cluster; a worker is killed in pass 2
    (while shards are being written): dask reruns its tasks, and every shard is the local run's bytes."""
    from bench.interleave_scale import generate
    from pipeline.stage_interleave import InterleaveConfig, run as interleave

    address, workers = cluster
    generate(tmp_path / "in", hours=0.4, align_rows=20)  # 145 utterances in 8 alignment files, 14 texts

    def cfg(name, **kw):
        out = tmp_path / name
        return InterleaveConfig(utterances=str(tmp_path / "in" / "utterances.parquet"),
                                alignments=str(tmp_path / "in" / "alignments"), texts=str(tmp_path / "in" / "texts.parquet"),
                                out=str(out / "samples"), recipe="asr:2,interleave_word:1,interleave_segment:1,text:0.05",
                                shard_size=20, metrics=str(out / "m.json"), report=str(out / "r.json"),
                                plot=str(out / "p_{segmenter}.csv"), figure="", **kw)

    here = interleave(cfg("local"))
    monkeypatch.setattr(execution, "executor", _killing_executor(workers[0], at_map=2))  # pass 2: build
    there = interleave(cfg("cluster", scheduler=address))
    assert workers[0].poll() is not None  # the worker did die during the run
    assert workers[1].poll() is None
    drop = ("wall_seconds", "shards_reused")  # a retried task may find its shard already written: kept, not redone
    assert {k: v for k, v in there.items() if k not in drop} == {k: v for k, v in here.items() if k not in drop}
    assert here["shards"] == 9 and here["samples_by_kind"]["interleave_word"] > 50
    names = sorted(p.name for p in (tmp_path / "local" / "samples").glob("part-*.parquet"))
    assert names == sorted(p.name for p in (tmp_path / "cluster" / "samples").glob("part-*.parquet")) and len(names) == 9
    for name in names:
        assert filecmp.cmp(tmp_path / "local" / "samples" / name, tmp_path / "cluster" / "samples" / name, shallow=False)
