"""`jstip evaluate`: checkpoint + held-out utterances → hypotheses, WER and entity error rate.

Thin wrapper: loads the checkpoint, transcribes every utterance of `split` with
`trainer.decode.transcribe` (greedy or beam search; the asr prompt or a free one), writes the `Hypothesis` manifest and `metrics/eval.json`.
A missing or empty entity list does not stop the run: entity metrics are null with a note.
torch is imported only when the stage runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from manifests.errors import JstipError
from manifests.io import iter_records, write_metrics, write_records
from manifests.schema import Hypothesis, Utterance


@dataclass
class EvaluateConfig:
    checkpoints: str = field(default="checkpoints", metadata={"help": "checkpoint directory written by train"})
    utterances: str = field(default="data/utterances.parquet", metadata={"help": "utterance manifest"})
    split: str = field(default="test", metadata={"help": "which split to transcribe"})
    entities: str = field(default="data/demo/entities.txt",
                          metadata={"help": "normalized entities, one per line; missing/empty → entity metrics null"})
    hypotheses: str = field(default="data/eval/hypotheses.parquet", metadata={"help": "output Hypothesis manifest"})
    metrics: str = field(default="metrics/eval.json", metadata={"help": "where to write WER and entity error rate"})
    max_new_tokens: int = field(default=64, metadata={"help": "most tokens generated per utterance"})
    batch_size: int = field(default=8, metadata={"help": "utterances decoded together (left-padded)"})
    num_beams: int = field(default=1, metadata={"help": "1: greedy; more: beam search with that many beams"})
    prompt: str = field(default="{speech}", metadata={"help": "decoding prompt with {speech} where the audio goes; "
                                                              "'{speech}' is the asr prompt, e.g. 'question: {speech} "
                                                              "answer:' a free one"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA if present, else CPU), cpu or cuda"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


def read_entities(path: str) -> tuple[list[str], str | None]:
    """Entities of `path` (lower-cased, blank lines dropped) and a note when there are none."""
    if not path or not Path(path).exists():
        return [], f"entity file {path!r} not found; entity metrics not computed"
    entities = [" ".join(line.lower().split()) for line in Path(path).read_text().splitlines()]
    entities = [e for e in entities if e]
    return entities, None if entities else f"entity file {path} is empty; entity metrics not computed"


def run(cfg: EvaluateConfig) -> dict:
    """Transcribe the held-out split and write hypotheses and metrics; returns the metrics."""
    from trainer.decode import transcribe
    from trainer.loop import pick_device
    from trainer.metrics import entity_error_rate, wer
    from trainer.checkpoint import load_checkpoint

    if cfg.batch_size < 1 or cfg.max_new_tokens < 1:
        raise JstipError(f"batch_size ({cfg.batch_size}) and max_new_tokens ({cfg.max_new_tokens}) must be >= 1")
    utterances = [u for u in iter_records(cfg.utterances, Utterance) if u.split == cfg.split]
    if not utterances:
        raise JstipError(f"{cfg.utterances} has no utterances with split {cfg.split!r}; "
                         "pick another --split or re-run prepare with a test fraction above 0")
    model, tok = load_checkpoint(cfg.checkpoints, pick_device(cfg.device))
    result = transcribe(model, tok, utterances, cfg.batch_size, cfg.max_new_tokens, progress=cfg.progress,
                        num_beams=cfg.num_beams, prompt=cfg.prompt)
    write_records(result.hypotheses, Hypothesis, cfg.hypotheses)

    refs = [h.reference for h in result.hypotheses]
    hyps = [h.hypothesis for h in result.hypotheses]
    entities, note = read_entities(cfg.entities)
    metrics: dict = {"split": cfg.split, "utterances": len(utterances), "decoded": len(result.hypotheses),
                     "skipped": sum(result.skipped.values()), "skipped_by_reason": dict(result.skipped),
                     "skipped_ids": result.skipped_ids[:20]}
    metrics.update(wer(refs, hyps))
    if note is None:
        metrics.update(entity_error_rate(refs, hyps, entities))
        metrics["entities_listed"] = len(entities)
    else:
        metrics.update(entity_error_rate=None, entity_errors=None, entity_occurrences=None, entity_note=note)
    metrics.update(
        audio_seconds=round(result.audio_seconds, 3),
        decode_seconds=round(result.wall_seconds, 3),
        real_time_factor=result.wall_seconds / result.audio_seconds if result.audio_seconds else None,
        exact_match=sum(r == h for r, h in zip(refs, hyps)) / len(refs) if refs else None,
        device=str(next(model.parameters()).device),
        num_beams=cfg.num_beams,
        prompt=cfg.prompt,
    )
    write_metrics(metrics, cfg.metrics)
    return metrics
