"""`jstip probe`: the paper's modality-gap probes, text in vs speech in (arXiv 2607.01733, §IV-C).

(a) Multiple choice in MMLU's form: k shots as text, then the test question with its options
    as text (T2T) or as speech (S2T), then `Answer:`; the choice is the letter with the highest
    next-token likelihood (`trainer.probe`). Reported: accuracy of each, and the gap S2T − T2T
    (paired over the same questions).
    With `mcq_form: cloze` (or `both`) the same items are also asked in cloze form: `Question: q
    Answer:` zero-shot, each choice's text scored (small LMs sit at chance in the letter form);
    in the speech-in condition the question alone is spoken (`question_audio`, else espeak-ng).
(b) Zero-shot open questions: `Question:` + the question as text or speech + `Answer:`; the
    model generates until `</s>` (up to `max_new_tokens`), the answer is its first line, scored
    by normalised exact match (or containment) against the given answers.
Input formats and prompts: `pipeline/probe_items.py`. `mcq`/`qa` `demo` generate small sets from
the demo's facts (`pipeline/demo_probe.py`) into `demo_dir`; `''` skips that probe. The speech
is synthesized with espeak-ng (`voice`, `rate`) unless an item gives its own `audio`.
`group_by` (e.g. `tier`) breaks every accuracy down by that item field: `mcq_by_tier.rare.t2t`, ….
Intervals: seeded bootstrap over questions; the gap's from a paired bootstrap. A question
whose speech cannot be made or read is left out of both conditions and counted with its reason.
Metrics (numbers) to `metrics/probe.json`; per-question answers to the report.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from manifests.errors import AudioError, JstipError
from manifests.io import write_stage_metrics, write_text_atomic

from .probe_items import CUE, McqItem, QaItem, cloze_parts, mcq_parts, probe_sample, qa_correct, qa_parts, read_mcq, \
    read_qa, shots_for, first_line

MCQ_FORMS = ("letter", "cloze", "both")


@dataclass
class ProbeConfig:
    checkpoints: str = field(default="checkpoints", metadata={"help": "checkpoint directory written by train"})
    mcq: str = field(default="demo", metadata={"help": (
        "multiple-choice JSONL, one item per line: {\"id\", \"question\", \"choices\": [..], \"answer\": \"B\" or "
        "0-based index, \"subject\"?, \"split\"?: dev (a shot) | test (scored), \"audio\"?: a recording of question + "
        "options}; 'demo': generate from the demo's facts; '': skip")})
    qa: str = field(default="demo", metadata={"help": (
        "open-question JSONL, one per line: {\"id\", \"question\", \"answers\": [..], \"audio\"?}; 'demo': generate; "
        "'': skip")})
    demo_dir: str = field(default="data/probe", metadata={"help": "where the generated demo sets are written"})
    demo_items: int = field(default=24, metadata={"help": "questions per generated demo set"})
    mcq_form: str = field(default="letter", metadata={"help": "letter (MMLU: the likeliest option letter), cloze (each "
                                                               "choice's text scored after 'Question: q Answer:', "
                                                               "zero-shot: mcq_cloze_*) or both"})
    group_by: str = field(default="", metadata={"help": "an item field (e.g. tier) whose values break every accuracy "
                                                        "down (mcq_by_<field>.<value>.t2t, …); '' none"})
    shots: int = field(default=5, metadata={"help": "k of the k-shot multiple-choice prompt (MMLU: 5)"})
    letters: str = field(default="ABCDEFGHIJ", metadata={"help": "option letters, in order (MMLU: A-D)"})
    qa_match: str = field(default="exact", metadata={
        "help": "exact: normalised answer equals a gold answer; contains: a gold answer appears in it as whole words"})
    max_new_tokens: int = field(default=16, metadata={"help": "most tokens generated per open answer"})
    batch_size: int = field(default=8, metadata={"help": "questions per model call"})
    voice: str = field(default="en-us", metadata={"help": "espeak-ng voice of the spoken questions"})
    rate: int = field(default=160, metadata={"help": "espeak-ng speaking rate, words per minute"})
    limit: int = field(default=0, metadata={"help": "score at most this many questions per probe; 0: all"})
    bootstrap: int = field(default=1000, metadata={"help": "bootstrap resamples of questions for the intervals; 0: none"})
    confidence: float = field(default=0.95, metadata={"help": "confidence level of the intervals"})
    seed: int = field(default=0, metadata={"help": "seed of the demo sets and of the bootstrap"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA if present, else CPU), cpu or cuda"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})
    metrics: str = field(default="metrics/probe.json", metadata={"help": "numeric metrics (what dvc metrics compares)"})
    report: str = field(default="reports/probe.json", metadata={"help": "per-question answers, skips, prompts used"})


class Speech:
    """The spoken form of a question: its own recording, or espeak-ng's (FLAC bytes in memory)."""

    def __init__(self, voice: str, rate: int) -> None:
        self.voice, self.rate, self.engine = voice, rate, None

    def __call__(self, text: str, audio_path: str) -> tuple[bytes | None, str, float]:
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


