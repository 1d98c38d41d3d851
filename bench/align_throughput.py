"""Audio hours per core-hour of every aligner backend that runs here (on demand, not a test).

    OMP_NUM_THREADS=1 nice -n 10 python bench/align_throughput.py [--utterances 120] [--long-minutes 8]
        [--rounds 2] [--profile 25]

Two workloads, built first (not timed): the demo corpus (`jstip demo-corpus` + `prepare`: short
espeak utterances, several voices) and one long recording (`longform_bench.generate`, sentences
0.3-1.5 s apart, one utterance). Each backend aligns each workload as `jstip align`'s worker does
(`Aligner.align_utterances`, audio read from the files), in one process, the configurations taking
turns round after round, so that the machine's load (printed before and after) falls on all of
them alike and their ratios hold even where the absolute figures do not.

Backends: `pocketsphinx` as `jstip align` runs it, and with `phones=True` (its second,
state-level pass); `ctc` with a model of wav2vec2-base's architecture and size (95M parameters)
built from its config with random weights, since no hub model can be fetched here: its alignments
mean nothing, but the computation, and so the speed, is that of the real model (torch with 1
thread); `import` reading TextGrids written from the true times (`mfa` runs Kaldi, absent here;
reading its output is `import`'s work). MFA itself cannot run here.

Figures: CPU seconds of the process (all its threads: core-seconds) per audio second, as audio
hours per core-hour; the wall time beside it (CPU / wall below 1 means the process waited for a
core). `--profile N` adds cProfile's top N functions by cumulative CPU time for pocketsphinx on the
demo (pocketsphinx's C calls count as the time of the Python function calling them, `_decode`).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def build(t: Path, n: int, long_minutes: float) -> tuple[list, list, Path]:
    """(demo utterances, the long utterance, directory of TextGrids for both)."""
    import longform_bench
    from praatio import textgrid

    from manifests.io import read_records
    from manifests.schema import Alignment, Utterance
    from pipeline.stage_demo_corpus import DemoCorpusConfig, run as demo_corpus
    from pipeline.stage_prepare import PrepareConfig, run as prepare

    demo_corpus(DemoCorpusConfig(out=str(t / "demo"), n_utterances=n, n_domain_texts=1, metrics=str(t / "m.json"),
                                 report=str(t / "demo_report.json")))
    prepare(PrepareConfig(corpus=str(t / "demo/corpus"), utterances=str(t / "u.parquet"), texts=str(t / "t.parquet"),
                          rejected=str(t / "r.parquet"), metrics=str(t / "p.json"), report=str(t / "prepare_report.json")))
    demo = read_records(t / "u.parquet", Utterance)
    longform_bench.generate(t / "long", long_minutes, "dense")
    truth = json.loads((t / "long.json").read_text())
    long = [Utterance("long", str(t / "long.wav"), 0.0, truth["seconds"], 16000, "s", "", " ".join(truth["words"]),
                      "bench", "train")]
    grids = t / "grids"
    grids.mkdir()
    spans = {a.utt_id: [(w.start, w.end, w.word) for w in a.words]
             for a in read_records(t / "demo/reference.parquet", Alignment)}
    spans["long"] = _long_spans(truth)
    seconds = {u.utt_id: u.duration for u in demo + long}
    for utt_id, entries in spans.items():
        grid = textgrid.Textgrid()
        grid.addTier(textgrid.IntervalTier("words", entries, 0, max(seconds[utt_id], entries[-1][1])))
        grid.save(str(grids / f"{utt_id}.TextGrid"), format="long_textgrid", includeBlankSpaces=True)
    return demo, long, grids


def _long_spans(truth: dict) -> list[tuple[float, float, str]]:
    """The long recording's words as intervals: its truth has word starts only, so a word ends where
    the next starts, and words spoken as one token ("five hundred", one start) share its span evenly."""
    starts, words = truth["starts"], truth["words"]
    ends = sorted(set(starts))[1:] + [truth["seconds"]]
    next_start = dict(zip(sorted(set(starts)), ends))
    out, i = [], 0
    while i < len(words):
        j = i
        while j + 1 < len(words) and starts[j + 1] == starts[i]:
            j += 1
        step = (next_start[starts[i]] - starts[i]) / (j - i + 1)
        out += [(starts[i] + k * step, starts[i] + (k + 1) * step, words[i + k]) for k in range(j - i + 1)]
        i = j + 1
    return out


def base_sized_ctc(t: Path) -> Path:
    """A CTC model with wav2vec2-base's architecture (transformers' defaults), random weights."""
    import torch
    from transformers import (Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC,
                              Wav2Vec2Processor)

    vocab = {"<pad>": 0, "|": 1, **{c: i + 2 for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")}}
    (t / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(t / "vocab.json"), pad_token="<pad>", word_delimiter_token="|")
    processor = Wav2Vec2Processor(Wav2Vec2FeatureExtractor(return_attention_mask=True), tokenizer)
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(Wav2Vec2Config(vocab_size=len(vocab), pad_token_id=0)).eval()
    print(f"ctc model: wav2vec2-base architecture, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters,"
          " random weights")
    model.save_pretrained(t / "ctc")
    processor.save_pretrained(t / "ctc")
    return t / "ctc"


def measure(make, utterances: list, loading_counts: bool) -> dict:
    """Build the backend, then align `utterances`: CPU (core) seconds and wall seconds of aligning,
    and of building too when `loading_counts` (import reads its whole source when built; a model's
    loading happens once per worker and is left out, as the stage's real-time factor leaves it out)."""
    cpu, wall = time.process_time(), time.perf_counter()
    aligner = make()
    build_cpu = time.process_time() - cpu
    if not loading_counts:
        cpu, wall = time.process_time(), time.perf_counter()
    records = aligner.align_utterances(utterances)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    words = sum(len(r.words) for r in records)
    return {"cpu": cpu, "wall": wall, "build_cpu": build_cpu, "aligned": sum(r.status != "failed" for r in records),
            "words": words, "phones": sum(len(r.phones) for r in records)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utterances", type=int, default=120)
    parser.add_argument("--long-minutes", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", type=int, default=25, help="top functions of the pocketsphinx profile (0: none)")
    parser.add_argument("--backends", nargs="+", default=["pocketsphinx", "pocketsphinx+phones", "ctc", "import"])
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from aligners import get_aligner

    print(f"start: {load()}; {os.cpu_count()} CPUs; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        demo, long, grids = build(t, args.utterances, args.long_minutes)
        ctc = base_sized_ctc(t) if "ctc" in args.backends else None
        makers = {
            "pocketsphinx": lambda: get_aligner("pocketsphinx"),
            "pocketsphinx+phones": lambda: get_aligner("pocketsphinx", phones=True),
            "ctc": lambda: get_aligner("ctc", model=str(ctc), device="cpu", batch_size=8),
            "import": lambda: get_aligner("import", source=str(grids)),
        }
        work = {"demo": demo, "long": long}
        audio = {k: sum(u.duration for u in v) for k, v in work.items()}
        print(f"demo: {len(demo)} utterances, {audio['demo']:.0f} s; long: 1 recording, {audio['long']:.0f} s")
        runs: dict = {}
        for r in range(args.rounds):
            for name in args.backends:
                for kind, utts in work.items():
                    m = measure(makers[name], utts, loading_counts=name == "import")
                    runs.setdefault((name, kind), []).append(m)
                    print(f"round {r + 1} {name:20s} {kind:5s} cpu {m['cpu']:7.1f} s  wall {m['wall']:7.1f} s  "
                          f"{audio[kind] / m['cpu']:8.1f} audio-h/core-h (loading {m['build_cpu']:.1f} s)  aligned {m['aligned']}, "
                          f"words {m['words']}, phones {m['phones']}  ({load()})", flush=True)
        print(f"\n== audio hours per core-hour (median of {args.rounds} rounds; CPU/wall shows the core share)")
        base = {k: statistics.median(m["cpu"] for m in runs[("pocketsphinx", k)])
                for k in work if ("pocketsphinx", k) in runs}
        for (name, kind), ms in runs.items():
            cpu = statistics.median(m["cpu"] for m in ms)
            share = statistics.median(m["cpu"] / m["wall"] for m in ms)
            ratio = f", {cpu / base[kind]:.2f}x pocketsphinx's CPU" if kind in base else ""
            print(f"{name:20s} {kind:5s} {audio[kind] / cpu:8.1f}{ratio}; CPU/wall {share:.2f}")
        if args.profile:
            # timed by CPU, not the wall clock: on a loaded machine the wall clock mostly measures waiting
            aligner, profiler = makers["pocketsphinx"](), cProfile.Profile(time.process_time)
            profiler.enable()
            aligner.align_utterances(demo)
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.profile)
            print(f"\n== cProfile, pocketsphinx on the demo ({len(demo)} utterances), top {args.profile} by cumulative time")
            print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])
    print(f"end: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
