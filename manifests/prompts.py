"""The probe prompts' text formats: MMLU's multiple choice and open questions.

One renderer for both places that write them: the probes (`evaluation/probe_items.py`, one line
per part, as MMLU's harness lays a prompt out) and the world text that teaches the formats to the
stage-0 LM (`synthetic/world/probes.py`, one sentence per line, parts joined by spaces).
"""
from __future__ import annotations

from typing import Sequence

HEADER = "The following are multiple choice questions (with answers){about}."
CUE = "Answer:"
QUESTION = "Question:"


def mmlu_header(subject: str = "") -> str:
    """MMLU's first line: `The following are multiple choice questions (with answers) about {subject}.`"""
    subject = subject.replace("_", " ").strip()
    return HEADER.format(about=f" about {subject}" if subject else "")


def mmlu_question(question: str, choices: Sequence[str], letters: str, sep: str = "\n", end: str = "") -> str:
    """The question and its lettered options (`A. x`), each after `sep`; `end` closes each option
    (a period, where the options are spoken)."""
    return question + "".join(f"{sep}{letters[j]}. {choice}{end}" for j, choice in enumerate(choices))


def mmlu_answer(letter: str = "") -> str:
    """`Answer:` with the letter after it (a solved shot) or without (the prompt's cue)."""
    return f"{CUE} {letter}" if letter else CUE


def open_question(question: str, answer: str | None = None) -> str:
    """`Question: q Answer: a.` (without `answer`: the prompt, ending at `Answer:`)."""
    return f"{QUESTION} {question} {CUE}" + (f" {answer}." if answer is not None else "")
