"""Sentence templates of the world, by style and relation, and the general (non-medical) language.

Styles and where they go:

| style | used for | like the paper's |
| --- | --- | --- |
| `textbook` | stage-0 world text (the LM's prior) | the LLM's pretraining text |
| `abstract` | the domain text pool | PubMed abstracts |
| `dictation` | ASR training speech and the TTS transcripts (and pairs) | ASR data, GPT-written TTS prompts |
| `dictation_test` | test speech only (no other set ever uses these templates) | held-out entity-rich test sets |
| `question` | question-form text (non-probe facts) and the probes (probe facts) | QA / MMLU form |

Slots: `{drug}`, `{condition}`, `{procedure}`, `{dose}` are annotated entities; `{symptom}`,
`{organ}` literals of a fact; the other slots are general fillers (`FILLERS`). The relation
`treats_dose` combines a treats fact with the drug's dose.
"""
from __future__ import annotations

TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "textbook": {
        "treats": ("{drug} is used to treat {condition}.", "{condition} is usually treated with {drug}.",
                   "Doctors prescribe {drug} for {condition}.", "One of the standard treatments for {condition} is {drug}.",
                   "{drug} is a common medication for patients with {condition}.",
                   "For {condition}, {drug} is often the first choice.", "Patients with {condition} may be given {drug}.",
                   "{drug} helps to control {condition}."),
        "dose": ("The usual dose of {drug} is {dose} a day.", "{drug} is normally taken at {dose} per day.",
                 "Adults take {dose} of {drug} daily.", "A typical daily dose of {drug} is {dose}."),
        "performed_for": ("A {procedure} is often performed for {condition}.",
                          "Patients with {condition} may need a {procedure}.",
                          "The {procedure} is a standard procedure in {condition}.",
                          "For {condition}, doctors may recommend a {procedure}."),
        "symptom": ("{condition} often causes {symptom}.", "A common sign of {condition} is {symptom}.",
                    "Patients with {condition} often report {symptom}."),
        "organ": ("{condition} mainly affects the {organ}.", "In {condition}, the {organ} is affected.",
                  "{condition} is a disorder of the {organ}."),
    },
    "abstract": {
        "treats": ("In a trial of {number} patients with {condition}, {drug} reduced symptoms within {weeks} weeks.",
                   "We report {number} cases of {condition} treated with {drug}.",
                   "{drug} was effective in adults with {condition} in a randomized study.",
                   "Outcomes of {condition} improved after treatment with {drug}."),
        "dose": ("Patients received {drug} at {dose} per day for {weeks} weeks.",
                 "{drug} at {dose} daily was well tolerated."),
        "performed_for": ("A {procedure} was performed in {number} patients with {condition}.",
                          "The role of the {procedure} in {condition} was reviewed."),
        "symptom": ("{symptom} was the most frequent finding in {condition}.",
                    "Of {number} patients with {condition}, most presented with {symptom}."),
        "organ": ("{condition} was associated with damage to the {organ}.",),
    },
    "dictation": {
        "treats": ("The patient was started on {drug} for {condition} on {day}.",
                   "{name} has a history of {condition} and takes {drug} daily.",
                   "His {condition} improved after {weeks} weeks of {drug}.",
                   "We will continue {drug} for {name}'s {condition}.", "{drug} was prescribed for {condition} on {day}.",
                   "{name} came in with {condition}, so we began {drug}."),
        "dose": ("Continue {drug} {dose} every {time}.", "{name} takes {dose} of {drug} every morning.",
                 "Increase {drug} to {dose} starting {day}."),
        "performed_for": ("{name} is scheduled for a {procedure} on {day} because of {condition}.",
                          "A {procedure} was ordered on {day} to evaluate the {condition}.",
                          "After the {procedure} on {day}, the {condition} was confirmed."),
        "symptom": ("{name} reports {symptom} related to the {condition}.",
                    "{name}'s {symptom} is likely due to {condition}."),
        "organ": ("{name}'s {condition} is affecting the {organ}.",
                  "We discussed with {name} how {condition} affects the {organ}."),
        "treats_dose": ("The patient with {condition} was given {dose} of {drug} on {day}.",
                        "For {name}'s {condition}, we prescribed {drug} {dose} each day."),
    },
    "dictation_test": {
        "treats": ("For the {condition} we recommended {drug}.",
                   "Her doctor switched her to {drug} because of {condition}.",
                   "Given the {condition}, {drug} remains the best option.",
                   "He has been on {drug} since the {condition} was found."),
        "dose": ("Please take {drug} {dose} twice a day.", "The {drug} dose is {dose} at night."),
        "performed_for": ("We booked a {procedure} to look into the {condition}.",
                          "The {procedure} showed signs of {condition}."),
        "symptom": ("The {condition} explains her {symptom}.",),
        "organ": ("The {condition} has spread to the {organ}.",),
        "treats_dose": ("For {condition} she now takes {dose} of {drug}.", "Start {drug} at {dose} for the {condition}."),
    },
}

