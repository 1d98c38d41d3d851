"""Question-form text and probe sets over the world's facts.

Two uses of the same question templates (`templates.QUESTIONS`), on disjoint facts:

- **question-form text** for the non-probe facts goes into the stage-0 world text, so the LM
  learns the question formats (open: `Question: … Answer: …`; multiple choice in MMLU form:
  `Question: … A. … B. … C. … D. … Answer: B`), as a web-trained LLM has seen such text;
- **probes** ask the probe facts, which the world text states only as sentences: answering them
  needs the fact, not a memorised question. The files are what `jstip probe` reads
  (`evaluation/probe_items.py`): multiple choice `{"id", "question", "choices", "answer" (index),
  "subject", "split": "dev" | "test"}` (the dev items are the k shots), open questions `{"id",
  "question", "answers"}` with every accepted answer; both may carry `audio`.

The question-form text uses the probe prompt's own words on one line (the world text has one
sentence per line): MMLU's header, the question, `A. …` to `D. …`, `Answer: X`; open questions
`Question: … Answer: …`.

Each item carries `tier` (`rare` when the fact names a rare entity, so it was never spoken in
ASR training), `relation` and `fact_id`, so results can be split like the entity error rate.
"""
from __future__ import annotations

import random

from manifests.prompts import mmlu_answer, mmlu_header, mmlu_question, open_question

from .facts import DOSE_OF, ORGAN, ORGANS, SYMPTOM, SYMPTOMS, Fact, World, fact_slots
from .lexicon import DOSES, dose_text
from .render import render
from .templates import QUESTIONS

LETTERS = "ABCD"
SUBJECT = "medicine"


def _values(world: World, fact: Fact):
    return fact_slots(world, fact)


def _answers(world: World, fact: Fact, slot: str) -> list[str]:
    """Every correct answer: the `slot` value of each fact of the relation that agrees on the rest
    (a condition treated by two drugs accepts both)."""
    given = {k: v.text for k, v in _values(world, fact).items() if k != slot}
    answers = set()
    for other in world.by_relation(fact.relation):
        values = _values(world, other)
        if all(values[k].text == text for k, text in given.items() if k in values):
            answers.add(values[slot].text)
    return sorted(answers)


def _distractors(world: World, slot: str, correct: list[str], rng: random.Random, k: int = 3) -> list[str]:
    if slot == "dose":
        pool = [dose_text(d) for d in DOSES]
    elif slot == SYMPTOM:
        pool = list(SYMPTOMS)
    elif slot == ORGAN:
        pool = list(ORGANS)
    else:
        pool = [e.name for e in world.of(slot)]
    pool = sorted(set(pool) - set(correct))
    if len(pool) < k:
        raise ValueError(f"multiple choice about {slot} needs {k} wrong answers; the world has {len(pool)}")
    return rng.sample(pool, k)


def questions(world: World, fact: Fact) -> list[tuple[str, str]]:
    """(question, answer slot) for each question template of the fact's relation."""
    values = _values(world, fact)
    return [(render(template, values)[0], slot) for template, slot in QUESTIONS[fact.relation]]


def multiple_choice(world: World, fact: Fact, question: str, slot: str, rng: random.Random) -> dict:
    """An MMLU-form item: four choices, one correct, the correct position drawn at random."""
    correct = _answers(world, fact, slot)
    choices = _distractors(world, slot, correct, rng)
    answer = rng.randrange(4)
    choices.insert(answer, rng.choice(correct))
    return {"question": question, "subject": SUBJECT, "choices": choices, "answer": answer}


def render_mc(item: dict, with_answer: bool = True, header: bool = True) -> str:
    """One line in MMLU form: `<header> q A. a B. b C. c D. d Answer: X` (the world text's layout)."""
    head = mmlu_header(item.get("subject") or SUBJECT) + " " if header else ""
    answer = mmlu_answer(LETTERS[item["answer"]] if with_answer else "")
    return f"{head}{mmlu_question(item['question'], item['choices'], LETTERS, sep=' ')} {answer}"


def spoken_mc(item: dict) -> str:
    """What is spoken in the speech-in condition: the question and its options."""
    return mmlu_question(item["question"], item["choices"], LETTERS, sep=" ", end=".")


def render_open(question: str, answer: str | None = None) -> str:
    """`Question: q Answer: a.` (without `answer`: the prompt, ending at `Answer:`)."""
    return open_question(question, answer)


def probe_questions(world: World) -> set[str]:
    """Every question the probes ask (no question-form text may ask one of them, about any fact)."""
    return {q for f in world.facts if f.probe for q, _ in questions(world, f)}


def question_lines(world: World, fact: Fact, rng: random.Random, n: int, exclude: set[str]) -> list[str]:
    """Up to `n` question-form lines about a (non-probe) fact for the world text: open, then MC,
    alternating; questions in `exclude` (those the probes ask) are never written."""
    lines: list[str] = []
    asked = [(q, slot) for q, slot in questions(world, fact) if q not in exclude]
    for i in range(n if asked else 0):
        question, slot = asked[i % len(asked)]
        if i % 2 == 0:
            lines.append(render_open(question, rng.choice(_answers(world, fact, slot))))
        else:
            lines.append(render_mc(multiple_choice(world, fact, question, slot, rng)))
    return lines


def make_probes(world: World, seed: int, shots: int = 5) -> dict[str, list[dict]]:
    """`mcq`: `shots` dev items over non-probe facts (the k shots; questions the probes do not ask),
    then the test items over the probe facts (every question template of each, each distinct
    question once); `qa`: the same questions open."""
    rng = random.Random(f"world-probes-{seed}")
    test: list[dict] = []
    qa: list[dict] = []
    asked: set[str] = set()
    for fact in (f for f in world.facts if f.probe):
        meta = {"fact_id": fact.fact_id, "relation": fact.relation, "tier": world.tier(fact)}
        for question, slot in questions(world, fact):
            if question in asked:  # two probe facts about one condition ask the same question once
                continue
            asked.add(question)
            test.append({"id": f"mc-{len(test):05d}", **multiple_choice(world, fact, question, slot, rng),
                         "split": "test", **meta})
            qa.append({"id": f"qa-{len(qa):05d}", "question": question, "answers": _answers(world, fact, slot), **meta})
    others = [f for f in world.facts if not f.probe and f.relation != DOSE_OF
              and any(q not in asked for q, _ in questions(world, f))]
    dev = []
    for fact in rng.sample(others, min(shots, len(others))):
        question, slot = rng.choice([(q, s) for q, s in questions(world, fact) if q not in asked])
        dev.append({"id": f"mcdev-{len(dev):02d}", **multiple_choice(world, fact, question, slot, rng),
                    "split": "dev", "fact_id": fact.fact_id, "relation": fact.relation, "tier": world.tier(fact)})
    return {"mcq": dev + test, "qa": qa}
