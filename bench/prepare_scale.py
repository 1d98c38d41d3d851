"""`jstip prepare` on large synthetic lists (on demand, not a test): rows/s and peak memory.

    python bench/prepare_scale.py --rows 100000 1000000 [--verify-files 240] [--work DIR]

For each `--rows` it writes a CSV list (`utt_id,audio,offset,duration,text,speaker`) of that many
rows in random id order: 2-second stretches of 400 one-minute WAV files (each file holds 30 rows),
12-word transcripts from a 5,000-word vocabulary with a number in one row of ten, 2,000 speakers,
and 0.1% duplicate ids and 0.1% rows with a missing audio file. It runs `jstip prepare
--verify-audio false` under `/usr/bin/time -v` and prints wall time, rows/s and peak RSS.

With `--verify-files N` it then writes N FLAC files of `--verify-seconds` (30) each, one row each, and times prepare
with audio verification (every file decoded) at `--workers 1` and `--workers 2` (a local process pool),
checks the two outputs are byte-identical and prints the speed ratio beside the machine's own bound
(the same files decoded by two bare processes side by side against one), `--repeats` times, and the medians; `--dask` adds the same run on a
dask cluster of two single-threaded `dask worker` processes started here (`--scheduler`), for the
pool-against-dask comparison. Run it on an otherwise idle machine: the ratio needs both cores.
"""
from __future__ import annotations

import argparse
import contextlib
import filecmp
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
JSTIP = Path(sys.executable).with_name("jstip")
FILES, ROWS_PER_FILE, SPEAKERS = 400, 30, 2000
_SYLLABLES = "ba be bi bo bu da de di do du ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu".split()


