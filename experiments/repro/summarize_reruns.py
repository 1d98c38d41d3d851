"""Tables of the runs `rerun_row.sh` made (default directory runs_outside_queue): each row's mean and 95% t
interval over seeds, B - A paired by seed, and what each run trained on (samples seen by kind).

    python summarize_reruns.py [RUNS_DIR]
"""
import json
import statistics as st
import sys
from pathlib import Path
T = {2: 12.706, 3: 4.303}
RUNS = Path(sys.argv[1] if len(sys.argv) > 1 else "runs_outside_queue")
ROWS = ["asr_only", "asr_il", "asr_text", "asr_text_il"]
def get(d, path):
    for k in path.split("."):
        d = d[k]
    return d
METRICS = {"EER all": "eval:eer", "WER": "eval:wer", "cloze T2T": "probe:mcq_cloze_t2t",
           "cloze T2T rare": "probe:mcq_cloze_by_tier.rare.t2t", "cloze T2T common": "probe:mcq_cloze_by_tier.common.t2t",
           "QA T2T": "probe:qa_t2t", "cloze S2T": "probe:mcq_cloze_s2t"}
runs = {}
for row in ROWS:
    for s in range(3):
        d = RUNS / f"{row}-s{s}"
        if not (d / "m_probe.json").exists():
            continue
        m = {"eval": json.loads((d / "m_eval.json").read_text()), "probe": json.loads((d / "m_probe.json").read_text())}
        vals = {name: 100 * get(m[src], key) for name, (src, key) in ((n, v.split(":")) for n, v in METRICS.items())}
        seen = json.loads((d / "r_train.json").read_text())["samples_seen_by_kind"]
        have = json.loads((d / "m_interleave.json").read_text())["samples_by_kind"]
        runs[(row, s)] = (vals, seen, have)
def ci(xs):
    if len(xs) < 2:
        return f"{xs[0]:.1f}" if xs else "–"
    return f"{st.mean(xs):.1f} ± {T[len(xs)] * st.stdev(xs) / len(xs) ** 0.5:.1f}"
print("| row | seeds | " + " | ".join(METRICS) + " |")
print("|---|---|" + "---|" * len(METRICS))
for row in ROWS:
    seeds = [s for s in range(3) if (row, s) in runs]
    print(f"| {row} | {len(seeds)} | " + " | ".join(ci([runs[(row, s)][0][n] for s in seeds]) for n in METRICS) + " |")
print()
print("| B | A | metric | B − A per seed | mean, 95% t interval | seeds with B better |")
print("|---|---|---|---|---|---|")
for b, a in (("asr_il", "asr_only"), ("asr_text_il", "asr_text"), ("asr_text", "asr_only")):
    for n in ("cloze T2T rare", "cloze T2T", "QA T2T"):
        seeds = [s for s in range(3) if (a, s) in runs and (b, s) in runs]
        d = [runs[(b, s)][0][n] - runs[(a, s)][0][n] for s in seeds]
        if len(d) >= 2:
            h = T[len(d)] * st.stdev(d) / len(d) ** 0.5
            iv = f"{st.mean(d):+.1f} [{st.mean(d) - h:+.1f}, {st.mean(d) + h:+.1f}]"
        else:
            iv = "–"
        print(f"| {b} | {a} | {n} | {' / '.join(f'{x:+.1f}' for x in d)} | {iv} | {sum(x > 0 for x in d)}/{len(d)} |")
print()
print("| run | seen / available, by kind |")
print("|---|---|")
for (row, s), (_, seen, have) in sorted(runs.items(), key=lambda kv: (kv[0][1], ROWS.index(kv[0][0]))):
    print(f"| {row}-s{s} | " + ", ".join(f"{k} {seen.get(k, 0)}/{have[k]}" for k in sorted(have)) + " |")
