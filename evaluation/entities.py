"""Entity instances of the test references, from annotations or from an entity list.

Two file formats (picked by suffix):

- **Annotations**, `.jsonl`: one line per annotated utterance,
  `{"utt_id": "u1", "entities": [{"start": 30, "end": 39, "category": "rare"}, {"text": "chest x ray"}]}`.
  `start`/`end` are character offsets (end exclusive) into the utterance's `text` as written
  (Python string indices); with them, an optional `"text"` is checked against `text[start:end]`.
  An entity given by `"text"` only marks every occurrence of that phrase in the utterance
  (matched as for a list, below). `category` (optional, e.g. rare/common, drug/condition) gives
  the per-category breakdown.
- **Entity list**, any other suffix (today's `entities.txt`): one phrase per line, optionally
  followed by a tab and its category; every occurrence in every reference is an instance,
  matched case-insensitively as whole words with spaces and hyphens interchangeable
  (`evaluation.metrics.locate_phrases`).

Either way an instance is the reference's own characters, scored before normalisation.
An annotation that does not fit its reference (offsets out of range, text not found, an
utterance not in the evaluated set) is not scored and is counted by reason with examples.
A file that cannot be parsed raises a `JstipError` naming the line and the fix.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from manifests import storage
from manifests.errors import JstipError
from manifests.jsonl import read_objects

EXAMPLES = 5


@dataclass
class EntitySource:
    """What an entity file holds: per-utterance annotations, or a phrase list."""

    path: str
    annotations: dict[str, list[dict[str, Any]]] | None = None
    phrases: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""  # why there are no entities, when there are none

    @property
    def empty(self) -> bool:
        return not self.annotations and not self.phrases


def _read_list(path: Path) -> list[tuple[str, str]]:
    phrases = []
    for line in path.read_text(encoding="utf-8").splitlines():
        phrase, _, category = line.partition("\t")
        if phrase.strip():
            phrases.append((" ".join(phrase.split()), category.strip()))
    return phrases


def _entity_ok(entity: Any) -> bool:
    if not isinstance(entity, dict):
        return False
    offsets = "start" in entity or "end" in entity
    if offsets and not all(isinstance(entity.get(k), int) and not isinstance(entity.get(k), bool)
                           for k in ("start", "end")):
        return False
    if not offsets and not (isinstance(entity.get("text"), str) and entity["text"].strip()):
        return False
    return isinstance(entity.get("category", ""), str)


def _read_annotations(path: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for n, row in read_objects(path, '{"utt_id": ..., "entities": [{"start": 0, "end": 5, "category": "rare"}]}'):
        if not isinstance(row.get("utt_id"), str) or not isinstance(row.get("entities"), list):
            raise JstipError(f"{path}:{n} needs a string utt_id and a list of entities, got {str(row)[:120]!r}")
        bad = [e for e in row["entities"] if not _entity_ok(e)]
        if bad:
            raise JstipError(f"{path}:{n} (utt_id {row['utt_id']!r}) has an entity {bad[0]!r} that is neither "
                             '{"start": int, "end": int} nor {"text": "..."} (optional "category": str)')
        out.setdefault(row["utt_id"], []).extend(row["entities"])
    return out


def read_entity_source(path: str) -> EntitySource:
    """Read an annotation file (`.jsonl`) or an entity list; a missing or empty file gives a note, not an error."""
    if not path:
        return EntitySource(path, note="no entity file given; entity metrics not computed")
    if not storage.is_file(path):
        return EntitySource(path, note=f"entity file {path!r} not found; entity metrics not computed")
    with storage.local_folder(storage.parent(path), only=(storage.name(path),)) as folder:  # a URL: a local copy
        return _read_source(path, folder / storage.name(path))


def _read_source(path: str, file: Path) -> EntitySource:
    if file.suffix == ".jsonl":
        source = EntitySource(path, annotations=_read_annotations(file))
    else:
        source = EntitySource(path, phrases=_read_list(file))
    if source.empty:
        source.note = f"entity file {path} is empty (holds no entities); entity metrics not computed"
    return source


@dataclass
class Located:
    """Entity spans per utterance id, and the annotations that could not be placed (by reason)."""

    spans: dict[str, list] = field(default_factory=dict)
    problems: Counter = field(default_factory=Counter)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def problem(self, reason: str, example: dict[str, Any]) -> None:
        self.problems[reason] += 1
        if len(self.examples.setdefault(reason, [])) < EXAMPLES:
            self.examples[reason].append(example)


def locate(source: EntitySource, references: dict[str, str]) -> Located:
    """Entity spans over each reference (`utt_id -> text as written`) of the evaluated set."""
    from evaluation.metrics import EntitySpan, locate_phrases

    out = Located()
    if source.annotations is None:
        for utt_id, text in references.items():
            found = locate_phrases(text, source.phrases)
            if found:
                out.spans[utt_id] = found
        return out
    for utt_id, entities in source.annotations.items():
        if utt_id not in references:
            out.problem("utterance_not_evaluated", {"utt_id": utt_id, "entities": len(entities)})
            continue
        text, spans = references[utt_id], []
        for e in entities:
            category = e.get("category", "")
            if "start" in e:
                start, end = e["start"], e["end"]
                if not 0 <= start < end <= len(text) or not text[start:end].strip():
                    out.problem("offsets_outside_text", {"utt_id": utt_id, "entity": e, "text_length": len(text)})
                elif "text" in e and text[start:end] != e["text"]:
                    out.problem("offsets_do_not_match_text", {"utt_id": utt_id, "entity": e, "at_offsets": text[start:end]})
                else:
                    spans.append(EntitySpan(start, end, category))
            else:
                found = locate_phrases(text, [(e["text"], category)])
                if not found:
                    out.problem("text_not_in_reference", {"utt_id": utt_id, "entity": e, "reference": text})
                spans += found
        spans = _drop_duplicates(sorted(spans, key=lambda s: (s.start, s.end)))
        if spans:
            out.spans[utt_id] = spans
    return out


def _drop_duplicates(spans: Sequence) -> list:
    """The same span annotated twice is one instance."""
    out = []
    for s in spans:
        if not out or (out[-1].start, out[-1].end) != (s.start, s.end):
            out.append(s)
    return out
