"""What `jstip interleave` reports: numeric metrics, the report, and the segment-length plot.

`metrics/interleave.json` holds what `dvc exp show` compares (samples, tokens and hours per kind,
the share of speech left unused, aligned utterances used, segment-length summaries); the report
(`reports/interleave.json`) holds the mixture, pools, skip and failure reasons with examples and
the dropped kinds. The paper's Figure 2 (words per segment, silence vs silence + punctuation)
is written as a CSV for `dvc plots` and as a PNG.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from interleave.batch import HIST_SEGMENTERS, MAX_BIN
from interleave.recipes import RECIPE_ROWS, SPEECH_KINDS, Selection
from manifests.io import atomic_path, write_text_atomic

SKIP_REASONS = ("other_split", "no_transcript", "no_alignment", "alignment_failed", "alignment_partial",
                "one_aligned_word")


def merge(results: list[dict]) -> dict[str, Any]:
    """Counts of all shards added up."""
    by_kind: dict[str, Counter] = {}
    total: dict[str, Any] = {"reasons": Counter(), "examples": {}, "segments": {}, "notes": Counter(), "failed": Counter(),
                             "failed_examples": {}, "join": Counter(), "join_examples": {}}
    sums = Counter()
    for r in results:
        for kind, stats in r["by_kind"].items():
            by_kind.setdefault(kind, Counter()).update(stats)
        f = r["facts"]
        total["reasons"].update(f["reasons"])
        total["notes"].update(f["notes"])
        for name, hist in f["segments"].items():
            old = total["segments"].get(name)
            total["segments"][name] = hist if old is None else [a + b for a, b in zip(old, hist)]
        for key in ("used_seconds", "split_seconds", "used_aligned", "raw_fallback", "widest_gap"):
            sums[key] += f[key]
        sums["dropped_final_unit"] += r["dropped_final_unit"]
        sums["variants_too_short"] += r["variants_too_short"]
        sums["reused"] += r.get("reused", 0)
        total["failed"].update(r["failed"])
        total["join"].update(r["join"])
        for src, dst in ((f["examples"], "examples"), (r["failed_examples"], "failed_examples"),
                         (r["join_examples"], "join_examples")):
            for reason, ex in src.items():
                total[dst].setdefault(reason, [])
                total[dst][reason] = (total[dst][reason] + ex)[:5]
    total["by_kind"], total["sums"] = by_kind, sums
    return total


def segment_summary(hist: list[int]) -> dict[str, float]:
    """Mean, median, 90th percentile and largest words per segment of a histogram (last bin: 60+)."""
    counts = np.asarray(hist, np.float64)
    if counts.sum() == 0:
        return {"segments": 0}
    words = np.arange(len(counts))
    cdf = np.cumsum(counts) / counts.sum()
    return {"segments": int(counts.sum()), "mean_words": round(float((words * counts).sum() / counts.sum()), 3),
            "median_words": int(np.searchsorted(cdf, 0.5)), "p90_words": int(np.searchsorted(cdf, 0.9)),
            "max_words": int(words[counts > 0].max()), "share_over_20_words": round(float(counts[21:].sum() / counts.sum()), 4)}


def metrics_and_report(results: list[dict], selection: Selection, cfg: Any, candidates: dict[str, int],
                       dropped_reasons: dict[str, str], wall: float) -> tuple[dict, dict, dict[str, list[int]]]:
    """The metrics, the report and the words-per-segment histograms of all shards."""
    m = merge(results)
    by_kind, sums, reasons = m["by_kind"], m["sums"], m["reasons"]
    tokens = sum(v["tokens"] for v in by_kind.values())
    split_h = sums["split_seconds"] / 3600
    used_h = sums["used_seconds"] / 3600
    kinds = sorted(by_kind)
    metrics = {
        "samples": int(sum(v["samples"] for v in by_kind.values())),
        "shards": len(results),
        "shards_reused": int(sums["reused"]),
        "samples_by_kind": {k: int(by_kind[k]["samples"]) for k in kinds},
        "tokens_by_kind": {k: int(by_kind[k]["tokens"]) for k in kinds},
        "token_share_by_kind": {k: round(by_kind[k]["tokens"] / max(tokens, 1e-9), 4) for k in kinds},
        "speech_hours_by_kind": {k: round(by_kind[k]["speech_seconds"] / 3600, 4) for k in kinds},
        "tokens": int(tokens),
        "speech_words": int(sum(v["speech_words"] for v in by_kind.values())),
        "text_words": int(sum(v["text_words"] for v in by_kind.values())),
        "speech_hours_in_split": round(split_h, 4),
        "speech_hours_used": round(used_h, 4),
        "speech_share_unused": round(1 - used_h / split_h, 4) if split_h else 0.0,
        "utterances_in_split": int(sum(reasons[r] for r in ("no_alignment", "alignment_failed", "alignment_partial",
                                                            "one_aligned_word", "aligned"))),
        "aligned_utterances": int(reasons["aligned"]),
        "aligned_utterances_used": int(sums["used_aligned"]),
        "raw_text_fallback": int(sums["raw_fallback"]),
        "dropped_final_unit": int(sums["dropped_final_unit"]),
        "segments": {name: segment_summary(hist) for name, hist in sorted(m["segments"].items())},
        "widest_gap_cuts": int(sums["widest_gap"]),
        "embedded_audio_mb": round(sum(v["audio_bytes"] for v in by_kind.values()) / 2**20, 2),
        "wall_seconds": round(wall, 2),
    }
    pools = {}
    for kind in selection.capacity:
        cap, taken = selection.capacity[kind], selection.taken.get(kind, 0.0)
        pools[kind] = {"candidates": candidates.get(kind, 0), "pool": round(cap, 2), "target": round(selection.targets.get(kind, 0), 2),
                       "taken": round(taken, 2), "share_of_pool_used": round(taken / cap, 4) if cap else 0.0,
                       "built_tokens": round(by_kind.get(kind, {}).get("tokens", 0.0), 1),
                       "built_samples": int(by_kind.get(kind, {}).get("samples", 0))}
    report = {
        "recipe": cfg.recipe, "paper_row": RECIPE_ROWS.get(cfg.recipe, "custom"),
        "mixture": {k: round(w, 4) for k, w in selection.weights.items()}, "mix_by": cfg.mix_by,
        "limited_by": selection.limited_by, "dropped_kinds": dropped_reasons,
        "pools": pools, "pool_unit": "estimated tokens" if cfg.mix_by == "tokens" else "samples",
        "skipped": {r: int(reasons[r]) for r in SKIP_REASONS if reasons[r]},
        "skipped_examples": {r: v for r, v in m["examples"].items() if r in SKIP_REASONS},
        "variants_too_short": int(sums["variants_too_short"]),
        "alignment_join": dict(m["join"]), "alignment_join_examples": m["join_examples"],
        "failed": dict(m["failed"]), "failed_examples": {**m["failed_examples"],
                                                         **{k: v for k, v in m["examples"].items() if k not in SKIP_REASONS}},
        "notes": dict(m["notes"]),
        "settings": {k: getattr(cfg, k) for k in ("text_form", "tokens", "variants", "segmenter", "max_pause", "layout",
                                                  "word_sampler", "segment_sampler", "word_probability", "entity_list", "split")},
        "plots": {"csv": cfg.plot, "png": cfg.figure},
    }
    return metrics, report, m["segments"]


def speech_left(selection: Selection) -> dict[str, float]:
    """Share of each speech kind's pool the mixture leaves out (what a scarce pool costs)."""
    return {k: 1 - selection.taken[k] / selection.capacity[k] for k in selection.weights
            if k in SPEECH_KINDS and selection.capacity.get(k)}


