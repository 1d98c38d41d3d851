"""Scoring decoded hypotheses as the paper does (arXiv 2607.01733, §IV-C): TER (case and
punctuation count), WER (normalised words), and the entity error rate (1 − recall over entity
instances, scored before normalisation), each with a seeded utterance-level bootstrap interval,
per entity category when the annotations carry one. Pure: no model, no files.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from manifests.schema import Hypothesis, Utterance

from .bootstrap import bootstrap_ratio
from .metrics import entity_error_rate, error_counts, score_entities, text_tokens

EXAMPLES = 3


@dataclass(frozen=True)
class Intervals:
    """How the intervals are drawn: bootstrap resamples (0: none), seed, confidence level."""

    bootstrap: int = 1000
    seed: int = 0
    confidence: float = 0.95


def metric_key(name: str) -> str:
    """A category as a metric key (identifier characters only)."""
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", name)[:64] or "_"


def _with_interval(out: dict[str, Any], name: str, rate: float | None, num: list[float], den: list[float],
                   cfg: Intervals) -> None:
    out[name] = rate
    if cfg.bootstrap > 0:
        out[f"{name}_lo"], out[f"{name}_hi"] = bootstrap_ratio(num, den, cfg.bootstrap, cfg.seed, cfg.confidence)


def score(utterances: list[Utterance], hypotheses: list[Hypothesis], spans: dict[str, list],
          cfg: Intervals = Intervals(), normalize=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metrics and report details of decoded hypotheses. `normalize` is the text normaliser that
    made `norm_text` (default: `corpora.textnorm.normalize`)."""
    if normalize is None:
        from corpora.textnorm import normalize
    by_id = {u.utt_id: u for u in utterances}
    refs = [by_id[h.utt_id] for h in hypotheses]
    ter = error_counts([text_tokens(u.text) for u in refs], [text_tokens(h.hypothesis) for h in hypotheses])
    wer = error_counts([u.norm_text.split() for u in refs], [normalize(h.hypothesis).split() for h in hypotheses])
    results = [score_entities(u.text, h.hypothesis, spans.get(u.utt_id, []), normalize)
               for u, h in zip(refs, hypotheses)]
    eer = entity_error_rate(results)
    m: dict[str, Any] = {}
    for name, counts, total in (("wer", wer, "reference_words"), ("ter", ter, "reference_tokens")):
        errors, n = sum(c.errors for c in counts), sum(c.reference for c in counts)
        _with_interval(m, name, errors / n if n else None, [c.errors for c in counts], [c.reference for c in counts], cfg)
        m[f"{name}_errors"], m[total] = errors, n
    instances = [len(r) for r in results]
    for name, hit in (("eer", "hit"), ("eer_normalised", "hit_normalised")):
        _with_interval(m, name, eer[name], [sum(not getattr(e, hit) for e in r) for r in results], instances, cfg)
    m.update(entity_instances=eer["instances"], entity_hits=eer["hits"], entity_hits_normalised=eer["hits_normalised"])
    by_category: dict[str, Any] = {}
    for category, tally in eer["by_category"].items():
        c: dict[str, Any] = {"instances": tally["instances"]}
        for name, hit in (("eer", "hit"), ("eer_normalised", "hit_normalised")):
            _with_interval(c, name, tally[name], [sum(not getattr(e, hit) for e in r if e.category == category)
                                                  for r in results],
                           [sum(e.category == category for e in r) for r in results], cfg)
        by_category[metric_key(category)] = c
    if by_category:
        m["eer_by_category"] = by_category

    missed: dict[str, dict[str, Any]] = defaultdict(lambda: {"instances": 0, "missed": 0, "missed_normalised": 0,
                                                             "category": "", "examples": []})
    per_utt = []
    for u, h, t, w, r in zip(refs, hypotheses, ter, wer, results):
        for e in r:
            entry = missed[e.text.lower()]
            entry["instances"] += 1
            entry["category"] = e.category
            entry["missed"] += not e.hit
            entry["missed_normalised"] += not e.hit_normalised
            if not e.hit and len(entry["examples"]) < EXAMPLES:
                entry["examples"].append({"utt_id": u.utt_id, "reference": e.text, "hypothesis": e.hypothesis})
        per_utt.append({"utt_id": u.utt_id, "reference": u.text, "hypothesis": h.hypothesis,
                        "ter_errors": t.errors, "ter_tokens": t.reference, "wer_errors": w.errors,
                        "wer_words": w.reference, "entities": len(r),
                        "entities_missed": [e.text for e in r if not e.hit],
                        # per category: [instances, missed] (a paired bootstrap over utterances per tier needs them)
                        "by_category": {c: [sum(e.category == c for e in r), sum(e.category == c and not e.hit for e in r)]
                                        for c in sorted({e.category for e in r if e.category})}})
    details = {"utterances": per_utt,
               "missed_entities": dict(sorted(((k, v) for k, v in missed.items() if v["missed"]),
                                              key=lambda kv: (-kv[1]["missed"], kv[0])))}
    return m, details
