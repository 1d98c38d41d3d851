"""Sentence templates and entity lists of the demo corpus: a general and a medical domain.

Medical entities come in two tiers: `common` ones are spoken often in the demo speech,
`rare` ones are spoken seldom but fill the domain text, so that the benefit of
transcript-only domain text on entity errors (JSTIP's claim) can show on the demo.
"""
from __future__ import annotations

import random

DRUGS_COMMON = ["metformin", "ibuprofen", "amoxicillin", "insulin", "aspirin", "lisinopril"]
DRUGS_RARE = ["atorvastatin", "levothyroxine", "omeprazole", "warfarin", "gabapentin", "prednisone", "clopidogrel"]
CONDITIONS_COMMON = ["diabetes", "hypertension", "asthma", "pneumonia", "migraine"]
CONDITIONS_RARE = ["atrial fibrillation", "hypothyroidism", "osteoarthritis", "sepsis", "anemia", "bronchitis"]
PROCEDURES_COMMON = ["colonoscopy", "blood test", "chest x ray", "biopsy"]
PROCEDURES_RARE = ["cholecystectomy", "angioplasty", "endoscopy", "appendectomy", "mammogram"]

GENERAL_TEMPLATES = [
    "The {adj} {noun} stood near the {place} this {time}.",
    "We will meet at the {place} on {day} morning.",
    "Please send the {document} to {name} before {day}.",
    "The weather in {city} was {weather} all {period}.",
    "My {relative} bought a new {object} last {period}.",
    "{name} walked to the {place} and ordered {food}.",
    "There are {number} {noun}s waiting outside the {place}.",
    "I think the {object} in the {place} is {adj}.",
    "{name} called on {day} to ask about the {document}.",
    "It takes {number} minutes to drive from {city} to the {place}.",
]
MEDICAL_TEMPLATES = [
    "The patient was prescribed {drug} for {condition}.",
    "She has a history of {condition} and takes {drug} daily.",
    "He is scheduled for a {procedure} next {day}.",
    "After the {procedure} the doctor recommended {drug}.",
    "The patient with {condition} was given {number} milligrams of {drug}.",
    "We discussed the risks of the {procedure} with the family.",
    "{drug} was stopped because of worsening {condition}.",
    "Her {condition} improved after two weeks of {drug}.",
    "A {procedure} was ordered to rule out {condition}.",
]
FILLERS = {
    "adj": ["old", "quiet", "bright", "small", "heavy", "strange", "green", "broken"],
    "noun": ["dog", "teacher", "car", "student", "bicycle", "visitor", "truck", "child"],
    "place": ["station", "library", "market", "river", "bakery", "office", "garden", "school"],
    "time": ["morning", "evening", "afternoon", "week"],
    "day": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday"],
    "document": ["report", "invoice", "letter", "contract", "schedule"],
    "name": ["Anna", "David", "Maria", "Peter", "Laura", "James", "Sofia"],
    "city": ["Boston", "Denver", "Chicago", "Seattle", "Austin", "Portland"],
    "weather": ["cold", "sunny", "rainy", "windy", "warm"],
    "period": ["week", "month", "year", "winter", "summer"],
    "relative": ["brother", "sister", "uncle", "cousin", "neighbor"],
    "object": ["lamp", "table", "phone", "jacket", "camera", "kettle"],
    "food": ["soup", "coffee", "a sandwich", "pancakes", "tea"],
    "number": ["3", "5", "12", "20", "40", "250", "500"],
}


def entities() -> list[str]:
    """Every medical entity of the demo, lower case, for the entity error rate."""
    return sorted(
        DRUGS_COMMON + DRUGS_RARE + CONDITIONS_COMMON + CONDITIONS_RARE + PROCEDURES_COMMON + PROCEDURES_RARE
    )


def _entity_fillers(rng: random.Random, rare_weight: float) -> dict[str, str]:
    def pick(common: list[str], rare: list[str]) -> str:
        return rng.choice(rare) if rng.random() < rare_weight else rng.choice(common)

    return {
        "drug": pick(DRUGS_COMMON, DRUGS_RARE),
        "condition": pick(CONDITIONS_COMMON, CONDITIONS_RARE),
        "procedure": pick(PROCEDURES_COMMON, PROCEDURES_RARE),
    }


def _fill(template: str, values: dict[str, str]) -> str:
    text = template.format(**values)
    return text[0].upper() + text[1:]


def speech_sentence(rng: random.Random, medical_fraction: float, rare_share: float) -> tuple[str, str]:
    """(domain, sentence) for the spoken part: rare entities appear with probability `rare_share`."""
    values = {key: rng.choice(options) for key, options in FILLERS.items()}
    if rng.random() < medical_fraction:
        values.update(_entity_fillers(rng, rare_share))
        return "medical", _fill(rng.choice(MEDICAL_TEMPLATES), values)
    return "general", _fill(rng.choice(GENERAL_TEMPLATES), values)


def domain_sentence(rng: random.Random) -> str:
    """A sentence of the transcript-only domain text, mostly about rare entities."""
    values = {key: rng.choice(options) for key, options in FILLERS.items()}
    values.update(_entity_fillers(rng, rare_weight=0.8))
    return _fill(rng.choice(MEDICAL_TEMPLATES), values)
