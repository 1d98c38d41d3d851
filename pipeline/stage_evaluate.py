"""`jstip evaluate`: checkpoint + held-out utterances → hypotheses, TER, WER and entity error rate.

As the paper scores (arXiv 2607.01733, §IV-C): the model writes formatted text, so
- TER counts case and punctuation against `Utterance.text` (`trainer.metrics.text_tokens`);
- WER compares normalised words: `norm_text` against the hypothesis normalised by the same
  `pipeline.textnorm.normalize` that made `norm_text`;
- EER = 1 − recall over entity instances, scored before normalisation (an instance counts only
  if all its tokens are right, in place; `trainer.metrics`), from annotations or an entity list
  (`pipeline.eval_entities`), per category when they carry one, with the normalised variant
  beside it.
Every rate gets a seeded utterance-level bootstrap interval (`*_lo`, `*_hi`). Long recordings
are decoded in pieces (`chunk_seconds`) or skipped above `max_duration`; unreadable audio is
skipped; every skip is counted by reason and listed in the report, and the rest is scored.
Writes the `Hypothesis` manifest, `metrics/eval.json` (numbers only) and the report
(per-utterance errors, missed entities with examples, skips). torch is imported only when the
stage runs.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from manifests.errors import JstipError
from manifests.io import iter_records, write_records, write_stage_metrics
from manifests.schema import Hypothesis, Utterance

from .eval_entities import read_entity_source

EXAMPLES = 3

# What `metrics/eval.json` holds (the rates with their intervals, per entity category too); every other
# figure (error counts, the normalised entity error rate's intervals, decoding counts) is in the report.
EVALUATE_METRICS = ("wer", "wer_lo", "wer_hi", "ter", "ter_lo", "ter_hi", "eer", "eer_lo", "eer_hi", "eer_normalised",
                    "entity_instances", "eer_by_category.*.eer", "eer_by_category.*.eer_lo", "eer_by_category.*.eer_hi",
                    "eer_by_category.*.instances", "utterances", "skipped", "real_time_factor")


@dataclass
class EvaluateConfig:
    checkpoints: str = field(default="checkpoints", metadata={"help": "checkpoint directory written by train"})
    utterances: str = field(default="data/utterances.parquet", metadata={"help": "utterance manifest"})
    split: str = field(default="test", metadata={"help": "which split to transcribe"})
    entities: str = field(default="data/demo/entities.txt", metadata={"help": (
        "entity annotations (.jsonl: one line per utterance, {\"utt_id\": ..., \"entities\": [{\"start\": int, "
        "\"end\": int, \"category\": str}]} with character offsets into the utterance's text as written, or "
        "{\"text\": \"phrase\"} for every occurrence of it) or an entity list (one phrase per line, optionally "
        "TAB category; every case-insensitive whole-word occurrence counts); missing or empty: EER null")})
    hypotheses: str = field(default="data/eval/hypotheses.parquet", metadata={"help": "output Hypothesis manifest"})
    metrics: str = field(default="metrics/eval.json", metadata={"help": "numeric metrics (what dvc metrics compares)"})
    report: str = field(default="reports/evaluate.json", metadata={
        "help": "report: per-utterance errors, missed entities with examples, skipped utterances with reasons"})
    max_new_tokens: int = field(default=64, metadata={"help": "most tokens generated per utterance (per piece)"})
    batch_size: int = field(default=8, metadata={"help": "prompts decoded together (left-padded)"})
    num_beams: int = field(default=1, metadata={"help": "1: greedy; more: beam search with that many beams"})
    prompt: str = field(default="{speech}", metadata={"help": "decoding prompt with {speech} where the audio goes; "
                                                              "'{speech}' is the asr prompt (<s> speech <|asr|>), e.g. "
                                                              "'question: {speech} answer:' a free one"})
    chunk_seconds: float = field(default=30.0, metadata={"help": (
        "recordings longer than this are decoded in pieces of at most this length, cut at the quietest 100 ms "
        "of the second half of each window, the texts joined with a space (bounded memory)")})
    max_duration: float = field(default=0.0, metadata={
        "help": "skip (and count) recordings longer than this many seconds; 0: decode all, in pieces"})
    bootstrap: int = field(default=1000, metadata={"help": "bootstrap resamples of utterances for the intervals; 0: none"})
    confidence: float = field(default=0.95, metadata={"help": "confidence level of the bootstrap intervals"})
    seed: int = field(default=0, metadata={"help": "seed of the bootstrap resampling"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA if present, else CPU), cpu or cuda"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


def read_entities(path: str) -> tuple[list[str], str | None]:
    """The phrases of an entity list, lower-cased, and a note when there are none (kept for older
    callers; the stage itself matches phrases case-insensitively through `eval_entities`)."""
    source = read_entity_source(path)
    return [p.lower() for p, _ in source.phrases], source.note or None


def _key(name: str) -> str:
    """A category as a metric key (identifier characters only)."""
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", name)[:64] or "_"


def _with_interval(out: dict[str, Any], name: str, rate: float | None, num: list[float], den: list[float],
                   cfg: EvaluateConfig) -> None:
    from trainer.bootstrap import bootstrap_ratio

    out[name] = rate
    if cfg.bootstrap > 0:
        out[f"{name}_lo"], out[f"{name}_hi"] = bootstrap_ratio(num, den, cfg.bootstrap, cfg.seed, cfg.confidence)


def score(utterances: list[Utterance], hypotheses: list[Hypothesis], spans: dict[str, list],
          cfg: EvaluateConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metrics and report details of decoded hypotheses (pure: no model, no files)."""
    from trainer.metrics import entity_error_rate, error_counts, score_entities, text_tokens

    from .textnorm import normalize

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
        by_category[_key(category)] = c
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