def _demo_sets(cfg: ProbeConfig) -> tuple[str, str]:
    from pathlib import Path

    from .demo_probe import demo_facts, mcq_items, qa_items

    paths = {"mcq": cfg.mcq, "qa": cfg.qa}
    for name, make in (("mcq", lambda: mcq_items(demo_facts(), cfg.demo_items, cfg.shots, cfg.seed)),
                       ("qa", lambda: qa_items(demo_facts(), cfg.demo_items, cfg.seed))):
        if paths[name] == "demo":
            paths[name] = str(Path(cfg.demo_dir) / f"{name}.jsonl")
            write_text_atomic("".join(json.dumps(row) + "\n" for row in make()), paths[name])
    return paths["mcq"], paths["qa"]


def _accuracy(out: dict[str, Any], prefix: str, t2t: list[bool], s2t: list[bool], cfg: ProbeConfig) -> None:
    from trainer.bootstrap import bootstrap_ratio, paired_bootstrap

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
        out[f"{prefix}_gap_lo"], out[f"{prefix}_gap_hi"] = paired["lo"], paired["hi"]


def _by_group(out: dict[str, Any], prefix: str, by: str, groups: list[str], t2t: list[bool], s2t: list[bool]) -> None:
    """Accuracies per value of the `group_by` field (no intervals: the per-group counts are in `items`)."""
    if not by:
        return
    table: dict[str, dict[str, Any]] = {}
    for g in sorted(set(groups)):
        idx = [i for i, x in enumerate(groups) if x == g]
        a, b = sum(t2t[i] for i in idx) / len(idx), sum(s2t[i] for i in idx) / len(idx)
        table[g if g.isidentifier() else f"g_{g}" if g else "none"] = {"items": len(idx), "t2t": a, "s2t": b, "gap": b - a}
    out[f"{prefix}_by_{by}"] = table


def _batches(items: list, size: int, label: str, progress: bool):
    from tqdm import tqdm

    for b in tqdm(range(0, len(items), size), desc=label, disable=not progress, unit="batch"):
        yield items[b:b + size]


def _spoken(batch: list, texts: list[str], speech: Speech, skipped: dict[str, str]) -> list:
    audio = []
    for item, text in zip(batch, texts):
        try:
            audio.append(speech(text, item.audio))
        except (AudioError, JstipError) as exc:
            skipped[item.id] = f"no speech: {exc}"
            audio.append(None)
    return audio