def write_list(path: Path, rows: int, audio: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    vocab = np.array(["".join(rng.choice(_SYLLABLES, size=int(rng.integers(1, 4)))) for _ in range(5000)])
    chunk = 100_000
    with open(path, "w") as out:
        out.write("utt_id,audio,offset,duration,text,speaker\n")
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            index = np.arange(start, start + n)
            keys = (index * 2654435761) % (1 << 32)  # distinct, scrambled: the list is not in id order
            words = vocab[rng.integers(0, len(vocab), size=(n, 12))]
            lines = []
            for i, key, sentence in zip(index, keys, words):
                file = i // ROWS_PER_FILE % FILES
                text = " ".join(sentence)
                if i % 10 == 3:
                    text += f" {i % 997} mg"
                utt = f"u{key:010d}" if i % 1000 != 7 else f"u{((i - 1) * 2654435761) % (1 << 32):010d}"  # duplicate
                wav = f"audio/f{file:03d}.wav" if i % 1000 != 11 else f"audio/missing{i}.wav"
                lines.append(f"{utt},{wav},{(i % ROWS_PER_FILE) * 2.0:.1f},2.0,{text},spk{i % SPEAKERS}\n")
            out.write("".join(lines))


def make_audio(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tone = (0.1 * np.sin(np.arange(16000 * 60) * 0.05)).astype(np.float32)
    for f in range(FILES):
        if not (folder / f"f{f:03d}.wav").exists():
            sf.write(folder / f"f{f:03d}.wav", tone, 16000)


def timed(args: list[str], cwd: Path) -> tuple[float, float, float]:
    """(wall seconds, peak RSS in GB, CPU seconds user+sys) of a command under /usr/bin/time -v
    (CPU time is what a shared machine's load does not inflate)."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"})
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(args)}\n{done.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1e6
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", done.stderr).group(1)) for kind in ("User", "System"))
    return wall, rss, cpu


def prepare(work: Path, corpus: Path, out: str, *extra: str) -> list[str]:
    return [str(JSTIP), "prepare", "--params", "", "--corpus", str(corpus), "--domain-text", "",
            "--utterances", f"{out}/u.parquet", "--texts", f"{out}/t.parquet", "--rejected", f"{out}/r.parquet",
            "--metrics", f"{out}/m.json", "--report", f"{out}/rep.json", "--audio-dir", f"{out}/audio", *extra]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000])
    parser.add_argument("--verify-files", type=int, default=0)
    parser.add_argument("--verify-seconds", type=float, default=30.0, help="length of each verified file")
    parser.add_argument("--repeats", type=int, default=1, help="verification runs (the median ratio is printed: "
                        "on a shared host one run can be off by a third)")
    parser.add_argument("--dask", action="store_true", help="also verify on a 2-worker dask cluster")
    parser.add_argument("--work", type=Path, default=Path("/tmp/jstip-prepare-scale"))
    args = parser.parse_args()
    work = args.work
    make_audio(work / "audio")
    for rows in args.rows:
        corpus = work / f"list_{rows}.csv"
        if not corpus.exists():
            write_list(corpus, rows, work / "audio")
        wall, rss, cpu = timed(prepare(work, corpus, f"out_{rows}", "--verify-audio", "false"), work)
        print(f"rows={rows:>10,d}  verify_audio=false  wall={wall:7.1f}s  rows/s={rows / wall:9,.0f}  "
              f"cpu={cpu:7.1f}s  rows/cpu-s={rows / cpu:9,.0f}  peak_rss={rss:.2f}GB", flush=True)
    if args.verify_files:
        folder = work / f"verify_{args.verify_seconds:g}s"
        folder.mkdir(parents=True, exist_ok=True)
        tone = (0.1 * np.sin(np.arange(int(16000 * args.verify_seconds)) * 0.03)).astype(np.float32)
        lines = ["audio,text,speaker\n"]
        for i in range(args.verify_files):
            if not (folder / f"v{i:05d}.flac").exists():
                sf.write(folder / f"v{i:05d}.flac", tone, 16000)
            lines.append(f"v{i:05d}.flac,file number {i},s{i % 7}\n")
        (folder / "list.csv").write_text("".join(lines))
        ratios, bounds, dask_ratios = [], [], []
        for repeat in range(args.repeats):
            walls = {}
            for workers in (1, 2):
                walls[workers], rss, cpu = timed(prepare(work, folder / "list.csv", f"verify_w{workers}", "--workers",
                                                       str(workers)), work)
                print(f"files={args.verify_files}  verify_audio=true  workers={workers}  wall={walls[workers]:6.1f}s  "
                      f"files/s={args.verify_files / walls[workers]:7.1f}  cpu(all processes)={cpu:6.1f}s  "
                      f"peak_rss={rss:.2f}GB  load={os.getloadavg()[0]:.1f}", flush=True)
            same = all(filecmp.cmp(work / "verify_w1" / f, work / "verify_w2" / f, shallow=False)
                       for f in ("u.parquet", "r.parquet"))
            ratios.append(walls[1] / walls[2])
            print(f"verification speed-up at 2 workers: {ratios[-1]:.2f}x  byte-identical outputs: {same}")
            line, bound = machine_bound(sorted(folder.glob("v*.flac"))[:args.verify_files])
            bounds.append(bound)
            print(line, flush=True)
            if args.dask:
                with dask_cluster(work) as address:
                    wall, rss, cpu = timed(prepare(work, folder / "list.csv", "verify_dask", "--scheduler", address), work)
                same = all(filecmp.cmp(work / "verify_w1" / f, work / "verify_dask" / f, shallow=False)
                           for f in ("u.parquet", "r.parquet"))
                dask_ratios.append(walls[1] / wall)
                print(f"files={args.verify_files}  verify_audio=true  dask cluster of 2 workers  wall={wall:6.1f}s  "
                      f"cpu(main process; workers not counted)={cpu:6.1f}s  speed-up {dask_ratios[-1]:.2f}x  "
                      f"byte-identical: {same}  load={os.getloadavg()[0]:.1f}", flush=True)
        print(f"median of {args.repeats}: 2 workers {statistics.median(ratios):.2f}x (all: "
              f"{', '.join(f'{r:.2f}' for r in ratios)}); machine bound {statistics.median(bounds):.2f}x (all: "
              f"{', '.join(f'{r:.2f}' for r in bounds)})" + (f"; dask cluster {statistics.median(dask_ratios):.2f}x "
              f"(all: {', '.join(f'{r:.2f}' for r in dask_ratios)})" if dask_ratios else ""))


def _decode_all(paths: list[Path]) -> float:
    from manifests.audio import decode_through

    started = time.process_time()
    for path in paths:
        decode_through(path, 0.0, 1e9)
    return time.process_time() - started


def machine_bound(paths: list[Path]) -> tuple[str, float]:
    """What this machine allows: the files decoded by one process, then each half by one of two
    independent processes side by side (no jstip, no pool, no sorting): the ceiling of a 2-worker
    ratio here (two decoders share the caches and memory bandwidth of the cores)."""
    import multiprocessing

    started = time.perf_counter()
    alone = _decode_all(paths)
    one = time.perf_counter() - started
    with multiprocessing.get_context("fork").Pool(2) as pool:
        started = time.perf_counter()
        cpus = pool.map(_decode_all, [paths[0::2], paths[1::2]])
        two = time.perf_counter() - started
    return (f"machine bound (bare decoding, no jstip): 1 process {one:.1f}s (cpu {alone:.1f}s), 2 processes side "
            f"by side {two:.1f}s (cpu {sum(cpus):.1f}s): {one / two:.2f}x"), one / two


@contextlib.contextmanager
def dask_cluster(work: Path):
    """`dask scheduler` and two single-threaded `dask worker` processes on localhost; yields the address."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    port = 8786 + os.getpid() % 1000
    procs = [subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--port", str(port), "--no-dashboard"],
                              cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    address = f"tcp://127.0.0.1:{port}"
    try:
        for _ in range(2):
            procs.append(subprocess.Popen([str(bin_dir / "dask"), "worker", address, "--nworkers", "1",
                                           "--nthreads", "1", "--no-dashboard"], cwd=work, env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
