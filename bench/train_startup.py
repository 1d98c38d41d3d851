"""Start-up of `jstip train` at corpus scale: time to the first optimizer step and peak memory.

Writes synthetic sample shards in the token formats (asr, word- and segment-level interleave and
text samples, like the interleave stage makes) for each size in hours of source audio, with
Arrow arrays (no Python object per sample), then runs the train stage for one step in a fresh
process per size and reports the time from the stage's start to its first step, the start-up
part of it (footers, columnar scan, tokenizer, model) and the process's peak RSS. Samples point
at one real WAV file (offsets 0, their durations), so the first batch really reads audio.
Targets (issue 10): peak memory flat from 100 h to 1,000 h and under 1.5 GB; first step < 10 s.

    PYTHONPATH=. python bench/train_startup.py                   # 100 h and 1,000 h
    PYTHONPATH=. python bench/train_startup.py --hours 10,100 --keep /tmp/startup-shards
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manifests.schema import SAMPLE_SCHEMA  # noqa: E402

WORDS = ("The patient takes a daily dose of Aspirin; we will meet at the station. A biopsy was ordered, heart "
         "rate and blood pressure normal after surgery! Doctor said: rest two weeks. Insulin, Metformin, New "
         "York City park walk?").split()
SR = 16000


def _sentences(rng: np.random.Generator, n: int) -> pa.Array:
    return pa.array([" ".join(rng.choice(WORDS, int(rng.integers(1, 20)))) for _ in range(n)])


def _spans(kind: str, dur: np.ndarray, pool: pa.Array, rng: np.random.Generator) -> pa.Array:
    """list<struct{modality,text,start,end}> for one kind, built from flat arrays."""
    n = len(dur)
    if kind == "asr":  # <s> A <|asr|> T </s>
        layout = ["token", "speech", "token", "text", "token"]
        tokens = ["<s>", "", "<|asr|>", "", "</s>"]
        cuts = [(None, None), (0.0, 1.0), (None, None), (None, None), (None, None)]
    elif kind == "interleave_word":  # <s> A T A T A T </s>
        layout = ["token"] + ["speech", "text"] * 3 + ["token"]
        tokens = ["<s>"] + ["", ""] * 3 + ["</s>"]
        cuts = [(None, None)] + [c for k in range(3) for c in ((2 * k / 6, (2 * k + 1) / 6), (None, None))] + [(None, None)]
    elif kind == "interleave_segment":  # <s> A <N> T <N> A <N> T </s>
        layout = ["token", "speech", "token", "text", "token", "speech", "token", "text", "token"]
        tokens = ["<s>", "", "<N>", "", "<N>", "", "<N>", "", "</s>"]
        cuts = [(None, None), (0.0, 0.25), (None, None), (None, None), (None, None), (0.5, 0.75), (None, None),
                (None, None), (None, None)]
    else:  # text: <s> S1 </s> S2 </s>
        layout = ["token", "text", "token", "text", "token"]
        tokens = ["<s>", "", "</s>", "", "</s>"]
        cuts = [(None, None)] * 5
    m = len(layout)
    modality = pa.array(np.tile(layout, n))
    texts = []
    for j in range(m):
        texts.append(pool.take(pa.array(rng.integers(0, len(pool), n))) if layout[j] == "text"
                     else pa.array(np.full(n, tokens[j] if layout[j] == "token" else "word")))
    order = np.arange(n * m).reshape(m, n).T.reshape(-1)  # span j of row i at i*m + j
    text = pa.concat_arrays(texts).take(pa.array(order))
    start = np.zeros((n, m))
    end = np.zeros((n, m))
    for j, (a, b) in enumerate(cuts):
        if a is not None:
            start[:, j], end[:, j] = a * dur, b * dur
    struct = pa.StructArray.from_arrays([modality, text, pa.array(start.reshape(-1)), pa.array(end.reshape(-1))],
                                        names=["modality", "text", "start", "end"])
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * m + 1, m, dtype=np.int32)), struct)


def make_shards(out: Path, hours: float, wav: str, rows_per_file: int, row_group: int, seed: int = 0) -> int:
    """Shards of about `hours` of source audio (each utterance: asr, word and segment samples; text samples
    a quarter as many); returns the number of samples."""
    rng = np.random.default_rng(seed)
    pool = _sentences(rng, 2000)
    durations = rng.uniform(2.0, 8.0, int(hours * 3600 / 5.0) + 1)
    out.mkdir(parents=True, exist_ok=True)
    kinds = ["asr", "interleave_word", "interleave_segment"]
    per_file = max(1, rows_per_file // 3)
    total, index = 0, 0
    for a in range(0, len(durations), per_file):
        dur = durations[a:a + per_file]
        parts = []
        for kind in kinds + ["text"]:
            d = dur if kind != "text" else np.zeros(max(1, len(dur) // 4))
            n = len(d)
            ids = pa.array([f"u{a}_{i}:{kind}" for i in range(n)])
            parts.append(pa.table({
                "sample_id": ids, "kind": pa.array([kind] * n), "source_id": ids,
                "audio_path": pa.array([wav if kind != "text" else ""] * n), "offset": pa.array(np.zeros(n)),
                "duration": pa.array(d), "spans": _spans(kind, d, pool, rng),
                "n_speech_words": pa.array(np.full(n, 5, dtype=np.int32)),
                "n_text_words": pa.array(np.full(n, 8, dtype=np.int32)),
                "audio": pa.nulls(n, SAMPLE_SCHEMA.field("audio").type)}, schema=SAMPLE_SCHEMA))
        table = pa.concat_tables(parts)
        table = table.take(pa.array(rng.permutation(table.num_rows)))
        pq.write_table(table, out / f"part-{index:05d}.parquet", compression="zstd", row_group_size=row_group)
        total += table.num_rows
        index += 1
    return total


def child(samples: str, workdir: str, extra: list[str]) -> None:
    """Run the train stage for one step in this process; print timings and peak RSS as JSON."""
    t0 = time.perf_counter()
    from pipeline.stage_train import TrainConfig, run

    cfg = TrainConfig(samples=samples, checkpoints=f"{workdir}/ck", plots=f"{workdir}/plots",
                      metrics=f"{workdir}/m.json", report=f"{workdir}/r.json", steps=1, stage1_share=0.0,
                      warmup_steps=0, log_every=1, progress=False, batching="packed", context=1024, batch_size=2)
    for kv in extra:
        k, v = kv.split("=", 1)
        setattr(cfg, k, type(getattr(cfg, k))(v))
    metrics = run(cfg)
    report = json.loads(Path(cfg.report).read_text())
    print(json.dumps({"first_step_s": metrics["first_step_seconds"], "startup_s": report["startup_seconds"],
                      "process_s": round(time.perf_counter() - t0, 2),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "samples": metrics["samples"]}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", default="100,1000", help="sizes in hours of source audio")
    ap.add_argument("--rows-per-file", type=int, default=200_000, help="samples per shard file")
    ap.add_argument("--row-group", type=int, default=10_000, help="rows per row group")
    ap.add_argument("--keep", default="", help="directory to keep (and reuse) the shards in")
    ap.add_argument("--set", action="append", default=[], help="train option as name=value (repeatable)")
    ap.add_argument("--child", nargs=2, metavar=("SAMPLES", "WORKDIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.set)
        return
    import soundfile as sf

    root = Path(args.keep or tempfile.mkdtemp(prefix="train-startup-"))
    root.mkdir(parents=True, exist_ok=True)
    wav = root / "speech.wav"
    if not wav.exists():
        t = np.arange(10 * SR) / SR
        sf.write(wav, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR)
    print(json.dumps({"machine": f"{os.cpu_count()} cores", "load_avg": os.getloadavg()}))
    for hours in [float(h) for h in args.hours.split(",")]:
        shards = root / f"{hours:g}h-rg{args.row_group}"
        t0 = time.perf_counter()
        if not any(shards.glob("part-*.parquet")):
            n = make_shards(shards, hours, str(wav), args.rows_per_file, args.row_group)
        else:
            n = sum(pq.ParquetFile(f).metadata.num_rows for f in shards.glob("part-*.parquet"))
        made = time.perf_counter() - t0
        work = tempfile.mkdtemp(prefix="run-", dir=root)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        proc = subprocess.run([sys.executable, __file__, "--child", str(shards), work, *sum((["--set", s] for s in args.set), [])],
                              capture_output=True, text=True, env=env)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(proc.returncode)
        figures = json.loads(proc.stdout.strip().splitlines()[-1])
        size = sum(f.stat().st_size for f in shards.glob("part-*.parquet")) / 2**20
        print(json.dumps({"hours": hours, "samples": n, "shard_mb": round(size, 1), "make_s": round(made, 1), **figures}))


if __name__ == "__main__":
    main()
