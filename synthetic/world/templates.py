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

def _frames(*parts: tuple[str, ...]) -> tuple[str, ...]:
    """Every combination of the phrase alternatives, joined by spaces."""
    out = [""]
    for options in parts:
        out = [f"{a} {b}".strip() for a in out for b in options]
    return tuple(out)


# Textbook statements are composed from phrase pools (hundreds of frames per relation), so that the
# stage-0 LM learns which entities go together in many frames, not one sentence per fact: a test
# sentence in a frame it has not seen can then still call up the fact. Exact test templates stay
# held out (`dictation_test`); sharing everyday phrases such as "we recommend" is how text is.
_FOR = ("For", "In patients with", "To treat", "In cases of", "For adults with", "For children with",
        "When a patient has", "Against")
_TREAT = ("doctors prescribe {drug}.", "doctors often recommend {drug}.", "the usual choice is {drug}.",
          "most guidelines suggest {drug}.", "physicians use {drug}.", "we recommend {drug}.",
          "clinicians start {drug}.", "the standard treatment is {drug}.", "many doctors choose {drug}.",
          "the first choice is {drug}.")
_DRUG_FOR = ("is used to treat", "is prescribed for", "is a standard treatment for", "helps patients with",
             "is often given for", "is recommended for", "works well against", "is the usual drug for",
             "can control", "is approved for")
_PROC_DO = ("doctors order a {procedure}.", "the usual procedure is a {procedure}.", "we recommend a {procedure}.",
            "a {procedure} is often needed.", "surgeons may perform a {procedure}.", "the next step is a {procedure}.")
_OFTEN = ("often", "usually", "commonly", "typically")

TEXTBOOK: dict[str, tuple[str, ...]] = {
    "treats": _frames(_FOR, ("{condition},",), _TREAT)
    + _frames(("{drug}",), _DRUG_FOR, ("{condition}.",))
    + ("Doctors prescribe {drug} for {condition}.", "We started {drug} for {condition}.",
       "Patients take {drug} for their {condition}.", "{condition} is usually treated with {drug}.",
       "{condition} responds well to {drug}.", "One of the standard treatments for {condition} is {drug}."),
    "dose": _frames(("{drug}",), ("is usually taken at", "is given at", "is dosed at", "is started at"),
                    ("{dose}",), ("a day.", "per day.", "daily.", "each morning.", "once a day."))
    + _frames(("The usual dose of {drug} is {dose}",), ("a day.", "per day.", "daily."))
    + _frames(("Adults take {dose} of {drug}",), ("a day.", "daily.", "every morning.")),
    "performed_for": _frames(_FOR, ("{condition},",), _PROC_DO)
    + _frames(("A {procedure} is",), _OFTEN, ("performed for", "done in", "ordered for", "needed in"),
              ("{condition}.",)),
    "symptom": _frames(("{condition}",), _OFTEN, ("causes", "leads to", "brings"), ("{symptom}.",))
    + _frames(("Patients with {condition}",), _OFTEN, ("report", "complain of", "develop"), ("{symptom}.",))
    + ("A common sign of {condition} is {symptom}.",),
    "organ": _frames(("{condition}",), ("mainly", "mostly", "usually"), ("affects", "damages", "involves"),
                     ("the {organ}.",))
    + _frames(("In {condition}, the {organ} is",), ("affected.", "damaged.", "involved.")),
}

TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "textbook": TEXTBOOK,
    "abstract": {
        "treats": ("In a trial of {number} patients with {condition}, {drug} reduced symptoms within {weeks} weeks.",
                   "We report {number} cases of {condition} treated with {drug}.",
                   "{drug} was effective in adults with {condition} in a randomized study.",
                   "Outcomes of {condition} improved after treatment with {drug}.",
                   "In {city}, a study of {number} adults with {condition} found that {drug} worked within {weeks} weeks.",
                   "A review of {number} trials supports {drug} for {condition}."),
        "dose": ("Patients received {drug} at {dose} per day for {weeks} weeks.",
                 "{drug} at {dose} daily was well tolerated.",
                 "A dose of {dose} of {drug} was given to {number} patients in {city}."),
        "performed_for": ("A {procedure} was performed in {number} patients with {condition}.",
                          "The role of the {procedure} in {condition} was reviewed.",
                          "In {city}, {number} patients with {condition} underwent a {procedure}."),
        "symptom": ("{symptom} was the most frequent finding in {condition}.",
                    "Of {number} patients with {condition}, most presented with {symptom}.",
                    "In {city}, {symptom} was reported by most of {number} patients with {condition}."),
        "organ": ("{condition} was associated with damage to the {organ}.",
                  "Imaging of {number} patients with {condition} showed changes in the {organ}."),
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

# Composed dictation (`dictation_frames: composed`): the ASR/TTS dictation sentences drawn from phrase
# pools, hundreds of frames per relation (the fixed `dictation` templates included), with the same
# fillers (name, day, weeks, time). Why (issue 18, E0-E8): with 18 fixed templates the speech-LM
# memorised its ASR transcripts and wrote them back for held-out test sentences. The pools avoid the
# held-out `dictation_test` phrasings ("we recommended", "switched her to", "has spread to", "twice a
# day", ...); `_check_held_out` refuses any frame that is a test template.
_WHO = ("{name}", "The patient", "Our patient", "Today {name}", "On {day} {name}")
_STARTED = ("was started on", "began taking", "is now taking", "continues on", "was put on", "has been taking",
            "will start")
_FOR_C = ("for {condition}", "for the {condition}", "to manage the {condition}", "to control {condition}",
          "against {condition}")
_WHEN = ("today.", "since {day}.", "for {weeks} weeks.", "every {time}.", "as of {day}.", "last {day}.")
_DOSE_END = ("every {time}.", "each {time}.", "since {day}.", "for {weeks} weeks.", "starting {day}.")
_HIS = ("{name}'s", "The patient's", "Her", "His")

DICTATION_COMPOSED: dict[str, tuple[str, ...]] = {
    "treats": _frames(_WHO, _STARTED, ("{drug}",), _FOR_C, _WHEN)
    + _frames(tuple(f"{h} {{condition}}" for h in _HIS),
              ("improved on", "is controlled with", "responded to", "got better with", "is being treated with",
               "settled on"), ("{drug}",), ("after {weeks} weeks.", "by {day}.", "this {time}.", "so far."))
    + _frames(("We", "I", "The team"), ("will continue", "decided to keep", "plan to start", "prescribed", "renewed"),
              ("{drug}",), _FOR_C + ("for {name}'s {condition}",), _WHEN),
    "dose": _frames(("Continue {drug} at", "Keep {drug} at", "Increase {drug} to", "Reduce {drug} to",
                     "Restart {drug} at", "Give {drug}", "Change {drug} to"), ("{dose}",), _DOSE_END)
    + _frames(_WHO, ("takes", "is taking", "was given", "will take", "now gets"), ("{dose} of {drug}",), _DOSE_END),
    "performed_for": _frames(_WHO, ("is scheduled for", "will have", "underwent", "is booked for", "had", "needs"),
                             ("a {procedure}",), ("on {day}", "next {day}", "this {time}", "in {weeks} weeks"),
                             ("because of the {condition}.", "to check the {condition}.", "for {condition}.",
                              "to evaluate the {condition}."))
    + _frames(("A {procedure}", "The {procedure}"), ("was ordered", "was done", "was performed", "is planned"),
              ("on {day}", "this {time}"), ("for the {condition}.", "to evaluate the {condition}.",
                                            "and confirmed the {condition}.")),
    "symptom": _frames(_WHO, ("reports", "complains of", "describes", "mentions", "has had"), ("{symptom}",),
                       ("from the {condition}.", "related to the {condition}.", "due to {condition}.",
                        "since the {condition} began."))
    + _frames(tuple(f"{h} {{symptom}}" for h in _HIS), ("is likely due to", "comes from", "is caused by", "fits with"),
              ("{condition}.", "the {condition}.")),
    "organ": _frames(tuple(f"{h} {{condition}}" for h in _HIS), ("is affecting", "has reached", "now involves",
                                                                  "is damaging"),
                     ("the {organ}.", "the {organ} since {day}.", "the {organ} more each {time}."))
    + _frames(("We discussed with {name} how", "We explained to {name} how", "I told {name} how"), ("{condition}",),
              ("affects", "damages", "involves"), ("the {organ}.",)),
    "treats_dose": _frames(("For {name}'s {condition},", "For the {condition},", "To treat the {condition},",
                            "To manage {name}'s {condition},"),
                           ("we prescribed", "we started", "we gave", "I ordered", "we continued"),
                           ("{drug} {dose}", "{dose} of {drug}"),
                           ("each day.", "every {time}.", "daily.", "from {day} on.", "for {weeks} weeks."))
    + _frames(("The patient with {condition}", "{name}, who has {condition},"), ("was given", "received", "got"),
              ("{dose} of {drug}",), ("on {day}.", "this {time}.", "for {weeks} weeks.")),
}
for _relation, _fixed in TEMPLATES["dictation"].items():
    DICTATION_COMPOSED[_relation] = tuple(dict.fromkeys(_fixed + DICTATION_COMPOSED[_relation]))


def _check_held_out(pools: dict[str, tuple[str, ...]]) -> None:
    """Raise ValueError if a pool holds a held-out test template (of any relation)."""
    held_out = {t for group in TEMPLATES["dictation_test"].values() for t in group}
    leaked = sorted(held_out & {t for group in pools.values() for t in group})
    if leaked:
        raise ValueError(f"dictation frames include held-out test templates: {leaked}")


_check_held_out(DICTATION_COMPOSED)

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
    # everyday sentences with the words the held-out test templates are made of (not the templates
    # themselves): an ASR test set should not hinge on words its training speech never says
    "For the trip to {city} we recommended the {adj} {object}.", "Her {relative} switched to {food} because of the {weather} weather.",
    "Given the {weather} {period}, the {place} remains the best option.", "He has been at the {place} since {day} morning.",
    "Please take the {object} to the {place} twice a {period}.", "The {document} is on the {object} at night.",
    "We booked a table at the {place} to look into the {document}.", "The {document} showed signs of {adj} handwriting.",
    "The {adj} {noun} explains her {document} to {name}.", "The news has spread to {city} since {day}.",
    "For {name} she now takes the bus to the {place}.", "Start the {object} at {number} minutes past the hour.",
    "The doctor found a {color} {object} in the {place}.", "She has been a doctor in {city} for {number} years.",
    "A small dose of {food} is the best start to the {time}.", "He switched the {object} off because it was {adj}.",
    "{name} found the best {object} for her {relative} on {day}.", "Now the {noun} takes the {object} to the {place}.",
    "The {relative} recommended a {adj} walk to the {place} every {time}.",
    "Since the {place} was {adj}, we took the {object} into the {place}.",
    "She booked {number} tickets to {city} for {day} night.", "Our doctor remains at the {place} twice a {period}.",
    "He found the {document} because {name} was looking into it.", "The {color} {object} explains why the {noun} was {adj}.",
)
FILLERS: dict[str, tuple[str, ...]] = {
    "adj": ("old", "quiet", "bright", "small", "heavy", "strange", "green", "broken", "friendly", "busy", "tall", "warm",
            "empty", "famous", "careful", "narrow", "noisy", "gentle"),
    "noun": ("dog", "teacher", "car", "student", "bicycle", "visitor", "truck", "child", "driver", "neighbor", "cat",
             "farmer", "pilot", "singer", "baker", "horse"),
    "place": ("station", "library", "market", "river", "bakery", "office", "garden", "school", "museum", "harbor",
              "kitchen", "park", "airport", "theater", "beach", "bridge", "hotel", "church"),
    "time": ("morning", "evening", "afternoon", "week"),
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "document": ("report", "invoice", "letter", "contract", "schedule", "form", "receipt"),
    "name": ("Anna", "David", "Maria", "Peter", "Laura", "James", "Sofia", "Thomas", "Emma", "Daniel", "Grace", "Oliver"),
    "city": ("Boston", "Denver", "Chicago", "Seattle", "Austin", "Portland", "Dallas", "Atlanta", "Phoenix", "Miami"),
    "weather": ("cold", "sunny", "rainy", "windy", "warm", "cloudy"),
    "period": ("week", "month", "year", "winter", "summer", "spring"),
    "relative": ("brother", "sister", "uncle", "cousin", "neighbor", "aunt", "grandfather"),
    "object": ("lamp", "table", "phone", "jacket", "camera", "kettle", "chair", "window", "radio", "clock",
               "umbrella", "ladder", "basket", "mirror", "guitar", "blanket"),
    "food": ("soup", "coffee", "a sandwich", "pancakes", "tea", "rice", "a salad", "bread", "apples", "cheese"),
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
