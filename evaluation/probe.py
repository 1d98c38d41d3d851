"""The probe loops: one categorical loop for every multiple-choice form and one generative loop for
open questions (as nanochat's `chat_eval` has one of each), each run text-in (T2T) and speech-in
(S2T) on the same items.

A multiple-choice form is a `ChoiceTask`: how an item's prompt is laid out (`parts`), what of it is
spoken, how a choice is shown in the report, and how a batch of prompts is scored (`score`, built
by the stage from the model: `trainer.probe.choose` for MMLU's letters, `trainer.probe.cloze` for
each choice's text). The model is reached only through what the stage passes in (`score`, and a
prompter with `generate` and `skipped`), so this module imports no torch. A question whose speech
cannot be made or read is left out of both conditions and counted with its reason. Accuracies get
seeded bootstrap intervals over questions; the gap S2T − T2T a paired one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from manifests.errors import AudioError, JstipError
from manifests.schema import Sample

from .bootstrap import bootstrap_ratio, paired_bootstrap
from .probe_items import McqItem, QaItem, first_line, probe_sample, qa_correct, qa_parts

Parts = tuple[str, str, str]  # text before, the part spoken in the speech-in condition, the cue
Audio = tuple[bytes | None, str, float]  # FLAC bytes or None, a recording's path, seconds


class Speech:
    """The spoken form of a question: its own recording, or espeak-ng's (FLAC bytes in memory)."""

    def __init__(self, voice: str, rate: int) -> None:
        self.voice, self.rate, self.engine = voice, rate, None

    def __call__(self, text: str, audio_path: str) -> Audio:
        if audio_path:
            from manifests.audio import audio_info

            return None, audio_path, audio_info(audio_path)[1]
        from aligners.espeak import espeak
        from manifests.audio import encode_flac

        self.engine = self.engine or espeak()
        wave, _ = self.engine.synthesize(text, voice=self.voice, rate=self.rate)
        if wave.size == 0:
            raise AudioError(f"espeak-ng produced no audio for {text[:60]!r}")
        return encode_flac(wave, self.engine.sample_rate), "", wave.size / self.engine.sample_rate


@dataclass
class ChoiceTask:
    """One multiple-choice form, as the categorical loop needs it."""

    prefix: str  # metric prefix: mcq, mcq_cloze
    label: str  # progress bar
    tag: str  # inserted in prompt sample ids: "" or ":cloze"
    parts: Callable[[McqItem], Parts]
    spoken: Callable[[McqItem, Parts], tuple[str, str]]  # (text to speak, the item's own recording or "")
    shown: Callable[[McqItem, int], str]  # choice j as the report writes it (a letter, or its text)
    score: Callable[[list[McqItem], Callable[[int, str], Sample]], list[list[float] | None]]
    extra: Callable[[McqItem], dict[str, Any]] = lambda item: {}
    report: dict[str, Any] = field(default_factory=dict)


def accuracy(out: dict[str, Any], prefix: str, t2t: list[bool], s2t: list[bool], cfg: Any) -> None:
    """`prefix_{t2t,s2t}` with intervals and `prefix_gap` (S2T − T2T) with a paired interval."""
    n = len(t2t)
    out[f"{prefix}_items"] = n
    for name, correct in (("t2t", t2t), ("s2t", s2t)):
        out[f"{prefix}_{name}"] = sum(correct) / n if n else None
        if cfg.bootstrap > 0:
            out[f"{prefix}_{name}_lo"], out[f"{prefix}_{name}_hi"] = bootstrap_ratio(
                [float(c) for c in correct], None, cfg.bootstrap, cfg.seed, cfg.confidence)
    out[f"{prefix}_gap"] = (sum(s2t) - sum(t2t)) / n if n else None
    if cfg.bootstrap > 0:
        paired = paired_bootstrap([float(c) for c in t2t], [float(c) for c in s2t], None, cfg.bootstrap, cfg.seed,
                                  cfg.confidence)
        out[f"{prefix}_gap_lo"], out[f"{prefix}_gap_hi"] = paired.lo, paired.hi


def by_group(out: dict[str, Any], prefix: str, by: str, groups: list[str], t2t: list[bool], s2t: list[bool]) -> None:
    """Accuracies per value of the `group_by` field (no intervals: the per-group counts are in `items`)."""
    if not by:
        return
    table: dict[str, dict[str, Any]] = {}
    for g in sorted(set(groups)):
        idx = [i for i, x in enumerate(groups) if x == g]
        a, b = sum(t2t[i] for i in idx) / len(idx), sum(s2t[i] for i in idx) / len(idx)
        table[g if g.isidentifier() else f"g_{g}" if g else "none"] = {"items": len(idx), "t2t": a, "s2t": b, "gap": b - a}
    out[f"{prefix}_by_{by}"] = table


def _batches(items: list, size: int, label: str, progress: bool) -> Iterator[list]:
    from tqdm import tqdm

    for b in tqdm(range(0, len(items), size), desc=label, disable=not progress, unit="batch"):
        yield items[b:b + size]


