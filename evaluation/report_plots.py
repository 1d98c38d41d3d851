"""Plots of `jstip report`: one panel per paper table, a bar per row and metric with its interval.

Bars are seed means; whiskers the 95% t interval over seeds (none with a single seed); each
seed's own value is drawn as a dot, so a reader sees the spread and no seed can hide.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from manifests.io import atomic_path


def plot_metric(exp, stats: dict, tables: list[str], metric_names: list[str], path: str | Path,
                seed_values: dict | None = None) -> Path:
    """Horizontal grouped bars: rows of each table on the y axis, one bar per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in exp.metrics if m.name in metric_names]
    heights = [sum(r.table == t for r in exp.rows) for t in tables]
    fig, axes = plt.subplots(len(tables), 1, figsize=(8, 1.2 + 0.45 * sum(heights) * len(metrics) ** 0.5),
                             gridspec_kw={"height_ratios": heights or [1]}, squeeze=False)
    width = 0.8 / max(len(metrics), 1)
    for ax, table in zip(axes[:, 0], tables):
        rows = [r for r in exp.rows if r.table == table]
        y = np.arange(len(rows))
        for k, metric in enumerate(metrics):
            s = [stats[(r.row_id, metric.name)] for r in rows]
            means = np.array([x.mean if x.mean is not None else np.nan for x in s])
            lows = np.array([x.mean - x.low if x.low is not None else 0.0 for x in s])
            highs = np.array([x.high - x.mean if x.high is not None else 0.0 for x in s])
            pos = y + (k - (len(metrics) - 1) / 2) * width
            ax.barh(pos, means, height=width, xerr=[lows, highs], capsize=3, label=metric.label, alpha=0.8)
            for row, p in zip(rows, pos):
                for value in (seed_values or {}).get((row.row_id, metric.name), []):
                    ax.plot(value, p, "k.", markersize=3)
        ax.set_yticks(y, [r.label for r in rows])
        ax.invert_yaxis()
        ax.set_title(exp.tables[table], fontsize=9)
        ax.axvline(0, color="grey", linewidth=0.5)
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return Path(path)
