"""`jstip interleave` at the paper's scale (on demand, not a test): time, hours/s and peak memory.

    python bench/interleave_scale.py --hours 100 1000 [--workers 1 2] [--lhotse-hours 100] [--work DIR]

For each size it generates an utterance manifest, alignment shards (10,000 utterances each, with
their `utt_rows` range in the metadata, as `jstip align` writes them) and domain texts (10% of the
utterance count), with realistic statistics but no audio: ~27 tokens per utterance from a
Zipf-distributed vocabulary of 20,000 pseudo-words, capitals after sentence ends, commas, numbers
("500" -> five hundred), hyphenated compounds; word durations log-normal around 0.3 s, no gap
inside phrases, pauses of 0.15-0.5 s after 60% of commas and 0.3-0.9 s after 90% of sentence ends,
hesitations of 0.1-0.6 s after 6% of other words; 3% failed alignments, 2% test split.

Then it runs `jstip interleave --recipe RECIPE` (default: the paper's mixed recipe,
`il_mixed_silence_punct`) under `/usr/bin/time -v` with each `--workers`, and the closest Lhotse
equivalent (a MonoCut per utterance with its word alignment, one sub-cut per speech span of the
same alternation, streamed to jsonl.gz) on the first `--lhotse-hours` of the same data, and prints
wall time, hours of speech per second, peak RSS (the largest process; with workers, also the sum
over the process tree) and the ratios. Same bytes for 1 and N workers is checked by hashing shards.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from manifests.io import write_table  # noqa: E402
from manifests.schema import ALIGNMENT_SCHEMA, TEXT_SCHEMA, UTTERANCE_SCHEMA  # noqa: E402
from corpora.textnorm import normalize  # noqa: E402

ALIGN_ROWS = 10_000
UTT_GROUP_ROWS = 1 << 20  # what `pq.write_table` (so `jstip prepare`) gives by default
SECONDS_PER_UTTERANCE = 9.9  # 100 h ~ 36k utterances
_SYLLABLES = "ba be bi bo bu da de di do du ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu " \
             "pa pe pi po pu ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo vu za ze zi zo zu".split()
_NUMBERS = ["500", "12", "2.5", "40", "250", "1990", "3", "75", "100", "18"]


def vocabulary(size: int = 20_000, seed: int = 0) -> tuple[list[str], list[tuple[str, ...]], np.ndarray]:
    """(raw base tokens, their normalised words, Zipf probabilities): pseudo-words, numbers, compounds."""
    rng = np.random.default_rng(seed)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < size:
        w = "".join(rng.choice(_SYLLABLES, size=int(rng.integers(1, 5))))
        if w not in seen:
            seen.add(w)
            words.append(w)
    for i in range(0, 400, 2):  # compounds
        words[1000 + i] = f"{words[1000 + i]}-{words[1001 + i]}"
    words[200:200 + len(_NUMBERS)] = _NUMBERS
    pieces = [tuple(normalize(w).split()) for w in words]
    p = 1.0 / np.arange(1, size + 1) ** 1.07
    return words, pieces, p / p.sum()


def _chunk(n: int, first: int, rng: np.random.Generator, vocab) -> tuple[pa.Table, pa.Table]:
    """n utterances (ids first..first+n) and their alignments."""
    words, pieces, p = vocab
    n_pieces = np.array([len(x) for x in pieces])
    flat_pieces = pa.array([w for x in pieces for w in x], pa.string())
    piece_off = np.concatenate([[0], np.cumsum(n_pieces)])
    tokens = np.clip(rng.lognormal(np.log(24), 0.55, n).astype(np.int64), 3, 120)
    tok = rng.choice(len(words), size=int(tokens.sum()), p=p)
    owner = np.repeat(np.arange(n), tokens)
    first_tok = np.concatenate([[0], np.cumsum(tokens)[:-1]])
    is_last = np.zeros(len(tok), bool)
    is_last[np.cumsum(tokens) - 1] = True
    period = (rng.random(len(tok)) < 1 / 13) | is_last
    comma = ~period & (rng.random(len(tok)) < 0.07)
    after_period = np.zeros(len(tok), bool)
    after_period[1:] = period[:-1]
    after_period[first_tok] = True
    base = pa.array(words, pa.string()).take(pa.array(tok))
    cap = pc.utf8_capitalize(base)
    raw = pc.if_else(pa.array(after_period), cap, base)
    raw = pc.binary_join_element_wise(raw, pa.array(np.where(period, ".", np.where(comma, ",", ""))), "")
    text = pc.binary_join(pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(tokens)]), pa.int32()), raw), " ")
    # aligned words: the pieces of every token, timed
    npc = n_pieces[tok]
    idx = np.repeat(piece_off[tok] - np.concatenate([[0], np.cumsum(npc)[:-1]]), npc) + np.arange(npc.sum())
    wtext = flat_pieces.take(pa.array(idx))
    wtok = np.repeat(np.arange(len(tok)), npc)
    dur = np.clip(rng.lognormal(np.log(0.27), 0.35, len(idx)), 0.06, 1.2)
    last_piece = np.zeros(len(idx), bool)
    last_piece[np.cumsum(npc) - 1] = True
    u = rng.random(len(idx))
    gap = np.zeros(len(idx))
    tp, tc = period[wtok] & last_piece, comma[wtok] & last_piece
    gap[tp & (u < 0.9)] = rng.uniform(0.3, 0.9, int((tp & (u < 0.9)).sum()))
    gap[tc & (u < 0.6)] = rng.uniform(0.15, 0.5, int((tc & (u < 0.6)).sum()))
    other = last_piece & ~tp & ~tc & (u < 0.06)
    gap[other] = rng.uniform(0.1, 0.6, int(other.sum()))
    wowner = owner[wtok]
    words_per = np.bincount(wowner, minlength=n)
    woff = np.concatenate([[0], np.cumsum(words_per)])
    lead = rng.uniform(0.1, 0.4, n)
    step = dur + gap
    cum = np.cumsum(step)
    start = lead[wowner] + (cum - step) - np.concatenate([[0], cum])[woff[:-1]][wowner]
    end = start + dur
    tail = end[woff[1:] - 1] + rng.uniform(0.1, 0.5, n)
    norm = pc.binary_join(pa.ListArray.from_arrays(pa.array(woff, pa.int32()), wtext), " ")
    ids = pa.array([f"spk{(first + i) // 120:05d}-utt{first + i:09d}" for i in range(n)], pa.string())
    split = np.where(rng.random(n) < 0.02, "test", "train")
    utts = pa.Table.from_arrays([
        ids, pa.array([f"/corpus/{i}.flac" for i in ids.to_pylist()], pa.string()), pa.array(np.zeros(n)),
        pa.array(np.round(tail, 3)), pa.array(np.full(n, 16000, np.int32)),
        pa.array([f"spk{(first + i) // 120:05d}" for i in range(n)], pa.string()), text, norm,
        pa.array(["bench"] * n, pa.string()), pa.array(split, pa.string())], schema=UTTERANCE_SCHEMA)
    ok = rng.random(n) >= 0.03
    keep = np.repeat(ok, words_per)
    struct = pa.StructArray.from_arrays([wtext.filter(pa.array(keep)), pa.array(np.round(start[keep], 3)),
                                         pa.array(np.round(end[keep], 3)), pa.array(np.ones(int(keep.sum())))],
                                        names=["word", "start", "end", "score"])
    offs = np.concatenate([[0], np.cumsum(np.where(ok, words_per, 0))]).astype(np.int32)
    words_col = pa.ListArray.from_arrays(pa.array(offs), struct)
    aligns = pa.Table.from_arrays([
        ids, pa.array(["bench"] * n, pa.string()), pa.array(np.where(ok, "ok", "failed"), pa.string()),
        pa.array(np.where(ok, "", "no alignment found"), pa.string()), words_col,
        pa.nulls(n, ALIGNMENT_SCHEMA.field("phones").type)], schema=ALIGNMENT_SCHEMA)
    return utts, aligns


def generate(root: Path, hours: float, seed: int = 0, align_rows: int = ALIGN_ROWS, text_share: float = 0.1) -> dict:
    """Write utterances.parquet, alignments/ and texts.parquet for `hours` of speech under `root`."""
    n_total = max(1, int(round(hours * 3600 / SECONDS_PER_UTTERANCE)))
    done = root / "done.json"
    if done.exists() and json.loads(done.read_text()).get("utterances") == n_total:
        return json.loads(done.read_text())
    rng = np.random.default_rng(seed)
    vocab = vocabulary(seed=seed)
    (root / "alignments").mkdir(parents=True, exist_ok=True)
    writer = pq.ParquetWriter(root / "utterances.parquet", UTTERANCE_SCHEMA, compression="zstd")
    pending: list[pa.Table] = []
    seconds = 0.0
    for k, first in enumerate(range(0, n_total, align_rows)):
        n = min(align_rows, n_total - first)
        utts, aligns = _chunk(n, first, rng, vocab)
        seconds += float(pc.sum(utts.column("duration")).as_py())
        write_table(aligns, root / "alignments" / f"part-{k:05d}.parquet", f"bench-{seed}-{first}",
                    {"utt_rows": f"{first}:{first + n}"})
        pending.append(utts)
        if sum(t.num_rows for t in pending) >= UTT_GROUP_ROWS:
            writer.write_table(pa.concat_tables(pending), row_group_size=UTT_GROUP_ROWS)
            pending = []
    if pending:
        writer.write_table(pa.concat_tables(pending), row_group_size=UTT_GROUP_ROWS)
    writer.close()
    n_texts = max(1, int(n_total * text_share))
    words, _, p = vocab
    texts = []
    for first in range(0, n_texts, 100_000):
        m = min(100_000, n_texts - first)
        lengths = rng.integers(8, 60, m)
        tok = pa.array(words, pa.string()).take(pa.array(rng.choice(len(words), int(lengths.sum()), p=p)))
        ends = np.cumsum(lengths)
        mark = np.where(rng.random(len(tok)) < 1 / 14, ".", "")
        mark[ends - 1] = "."
        tok = pc.binary_join_element_wise(tok, pa.array(mark), "")
        raw = pc.binary_join(pa.ListArray.from_arrays(pa.array(np.concatenate([[0], ends]), pa.int32()), tok), " ")
        raw = pc.utf8_capitalize(raw)
        norm = pa.array([normalize(t) for t in raw.to_pylist()], pa.string())
        ids = pa.array([f"text{first + i:09d}" for i in range(m)], pa.string())
        texts.append(pa.Table.from_arrays([ids, raw, norm, pa.array(["bench"] * m)], schema=TEXT_SCHEMA))
    write_table(pa.concat_tables(texts), root / "texts.parquet")
    info = {"utterances": n_total, "hours": round(seconds / 3600, 2), "texts": n_texts}
    done.write_text(json.dumps(info))
    return info


def _peak_tree(pid: int, stop: threading.Event, out: dict) -> None:
    import psutil

    try:
        proc = psutil.Process(pid)
        while not stop.is_set():
            total = 0
            for p in [proc] + proc.children(recursive=True):
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            out["tree"] = max(out.get("tree", 0), total)
            time.sleep(0.1)
    except psutil.Error:
        pass


def timed(cmd: list[str], env: dict | None = None) -> dict:
    """Run `cmd` under /usr/bin/time -v: wall seconds, peak RSS of its largest process, of its tree."""
    full = ["/usr/bin/time", "-v"] + cmd
    stop, peak = threading.Event(), {}
    started = time.perf_counter()
    proc = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    watcher = threading.Thread(target=_peak_tree, args=(proc.pid, stop, peak), daemon=True)
    watcher.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    stop.set()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) / 2**20
    return {"wall": wall, "max_rss_gb": rss, "tree_gb": peak.get("tree", 0) / 2**30, "stdout": out, "stderr": err}


def run_stage(root: Path, out: Path, recipe: str, workers: int, extra: list[str] = ()) -> dict:
    """One fresh run of the stage (earlier shards are removed: a rerun would keep them)."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    py = sys.executable
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [py, "-m", "pipeline.cli", "interleave", "--utterances", str(root / "utterances.parquet"),
           "--alignments", str(root / "alignments"), "--texts", str(root / "texts.parquet"), "--out", str(out),
           "--recipe", recipe, "--workers", str(workers), "--metrics", str(out) + ".metrics.json",
           "--report", str(out) + ".report.json", "--plot", str(out) + "_{segmenter}.csv", "--figure", str(out) + ".png", *extra]
    got = timed(cmd, env)
    got["metrics"] = json.loads(Path(str(out) + ".metrics.json").read_text())
    got["digest"] = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(out.glob("part-*.parquet")))).hexdigest()[:16]
    return got


