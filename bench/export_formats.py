"""`jstip export` speed per format (on demand, not a test): seconds, samples/s, audio seconds per
second, output size and peak memory, on the samples of a synthetic corpus.

    python bench/export_formats.py [--utterances 300] [--formats lhotse,nemo,shar,webdataset,hf] [--work DIR]

It makes the corpus through the CLI as a user would (`jstip demo-corpus`: espeak-ng speech with
its true word times, put in the utterance manifest's order as `jstip align` writes them; `jstip
prepare`; `jstip interleave --recipe asr:1,interleave_word:1` over
those word times), then runs each format in its own process under `/usr/bin/time -v`: the export
is timed in-process after the format's library is imported (import time reported apart), best
of `--repeats`, and the process's peak RSS read from time's report. `lhotse` and `nemo` write a
JSONL manifest that points at the corpus's audio; `shar`, `webdataset` and `hf` read, slice and
encode every sample's audio into their shards, so they are the ones to compare with each other.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FORMATS = ("lhotse", "nemo", "shar", "webdataset", "hf")
LIBRARY = {"shar": "lhotse.shar", "webdataset": "webdataset", "hf": "datasets", "lhotse": "", "nemo": ""}


def jstip(*args: str) -> None:
    subprocess.run([str(Path(sys.executable).parent / "jstip"), *args], check=True, stdout=subprocess.DEVNULL)


def make_samples(work: Path, n: int) -> Path:
    """The corpus and its samples under `work` (reused when already there)."""
    samples = work / "samples"
    if samples.exists():
        return samples
    demo = work / "demo"
    jstip("demo-corpus", "--params", "", "--out", str(demo), "--n-utterances", str(n), "--n-domain-texts", "10",
          "--metrics", str(work / "m-demo.json"), "--report", str(work / "r-demo.json"))
    jstip("prepare", "--params", "", "--corpus", str(demo / "corpus"), "--domain-text", str(demo / "domain_text.txt"),
          "--test-fraction", "0", "--utterances", str(work / "utterances.parquet"), "--texts",
          str(work / "texts.parquet"), "--rejected", str(work / "rejected.parquet"),
          "--metrics", str(work / "m-prepare.json"), "--report", str(work / "r-prepare.json"))
    from manifests.io import read_records, write_records
    from manifests.schema import Alignment, Utterance

    order = {u.utt_id: i for i, u in enumerate(read_records(work / "utterances.parquet", Utterance))}
    reference = [a for a in read_records(demo / "reference.parquet", Alignment) if a.utt_id in order]
    write_records(sorted(reference, key=lambda a: order[a.utt_id]), Alignment, work / "alignments.parquet")
    jstip("interleave", "--params", "", "--utterances", str(work / "utterances.parquet"), "--alignments",
          str(work / "alignments.parquet"), "--texts", str(work / "texts.parquet"), "--recipe",
          "asr:1,interleave_word:1", "--mix-by", "samples", "--out", str(samples), "--metrics",
          str(work / "m-interleave.json"), "--report", str(work / "r-interleave.json"), "--plot", "",
          "--figure", "")
    return samples


def one(fmt: str, work: Path, repeats: int) -> dict:
    """Run in the child process: import, then export `repeats` times; the best time."""
    import importlib

    started = time.perf_counter()
    from corpora.exporters import export
    if LIBRARY[fmt]:
        importlib.import_module(LIBRARY[fmt])
    imported = time.perf_counter() - started
    out = work / "out" / (fmt + (".jsonl.gz" if fmt == "lhotse" else ".jsonl" if fmt == "nemo" else ""))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        report = export(str(work / "samples"), fmt, str(out), str(work / "alignments.parquet"),
                        utterances=str(work / "utterances.parquet"))
        times.append(time.perf_counter() - t)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) if out.is_dir() else out.stat().st_size
    kinds = None if report["kinds"] == "all" else report["kinds"]
    return {"format": fmt, "import_s": round(imported, 2), "export_s": round(min(times), 3),
            "audio_s": audio_seconds(work / "samples", kinds),
            "exported": report["exported"], "skipped": report["skipped"], "out_mb": round(size / 1e6, 2)}


def audio_seconds(samples: Path, kinds: list[str] | None = None) -> float:
    """Seconds of speech in the samples of `kinds` (default: every kind with audio)."""
    import polars as pl

    frame = pl.read_parquet(str(samples / "*.parquet"), columns=["kind", "duration", "audio_path"])
    frame = frame.filter(pl.col("audio_path") != "")
    if kinds is not None:
        frame = frame.filter(pl.col("kind").is_in(kinds))
    return float(frame["duration"].sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=300)
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", default="/tmp/jstip-export-bench")
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work)
    if args.one:
        print(json.dumps(one(args.one, work, args.repeats)))
        return
    work.mkdir(parents=True, exist_ok=True)
    samples = make_samples(work, args.utterances)
    seconds = audio_seconds(samples)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rows = []
    for fmt in args.formats.split(","):
        run = subprocess.run(["/usr/bin/time", "-v", sys.executable, __file__, "--one", fmt, "--work", str(work),
                              "--repeats", str(args.repeats)], capture_output=True, text=True, env=env, check=True)
        row = json.loads(run.stdout.strip().splitlines()[-1])
        row["peak_rss_mb"] = round(int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr)[1]) / 1024)
        row["samples_per_s"] = round(row["exported"] / row["export_s"], 1)
        row["audio_x_realtime"] = round(row.pop("audio_s") / row["export_s"], 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{seconds / 60:.1f} min of speech in the samples with audio ({args.utterances} utterances; nemo: "
          f"asr only), best of {args.repeats}, one process each\n")
    print("| format | export s | samples/s | × real time | import s | out MB | peak RSS MB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['format']} | {r['export_s']} | {r['samples_per_s']} | {r['audio_x_realtime']} | {r['import_s']} "
              f"| {r['out_mb']} | {r['peak_rss_mb']} |")


if __name__ == "__main__":
    main()
