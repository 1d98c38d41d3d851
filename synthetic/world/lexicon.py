"""The world's entities: invented drug, condition and procedure names, split into rare and common.

Names are built from syllables whose sounds have several spellings (k/c, f/ph, i/y, l/ll...),
so hearing a name does not tell how it is written: the spelling of an entity never heard in
training speech can only come from text. Two names never share a sound key (no homophones, so
no entity is undecidable from audio), and no name is a general word of the world's sentences.

Tiers are drawn at random *after* the names exist, per category, so rare and common entities
have the same length, sounds and spelling ambiguity: any difference in their error rates comes
from what the model saw, not from how the names were made.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

RARE, COMMON = "rare", "common"
DRUG, CONDITION, PROCEDURE, DOSE = "drug", "condition", "procedure", "dose"
CATEGORIES = (DRUG, CONDITION, PROCEDURE)

# (sound key, spellings). "c"/"g" only before a, o, u (else English reads them s/j).
_ONSETS = [("b", ("b",)), ("d", ("d",)), ("g", ("g",)), ("l", ("l",)), ("m", ("m",)), ("n", ("n",)),
           ("r", ("r",)), ("t", ("t",)), ("v", ("v",)), ("z", ("z",)), ("k", ("k", "c")), ("f", ("f", "ph")),
           ("s", ("s",)), ("tr", ("tr",)), ("dr", ("dr",)), ("kl", ("kl", "cl")), ("kr", ("kr", "cr")),
           ("pr", ("pr",)), ("st", ("st",)), ("h", ("h",)), ("p", ("p",))]
_VOWELS = [("a", ("a",)), ("e", ("e",)), ("i", ("i", "y")), ("o", ("o",)), ("u", ("u",))]
_CODAS = [("n", ("n",)), ("r", ("r",)), ("l", ("l",)), ("s", ("s",)), ("m", ("m",)), ("x", ("x",)),
          ("k", ("k", "ck"))]
_DOUBLING = {"l": "ll", "n": "nn", "r": "rr", "t": "tt", "m": "mm", "s": "ss"}  # word-internal only
_SOFT_BEFORE = ("e", "i")  # c and g are soft before these

DRUG_SUFFIXES = ("statin", "pril", "lol", "zole", "mycin", "tinib", "sartan", "vir", "cillin", "mab",
                 "zepam", "dronate", "parin", "floxin", "tide")
CONDITION_SUFFIXES = ("itis", "osis", "emia", "algia")
CONDITION_HEADS = ("syndrome", "disease", "palsy")
PROCEDURE_SUFFIXES = ("ectomy", "oscopy", "oplasty", "ography")
PROCEDURE_HEADS = ("test", "scan")
GENERIC_HEADS = frozenset(CONDITION_HEADS + PROCEDURE_HEADS)  # words shared by many entities
DOSES = (5, 10, 20, 25, 40, 50, 75, 100, 150, 200, 250, 500)


@dataclass(frozen=True)
class Entity:
    """A named thing of the world: `name` as written (case kept), its category and tier."""

    entity_id: str
    name: str
    category: str
    tier: str
    sound: str  # the sound key of its distinctive word: two entities never share one

    @property
    def distinctive(self) -> tuple[str, ...]:
        """The lower-cased words of the name that no other entity uses (the head words are generic)."""
        return tuple(w.lower() for w in self.name.split() if w.lower() not in GENERIC_HEADS)


def dose_text(milligrams: int) -> str:
    """A dose as written in the world's text (digits, as a formatted transcript has them)."""
    return f"{milligrams} milligrams"


def _syllable(rng: random.Random, closed: bool, internal: bool) -> tuple[str, str]:
    """One syllable; `internal` ones (after an open syllable) may double their consonant (l -> ll)."""
    """(spelling, sound key) of one onset-vowel[-coda] syllable."""
    (okey, ospell), (vkey, vspell) = rng.choice(_ONSETS), rng.choice(_VOWELS)
    spellings = [s for s in ospell if not (s[0] in "cg" and vkey in _SOFT_BEFORE)] or [okey]
    if okey in ("g",) and vkey in _SOFT_BEFORE:
        okey, spellings = "d", ["d"]
    onset = rng.choice(spellings)
    if internal and okey in _DOUBLING and rng.random() < 0.3:
        onset = _DOUBLING[okey]
    spelling, key = onset + rng.choice(vspell), okey + vkey
    if closed:
        ckey, cspell = rng.choice(_CODAS)
        spelling, key = spelling + rng.choice(cspell), key + ckey
    return spelling, key


def _stem(rng: random.Random, closed: bool) -> tuple[str, str]:
    first_closed = rng.random() < 0.5
    first, k1 = _syllable(rng, closed=first_closed, internal=False)
    second, k2 = _syllable(rng, closed=closed, internal=not first_closed)
    return first + second, k1 + "-" + k2


def _make(rng: random.Random, category: str) -> tuple[str, str]:
    """(name, sound key of its distinctive word) of a fresh entity of `category`."""
    if category == DRUG:
        stem, key = _stem(rng, closed=False)
        suffix = rng.choice(DRUG_SUFFIXES)
        return stem + suffix, key + "-" + suffix
    if category == CONDITION:
        stem, key = _stem(rng, closed=True)
        if rng.random() < 0.5:
            return stem.capitalize() + " " + rng.choice(CONDITION_HEADS), key
        suffix = rng.choice(CONDITION_SUFFIXES)
        return stem + suffix, key + "-" + suffix
    stem, key = _stem(rng, closed=True)
    if rng.random() < 0.25:
        return stem.capitalize() + " " + rng.choice(PROCEDURE_HEADS), key
    suffix = rng.choice(PROCEDURE_SUFFIXES)
    return stem + suffix, key + "-" + suffix


def make_entities(counts: dict[str, int], rare_share: float, seed: int,
                  reserved_words: frozenset[str] = frozenset()) -> list[Entity]:
    """`counts[category]` entities per category, the first `rare_share` of a shuffled order rare.

    `reserved_words` (the general vocabulary, lower case) are never used as names.
    """
    rng = random.Random(f"world-lexicon-{seed}")
    sounds: set[str] = set()
    words: set[str] = set(reserved_words)
    out: list[Entity] = []
    for category in CATEGORIES:
        made: list[tuple[str, str]] = []
        attempts = 0
        while len(made) < counts.get(category, 0):
            attempts += 1
            if attempts > 10000 * max(1, counts[category]):
                raise ValueError(f"could not invent {counts[category]} distinct {category} names")
            name, sound = _make(rng, category)
            distinctive = [w.lower() for w in name.split() if w.lower() not in GENERIC_HEADS]
            stem_sound = sound.split("-")[0] + "-" + sound.split("-")[1]
            if sound in sounds or stem_sound in sounds or any(w in words for w in distinctive):
                continue
            sounds.update((sound, stem_sound))
            words.update(distinctive)
            made.append((name, sound))
        order = list(range(len(made)))
        rng.shuffle(order)
        n_rare = round(len(made) * rare_share)
        rare = set(order[:n_rare])
        out.extend(Entity(f"{category}-{i:03d}", name, category, RARE if i in rare else COMMON, sound)
                   for i, (name, sound) in enumerate(made))
    return out
