"""The text plan of the world corpus: every sentence of every set, before any audio exists.

| set | what | entities |
| --- | --- | --- |
| `world_text` | stage-0 LM pretraining text: general sentences, textbook statements of every fact, and question-form lines of the non-probe facts | all |
| `domain_text` | the domain text pool (the paper's PubMed): abstract-style sentences | rare-heavy (`domain_rare_share`) |
| `tts_text` | transcripts of the synthetic TTS pairs (dictation style) | rare-heavy (`tts_rare_share`) |
| `asr_train` | ASR training speech: general + dictation sentences | **common only** |
| `test` | test speech: held-out dictation templates + general sentences | rare and common, balanced |

Controls (checked here, raised as ValueError, and again by the tests from the written files):
no rare entity's distinctive word in any ASR training transcript; no sentence string shared
between two sets (the test set shares none with anything); the test set has at least
`min_test_occurrences` annotated occurrences of each tier. All draws come from `seed`.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from .facts import DOSE_OF, TREATS, Fact, World, fact_slots, make_world
from .lexicon import COMMON, DOSE, RARE, make_entities
from .probes import probe_questions, question_lines
from .render import Mention, Slot, render
from .templates import DICTATION_COMPOSED, FILLERS, GENERAL_TEMPLATES, TEMPLATES, _check_held_out, general_vocabulary

DICTATION_FRAMES = ("fixed", "composed")

RELATION_WEIGHTS = {"treats": 0.35, "treats_dose": 0.15, "dose": 0.12, "performed_for": 0.18, "symptom": 0.1,
                    "organ": 0.1}
# the test set favours the relations that name two entities: more occurrences per second of test audio
TEST_WEIGHTS = {"treats": 0.4, "treats_dose": 0.2, "dose": 0.05, "performed_for": 0.3, "symptom": 0.025,
                "organ": 0.025}


@dataclass
class WorldConfig:
    """Sizes and shares of the world's text (the speech settings live in the stage config)."""

    seed: int = field(default=0, metadata={"help": "random seed: the same seed gives the same world and corpus"})
    drugs: int = field(default=48, metadata={"help": "invented drug names"})
    conditions: int = field(default=32, metadata={"help": "invented condition names"})
    procedures: int = field(default=16, metadata={"help": "invented procedure names"})
    rare_share: float = field(default=0.5, metadata={"help": "share of each category's entities in the rare tier "
                                                             "(never heard in ASR training speech)"})
    drugs_per_condition: int = field(default=2, metadata={"help": "drugs that treat each condition"})
    probe_share: float = field(default=0.5, metadata={"help": "share of facts held out of question-form text and asked "
                                                              "by the probes"})
    world_general: int = field(default=6000, metadata={"help": "general sentences in the stage-0 world text"})
    world_paraphrases: int = field(default=12, metadata={"help": "textbook sentences per fact in the world text"})
    world_questions: int = field(default=2, metadata={"help": "question-form lines (open + multiple choice) per "
                                                              "non-probe fact in the world text"})
    domain_texts: int = field(default=3000, metadata={"help": "sentences of the domain text pool (the paper's PubMed)"})
    domain_rare_share: float = field(default=0.8, metadata={"help": "share of domain sentences about a rare-tier fact"})
    tts_texts: int = field(default=1000, metadata={"help": "TTS-pair transcripts (dictation style)"})
    tts_rare_share: float = field(default=0.8, metadata={"help": "share of TTS transcripts about a rare-tier fact"})
    asr_utterances: int = field(default=3000, metadata={"help": "ASR training utterances (common entities only)"})
    asr_medical_share: float = field(default=0.5, metadata={"help": "share of ASR training sentences that are medical"})
    test_medical: int = field(default=560, metadata={"help": "medical test utterances (entity-rich)"})
    test_general: int = field(default=60, metadata={"help": "general test utterances"})
    dictation_frames: str = field(default="fixed", metadata={
        "help": "ASR/TTS dictation sentences from the 18 fixed templates ('fixed') or composed from phrase pools, "
                "hundreds of frames per relation ('composed'); the other sets stay the same"})
    min_test_occurrences: int = field(default=500, metadata={"help": "fail unless the test set has this many entity "
                                                                     "occurrences of each tier (0: no check)"})


@dataclass(frozen=True)
class Line:
    """One sentence of a set: its text, the entities in it and the fact it states ('' for general)."""

    line_id: str
    text: str
    mentions: tuple[Mention, ...] = ()
    fact_id: str = ""


@dataclass
class Plan:
    world: World
    sets: dict[str, list[Line]]

    def counts(self) -> dict[str, int]:
        return {name: len(lines) for name, lines in self.sets.items()}


def _fillers(rng: random.Random) -> dict[str, Slot]:
    return {key: Slot(rng.choice(options)) for key, options in FILLERS.items()}






