"""The probes' inputs and prompts: multiple-choice items in MMLU form, open spoken questions.

Input files are JSONL, one item per line:

- multiple choice: `{"id": "q1", "question": "Which of these is a drug?", "choices": ["sepsis",
  "atorvastatin", "biopsy", "Boston"], "answer": "B", "subject": "medicine", "split": "test"}`;
  `answer` a letter or a 0-based index; `subject` and `split` (`dev` | `test`, default test)
  optional; `audio` optional: a recording of the question and its options (else espeak-ng
  speaks them).
- open questions: `{"id": "qa1", "question": "What kind of thing is metformin?", "answers":
  ["a drug", "drug"]}`; `audio` optional as above.
A relative `audio` path is relative to the JSONL file. Multiple-choice items may also give
`question_audio`, a recording of the question alone (the cloze form speaks only the question), and
any field named by the stage's `group_by` (e.g. `tier`) breaks the accuracies down by its values.

Cloze form (`mcq_form: cloze`; lm-eval-harness's "cloze" MMLU variant, what small LMs can answer):
`Question: {question} Answer:` zero-shot, each choice's text scored as the continuation (summed
log-probability); in the speech-in condition the question is spoken.

Prompts (MMLU's form, Hendrycks et al. 2021, as its reference code and lm-eval-harness write it):

    The following are multiple choice questions (with answers) about {subject}.

    {shot question}
    A. {choice}
    …
    Answer: {letter}

    … k shots …
    {question}
    A. {choice}
    …
    Answer:

The k shots come from the `dev` items of the same subject (in file order), then of any
subject, else from the other items (never the item itself). What is spoken in the speech-in
condition: the test question with its options (the part between the shots and `Answer:`);
header, shots and the `Answer:` cue stay text. So text-in and speech-in prompts differ only
in the modality of that one span, and the speech span is followed directly by text, as
word-level interleaving trains. Open questions: `Question:` (text) + the question (text or
speech) + `Answer:` (text), zero-shot.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from manifests.errors import JstipError
from manifests.formats import token
from manifests.jsonl import read_objects
from manifests.prompts import CUE, QUESTION, mmlu_answer, mmlu_header, mmlu_question
from manifests.schema import SPEECH, TEXT, Sample, Span

from corpora.textnorm import normalize



@dataclass(frozen=True)
class McqItem:
    id: str
    question: str
    choices: tuple[str, ...]
    answer: int
    subject: str = ""
    split: str = "test"
    audio: str = ""
    group: str = ""  # the value of the stage's group_by field (e.g. tier), '' without one
    question_audio: str = ""  # a recording of the question alone (cloze form)


@dataclass(frozen=True)
class QaItem:
    id: str
    question: str
    answers: tuple[str, ...]
    audio: str = ""
    group: str = ""


def _lines(path: str) -> list[tuple[int, dict[str, Any]]]:
    if not Path(path).is_file():
        raise JstipError(f"probe file {path} does not exist; give a JSONL file or 'demo'")
    return read_objects(path, '{"question": ..., "choices": [...], "answer": "B"} or {"question": ..., "answers": [...]}')


def _audio(path: str, value: Any, where: str) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        raise JstipError(f"{where}: audio must be a path, got {value!r}")
    return str(Path(value) if Path(value).is_absolute() else Path(path).parent / value)


def _text(row: dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise JstipError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value.strip()


def _group(row: dict[str, Any], key: str) -> str:
    value = row.get(key) if key else None
    return "" if value is None else str(value)


def read_mcq(path: str, letters: str, group_by: str = "") -> list[McqItem]:
    """Multiple-choice items of a JSONL file (see the module docstring); errors name the line."""
    items, seen = [], set()
    for n, row in _lines(path):
        where = f"{path}:{n}"
        item_id = str(row.get("id", f"line{n}"))
        choices = row.get("choices")
        if not isinstance(choices, list) or not 2 <= len(choices) <= len(letters) or \
                not all(isinstance(c, str) and c.strip() for c in choices):
            raise JstipError(f"{where}: 'choices' must be a list of 2 to {len(letters)} non-empty strings, got {choices!r}")
        answer = row.get("answer")
        if isinstance(answer, str) and len(answer.strip()) == 1 and answer.strip().upper() in letters.upper():
            index = letters.upper().index(answer.strip().upper())
        elif isinstance(answer, int) and not isinstance(answer, bool):
            index = answer
        else:
            raise JstipError(f"{where}: 'answer' must be a letter ({letters[:len(choices)]}) or a 0-based index, got {answer!r}")
        if not 0 <= index < len(choices):
            raise JstipError(f"{where}: answer {answer!r} is not one of the {len(choices)} choices")
        split = row.get("split", "test")
        if split not in ("dev", "test"):
            raise JstipError(f"{where}: 'split' must be 'dev' (a shot) or 'test' (scored), got {split!r}")
        if item_id in seen:
            raise JstipError(f"{where}: id {item_id!r} appears twice; ids must be unique")
        seen.add(item_id)
        items.append(McqItem(item_id, _text(row, "question", where), tuple(c.strip() for c in choices), index,
                             str(row.get("subject", "") or ""), split, _audio(path, row.get("audio"), where),
                             _group(row, group_by), _audio(path, row.get("question_audio"), where)))
    return items


def read_qa(path: str, group_by: str = "") -> list[QaItem]:
    """Open spoken questions of a JSONL file (see the module docstring); errors name the line."""
    items, seen = [], set()
    for n, row in _lines(path):
        where = f"{path}:{n}"
        item_id = str(row.get("id", f"line{n}"))
        answers = row.get("answers")
        if isinstance(answers, str):
            answers = [answers]
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and normalize_answer(a)
                                                                   for a in answers):
            raise JstipError(f"{where}: 'answers' must be a non-empty list of answers (strings with words), got {answers!r}")
        if item_id in seen:
            raise JstipError(f"{where}: id {item_id!r} appears twice; ids must be unique")
        seen.add(item_id)
        items.append(QaItem(item_id, _text(row, "question", where), tuple(answers), _audio(path, row.get("audio"), where),
                            _group(row, group_by)))
    return items


def shots_for(items: Sequence[McqItem], k: int) -> dict[str, list[McqItem]]:
    """The k shots of every scored item (dev items of its subject, then any dev items, else other items)."""
    dev = [i for i in items if i.split == "dev"]
    out = {}
    for item in items:
        if item.split == "dev":
            continue
        pool = dev if dev else [i for i in items if i.id != item.id]
        ranked = [i for i in pool if i.subject == item.subject] + [i for i in pool if i.subject != item.subject]
        out[item.id] = ranked[:k]
    return out


def mcq_parts(item: McqItem, shots: Sequence[McqItem], letters: str) -> tuple[str, str, str]:
    """(text before, the part spoken in the speech-in condition, the cue) of an item's k-shot prompt."""
    context = mmlu_header(item.subject) + "\n\n" + "".join(
        f"{mmlu_question(s.question, s.choices, letters)}\n{mmlu_answer(letters[s.answer])}\n\n" for s in shots)
    return context, mmlu_question(item.question, item.choices, letters), CUE


