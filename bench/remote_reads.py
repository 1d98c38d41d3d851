"""Bytes fetched from object storage by jstip's readers vs fsspec's default opens (on demand, not a test).

    python bench/remote_reads.py [--rows 200000] [--minutes 10]

Starts a moto S3 server on localhost (the dev extra), puts a Parquet file of `--rows` rows (a
`kind` column and 300 random bytes per row, uncompressed, row groups of 20,000 rows) and a FLAC
recording of `--minutes` of noise at 16 kHz, then counts the bytes and requests s3fs fetches for
what the stages do: the `kind` column of every row group (the trainer's start-up scan, interleave's
slices), a recording's header (`audio_info`), and 10 s stretches of it (align, evaluate, embedding).
Each is read twice in one run, through jstip's opens (`manifests.storage`: exact ranges for Parquet,
1 MiB read-ahead for audio) and through fsspec's defaults (s3fs: 50 MiB read-ahead blocks), and the
ratio printed. Byte counts do not depend on the machine; the times are moto's on localhost.
"""
from __future__ import annotations

import argparse
import atexit
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    atexit.register(server.terminate)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")


FETCHED = [0, 0]


def _count_fetches() -> None:
    import s3fs

    original = s3fs.core.S3File._fetch_range

    def counting(self, start, end):
        FETCHED[0] += end - start
        FETCHED[1] += 1
        return original(self, start, end)

    s3fs.core.S3File._fetch_range = counting


@contextmanager
def fsspec_defaults():
    """jstip's opens replaced by plain `fs.open(path, "rb")` (what they were before)."""
    from manifests import storage

    saved_options, saved_ranges = dict(storage.READ_OPTIONS), storage.open_ranges
    storage.READ_OPTIONS.clear()
    storage.open_ranges = lambda url: storage.url_to_fs(url)[0].open(storage.url_to_fs(url)[1], "rb")
    try:
        yield
    finally:
        storage.READ_OPTIONS.update(saved_options)
        storage.open_ranges = saved_ranges


def measure(what: str, fn) -> tuple[int, int, float]:
    FETCHED[:] = [0, 0]
    started = time.perf_counter()
    fn()
    return FETCHED[0], FETCHED[1], time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    _server()
    import pyarrow as pa
    import pyarrow.parquet as pq
    import s3fs
    import soundfile as sf

    from manifests.audio import audio_info, load_audio
    from manifests.io import read_row_group, row_group_sizes

    fs = s3fs.S3FileSystem()
    fs.mkdir("bench")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        table = pa.table({"kind": pa.array(rng.choice(["asr", "text"], args.rows)),
                          "blob": pa.array([rng.bytes(300) for _ in range(args.rows)])})
        pq.write_table(table, f"{folder}/x.parquet", row_group_size=20_000, compression="none")
        sf.write(f"{folder}/long.flac", (0.1 * rng.standard_normal(int(16000 * 60 * args.minutes))).astype("float32"), 16000)
        sizes = {name: os.path.getsize(f"{folder}/{name}") for name in ("x.parquet", "long.flac")}
        fs.put_file(f"{folder}/x.parquet", "bench/x.parquet")
        fs.put_file(f"{folder}/long.flac", "bench/long.flac")
    _count_fetches()
    groups = len(row_group_sizes("s3://bench/x.parquet"))
    middle = 30.0 * args.minutes
    cases = {
        f"kind column of {groups} row groups ({sizes['x.parquet'] / 2**20:.1f} MiB file)":
            lambda: [read_row_group("s3://bench/x.parquet", g, ["kind"]) for g in range(groups)],
        f"audio_info of a {args.minutes:g}-minute FLAC ({sizes['long.flac'] / 2**20:.1f} MiB)":
            lambda: audio_info("s3://bench/long.flac"),
        f"10 s at {middle:g} s of it": lambda: load_audio("s3://bench/long.flac", middle, 10.0),
        "10 s at 0 s of it": lambda: load_audio("s3://bench/long.flac", 0.0, 10.0),
    }
    print(f"{'read':<48} {'jstip MiB (requests, s)':>26} {'fsspec default MiB (requests, s)':>34} {'bytes ratio':>12}")
    for what, fn in cases.items():
        mine = measure(what, fn)
        with fsspec_defaults():
            plain = measure(what, fn)
        fmt = lambda m: f"{m[0] / 2**20:.2f} ({m[1]}, {m[2]:.2f})"  # noqa: E731
        print(f"{what:<48} {fmt(mine):>26} {fmt(plain):>34} {plain[0] / max(mine[0], 1):>11.0f}x")


if __name__ == "__main__":
    main()