Made = tuple[str, list[Mention], str]  # sentence, its mentions, the fact it states ('' for general)


class _Writer:
    """Draws sentences; a set never takes a string another set already holds."""

    def __init__(self, world: World, rng: random.Random, dictation: dict[str, tuple[str, ...]] | None = None) -> None:
        self.world, self.rng = world, rng
        self.templates = {**TEMPLATES, "dictation": dictation or TEMPLATES["dictation"]}
        self.taken: dict[str, str] = {}  # sentence -> set that holds it
        self.dose = {f.subject: f for f in world.facts if f.relation == DOSE_OF}

    def medical(self, style: str, fact: Fact, weights: dict[str, float] = RELATION_WEIGHTS) -> Made | None:
        """A sentence stating `fact`; a treats fact becomes treats_dose (+ the drug's dose) at its weight share."""
        relation, pool = fact.relation, self.templates[style]
        share = weights["treats_dose"] / (weights["treats_dose"] + weights["treats"])
        if relation == TREATS and "treats_dose" in pool and self.rng.random() < share:
            relation = "treats_dose"
        if relation not in pool:
            return None
        values = {**_fillers(self.rng), **fact_slots(self.world, fact)}
        if relation == "treats_dose":
            values.update(fact_slots(self.world, self.dose[fact.subject]))
        text, mentions = render(self.rng.choice(pool[relation]), values)
        return text, mentions, fact.fact_id

    def general(self) -> Made:
        text, mentions = render(self.rng.choice(GENERAL_TEMPLATES), _fillers(self.rng))
        return text, mentions, ""

    def fill(self, name: str, n: int, make: Callable[[], Made | None], tries: int = 50,
             repeats: bool = False) -> list[Line]:
        """`n` sentences for set `name` (fewer if `make` runs out of new ones after `tries` draws each);
        ids are given by `_numbered` once the set is complete."""
        lines: list[Line] = []
        for _ in range(n):
            for _ in range(tries):
                made = make()
                if made is not None and self.taken.get(made[0], name) == name and (repeats or made[0] not in self.taken):
                    text, mentions, fact_id = made
                    self.taken[text] = name
                    lines.append(Line("", text, tuple(mentions), fact_id))
                    break
        return lines


def _numbered(prefix: str, lines: list[Line]) -> list[Line]:
    return [Line(f"{prefix}-{i:06d}", l.text, l.mentions, l.fact_id) for i, l in enumerate(lines)]


def _tiers(world: World, facts: list[Fact]) -> dict[str, list[Fact]]:
    return {t: [f for f in facts if world.tier(f) == t] for t in (RARE, COMMON)}


def _pick(rng: random.Random, facts: list[Fact], weights: dict[str, float] = RELATION_WEIGHTS) -> Fact:
    """A fact drawn by relation weight (a treats fact also stands for treats_dose)."""
    def weight(f: Fact) -> float:
        return weights[f.relation] + (weights["treats_dose"] if f.relation == TREATS else 0.0)
    return rng.choices(facts, [weight(f) for f in facts])[0]


def _speech_sets(cfg: WorldConfig, w: _Writer, rng: random.Random, world: World, tiers: dict[str, list[Fact]],
                 general: list[Line] | None = None) -> tuple[list[Line], list[Line]]:
    """The ASR training sentences (common tier only; first one fact for each common entity, so that
    every one is heard; `general`: its general sentences already drawn) and the TTS transcripts."""
    n_medical = round(cfg.asr_utterances * cfg.asr_medical_share)
    first = [rng.choice([f for f in tiers[COMMON] if e in world.involved(f)])
             for e in world.entities.values() if e.tier == COMMON and any(e in world.involved(f) for f in tiers[COMMON])]
    queue = iter(first)
    asr = w.fill("asr_train", n_medical,
                 lambda: w.medical("dictation", next(queue, None) or _pick(rng, tiers[COMMON])))
    asr += general if general is not None else w.fill("asr_train", cfg.asr_utterances - n_medical, w.general)
    rng.shuffle(asr)

    def tts_medical() -> Made | None:
        tier = RARE if rng.random() < cfg.tts_rare_share and tiers[RARE] else COMMON
        return w.medical("dictation", _pick(rng, tiers[tier]))
    return asr, w.fill("tts_text", cfg.tts_texts, tts_medical)


