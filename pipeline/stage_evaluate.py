"""`jstip evaluate`: checkpoint + held-out utterances → hypotheses, TER, WER and entity error rate.

As the paper scores (arXiv 2607.01733, §IV-C): the model writes formatted text, so
- TER counts case and punctuation against `Utterance.text` (`evaluation.metrics.text_tokens`);
- WER compares normalised words: `norm_text` against the hypothesis normalised by the same
  `corpora.textnorm.normalize` that made `norm_text`;
- EER = 1 − recall over entity instances, scored before normalisation (an instance counts only
  if all its tokens are right, in place; `evaluation.metrics`), from annotations or an entity list
  (`evaluation.entities`), per category when they carry one, with the normalised variant
  beside it.
Every rate gets a seeded utterance-level bootstrap interval (`*_lo`, `*_hi`). Long recordings
are decoded in pieces (`chunk_seconds`) or skipped above `max_duration`; unreadable audio is
skipped; every skip is counted by reason and listed in the report, and the rest is scored.
Writes the `Hypothesis` manifest, `metrics/eval.json` (numbers only) and the report
(per-utterance errors, missed entities with examples, skips). torch is imported only when the
stage runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from manifests.errors import JstipError
from manifests.io import iter_records, write_records, write_stage_metrics
from manifests.schema import Hypothesis, Utterance

from evaluation.entities import read_entity_source
from evaluation.scoring import Intervals, metric_key, score


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
    ctc_weight: float = field(default=0.0, metadata={"help": (
        "joint CTC/LM decoding: weight in [0, 1] of the model's letter CTC head in every hypothesis's score "
        "(ESPnet's hybrid decoder, beam num_beams); 0: the LM alone. Needs a model trained with ctc_units chars")})
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


def run(cfg: EvaluateConfig) -> dict:
    """Transcribe the held-out split and write hypotheses, metrics and report; returns the metrics."""
    from trainer.checkpoint import load_checkpoint
    from trainer.decode import transcribe
    from trainer.loop import pick_device

    from evaluation.entities import locate

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
                        max_duration=cfg.max_duration, ctc_weight=cfg.ctc_weight)
    write_records(result.hypotheses, Hypothesis, cfg.hypotheses)

    located = locate(source, {u.utt_id: u.text for u in utterances})
    decoded = {h.utt_id for h in result.hypotheses}
    metrics, details = score(utterances, result.hypotheses, located.spans, Intervals(cfg.bootstrap, cfg.seed, cfg.confidence))
    metrics.update(
        utterances=len(utterances), decoded=len(result.hypotheses), skipped=sum(result.skipped.values()),
        skipped_by_reason={metric_key(k): v for k, v in sorted(result.skipped.items())},
        entity_instances_not_decoded=sum(len(s) for k, s in located.spans.items() if k not in decoded),
        entity_annotations_unplaced=sum(located.problems.values()),
        chunked_utterances=len(result.pieces), pieces=sum(result.pieces.values()),
        truncated=len(result.truncated), audio_seconds=round(result.audio_seconds, 3),
        decode_seconds=round(result.wall_seconds, 3),
        real_time_factor=result.wall_seconds / result.audio_seconds if result.audio_seconds else None,
        num_beams=cfg.num_beams, ctc_weight=cfg.ctc_weight, bootstrap=cfg.bootstrap,
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
