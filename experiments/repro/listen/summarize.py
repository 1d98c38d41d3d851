"""One listen experiment's figures as a markdown table row (run_arm.sh writes W/runs/NAME):

    python summarize.py NAME [NAME …]          # W from the environment, default /tmp/r18

WER and entity error rates (all, common, rare; %) of `jstip evaluate` on the 618 held-out test utterances,
greedy-CTC CER of the encoder alone on the first 100, the train's steps and loss, spike pooling counts,
CPU seconds, and three hypotheses beside their references.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import polars as pl


def row(run: Path) -> str:
    ev = json.loads((run / "m_eval.json").read_text())
    tr = json.loads((run / "m_train.json").read_text())
    rep = json.loads((run / "r_train.json").read_text())
    cat = ev.get("eer_by_category", {})
    pct = lambda v: "–" if v is None else f"{100 * v:.1f}"  # noqa: E731
    ctc = (run / "ctc.log").read_text().strip().splitlines()[-1].split()
    cer = ctc[ctc.index("CER") + 1] if "CER" in ctc else "–"
    pool = rep.get("spike_pooling")
    pooled = (f"{pool['spikes'] / max(pool['slots'], 1):.2f} spikes/slot, {pool['dropped'] / max(pool['spikes'], 1):.1%} dropped"
              if pool else "–")
    times = (run / "time.txt").read_text().split()
    user = sum(float(times[i - 2]) for i, w in enumerate(times) if w == "user")
    stages = ", ".join(f"{s['name']} {s['steps']}" for s in rep["stages"])
    common = cat.get("common", {})
    ci = lambda d, k: (f" [{pct(d.get(k + '_lo'))}, {pct(d.get(k + '_hi'))}]"  # noqa: E731
                       if d.get(k + "_lo") is not None else "")
    return (f"| {run.name} | {stages} | {tr['loss_last']:.2f} | {pct(ev['wer'])}{ci(ev, 'wer')} | {pct(ev['eer'])} | "
            f"{pct(common.get('eer'))}{ci(common, 'eer')} | {pct(cat.get('rare', {}).get('eer'))} | {cer} | {pooled} | "
            f"{user:.0f} |")


def examples(run: Path, n: int = 3) -> list[str]:
    hyp = pl.read_parquet(run / "hyp.parquet")
    cols = [c for c in ("reference", "text", "hypothesis") if c in hyp.columns]
    return [" || ".join(str(r[c]) for c in cols) for r in hyp.head(n).iter_rows(named=True)]


if __name__ == "__main__":
    w = Path(os.environ.get("W", "/tmp/r18"))
    print("| run | steps | loss | WER [95% CI] | EER all | EER common [95% CI] | EER rare | CTC CER (100) | pooling | CPU-s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in sys.argv[1:]:
        print(row(w / "runs" / name))
    for name in sys.argv[1:]:
        print(f"\n{name}:")
        print("\n".join(f"    {e}" for e in examples(w / "runs" / name)))