def run_lhotse(root: Path, out: Path, hours: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return timed([sys.executable, str(Path(__file__).resolve()), "--lhotse-only", str(root), str(out), str(hours)], env)


def lhotse_equivalent(root: Path, out: Path, hours: float, max_pause: float = 0.25) -> dict:
    """The same work with Lhotse: per utterance a MonoCut with its word alignment (the ASR sample),
    and per interleaved sequence one sub-cut per speech span (word level for half the utterances,
    segments cut at silence for the other half, both variants), streamed to jsonl.gz."""
    from lhotse import MonoCut, Recording, SupervisionSegment
    from lhotse.audio import AudioSource
    from lhotse.serialization import SequentialJsonlWriter
    from lhotse.supervision import AlignmentItem

    utt_file = pq.ParquetFile(root / "utterances.parquet")
    align_files = sorted((root / "alignments").glob("part-*.parquet"))
    seconds, n_cuts = 0.0, 0
    started = time.perf_counter()

    def alignments():
        for f in align_files:
            yield from pq.read_table(f, columns=["utt_id", "status", "words"]).to_pylist()

    aligned = alignments()
    with SequentialJsonlWriter(out) as writer:
        for utt in utt_file.iter_batches(batch_size=ALIGN_ROWS, columns=["utt_id", "audio_path", "duration", "text", "split"]):
            if seconds >= hours * 3600:
                break
            for u in utt.to_pylist():
                a = next(aligned)
                assert a["utt_id"] == u["utt_id"], "the generated alignments follow the manifest"
                if u["split"] != "train":
                    continue
                seconds += u["duration"]
                n = int(u["duration"] * 16000)
                rec = Recording(u["utt_id"], [AudioSource("file", [0], u["audio_path"])], 16000, n, n / 16000)
                ali = [AlignmentItem(w["word"], w["start"], w["end"] - w["start"]) for w in a["words"] or []]
                sup = SupervisionSegment(u["utt_id"], u["utt_id"], 0.0, rec.duration, 0, u["text"],
                                         alignment={"word": ali} if ali else None)
                cut = MonoCut(u["utt_id"], 0.0, rec.duration, 0, supervisions=[sup], recording=rec)
                writer.write(cut)
                n_cuts += 1
                if a["status"] != "ok" or len(ali) < 2:
                    continue
                if hash(u["utt_id"]) % 2:
                    units = [(w.start, w.end) for w in ali]
                else:
                    units, cur = [], [ali[0]]
                    for prev, w in zip(ali, ali[1:]):
                        if w.start - prev.end >= max_pause:
                            units.append((cur[0].start, cur[-1].end))
                            cur = []
                        cur.append(w)
                    units.append((cur[0].start, cur[-1].end))
                for phase in (0, 1):
                    for i, (a0, a1) in enumerate(units):
                        if (i + phase) % 2 == 0 and i + 1 < len(units):
                            writer.write(cut.truncate(offset=a0, duration=max(a1 - a0, 0.01)))
                            n_cuts += 1
    return {"hours": seconds / 3600, "cuts": n_cuts, "seconds": time.perf_counter() - started}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--lhotse-only":
        print(json.dumps(lhotse_equivalent(Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, nargs="+", default=[100, 1000])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--recipe", default="il_mixed_silence_punct")
    ap.add_argument("--lhotse-hours", type=float, default=100, help="Lhotse runs on the first N hours of each size (0: skip)")
    ap.add_argument("--work", default="/tmp/jstip-interleave-scale", help="where the generated inputs are kept")
    args = ap.parse_args()
    work = Path(args.work)
    rows = []
    for hours in args.hours:
        root = work / f"{hours:g}h"
        t = time.perf_counter()
        info = generate(root, hours)
        print(f"\n== {hours:g} h: {info['utterances']} utterances, {info['hours']} h of speech, {info['texts']} texts "
              f"(generated in {time.perf_counter() - t:.0f} s)", flush=True)
        digests = {}
        for workers in args.workers:
            got = run_stage(root, root / f"samples-w{workers}", args.recipe, workers)
            m = got["metrics"]
            digests[workers] = got["digest"]
            speech_h = m["speech_hours_in_split"]
            row = {"hours": hours, "system": f"jstip --workers {workers}", "wall_s": round(got["wall"], 1),
                   "hours_per_s": round(speech_h / got["wall"], 1), "max_rss_gb": round(got["max_rss_gb"], 2),
                   "tree_rss_gb": round(got["tree_gb"], 2), "samples": m["samples"], "reused": m["shards_reused"],
                   "token_share": m["token_share_by_kind"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
        if len(digests) > 1:
            print(f"same bytes for workers {sorted(digests)}: {len(set(digests.values())) == 1}")
        if args.lhotse_hours > 0:
            got = run_lhotse(root, root / "lhotse_cuts.jsonl.gz", min(hours, args.lhotse_hours))
            res = json.loads(got["stdout"].strip().splitlines()[-1])
            row = {"hours": hours, "system": f"lhotse (first {res['hours']:.0f} h)", "wall_s": round(got["wall"], 1),
                   "hours_per_s": round(res["hours"] / got["wall"], 2), "max_rss_gb": round(got["max_rss_gb"], 2),
                   "cuts": res["cuts"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\nsize      system                 wall s   speech h/s   max RSS GB   tree RSS GB")
    for r in rows:
        print(f"{r['hours']:>7g}h  {r['system']:<22} {r['wall_s']:>7}   {r['hours_per_s']:>10}   {r['max_rss_gb']:>10}"
              f"   {r.get('tree_rss_gb', '')}")
    for hours in args.hours:
        mine = [r for r in rows if r["hours"] == hours and r["system"].startswith("jstip")]
        other = [r for r in rows if r["hours"] == hours and r["system"].startswith("lhotse")]
        if len(mine) > 1:
            print(f"{hours:g} h: {mine[-1]['system']} is {mine[0]['wall_s'] / mine[-1]['wall_s']:.2f}x one worker")
        if mine and other:
            print(f"{hours:g} h: jstip (1 worker) {mine[0]['hours_per_s'] / other[0]['hours_per_s']:.1f}x Lhotse's hours/s")


if __name__ == "__main__":
    main()