def run_mcq(prompter, items: list[McqItem], cfg: ProbeConfig, speech: Speech) -> tuple[dict, dict]:
    """Accuracy text-in and speech-in, and the gap, over the test items of a multiple-choice set."""
    from trainer.probe import choose, plan_letters

    test = [i for i in items if i.split != "dev"][: cfg.limit or None]
    shots = shots_for(items, cfg.shots)
    n_letters = max((len(i.choices) for i in test), default=2)
    try:
        plan = plan_letters(prompter.tok, CUE, cfg.letters[:n_letters])
    except JstipError as exc:
        return {"mcq_items": 0}, {"not_run": str(exc)}
    rows, skipped, t2t, s2t, groups = [], {}, [], [], []
    for batch in _batches(test, cfg.batch_size, "probe: multiple choice", cfg.progress):
        parts = [mcq_parts(i, shots[i.id], cfg.letters) for i in batch]
        n = [len(i.choices) for i in batch]
        text = choose(prompter, plan, lambda q, suf: probe_sample(f"{batch[q].id}:t2t", parts[q], None, suf), n)
        audio = _spoken(batch, [p[1] for p in parts], speech, skipped)
        said = choose(prompter, plan, lambda q, suf: probe_sample(f"{batch[q].id}:s2t", parts[q], audio[q], suf)
                      if audio[q] else probe_sample(f"{batch[q].id}:t2t", parts[q], None, suf), n)
        for q, item in enumerate(batch):
            if audio[q] is None or said[q] is None or text[q] is None:
                skipped.setdefault(item.id, prompter.skipped.get(f"{item.id}:s2t", "audio unreadable"))
                continue
            picks = [max(range(len(s)), key=s.__getitem__) for s in (text[q], said[q])]
            t2t.append(picks[0] == item.answer)
            s2t.append(picks[1] == item.answer)
            groups.append(item.group)
            rows.append({"id": item.id, "subject": item.subject, "answer": cfg.letters[item.answer],
                         "t2t": cfg.letters[picks[0]], "s2t": cfg.letters[picks[1]],
                         "t2t_logprobs": [round(x, 4) for x in text[q]], "s2t_logprobs": [round(x, 4) for x in said[q]]})
    metrics: dict[str, Any] = {}
    _accuracy(metrics, "mcq", t2t, s2t, cfg)
    _by_group(metrics, "mcq", cfg.group_by, groups, t2t, s2t)
    metrics.update(mcq_skipped=len(skipped), mcq_chance=sum(1 / len(i.choices) for i in test) / len(test) if test else None)
    example = mcq_parts(test[0], shots[test[0].id], cfg.letters) if test else None
    report = {"items": rows, "skipped": skipped, "scoring": plan.mode,
              "letter_tokens": {x: list(c) for x, c in zip(plan.letters, plan.continuations)},
              "spoken_part": "the test question and its options; header, shots and 'Answer:' are text",
              "example_prompt": {"text_before": example[0], "spoken": example[1], "cue": example[2]} if example else None}
    return metrics, report


def run_cloze(prompter, items: list[McqItem], cfg: ProbeConfig, speech: Speech) -> tuple[dict, dict]:
    """Cloze-form accuracy (each choice's text scored after the question), text-in and speech-in, and the gap."""
    from trainer.probe import cloze

    test = [i for i in items if i.split != "dev"][: cfg.limit or None]
    rows, skipped, t2t, s2t, groups = [], {}, [], [], []
    for batch in _batches(test, cfg.batch_size, "probe: multiple choice, cloze", cfg.progress):
        parts = [cloze_parts(i) for i in batch]
        options = [i.choices for i in batch]
        text = cloze(prompter, CUE, lambda q, suf: probe_sample(f"{batch[q].id}:cloze:t2t", parts[q], None, suf), options)
        audio = _spoken_questions(batch, speech, skipped)
        said = cloze(prompter, CUE, lambda q, suf: probe_sample(f"{batch[q].id}:cloze:s2t", parts[q], audio[q], suf)
                     if audio[q] else probe_sample(f"{batch[q].id}:cloze:t2t", parts[q], None, suf), options)
        for q, item in enumerate(batch):
            if audio[q] is None or said[q] is None or text[q] is None:
                skipped.setdefault(item.id, prompter.skipped.get(f"{item.id}:cloze:s2t", "audio unreadable"))
                continue
            picks = [max(range(len(x)), key=x.__getitem__) for x in (text[q], said[q])]
            t2t.append(picks[0] == item.answer)
            s2t.append(picks[1] == item.answer)
            groups.append(item.group)
            rows.append({"id": item.id, "choices": list(item.choices), "answer": item.choices[item.answer],
                         "t2t": item.choices[picks[0]],
                         "s2t": item.choices[picks[1]], "t2t_logprobs": [round(x, 4) for x in text[q]],
                         "s2t_logprobs": [round(x, 4) for x in said[q]]})
    metrics: dict[str, Any] = {}
    _accuracy(metrics, "mcq_cloze", t2t, s2t, cfg)
    _by_group(metrics, "mcq_cloze", cfg.group_by, groups, t2t, s2t)
    metrics["mcq_cloze_skipped"] = len(skipped)
    return metrics, {"items": rows, "skipped": skipped, "scoring": "summed log-probability of each choice's text",
                     "spoken_part": "the question alone ('Question:' and 'Answer:' are text)"}


