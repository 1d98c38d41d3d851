"""The demo's probe sets, generated from its own domain facts (`synthetic/demo_text.py`).

The demo's facts are category memberships: metformin is a drug, sepsis a condition, biopsy
a procedure, Boston a city. Its sentences pair drugs and conditions at random, so "which drug
treats which condition" is not a fact of the demo and is not asked. The domain text uses the
rare entities in context ("was prescribed atorvastatin"), so a model that learns from it can
place them. Items carry `tier` (common/rare, ignored by the probe) for anyone who wants to
split the results. `mcq_items`/`qa_items` take any fact table, so a corpus with richer facts
(issue 11's world) can reuse them.
"""
from __future__ import annotations

import random
from typing import Any

from . import demo_text

KINDS = {"drug": "a drug", "condition": "a medical condition", "procedure": "a medical procedure", "city": "a city"}


def demo_facts() -> dict[str, dict[str, list[str]]]:
    """`{category: {tier: entities}}` of the demo corpus."""
    return {
        "drug": {"common": demo_text.DRUGS_COMMON, "rare": demo_text.DRUGS_RARE},
        "condition": {"common": demo_text.CONDITIONS_COMMON, "rare": demo_text.CONDITIONS_RARE},
        "procedure": {"common": demo_text.PROCEDURES_COMMON, "rare": demo_text.PROCEDURES_RARE},
        "city": {"common": demo_text.FILLERS["city"]},
    }


def _entities(facts: dict[str, dict[str, list[str]]], kinds: list[str]) -> list[tuple[str, str, str]]:
    return [(e, kind, tier) for kind in kinds for tier, names in facts[kind].items() for e in names]


def mcq_items(facts: dict[str, dict[str, list[str]]], n_test: int, n_dev: int, seed: int = 0) -> list[dict[str, Any]]:
    """Four-option questions "What is X?" (options: the categories) and "Which of these is a drug?"
    (options: one entity per category); the dev items (shots) use common entities only."""
    rng = random.Random(seed)
    kinds = list(facts)
    asked = [k for k in kinds if k != "city"] or kinds
    pool = _entities(facts, asked)
    rng.shuffle(pool)
    common = [p for p in pool if p[2] == "common"]
    items: list[dict[str, Any]] = []
    for split, source, n in (("dev", common, n_dev), ("test", pool, n_test)):
        for k in range(n):
            entity, kind, tier = source[k % len(source)]
            if k % 2 == 0:
                options = kinds[:4]
                rng.shuffle(options)
                question, choices, answer = f"What is {entity}?", [KINDS[o] for o in options], options.index(kind)
            else:
                others = [rng.choice([e for e, *_ in _entities(facts, [o])]) for o in kinds[:4] if o != kind]
                choices = [entity] + others
                rng.shuffle(choices)
                question, answer = f"Which of these is {KINDS[kind]}?", choices.index(entity)
            items.append({"id": f"{split}-{k:03d}", "subject": "medicine", "split": split, "question": question,
                          "choices": choices, "answer": "ABCD"[answer], "tier": tier})
    return items


def qa_items(facts: dict[str, dict[str, list[str]]], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Open questions "Is X a drug, a condition or a procedure?" with the category as the answer."""
    rng = random.Random(seed + 1)
    pool = _entities(facts, [k for k in ("drug", "condition", "procedure") if k in facts])
    rng.shuffle(pool)
    out = []
    for k in range(min(n, len(pool))):
        entity, kind, tier = pool[k]
        out.append({"id": f"qa-{k:03d}", "question": f"Is {entity} a drug, a condition or a procedure?",
                    "answers": [kind, f"a {kind}", f"it is a {kind}", f"{entity} is a {kind}"], "tier": tier})
    return out