def cloze_parts(item: McqItem) -> tuple[str, str, str]:
    """(text before, the question, the cue) of a multiple-choice item's zero-shot cloze prompt."""
    return QUESTION, item.question, CUE


def qa_parts(item: QaItem) -> tuple[str, str, str]:
    """(text before, the question, the cue) of an open question's zero-shot prompt."""
    return QUESTION, item.question, CUE


def probe_sample(sample_id: str, parts: tuple[str, str, str], audio: tuple[bytes | None, str, float] | None,
                 suffix: str = "") -> Sample:
    """`<s>` before, the middle as text (audio None) or speech, then the cue (+ `suffix`, e.g. " B").

    `audio` is (FLAC bytes or None, audio path, duration): embedded bytes or a file.
    """
    before, middle, cue = parts
    if audio is None:
        mid = Span(TEXT, middle)
        path, data, duration = "", None, 0.0
    else:
        data, path, duration = audio
        mid = Span(SPEECH, middle, 0.0, duration)
    spans = (token("<s>"), Span(TEXT, before), mid, Span(TEXT, cue + suffix))
    return Sample(sample_id=sample_id, kind="probe", source_id=sample_id, audio_path=path, offset=0.0,
                  duration=duration, spans=spans, n_speech_words=len(middle.split()) if audio else 0,
                  n_text_words=sum(len(s.text.split()) for s in spans if s.modality == TEXT), audio=data)


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD-style answer normalisation on top of `textnorm.normalize`: lower case, no punctuation,
    numbers spelled out, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", normalize(text)).split())


def first_line(text: str) -> str:
    """The answer part of a generation: up to the first line break."""
    return text.strip().split("\n", 1)[0].strip()


def qa_correct(prediction: str, answers: Sequence[str], match: str = "exact") -> bool:
    """Normalised exact match (`exact`) or whole-word containment (`contains`) of any answer."""
    pred = normalize_answer(first_line(prediction))
    gold = [normalize_answer(a) for a in answers]
    if match == "exact":
        return pred in gold
    if match == "contains":
        return any(re.search(rf"(?<!\S){re.escape(g)}(?!\S)", pred) for g in gold if g)
    raise JstipError(f"qa_match {match!r} is unknown; use exact or contains")