def _spoken(texts: Sequence[tuple[str, str, str]], speech: Speech, skipped: dict[str, str]) -> list[Audio | None]:
    """The audio of each (item id, text, recording); None (and the reason in `skipped`) where none can be made."""
    audio: list[Audio | None] = []
    for item_id, text, recording in texts:
        try:
            audio.append(speech(text, recording))
        except (AudioError, JstipError) as exc:
            skipped[item_id] = f"no speech: {exc}"
            audio.append(None)
    return audio


def run_choice(task: ChoiceTask, items: list[McqItem], cfg: Any, speech: Speech,
               prompt_skips: dict[str, str]) -> tuple[dict, dict]:
    """Accuracy text-in and speech-in, and the gap, of one multiple-choice form over the test items.

    `cfg` has the probe's settings (`limit`, `batch_size`, `progress`, `group_by`, `bootstrap`, `seed`,
    `confidence`); `prompt_skips` is where the model side records prompts it could not read."""
    test = [i for i in items if i.split != "dev"][: cfg.limit or None]
    rows, skipped, t2t, s2t, groups = [], {}, [], [], []
    for batch in _batches(test, cfg.batch_size, task.label, cfg.progress):
        parts = [task.parts(i) for i in batch]
        sid = [f"{i.id}{task.tag}" for i in batch]
        text = task.score(batch, lambda q, suf: probe_sample(f"{sid[q]}:t2t", parts[q], None, suf))
        audio = _spoken([(i.id, *task.spoken(i, p)) for i, p in zip(batch, parts)], speech, skipped)
        said = task.score(batch, lambda q, suf: probe_sample(f"{sid[q]}:s2t", parts[q], audio[q], suf)
                          if audio[q] else probe_sample(f"{sid[q]}:t2t", parts[q], None, suf))
        for q, item in enumerate(batch):
            if audio[q] is None or said[q] is None or text[q] is None:
                skipped.setdefault(item.id, prompt_skips.get(f"{sid[q]}:s2t", "audio unreadable"))
                continue
            picks = [max(range(len(s)), key=s.__getitem__) for s in (text[q], said[q])]
            t2t.append(picks[0] == item.answer)
            s2t.append(picks[1] == item.answer)
            groups.append(item.group)
            rows.append({"id": item.id, **task.extra(item), "answer": task.shown(item, item.answer),
                         "t2t": task.shown(item, picks[0]), "s2t": task.shown(item, picks[1]),
                         "t2t_logprobs": [round(x, 4) for x in text[q]], "s2t_logprobs": [round(x, 4) for x in said[q]]})
    metrics: dict[str, Any] = {}
    accuracy(metrics, task.prefix, t2t, s2t, cfg)
    by_group(metrics, task.prefix, cfg.group_by, groups, t2t, s2t)
    metrics[f"{task.prefix}_skipped"] = len(skipped)
    metrics[f"{task.prefix}_chance"] = sum(1 / len(i.choices) for i in test) / len(test) if test else None
    return metrics, {"items": rows, "skipped": skipped, **task.report}


def run_open(prompter: Any, items: list[QaItem], cfg: Any, speech: Speech) -> tuple[dict, dict]:
    """Normalised exact-match (or containment) accuracy of open answers, text-in and speech-in.

    `prompter.generate(samples, max_new_tokens)` continues prompts (None where audio failed) and
    `prompter.skipped` holds why; `cfg` as for `run_choice`, plus `max_new_tokens` and `qa_match`."""
    items = items[: cfg.limit or None]
    rows, skipped, t2t, s2t, truncated, groups = [], {}, [], [], 0, []
    for batch in _batches(items, cfg.batch_size, "probe: open questions", cfg.progress):
        parts = [qa_parts(i) for i in batch]
        audio = _spoken([(i.id, p[1], i.audio) for i, p in zip(batch, parts)], speech, skipped)
        text = prompter.generate([probe_sample(f"{i.id}:t2t", p, None) for i, p in zip(batch, parts)],
                                 cfg.max_new_tokens)
        keep = [q for q in range(len(batch)) if audio[q] is not None]
        said_kept = prompter.generate([probe_sample(f"{batch[q].id}:s2t", parts[q], audio[q]) for q in keep],
                                      cfg.max_new_tokens) if keep else []
        said: dict[int, Any] = dict(zip(keep, said_kept))
        for q, item in enumerate(batch):
            if said.get(q) is None or text[q] is None:
                skipped.setdefault(item.id, prompter.skipped.get(f"{item.id}:s2t", "audio unreadable"))
                continue
            answers = (first_line(text[q].text), first_line(said[q].text))
            hits = [qa_correct(a, item.answers, cfg.qa_match) for a in answers]
            t2t.append(hits[0])
            s2t.append(hits[1])
            groups.append(item.group)
            truncated += text[q].truncated + said[q].truncated
            rows.append({"id": item.id, "question": item.question, "answers": list(item.answers),
                         "t2t": answers[0], "s2t": answers[1], "t2t_correct": hits[0], "s2t_correct": hits[1]})
    metrics: dict[str, Any] = {}
    accuracy(metrics, "qa", t2t, s2t, cfg)
    by_group(metrics, "qa", cfg.group_by, groups, t2t, s2t)
    metrics.update(qa_skipped=len(skipped), qa_truncated=truncated)
    return metrics, {"items": rows, "skipped": skipped, "match": cfg.qa_match}