def make_plan(cfg: WorldConfig) -> Plan:
    """Every text set of the world corpus, with its controls checked."""
    if cfg.dictation_frames not in DICTATION_FRAMES:
        raise ValueError(f"dictation_frames must be one of {DICTATION_FRAMES}, not {cfg.dictation_frames!r}")
    entities = make_entities({"drug": cfg.drugs, "condition": cfg.conditions, "procedure": cfg.procedures},
                             cfg.rare_share, cfg.seed, general_vocabulary())
    world = make_world(entities, cfg.seed, cfg.drugs_per_condition, cfg.probe_share)
    rng = random.Random(f"world-plan-{cfg.seed}")
    w = _Writer(world, rng)
    tiers = _tiers(world, world.facts)

    def medical(style: str, rare_share: float) -> Callable[[], Made | None]:
        def make() -> Made | None:
            tier = RARE if rng.random() < rare_share and tiers[RARE] else COMMON
            return w.medical(style, _pick(rng, tiers[tier]))
        return make

    balance: Counter = Counter()

    def test_medical() -> Made | None:  # the tier behind so far goes next, so rare and common stay level
        fact = _pick(rng, tiers[RARE if balance[RARE] <= balance[COMMON] else COMMON], TEST_WEIGHTS)
        made = w.medical("dictation_test", fact, TEST_WEIGHTS)
        if made is not None and made[0] not in w.taken:
            balance.update(m.tier for m in made[1] if m.tier)
        return made

    # the test set first: no later set can take its sentences
    test = w.fill("test", cfg.test_medical, test_medical) + w.fill("test", cfg.test_general, w.general)
    asr, tts = _speech_sets(cfg, w, rng, world, tiers)
    if cfg.dictation_frames == "composed":
        # the fixed dictation sentences above were drawn only to move `rng` as before, and the general ASR
        # sentences are kept (later sets avoid them), so every other set stays byte-identical; the composed
        # dictation comes from its own random stream, and `taken` forgets the discarded sentences
        _check_held_out(DICTATION_COMPOSED)
        general = [line for line in asr if not line.fact_id]
        for line in asr + tts:
            if line.fact_id:
                del w.taken[line.text]
        drng = random.Random(f"world-dictation-{cfg.seed}")
        composed = _Writer(world, drng, DICTATION_COMPOSED)
        composed.taken = w.taken
        asr, tts = _speech_sets(cfg, composed, drng, world, tiers, general)
    sets = {"test": _numbered("wt", test), "asr_train": _numbered("wa", asr), "tts_text": _numbered("wp", tts),
            # domain text may repeat a sentence (as abstracts repeat findings); other sets never share one
            "domain_text": _numbered("wd", w.fill("domain_text", cfg.domain_texts,
                                                  medical("abstract", cfg.domain_rare_share), repeats=True))}
    world_lines: list[Line] = []
    asked = probe_questions(world)
    for fact in world.facts:
        world_lines += w.fill("world_text", cfg.world_paraphrases, lambda: w.medical("textbook", fact), repeats=True)
        if not fact.probe:
            world_lines += [Line("", text, (), fact.fact_id)
                            for text in question_lines(world, fact, rng, cfg.world_questions, asked)]
    world_lines += w.fill("world_text", cfg.world_general, w.general, repeats=True)
    rng.shuffle(world_lines)
    sets["world_text"] = _numbered("ww", world_lines)
    plan = Plan(world, sets)
    check_plan(plan, cfg.min_test_occurrences)
    return plan


def test_occurrences(plan: Plan) -> dict[str, int]:
    """Annotated occurrences in the test set by tier (doses under `dose`)."""
    counts = Counter(m.tier or m.category for line in plan.sets["test"] for m in line.mentions)
    return {key: counts.get(key, 0) for key in (RARE, COMMON, DOSE)}


def check_plan(plan: Plan, min_test_occurrences: int) -> None:
    """Raise ValueError when a control fails (see the module docstring)."""
    rare_words = {w for e in plan.world.entities.values() if e.tier == RARE for w in e.distinctive}
    for line in plan.sets["asr_train"]:
        leaked = rare_words & {w.strip(".,?!").lower() for w in line.text.split()}
        if leaked:
            raise ValueError(f"ASR training sentence {line.line_id} names rare entities {sorted(leaked)}: {line.text!r}")
    heard = {m.entity_id for line in plan.sets["asr_train"] for m in line.mentions}
    unheard = sorted(e.name for e in plan.world.entities.values() if e.tier == COMMON and e.entity_id not in heard)
    if plan.sets["asr_train"] and unheard:
        raise ValueError(f"common entities {unheard} are never spoken in ASR training; raise asr_utterances "
                         "or asr_medical_share")
    seen: dict[str, str] = {}
    for name, lines in plan.sets.items():
        for text in {l.text for l in lines}:
            if text in seen and seen[text] != name:
                raise ValueError(f"sentence {text!r} is in both {seen[text]} and {name}")
            seen[text] = name
    occurrences = test_occurrences(plan)
    short = {t: n for t, n in occurrences.items() if t in (RARE, COMMON) and n < min_test_occurrences}
    if short:
        raise ValueError(f"the test set has {short} entity occurrences, fewer than min_test_occurrences="
                         f"{min_test_occurrences}; raise test_medical")
