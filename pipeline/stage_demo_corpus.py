"""`jstip demo-corpus`: synthesize the demo's English corpus with espeak-ng, with true word times
(`synthetic/demo_corpus.py`); writes `metrics/demo_corpus.json` and the report."""
from __future__ import annotations

from dataclasses import dataclass, field

from manifests.io import write_stage_metrics

DEFAULT_VOICES = "en-us,en-us+f3,en-us+m3,en-us+f2,en,en-gb-x-rp+m2,en-gb-scotland,en-029"


@dataclass
class DemoCorpusConfig:
    out: str = field(default="data/demo", metadata={"help": "output directory of the demo corpus"})
    n_utterances: int = field(default=200, metadata={"help": "number of spoken utterances"})
    n_domain_texts: int = field(default=400, metadata={"help": "number of transcript-only domain sentences"})
    medical_fraction: float = field(default=0.5, metadata={"help": "share of spoken sentences from the medical domain"})
    rare_entity_share: float = field(
        default=0.1, metadata={"help": "probability that a spoken medical sentence uses a rare entity"}
    )
    voices: str = field(default=DEFAULT_VOICES, metadata={"help": "comma-separated espeak-ng voices (one speaker each)"})
    min_rate: int = field(default=140, metadata={"help": "slowest speaking rate, words per minute"})
    max_rate: int = field(default=190, metadata={"help": "fastest speaking rate, words per minute"})
    sample_rate: int = field(default=16000, metadata={"help": "sample rate of the written audio"})
    seed: int = field(default=0, metadata={"help": "random seed: the same seed gives the same corpus"})
    metrics: str = field(default="metrics/demo_corpus.json", metadata={"help": "where to write the counts"})
    report: str = field(default="reports/demo_corpus.json", metadata={"help": "where to write what was made and where"})


def run(cfg: DemoCorpusConfig) -> dict:
    from synthetic.demo_corpus import write_demo_corpus

    metrics, report = write_demo_corpus(cfg)
    write_stage_metrics(metrics, cfg.metrics, report, cfg.report)
    return metrics
