"""Transcription metrics as the paper defines them: TER, WER and the entity error rate.

All alignments come from jiwer (Levenshtein over token lists, RapidFuzz underneath); nothing
here is a hand-written edit distance. Three token views of a transcript:

- **TER tokens** (`text_tokens`): the text as written, case kept, split into words and
  punctuation marks, each mark its own token: "Take 5 mg, twice-daily." → `Take 5 mg , twice
  - daily .`. A word keeps inner apostrophes ("don't"), a number its inner separators
  ("3.5", "10:30", "1,000"). So a missing comma costs one deletion, a wrong case one
  substitution, and a word with a stray full stop is not also a wrong word.
- **WER words**: the normalised text (the stage passes `corpora.textnorm.normalize`, what
  `norm_text` holds) split on whitespace.
- **Entity instances**: character spans over the reference as written (`EntitySpan`). An
  instance covers the reference's TER tokens it overlaps; jiwer aligns the reference's and the
  hypothesis's TER tokens. An instance is *recognised* when every one of its tokens is aligned
  as equal (same case, punctuation and spelling) and the hypothesis inserts nothing between
  its first and last token: all its words right, in place. A hypothesis equal to the reference
  recognises every instance. Entity error rate = 1 − recall = missed / instances (the paper's
  EER, scored before normalisation). The normalised variant scores the same instances on
  normalised words (the normalised form of each whitespace-separated reference word it
  overlaps) against the normalised hypothesis. Insertions just outside an entity, and
  hypothesis entities absent from the reference, are not counted (recall, not precision).
  Where two alignments cost the same (ref "new york", hyp "new new york": the extra "new"
  before or inside the entity), jiwer's choice decides, as it does for the WER of the pair.

Each function returns per-utterance counts, so corpus rates and bootstrap intervals
(`evaluation.bootstrap`) come from the same numbers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import jiwer

Normalize = Callable[[str], str]

_TOKEN = re.compile(r"\d+(?:[.,:]\d+)+|\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)


def text_tokens(text: str) -> list[str]:
    """TER tokens of a transcript as written: words and single punctuation marks, case kept."""
    return _TOKEN.findall(text)


def _align(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]]) -> list[list[jiwer.AlignmentChunk]]:
    """jiwer's alignment of each token list pair (tokens never hold whitespace, so joining is lossless)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if not refs:
        return []
    out = jiwer.process_words([" ".join(r) for r in refs], [" ".join(h) for h in hyps])
    return out.alignments


@dataclass(frozen=True)
class ErrorCounts:
    """Edit operations of one utterance against `reference` tokens."""

    substitutions: int
    deletions: int
    insertions: int
    reference: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions


def error_counts(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]]) -> list[ErrorCounts]:
    """Substitutions, deletions, insertions and reference length of each token list pair."""
    counts = []
    for ref, chunks in zip(refs, _align(refs, hyps)):
        ops = {"substitute": 0, "delete": 0, "insert": 0}
        for c in chunks:
            if c.type in ops:
                ops[c.type] += max(c.ref_end_idx - c.ref_start_idx, c.hyp_end_idx - c.hyp_start_idx)
        counts.append(ErrorCounts(ops["substitute"], ops["delete"], ops["insert"], len(ref)))
    return counts


def _rate(counts: Sequence[ErrorCounts]) -> tuple[float | None, int, int]:
    errors, total = sum(c.errors for c in counts), sum(c.reference for c in counts)
    return (errors / total if total else None), errors, total


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float | int | None]:
    """Corpus WER of normalised strings: `{"wer", "errors", "reference_words"}` (None without words)."""
    rate, errors, total = _rate(error_counts([r.split() for r in references], [h.split() for h in hypotheses]))
    return {"wer": rate, "errors": errors, "reference_words": total}


def token_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float | int | None]:
    """Corpus TER of transcripts as written (case and punctuation count): `{"ter", "errors", "reference_tokens"}`."""
    rate, errors, total = _rate(error_counts([text_tokens(r) for r in references],
                                             [text_tokens(h) for h in hypotheses]))
    return {"ter": rate, "errors": errors, "reference_tokens": total}


@dataclass(frozen=True)
class EntitySpan:
    """An annotated entity instance: characters `start:end` of the reference text, with an optional category."""

    start: int
    end: int
    category: str = ""


@dataclass(frozen=True)
class EntityResult:
    """How one entity instance fared: its reference text, and the hypothesis tokens aligned to it."""

    text: str
    category: str
    hit: bool
    hit_normalised: bool
    hypothesis: str


def _ranges(matches: list[re.Match], spans: Sequence[EntitySpan], sizes: Sequence[int]) -> list[tuple[int, int]]:
    """Token range [a, b) of each span: the tokens of every match that overlaps it; `sizes[k]` is the
    number of tokens match k stands for."""
    offsets = [0]
    for n in sizes:
        offsets.append(offsets[-1] + n)
    out = []
    for s in spans:
        hit = [k for k, m in enumerate(matches) if m.start() < s.end and m.end() > s.start]
        out.append((offsets[hit[0]], offsets[hit[-1] + 1]) if hit else (0, 0))
    return out