def write_segment_plots(segments: dict[str, list[int]], csv_path: str, png_path: str) -> None:
    """The paper's Figure 2: share of segments by words per segment, one CSV per segmenter
    (`{segmenter}` in `csv_path` names it; what `dvc plots` draws) and both side by side as a PNG."""
    hists = {name: np.asarray(segments.get(name, [0] * (MAX_BIN + 1)), np.float64) for name in HIST_SEGMENTERS}
    shares = {name: h / h.sum() if h.sum() else h for name, h in hists.items()}
    for name in HIST_SEGMENTERS if csv_path else ():
        lines = ["words,share,segments"] + [f"{w},{shares[name][w]:.6f},{int(hists[name][w])}" for w in range(1, MAX_BIN + 1)]
        write_text_atomic("\n".join(lines) + "\n", csv_path.replace("{segmenter}", name))
    if not png_path:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    titles = {"silence": "(a) Silence", "silence_punct": "(b) Silence + Punctuation"}
    for ax, name in zip(axes, HIST_SEGMENTERS):
        h = shares[name]
        ax.bar(np.arange(1, MAX_BIN + 1), h[1:], width=0.9, color="#4c72b0")
        n = int(hists[name].sum())
        ax.set_title(f"{titles[name]}  ({n} segments)" if n else f"{titles[name]}  (no segments)")
        ax.set_xlabel(f"words per segment ({MAX_BIN} = {MAX_BIN} or more)")
    axes[0].set_ylabel("share of segments")
    fig.suptitle("Segment length distribution of the interleaved sequences (JSTIP Figure 2)")
    fig.tight_layout()
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