# question form: (template, slot the answer fills); used for question-form text and for the probes
QUESTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "treats": (("Which drug is used to treat {condition}?", "drug"),
               ("What condition is {drug} used for?", "condition")),
    "dose": (("What is the usual daily dose of {drug}?", "dose"),),
    "performed_for": (("Which procedure is performed for {condition}?", "procedure"),),
    "symptom": (("What is a common symptom of {condition}?", "symptom"),),
    "organ": (("Which organ does {condition} mainly affect?", "organ"),),
}

GENERAL_TEMPLATES = (
    "The {adj} {noun} stood near the {place} this {time}.", "We will meet at the {place} on {day} morning.",
    "Please send the {document} to {name} before {day}.", "The weather in {city} was {weather} all {period}.",
    "My {relative} bought a new {object} last {period}.", "{name} walked to the {place} and ordered {food}.",
    "There are {number} {noun}s waiting outside the {place}.", "I think the {object} in the {place} is {adj}.",
    "{name} called on {day} to ask about the {document}.",
    "It takes {number} minutes to drive from {city} to the {place}.",
    "Could you bring the {object} to the {place} tomorrow?", "The {noun} from {city} arrived late on {day}.",
    "{name} and her {relative} painted the {object} {color}.", "Our {relative} lives near a {adj} {place} in {city}.",
    "The {document} was signed by {name} last {period}.", "We waited {number} minutes for the {noun} to arrive.",
    "Every {day}, {name} reads a {adj} book at the {place}.", "The {color} {object} belongs to my {relative}.",
    "Tickets to {city} cost {number} dollars this {period}.", "{name} forgot the {object} at the {place} again.",
    "The {place} closes early on {day} during the {period}.", "A {adj} {noun} was sleeping under the {object}.",
    "After lunch, {name} fixed the {object} in the {place}.", "The meeting about the {document} moved to {day}.",
)
FILLERS: dict[str, tuple[str, ...]] = {
    "adj": ("old", "quiet", "bright", "small", "heavy", "strange", "green", "broken", "friendly", "busy", "tall", "warm"),
    "noun": ("dog", "teacher", "car", "student", "bicycle", "visitor", "truck", "child", "driver", "neighbor", "cat"),
    "place": ("station", "library", "market", "river", "bakery", "office", "garden", "school", "museum", "harbor",
              "kitchen", "park"),
    "time": ("morning", "evening", "afternoon", "week"),
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "document": ("report", "invoice", "letter", "contract", "schedule", "form", "receipt"),
    "name": ("Anna", "David", "Maria", "Peter", "Laura", "James", "Sofia", "Thomas", "Emma", "Daniel", "Grace", "Oliver"),
    "city": ("Boston", "Denver", "Chicago", "Seattle", "Austin", "Portland", "Dallas", "Atlanta", "Phoenix", "Miami"),
    "weather": ("cold", "sunny", "rainy", "windy", "warm", "cloudy"),
    "period": ("week", "month", "year", "winter", "summer", "spring"),
    "relative": ("brother", "sister", "uncle", "cousin", "neighbor", "aunt", "grandfather"),
    "object": ("lamp", "table", "phone", "jacket", "camera", "kettle", "chair", "window", "radio", "clock"),
    "food": ("soup", "coffee", "a sandwich", "pancakes", "tea", "rice", "a salad"),
    "number": ("3", "5", "12", "20", "40", "250", "500", "8", "15", "30", "60", "90"),
    "color": ("red", "blue", "yellow", "white", "black", "green"),
    "weeks": ("two", "three", "four", "six", "eight"),
}


def general_vocabulary() -> frozenset[str]:
    """Every lower-cased word the templates and fillers use (entity names must avoid them)."""
    import re

    words: set[str] = set()
    texts = list(GENERAL_TEMPLATES) + [v for vs in FILLERS.values() for v in vs]
    for style in TEMPLATES.values():
        for group in style.values():
            texts.extend(group)
    for group in QUESTIONS.values():
        texts.extend(t for t, _ in group)
    from .facts import ORGANS, SYMPTOMS

    texts.extend(SYMPTOMS + ORGANS)
    for text in texts:
        words.update(w.lower() for w in re.findall(r"[A-Za-z]+", re.sub(r"\{[a-z_]+\}", " ", text)))
    return frozenset(words)