def _span_status(chunks: Sequence[jiwer.AlignmentChunk], n_ref: int) -> tuple[list[bool], list[int], list[int]]:
    """Per reference token: aligned as equal?; hypothesis index it aligns to (-1 if deleted);
    insertions placed just before it (index n_ref: after the last)."""
    equal, target, inserted = [False] * n_ref, [-1] * n_ref, [0] * (n_ref + 1)
    for c in chunks:
        if c.type == "insert":
            inserted[c.ref_start_idx] += c.hyp_end_idx - c.hyp_start_idx
            continue
        for k in range(c.ref_end_idx - c.ref_start_idx):
            i = c.ref_start_idx + k
            equal[i] = c.type == "equal"
            if c.type != "delete":
                target[i] = c.hyp_start_idx + k
    return equal, target, inserted


def _hits(ref_tokens: list[str], hyp_tokens: list[str], ranges: Sequence[tuple[int, int]],
          chunks: Sequence[jiwer.AlignmentChunk]) -> list[tuple[bool, str]]:
    """For each token range [a, b) of the reference: all equal and nothing inserted inside, and the
    hypothesis text aligned to it."""
    equal, target, inserted = _span_status(chunks, len(ref_tokens))
    out = []
    for a, b in ranges:
        hit = b > a and all(equal[a:b]) and not any(inserted[a + 1:b])
        aligned = [t for t in target[a:b] if t >= 0]
        out.append((hit, " ".join(hyp_tokens[min(aligned):max(aligned) + 1]) if aligned else ""))
    return out


def score_entities(reference: str, hypothesis: str, spans: Sequence[EntitySpan],
                   normalize: Normalize | None = None) -> list[EntityResult]:
    """Score the entity instances `spans` of one reference (as written) against its hypothesis.

    An instance covers the TER tokens it overlaps (an annotation inside a token takes the
    whole token). `normalize` (a text normaliser such as `corpora.textnorm.normalize`) gives
    the normalised variant: the normalised words of the whitespace-separated reference words
    the instance overlaps, against the normalised hypothesis; without it `hit_normalised`
    repeats `hit`.
    """
    if not spans:
        return []
    matches = list(_TOKEN.finditer(reference))
    ref_tokens, hyp_tokens = [m.group() for m in matches], text_tokens(hypothesis)
    raw = _hits(ref_tokens, hyp_tokens, _ranges(matches, spans, [1] * len(matches)),
                _align([ref_tokens], [hyp_tokens])[0])
    if normalize is None:
        norm = [(hit, "") for hit, _ in raw]
    else:
        words = list(re.finditer(r"\S+", reference))
        pieces = [normalize(w.group()).split() for w in words]
        ref_norm, hyp_norm = [t for p in pieces for t in p], normalize(hypothesis).split()
        norm = _hits(ref_norm, hyp_norm, _ranges(words, spans, [len(p) for p in pieces]),
                     _align([ref_norm], [hyp_norm])[0])
    return [EntityResult(reference[s.start:s.end], s.category, hit, nhit, aligned)
            for s, (hit, aligned), (nhit, _) in zip(spans, raw, norm)]


def entity_error_rate(results: Iterable[Iterable[EntityResult]]) -> dict[str, object]:
    """EER (1 − recall) over the instances of all utterances, raw and normalised, and per category.

    `{"eer", "eer_normalised", "instances", "hits", "hits_normalised", "by_category":
    {category: {"eer", "eer_normalised", "instances", "hits", "hits_normalised"}}}`; rates are
    None without instances; instances without a category are counted only in the totals.
    """
    def tally(items: list[EntityResult]) -> dict[str, float | int | None]:
        n, hits, nhits = len(items), sum(r.hit for r in items), sum(r.hit_normalised for r in items)
        return {"eer": 1 - hits / n if n else None, "eer_normalised": 1 - nhits / n if n else None,
                "instances": n, "hits": hits, "hits_normalised": nhits}

    flat = [r for utt in results for r in utt]
    out: dict[str, object] = tally(flat)
    categories = sorted({r.category for r in flat if r.category})
    out["by_category"] = {c: tally([r for r in flat if r.category == c]) for c in categories}
    return out


def _phrase_pattern(phrase: str) -> str:
    """A whole-word, case-insensitive pattern of `phrase` in which spaces and hyphens are interchangeable."""
    words = [re.escape(w) for w in re.split(r"[\s\-]+", phrase.strip()) if w]
    return r"(?<!\w)" + r"[\s\-]+".join(words) + r"(?!\w)"


def locate_phrases(text: str, phrases: Sequence[tuple[str, str]]) -> list[EntitySpan]:
    """Entity instances of a phrase list (`(phrase, category)`) in a reference as written.

    A phrase matches case-insensitively as whole words, a space and a hyphen standing for each
    other ("chest x ray" finds "Chest X-ray"); longer phrases win where matches overlap, and
    matches never overlap. The instance is the reference's own characters, so the hypothesis
    must then reproduce them exactly.
    """
    ordered = sorted({(p.strip(), c) for p, c in phrases if p.strip()}, key=lambda pc: (-len(pc[0]), pc[0]))
    taken: list[EntitySpan] = []
    for phrase, category in ordered:
        for m in re.finditer(_phrase_pattern(phrase), text, flags=re.IGNORECASE):
            if all(m.end() <= s.start or m.start() >= s.end for s in taken):
                taken.append(EntitySpan(m.start(), m.end(), category))
    return sorted(taken, key=lambda s: s.start)
