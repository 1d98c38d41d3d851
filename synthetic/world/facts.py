"""The world's knowledge: which drug treats which condition, doses, procedures, symptoms, organs.

Facts link entities at random, whatever their tier, so a rare entity takes part in facts with
common ones (its context can then be heard in speech while it cannot). A fact *involves the rare
tier* when any of its entities is rare: such a fact is never spoken in ASR training speech and is
learnable only from text. Half of the facts (per relation and tier) are `probe` facts: stated in
the world's text as sentences, but never in question form, so the probes test knowledge, not
recall of a seen question.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from .lexicon import COMMON, CONDITION, DOSE, DOSES, DRUG, PROCEDURE, RARE, Entity, dose_text
from .render import Slot

TREATS, DOSE_OF, PERFORMED_FOR, SYMPTOM, ORGAN = "treats", "dose", "performed_for", "symptom", "organ"
RELATIONS = (TREATS, DOSE_OF, PERFORMED_FOR, SYMPTOM, ORGAN)
SYMPTOMS = ("fever", "cough", "rash", "fatigue", "headache", "nausea", "dizziness", "joint pain", "chest pain",
            "back pain", "weight loss", "shortness of breath", "blurred vision", "muscle weakness", "swelling",
            "itching")
ORGANS = ("liver", "kidneys", "lungs", "heart", "skin", "stomach", "joints", "eyes", "brain", "blood", "bones",
          "thyroid")


@dataclass(frozen=True)
class Fact:
    """`subject relation object`: entity ids, or a literal (dose in mg, symptom, organ) as object."""

    fact_id: str
    relation: str
    subject: str
    object: str
    probe: bool = False  # held out of the question-form text: the probes ask about it


@dataclass
class World:
    """Entities by id and the facts between them."""

    entities: dict[str, Entity]
    facts: list[Fact]

    def of(self, category: str, tier: str | None = None) -> list[Entity]:
        return [e for e in self.entities.values() if e.category == category and (tier is None or e.tier == tier)]

    def involved(self, fact: Fact) -> list[Entity]:
        """The entities a fact names (dose, symptom and organ objects are literals)."""
        return [self.entities[i] for i in (fact.subject, fact.object) if i in self.entities]

    def tier(self, fact: Fact) -> str:
        """`rare` when the fact names a rare entity (then it is never spoken in ASR training)."""
        return RARE if any(e.tier == RARE for e in self.involved(fact)) else COMMON

    def literal(self, fact: Fact) -> str:
        """The object as written: `40 milligrams`, a symptom or an organ (entity objects: their name)."""
        if fact.relation == DOSE_OF:
            return dose_text(int(fact.object))
        return self.entities[fact.object].name if fact.object in self.entities else fact.object

    def by_relation(self, relation: str) -> list[Fact]:
        return [f for f in self.facts if f.relation == relation]


def _balanced_pick(rng: random.Random, pool: list[Entity], usage: dict[str, int], k: int) -> list[Entity]:
    """k distinct entities of `pool`, the least used first (ties at random)."""
    ranked = sorted(pool, key=lambda e: (usage[e.entity_id], rng.random()))[:k]
    for e in ranked:
        usage[e.entity_id] += 1
    return ranked


def make_world(entities: list[Entity], seed: int, drugs_per_condition: int = 2, probe_share: float = 0.5) -> World:
    """Random facts over `entities`: every condition has `drugs_per_condition` drugs, one procedure,
    one symptom and one organ; every drug one dose. Every common entity takes part in at least one
    all-common fact, so that it can be spoken in ASR training."""
    rng = random.Random(f"world-facts-{seed}")
    world = World({e.entity_id: e for e in entities}, [])
    drugs, conditions, procedures = world.of(DRUG), world.of(CONDITION), world.of(PROCEDURE)
    if not drugs or not conditions or not procedures:
        raise ValueError("a world needs at least one drug, one condition and one procedure")
    usage = {e.entity_id: 0 for e in entities}
    facts: list[tuple[str, str, str]] = []
    for c in conditions:
        for d in _balanced_pick(rng, drugs, usage, min(drugs_per_condition, len(drugs))):
            facts.append((TREATS, d.entity_id, c.entity_id))
        (p,) = _balanced_pick(rng, procedures, usage, 1)
        facts.append((PERFORMED_FOR, p.entity_id, c.entity_id))
        facts.append((SYMPTOM, c.entity_id, rng.choice(SYMPTOMS)))
        facts.append((ORGAN, c.entity_id, rng.choice(ORGANS)))
    for d in drugs:
        facts.append((DOSE_OF, d.entity_id, str(rng.choice(DOSES))))
    # a common procedure must be speakable in ASR training: give it a common condition if it has none
    common_conditions = [c for c in conditions if c.tier == COMMON]
    for p in (p for p in procedures if p.tier == COMMON and common_conditions):
        if not any(r == PERFORMED_FOR and s == p.entity_id and world.entities[o].tier == COMMON for r, s, o in facts):
            facts.append((PERFORMED_FOR, p.entity_id, rng.choice(common_conditions).entity_id))
    world.facts = [Fact(f"fact-{i:04d}", r, s, o) for i, (r, s, o) in enumerate(facts)]
    world.facts = _mark_probes(world, rng, probe_share)
    return world


def _mark_probes(world: World, rng: random.Random, share: float) -> list[Fact]:
    """Mark `share` of the facts of each (relation, tier) group as probe facts."""
    groups: dict[tuple[str, str], list[Fact]] = {}
    for f in world.facts:
        groups.setdefault((f.relation, world.tier(f)), []).append(f)
    probes: set[str] = set()
    for members in groups.values():
        order = members[:]
        rng.shuffle(order)
        probes.update(f.fact_id for f in order[: round(len(order) * share)])
    return [Fact(f.fact_id, f.relation, f.subject, f.object, f.fact_id in probes) for f in world.facts]


def _entity_slot(e: Entity) -> Slot:
    return Slot(e.name, e.category, e.tier, e.entity_id)


def fact_slots(world: World, fact: Fact) -> dict[str, Slot]:
    """Template values a fact provides: its entities (annotated), its dose (annotated), symptom, organ."""
    values: dict[str, Slot] = {}
    for e in world.involved(fact):
        values[e.category] = _entity_slot(e)
    if fact.relation == DOSE_OF:
        values["dose"] = Slot(dose_text(int(fact.object)), DOSE, None, f"dose-{fact.object}")
    elif fact.object not in world.entities:
        values[fact.relation] = Slot(fact.object)
    return values
