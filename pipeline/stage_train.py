"""`jstip train`: sample shards → tokenizer + trained speech-LLM checkpoint, log, plots, metrics, report.

Reads its params and calls `trainer.run.train_run` (with `--plan`, prints the memory plan instead); rank 0 writes `metrics/train.json` (a
handful of numbers) and `reports/train.json` (the rest). Runs under `torchrun` for DDP.
"""
from __future__ import annotations

from manifests.io import write_stage_metrics
from trainer.config import PLOTS, TrainConfig

__all__ = ["PLOTS", "TrainConfig", "run"]


def run(cfg: TrainConfig) -> dict:
    """Train (see `trainer.run`); returns the metrics (rank 0) or this rank's number."""
    from trainer.run import plan_text, train_run

    if cfg.plan:
        print(plan_text(cfg))
        return {}
    out = train_run(cfg)
    if out is None:
        import os

        return {"rank": int(os.environ.get("RANK", "0"))}
    metrics, report = out
    write_stage_metrics(metrics, cfg.metrics, report, cfg.report)
    return metrics