def run(cfg: EvaluateConfig) -> dict:
    """Transcribe the held-out split and write hypotheses, metrics and report; returns the metrics."""
    from trainer.checkpoint import load_checkpoint
    from trainer.decode import transcribe
    from trainer.loop import pick_device

    from .eval_entities import locate

    if cfg.batch_size < 1 or cfg.max_new_tokens < 1:
        raise JstipError(f"batch_size ({cfg.batch_size}) and max_new_tokens ({cfg.max_new_tokens}) must be >= 1")
    if cfg.bootstrap < 0 or not 0 < cfg.confidence < 1:
        raise JstipError(f"bootstrap ({cfg.bootstrap}) must be >= 0 and confidence ({cfg.confidence}) in (0, 1)")
    utterances = [u for u in iter_records(cfg.utterances, Utterance) if u.split == cfg.split]
    if not utterances:
        raise JstipError(f"{cfg.utterances} has no utterances with split {cfg.split!r}; "
                         "pick another --split or re-run prepare with a test fraction above 0")
    source = read_entity_source(cfg.entities)  # read first: a broken file fails before decoding
    model, tok = load_checkpoint(cfg.checkpoints, pick_device(cfg.device))
    result = transcribe(model, tok, utterances, cfg.batch_size, cfg.max_new_tokens, progress=cfg.progress,
                        num_beams=cfg.num_beams, prompt=cfg.prompt, chunk_seconds=cfg.chunk_seconds,
                        max_duration=cfg.max_duration)
    write_records(result.hypotheses, Hypothesis, cfg.hypotheses)

    located = locate(source, {u.utt_id: u.text for u in utterances})
    decoded = {h.utt_id for h in result.hypotheses}
    metrics, details = score(utterances, result.hypotheses, located.spans, cfg)
    metrics.update(
        utterances=len(utterances), decoded=len(result.hypotheses), skipped=sum(result.skipped.values()),
        skipped_by_reason={_key(k): v for k, v in sorted(result.skipped.items())},
        entity_instances_not_decoded=sum(len(s) for k, s in located.spans.items() if k not in decoded),
        entity_annotations_unplaced=sum(located.problems.values()),
        chunked_utterances=len(result.pieces), pieces=sum(result.pieces.values()),
        truncated=len(result.truncated), audio_seconds=round(result.audio_seconds, 3),
        decode_seconds=round(result.wall_seconds, 3),
        real_time_factor=result.wall_seconds / result.audio_seconds if result.audio_seconds else None,
        num_beams=cfg.num_beams, bootstrap=cfg.bootstrap,
    )
    report = {
        "split": cfg.split, "checkpoints": cfg.checkpoints, "prompt": cfg.prompt, "entities": cfg.entities,
        "entity_note": source.note, "device": str(next(model.parameters()).device),
        "confidence": cfg.confidence, "seed": cfg.seed, "chunk_seconds": cfg.chunk_seconds,
        "skipped": [{"utt_id": k, "reason": v} for k, v in result.skip_reasons.items()],
        "entity_annotation_problems": {"counts": dict(located.problems), "examples": located.examples},
        "chunked": result.pieces, "truncated": result.truncated,
        "categories": sorted({s.category for spans in located.spans.values() for s in spans if s.category}),
        **details,
    }
    write_stage_metrics(metrics, cfg.metrics, report, cfg.report, keep=EVALUATE_METRICS)
    return metrics