def _spoken_questions(batch: list[McqItem], speech: Speech, skipped: dict[str, str]) -> list:
    audio = []
    for item in batch:
        try:
            audio.append(speech(item.question, item.question_audio))
        except (AudioError, JstipError) as exc:
            skipped[item.id] = f"no speech: {exc}"
            audio.append(None)
    return audio


def run_qa(prompter, items: list[QaItem], cfg: ProbeConfig, speech: Speech) -> tuple[dict, dict]:
    """Normalised exact-match accuracy of open answers, text-in and speech-in."""
    items = items[: cfg.limit or None]
    rows, skipped, t2t, s2t, truncated, groups = [], {}, [], [], 0, []
    for batch in _batches(items, cfg.batch_size, "probe: open questions", cfg.progress):
        parts = [qa_parts(i) for i in batch]
        audio = _spoken(batch, [p[1] for p in parts], speech, skipped)
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
    _accuracy(metrics, "qa", t2t, s2t, cfg)
    _by_group(metrics, "qa", cfg.group_by, groups, t2t, s2t)
    metrics.update(qa_skipped=len(skipped), qa_truncated=truncated)
    return metrics, {"items": rows, "skipped": skipped, "match": cfg.qa_match}


def run(cfg: ProbeConfig) -> dict:
    """Run the configured probes and write metrics and report; returns the metrics."""
    from trainer.checkpoint import load_checkpoint
    from trainer.lm_calls import Prompter
    from trainer.loop import pick_device

    if cfg.shots < 0 or cfg.batch_size < 1 or cfg.max_new_tokens < 1 or cfg.demo_items < 1:
        raise JstipError(f"shots ({cfg.shots}) must be >= 0, batch_size ({cfg.batch_size}), max_new_tokens "
                         f"({cfg.max_new_tokens}) and demo_items ({cfg.demo_items}) >= 1")
    if len(set(cfg.letters)) != len(cfg.letters) or len(cfg.letters) < 2:
        raise JstipError(f"letters {cfg.letters!r} must be at least two distinct characters, e.g. ABCD")
    if cfg.mcq_form not in MCQ_FORMS:
        raise JstipError(f"mcq_form {cfg.mcq_form!r} is unknown; use {', '.join(MCQ_FORMS)}")
    if cfg.qa_match not in ("exact", "contains"):
        raise JstipError(f"qa_match {cfg.qa_match!r} is unknown; use exact or contains")
    mcq_path, qa_path = _demo_sets(cfg)
    mcq = read_mcq(mcq_path, cfg.letters, cfg.group_by) if mcq_path else []  # read first: a bad file fails early
    qa = read_qa(qa_path, cfg.group_by) if qa_path else []
    model, tok = load_checkpoint(cfg.checkpoints, pick_device(cfg.device))
    prompter, speech = Prompter(model, tok), Speech(cfg.voice, cfg.rate)
    metrics: dict[str, Any] = {}
    report: dict[str, Any] = {"checkpoints": cfg.checkpoints, "mcq_file": mcq_path, "qa_file": qa_path,
                              "shots": cfg.shots, "voice": cfg.voice, "rate": cfg.rate, "seed": cfg.seed,
                              "confidence": cfg.confidence}
    runs: list[tuple[str, Callable, list]] = [("mcq", run_mcq, mcq if cfg.mcq_form != "cloze" else []),
                                              ("mcq_cloze", run_cloze, mcq if cfg.mcq_form != "letter" else []),
                                              ("qa", run_qa, qa)]
    for name, probe, items in runs:
        if items:
            m, r = probe(prompter, items, cfg, speech)
            metrics.update(m)
            report[name] = r
    reasons = Counter(v.split(":")[0] for name in ("mcq", "mcq_cloze", "qa")
                      for v in report.get(name, {}).get("skipped", {}).values())
    metrics["skipped_by_reason"] = {k.replace(" ", "_"): v for k, v in sorted(reasons.items())}
    write_stage_metrics(metrics, cfg.metrics, report, cfg.report)
    return metrics
