"""Fill a template and record where each entity landed: character spans of the written text.

The annotation is made while the sentence is assembled (not found again afterwards by string
search), so it is exact even when a name occurs twice or is capitalised at the sentence start.
`Mention.text` is always `sentence[start:end]`: the form the reference has, case included,
which is what an entity error rate scored before normalisation must see.
"""
from __future__ import annotations

import string
from dataclasses import dataclass


@dataclass(frozen=True)
class Mention:
    """An annotated entity occurrence: `text == sentence[start:end]`."""

    start: int
    end: int
    text: str
    category: str
    tier: str | None  # rare | common; None for doses (a number is not rare or common)
    entity_id: str

    def as_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "text": self.text, "category": self.category,
                "tier": self.tier, "entity_id": self.entity_id}


@dataclass(frozen=True)
class Slot:
    """A value for a template field; `category` set means it is an annotated entity."""

    text: str
    category: str = ""
    tier: str | None = None
    entity_id: str = ""


def render(template: str, values: dict[str, Slot]) -> tuple[str, list[Mention]]:
    """The sentence (first letter upper case) and its entity mentions."""
    parts: list[str] = []
    spans: list[tuple[int, int, Slot]] = []
    length = 0
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(literal)
        length += len(literal)
        if name:
            if name not in values:
                raise KeyError(f"template {template!r} needs a value for {{{name}}}")
            slot = values[name]
            if slot.category:
                spans.append((length, length + len(slot.text), slot))
            parts.append(slot.text)
            length += len(slot.text)
    sentence = "".join(parts)
    if sentence and sentence[0].islower():
        sentence = sentence[0].upper() + sentence[1:]
    mentions = [Mention(a, b, sentence[a:b], s.category, s.tier, s.entity_id) for a, b, s in spans]
    return sentence, mentions
