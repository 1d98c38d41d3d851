"""`jstip probe`: the paper's modality-gap probes, text in vs speech in (arXiv 2607.01733, §IV-C).

(a) Multiple choice in MMLU's form: k shots as text, then the test question with its options
    as text (T2T) or as speech (S2T), then `Answer:`; the choice is the letter with the highest
    next-token likelihood (`trainer.probe`; the loops are `evaluation/probe.py`). Reported: accuracy of each, and the gap S2T − T2T
    (paired over the same questions).
    With `mcq_form: cloze` (or `both`) the same items are also asked in cloze form: `Question: q
    Answer:` zero-shot, each choice's text scored (small LMs sit at chance in the letter form);
    in the speech-in condition the question alone is spoken (`question_audio`, else espeak-ng).
(b) Zero-shot open questions: `Question:` + the question as text or speech + `Answer:`; the
    model generates until `</s>` (up to `max_new_tokens`), the answer is its first line, scored
    by normalised exact match (or containment) against the given answers.
Input formats and prompts: `evaluation/probe_items.py`. `mcq`/`qa` `demo` generate small sets from
the demo's facts (`synthetic/demo_probe.py`) into `demo_dir`; `''` skips that probe. The speech
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
from typing import Any

from manifests.errors import JstipError
from manifests.io import write_stage_metrics, write_text_atomic

from evaluation.probe import ChoiceTask, Speech, run_choice, run_open
from evaluation.probe_items import McqItem, cloze_parts, mcq_parts, read_mcq, read_qa, shots_for
from manifests.prompts import CUE

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


def _demo_sets(cfg: ProbeConfig) -> tuple[str, str]:
    from pathlib import Path

    from synthetic.demo_probe import demo_facts, mcq_items, qa_items

    paths = {"mcq": cfg.mcq, "qa": cfg.qa}
    for name, make in (("mcq", lambda: mcq_items(demo_facts(), cfg.demo_items, cfg.shots, cfg.seed)),
                       ("qa", lambda: qa_items(demo_facts(), cfg.demo_items, cfg.seed))):
        if paths[name] == "demo":
            paths[name] = str(Path(cfg.demo_dir) / f"{name}.jsonl")
            write_text_atomic("".join(json.dumps(row) + "\n" for row in make()), paths[name])
    return paths["mcq"], paths["qa"]


def choice_tasks(prompter, items: list[McqItem], cfg: ProbeConfig) -> tuple[list[ChoiceTask], dict[str, str]]:
    """The multiple-choice forms `mcq_form` asks for, scored through the model's prompter; a form
    that cannot run (letters the tokenizer cannot tell apart) is named with why, not scored as chance."""
    from trainer.probe import choose, cloze, plan_letters

    tasks, not_run = [], {}
    if cfg.mcq_form != "cloze":
        shots = shots_for(items, cfg.shots)
        n_letters = max((len(i.choices) for i in items if i.split != "dev"), default=2)
        try:
            plan = plan_letters(prompter.tok, CUE, cfg.letters[:n_letters])
        except JstipError as exc:
            not_run["mcq"] = str(exc)
        else:
            example = next((i for i in items if i.split != "dev"), None)
            parts = mcq_parts(example, shots[example.id], cfg.letters) if example else None
            tasks.append(ChoiceTask(
                "mcq", "probe: multiple choice", "", lambda i: mcq_parts(i, shots[i.id], cfg.letters),
                lambda i, p: (p[1], i.audio), lambda i, j: cfg.letters[j],
                lambda batch, prompt: choose(prompter, plan, prompt, [len(i.choices) for i in batch]),
                extra=lambda i: {"subject": i.subject},
                report={"scoring": plan.mode, "letter_tokens": {x: list(c) for x, c in zip(plan.letters, plan.continuations)},
                        "spoken_part": "the test question and its options; header, shots and 'Answer:' are text",
                        "example_prompt": {"text_before": parts[0], "spoken": parts[1], "cue": parts[2]} if parts else None}))
    if cfg.mcq_form != "letter":
        tasks.append(ChoiceTask(
            "mcq_cloze", "probe: multiple choice, cloze", ":cloze", cloze_parts,
            lambda i, p: (i.question, i.question_audio), lambda i, j: i.choices[j],
            lambda batch, prompt: cloze(prompter, CUE, prompt, [i.choices for i in batch]),
            extra=lambda i: {"choices": list(i.choices)},
            report={"scoring": "summed log-probability of each choice's text",
                    "spoken_part": "the question alone ('Question:' and 'Answer:' are text)"}))
    return tasks, not_run


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
    if mcq:
        tasks, not_run = choice_tasks(prompter, mcq, cfg)
        for name, why in not_run.items():
            metrics[f"{name}_items"], report[name] = 0, {"not_run": why}
        for task in tasks:
            metrics_task, report[task.prefix] = run_choice(task, mcq, cfg, speech, prompter.skipped)
            metrics.update(metrics_task)
    if qa:
        metrics_qa, report["qa"] = run_open(prompter, qa, cfg, speech)
        metrics.update(metrics_qa)
    reasons = Counter(v.split(":")[0] for name in ("mcq", "mcq_cloze", "qa")
                      for v in report.get(name, {}).get("skipped", {}).values())
    metrics["skipped_by_reason"] = {k.replace(" ", "_"): v for k, v in sorted(reasons.items())}
    write_stage_metrics(metrics, cfg.metrics, report, cfg.report)
    return metrics
